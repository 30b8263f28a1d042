import { createReadStream, realpathSync, type Stats, statSync } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, resolve, sep } from 'node:path'
import { ChorusError, ErrorCode } from '@chorus/core'

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
}

/**
 * Serves one request, or returns false when the request is not for a static file. `url`, when
 * given, replaces the request's own path and query (a mounted app sees only its part of it).
 */
export type StaticHandler = (
  request: IncomingMessage,
  response: ServerResponse,
  url?: string,
) => Promise<boolean>

/** A built web app and the URL path it is served under (`/` for the site's root, `/lab` below it). */
export interface StaticMount {
  /** `/`, or `/` followed by segments of letters, digits, `-`, `_` and `.`, without a trailing `/`. */
  readonly path: string
  /** The app's directory: it must hold `index.html`. */
  readonly dir: string
}

/** Paths the relay answers itself; no app may be mounted over them. */
const RESERVED_PATHS = ['/sync', '/healthz', '/metrics', '/admin']

const MOUNT_PATH = /^\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*)?$/

/** Throws `invalid-argument` unless `path` is a well-formed mount path the relay does not answer itself. */
export function checkMountPath(path: string): void {
  const dots = path.split('/').some((segment) => segment === '.' || segment === '..')
  if (!MOUNT_PATH.test(path) || dots) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `cannot mount an app at ${JSON.stringify(path)}: use "/" or a path like "/lab" (letters, digits, "-", "_", "."; no trailing "/")`,
    )
  }
  if (RESERVED_PATHS.some((reserved) => path === reserved || path.startsWith(`${reserved}/`))) {
    throw new ChorusError(ErrorCode.InvalidArgument, `cannot mount an app at ${path}: the relay answers it`)
  }
}

/** The part of `path` below `mount`, starting with `/`, or undefined when `path` is not below it. */
function below(mount: string, path: string): string | undefined {
  if (mount === '/') return path
  if (path === mount) return ''
  return path.startsWith(`${mount}/`) ? path.slice(mount.length) : undefined
}

/**
 * Serves several built web apps on one origin, each under its own path (see
 * {@link createStaticHandler} for how one app is served). A request goes to the app with the
 * longest mount path it falls under, and only to that one: a file missing under `/lab/` is a
 * 404, never a file of the app at `/`. `/lab` itself redirects to `/lab/`, so the app's
 * relative URLs resolve inside it.
 *
 * Throws `invalid-argument` at once for a malformed or reserved mount path, the same path
 * twice, or a directory without `index.html`.
 */
export function createStaticMounts(mounts: readonly StaticMount[]): StaticHandler {
  const seen = new Set<string>()
  for (const mount of mounts) {
    checkMountPath(mount.path)
    if (seen.has(mount.path)) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `two apps are mounted at ${mount.path}: give each its own path`,
      )
    }
    seen.add(mount.path)
  }
  const handlers = [...mounts]
    .sort((a, b) => b.path.length - a.path.length)
    .map((mount) => ({ path: mount.path, serve: createStaticHandler(mount.dir) }))

  return async (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false
    let url: URL
    let path: string
    try {
      url = new URL(request.url ?? '/', 'http://relay.invalid')
      // Matched as the file is looked up, decoded: `/%6cab/x.js` and `/lab%2Fx.js` are under
      // `/lab`, not files of the app at `/`.
      path = decodeURIComponent(url.pathname)
    } catch {
      return false
    }
    for (const handler of handlers) {
      const rest = below(handler.path, path)
      if (rest === undefined) continue
      if (rest === '') {
        response.writeHead(301, { location: `${handler.path}/${url.search}`, 'cache-control': 'no-cache' })
        response.end()
        return true
      }
      // Encoded again, segment by segment: the app's handler decodes it once.
      return handler.serve(request, response, rest.split('/').map(encodeURIComponent).join('/') + url.search)
    }
    return false
  }
}

/**
 * Serves the files of a built web app (such as `apps/notes/dist`) from `root`: `GET` and
 * `HEAD` only, never outside `root` (no `..`, no symlink out of it: a file is served only
 * when its real path is under the root's), no dotfiles,
 * `index.html` for `/` and for any path without a file extension (client-side routes).
 * Files under `/assets/` (content-hashed by the bundler) are cached for a year; everything
 * else must be revalidated, so a new build is picked up on reload.
 *
 * Throws `invalid-argument` at once when `root` is not a directory holding `index.html`.
 */
export function createStaticHandler(root: string): StaticHandler {
  const base = resolve(root)
  let index: Stats
  try {
    index = statSync(join(base, 'index.html'))
    // A file is served only if it really is under where the directory really is (read at
    // each request), so a symlink inside that points out (to ../secret, or /etc) serves nothing.
    realpathSync(base)
  } catch (error) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `the static directory ${base} has no index.html: build the app first (pnpm build)`,
      { cause: error },
    )
  }
  if (!index.isFile()) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${join(base, 'index.html')} is not a file`)
  }

  return async (request, response, url = request.url ?? '/') => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false
    let path: string
    try {
      path = decodeURIComponent(new URL(url, 'http://relay.invalid').pathname)
    } catch {
      return false
    }
    if (path.includes('\0')) return false
    // No dotfiles (`.env.local`, `.git/config.txt`): a built app has none to serve.
    if (path.split('/').some((segment) => segment.startsWith('.'))) return false
    const wanted = path === '/' || extname(path) === '' ? '/index.html' : path
    const file = resolve(base, `.${wanted}`)
    if (file !== base && !file.startsWith(base + sep)) return false
    let info: Stats
    let real: string
    try {
      // Where the directory really is now: a symlink switched to a new release (`current ->
      // releases/2`) serves that release.
      const realBase = await realpath(base)
      real = await realpath(file)
      if (!real.startsWith(realBase + sep)) return false
      info = await stat(real)
    } catch {
      return false
    }
    if (!info.isFile()) return false
    const immutable = wanted.startsWith('/assets/')
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': info.size,
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'last-modified': info.mtime.toUTCString(),
      'x-content-type-options': 'nosniff',
      // The apps are not to be framed by other sites (clickjacking), nor to leak their URLs
      // (a notebook's link is its key on an open relay) to the sites they link to.
      'x-frame-options': 'DENY',
      'content-security-policy': "frame-ancestors 'none'",
      'referrer-policy': 'no-referrer',
    })
    if (request.method === 'HEAD') {
      response.end()
      return true
    }
    await new Promise<void>((resolveSent, reject) => {
      const stream = createReadStream(real)
      stream.once('error', reject)
      response.once('close', () => {
        stream.destroy()
        resolveSent()
      })
      stream.pipe(response)
    })
    return true
  }
}
