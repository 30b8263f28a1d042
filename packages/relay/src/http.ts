import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ErrorCode, isChorusError, isSpaceId, type SpaceId } from '@chorus/core'
import { PROMETHEUS_CONTENT_TYPE, type PrometheusOptions, renderPrometheus } from './metrics.js'
import { originAllowed } from './origin.js'
import type { Relay } from './relay.js'
import type { StaticHandler } from './static-files.js'

/** The path WebSocket clients connect to. */
export const SYNC_PATH = '/sync'

/** What the upgrade handler needs of a `ws` `WebSocketServer` created with `noServer: true`. */
export interface UpgradeTarget {
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    callback: (socket: unknown, request: IncomingMessage) => void,
  ): void
  emit(event: 'connection', socket: unknown, request: IncomingMessage): boolean
}

function pathOf(request: IncomingMessage): string | null {
  try {
    return new URL(request.url ?? '/', 'http://relay.invalid').pathname
  } catch {
    return null
  }
}

/**
 * The bearer token of a request's `Authorization` header, if it has one. The scheme's name is
 * matched without regard to case, as HTTP has it (RFC 9110, section 11.1).
 */
function bearerToken(request: IncomingMessage): string | undefined {
  const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(request.headers.authorization ?? '')
  return match?.[1]
}

function reply(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
  response.end(body)
}

/** Resolves once `response` can take more, or is closed (a reader that went away). */
function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done)
      response.off('close', done)
      resolve()
    }
    response.once('drain', done)
    response.once('close', done)
  })
}

/** Whether an `if-none-match` header names `etag` (or is `*`); weak tags compare as strong ones. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  return header.split(',').some((tag) => {
    const trimmed = tag.trim()
    return trimmed === '*' || trimmed.replace(/^W\//, '') === etag
  })
}

/**
 * Who may use the administration API: resolves with the subject of an administrator's bearer
 * token, or with why it is refused (`unauthenticated` → 401, `forbidden` → 403).
 */
export type AdminCheck = (
  token: string | undefined,
) => Promise<{ ok: true; subject: string } | { ok: false; code: ErrorCode; message: string }>

/** What the administration API did, for the operator's log. */
export interface AdminEvent {
  readonly action: 'delete-space'
  readonly space: string
  /** Whose admin token asked. */
  readonly subject: string
  /** False when the space had been deleted already. */
  readonly deleted: boolean
}

/** Where the administration API answers. */
export const ADMIN_PATH = '/admin'

/** Where a relay lists its spaces to relays that link every space (see `Relay.listSpacesFor`). */
export const LINK_SPACES_PATH = `${SYNC_PATH}/spaces`

const SPACES_PATH = '/admin/spaces'
const SPACE_PATH = /^\/admin\/spaces\/([^/]+)$/
const RECORDS_PATH = /^\/admin\/spaces\/([^/]+)\/records$/

/**
 * The relay's HTTP side: `GET /healthz` (200 JSON while healthy, 503 otherwise), `GET
 * /metrics` (Prometheus text), 405 for other methods on those; the administration API under
 * `/admin` (`GET /admin/spaces`, `DELETE /admin/spaces/NAME`, for a bearer token `admin` lets
 * through; off, 403, without it); `GET /sync/spaces`, the spaces a relay linking every space
 * may take (for its relay token, see `Relay.listSpacesFor`); then, with `serveFile`, the files
 * of a web app (see `createStaticHandler`); 404 for anything else.
 */
export function createHttpHandler(
  relay: Pick<
    Relay,
    'health' | 'metrics' | 'deleteSpace' | 'describeSpaces' | 'listSpacesFor' | 'exportSpace'
  >,
  serveFile?: StaticHandler,
  admin?: AdminCheck,
  onAdmin?: (event: AdminEvent) => void,
  metrics: PrometheusOptions = {},
): (request: IncomingMessage, response: ServerResponse) => void {
  const json = 'application/json; charset=utf-8'
  const text = 'text/plain; charset=utf-8'
  const answer = (response: ServerResponse, status: number, body: unknown) =>
    reply(response, status, json, `${JSON.stringify(body)}\n`)

  /** A bearer token refused: 401 (asking for a token) when it did not verify, 403 when it may not. */
  function refuseToken(
    response: ServerResponse,
    refusal: { readonly code: ErrorCode; readonly message: string },
  ): void {
    const unauthenticated = refusal.code === ErrorCode.Unauthenticated
    if (unauthenticated) response.setHeader('www-authenticate', 'Bearer')
    answer(response, unauthenticated ? 401 : 403, { code: refusal.code, error: refusal.message })
  }

  async function administer(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const records = RECORDS_PATH.exec(path)
    const match = records ?? SPACE_PATH.exec(path)
    const listing = path === SPACES_PATH
    if (match === null && !listing) {
      answer(response, 404, {
        error:
          'not found: the administration API has GET /admin/spaces, DELETE /admin/spaces/NAME and GET /admin/spaces/NAME/records',
      })
      return
    }
    const method = listing || records !== null ? 'GET' : 'DELETE'
    if (request.method !== method) {
      response.setHeader('allow', method)
      answer(response, 405, { error: `method not allowed: use ${method}` })
      return
    }
    if (admin === undefined) {
      answer(response, 403, {
        code: ErrorCode.Forbidden,
        error:
          'this relay runs without an auth secret, so its administration API is off: start it with --auth-secret',
      })
      return
    }
    const checked = await admin(bearerToken(request))
    if (!checked.ok) {
      refuseToken(response, checked)
      return
    }
    if (match === null) {
      answer(response, 200, await relay.describeSpaces())
      return
    }
    let space: string
    try {
      space = decodeURIComponent(match[1] as string)
    } catch {
      space = ''
    }
    if (!isSpaceId(space)) {
      answer(response, 400, {
        code: ErrorCode.InvalidArgument,
        error: `not a space name: ${JSON.stringify(space === '' ? match[1] : space)}`,
      })
      return
    }
    if (records !== null) {
      await exportSpace(space, response)
      return
    }
    const deleted = await relay.deleteSpace(space)
    onAdmin?.({ action: 'delete-space', space, subject: checked.subject, deleted })
    answer(response, 200, { space, deleted })
  }

  /**
   * `GET /admin/spaces/NAME/records`: the space's records as NDJSON (see `ExportedRecord`),
   * streamed a page at a time, waiting for the socket to drain; 404 for a deleted space.
   */
  async function exportSpace(space: SpaceId, response: ServerResponse): Promise<void> {
    const lines = relay.exportSpace(space)
    let first: IteratorResult<string>
    try {
      first = await lines.next()
    } catch (error) {
      if (!isChorusError(error, ErrorCode.SpaceDeleted)) throw error
      answer(response, 404, { code: ErrorCode.SpaceDeleted, error: error.message })
      return
    }
    response.writeHead(200, {
      'content-type': 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
    })
    // A failure from here on cuts the body off (the caller destroys a response already begun):
    // a reader learns of it from the connection reset.
    for (let next = first; next.done !== true; next = await lines.next()) {
      if (!response.write(`${next.value}\n`)) await drained(response)
      if (response.destroyed) {
        await lines.return(undefined)
        return
      }
    }
    response.end()
  }

  /**
   * `GET /sync/spaces`: 200 `{ spaces }` with an `etag`, 304 without a body when the request's
   * `if-none-match` names the listing's etag (nothing changed since the asker last listed),
   * 401 or 403 `{ code, error }` for a token refused.
   */
  async function listSpaces(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'GET') {
      response.setHeader('allow', 'GET')
      answer(response, 405, { error: 'method not allowed: use GET' })
      return
    }
    const listing = await relay.listSpacesFor(bearerToken(request))
    if (!listing.ok) {
      refuseToken(response, listing)
      return
    }
    const body = `${JSON.stringify({ spaces: listing.spaces })}\n`
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
    if (matchesEtag(request.headers['if-none-match'], etag)) {
      response.writeHead(304, { etag, 'cache-control': 'no-cache' })
      response.end()
      return
    }
    response.writeHead(200, { 'content-type': json, etag, 'cache-control': 'no-cache' })
    response.end(body)
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = pathOf(request)
    if (path === LINK_SPACES_PATH) {
      await listSpaces(request, response)
      return
    }
    if (path !== null && (path === ADMIN_PATH || path.startsWith(`${ADMIN_PATH}/`))) {
      await administer(request, response, path)
      return
    }
    if (path !== '/healthz' && path !== '/metrics') {
      if (serveFile !== undefined && (await serveFile(request, response))) return
      reply(response, 404, text, `not found: WebSocket clients connect to ${SYNC_PATH}\n`)
      return
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD')
      reply(response, 405, text, 'method not allowed\n')
      return
    }
    if (path === '/healthz') {
      const health = await relay.health()
      reply(response, health.status === 'ok' ? 200 : 503, json, `${JSON.stringify(health)}\n`)
      return
    }
    reply(response, 200, PROMETHEUS_CONTENT_TYPE, renderPrometheus(await relay.metrics(), metrics))
  }
  return (request, response) => {
    response.on('error', () => response.destroy())
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy()
        return
      }
      const detail = error instanceof Error ? error.message : String(error)
      reply(response, 500, text, `internal error: ${detail}\n`)
    })
  }
}

/**
 * Destroys the socket that emitted an error. A function of its own, not a closure in the
 * upgrade handler: a closure there would share its scope with the `connection` callback and
 * keep the upgrade request (headers and all) alive as long as the socket.
 */
function destroySocket(this: Duplex): void {
  this.destroy()
}

/**
 * Hands HTTP upgrades on {@link SYNC_PATH} to the WebSocket server and answers any other
 * upgrade with 404, so a WebSocket is only ever opened on the sync path. With
 * `allowedOrigins` (normalized by `normalizeOrigin`), an upgrade whose `Origin` header names
 * another origin is answered 403 before any WebSocket exists: a page on another site, in the
 * browser of someone the relay trusts, cannot open a sync connection. Upgrades without the
 * header (programs, not browsers) pass. `onOriginRefused` is told of each refusal (for
 * `/metrics`).
 */
export function createUpgradeHandler(
  target: UpgradeTarget,
  path: string = SYNC_PATH,
  allowedOrigins?: ReadonlySet<string>,
  onOriginRefused?: () => void,
  /** Header lines (each ending in CRLF) every refusal carries, such as HSTS over HTTPS. */
  headers = '',
): (request: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (request, socket, head) => {
    socket.on('error', destroySocket)
    if (pathOf(request) !== path) {
      socket.end(`HTTP/1.1 404 Not Found\r\n${headers}Connection: close\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    if (allowedOrigins !== undefined && !originAllowed(allowedOrigins, request.headers.origin)) {
      onOriginRefused?.()
      const body = JSON.stringify({
        code: ErrorCode.Forbidden,
        error: 'this relay does not take WebSocket connections from pages of that origin',
      })
      socket.end(
        `HTTP/1.1 403 Forbidden\r\n${headers}Connection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
      return
    }
    target.handleUpgrade(request, socket, head, (client) => {
      // The WebSocket handles the socket's errors from here on.
      socket.off('error', destroySocket)
      target.emit('connection', client, request)
    })
  }
}
