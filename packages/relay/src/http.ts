import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './metrics.js'
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

function reply(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
  response.end(body)
}

/**
 * The relay's HTTP side: `GET /healthz` (200 JSON while healthy, 503 otherwise), `GET
 * /metrics` (Prometheus text), 405 for other methods on those; then, with `serveFile`, the
 * files of a web app (see `createStaticHandler`); 404 for anything else.
 */
export function createHttpHandler(
  relay: Pick<Relay, 'health' | 'metrics'>,
  serveFile?: StaticHandler,
): (request: IncomingMessage, response: ServerResponse) => void {
  const json = 'application/json; charset=utf-8'
  const text = 'text/plain; charset=utf-8'
  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = pathOf(request)
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
    reply(response, 200, PROMETHEUS_CONTENT_TYPE, renderPrometheus(await relay.metrics()))
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
 * upgrade with 404, so a WebSocket is only ever opened on the sync path.
 */
export function createUpgradeHandler(
  target: UpgradeTarget,
  path: string = SYNC_PATH,
): (request: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (request, socket, head) => {
    socket.on('error', destroySocket)
    if (pathOf(request) !== path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    target.handleUpgrade(request, socket, head, (client) => {
      // The WebSocket handles the socket's errors from here on.
      socket.off('error', destroySocket)
      target.emit('connection', client, request)
    })
  }
}
