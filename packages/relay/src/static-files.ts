import { createReadStream, type Stats, statSync } from 'node:fs'
import { stat } from 'node:fs/promises'
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

/** Serves one request, or returns false when the request is not for a static file. */
export type StaticHandler = (request: IncomingMessage, response: ServerResponse) => Promise<boolean>

/**
 * Serves the files of a built web app (such as `apps/notes/dist`) from `root`: `GET` and
 * `HEAD` only, never outside `root` (no `..`, no symlinked escapes past the resolved root),
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

  return async (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false
    let path: string
    try {
      path = decodeURIComponent(new URL(request.url ?? '/', 'http://relay.invalid').pathname)
    } catch {
      return false
    }
    if (path.includes('\0')) return false
    const wanted = path === '/' || extname(path) === '' ? '/index.html' : path
    const file = resolve(base, `.${wanted}`)
    if (file !== base && !file.startsWith(base + sep)) return false
    let info: Stats
    try {
      info = await stat(file)
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
    })
    if (request.method === 'HEAD') {
      response.end()
      return true
    }
    await new Promise<void>((resolveSent, reject) => {
      const stream = createReadStream(file)
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
