import type { AddressInfo } from 'node:net'
import { type Authenticate, createHubEngine, type HubEngine, type HubSessionConfig } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { WebSocket, WebSocketServer } from 'ws'

/**
 * A hub for the client's own tests: a real `ws` server on 127.0.0.1, port 0, driving core's
 * hub engine over an in-memory store. Not the relay — it lets these tests use real sockets
 * without depending on `@chorus/relay`.
 */
export interface TestHub {
  readonly url: string
  readonly engine: HubEngine
  readonly store: MemoryHubStore
  /** Connections accepted so far. */
  accepted(): number
  /** Changes (in `changes` and `snapshot` frames) the hub has sent to a replica. */
  changesSentTo(replicaId: string): number
  /** Socket errors the server saw (a well-behaved client causes none). */
  errors(): readonly Error[]
  /** Calls `listener` after each frame the hub handled and each connection opened or closed. */
  onActivity(listener: () => void): () => void
  /** Drops every connection without a closing handshake, as a crash or a cut network would. */
  terminateAll(): void
  close(): Promise<void>
}

export interface TestHubOptions {
  readonly authenticate?: Authenticate
  readonly session?: Partial<HubSessionConfig>
}

export async function startTestHub(options: TestHubOptions = {}): Promise<TestHub> {
  const store = new MemoryHubStore()
  const engine = createHubEngine({
    store,
    now: () => Date.now(),
    ...(options.authenticate === undefined ? {} : { authenticate: options.authenticate }),
    ...(options.session === undefined ? {} : { session: options.session }),
  })
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const { port } = server.address() as AddressInfo
  const sent = new Map<string, number>()
  const listeners = new Set<() => void>()
  const notify = () => {
    for (const listener of listeners) listener()
  }
  const errors: Error[] = []
  let accepted = 0

  server.on('connection', (socket) => {
    accepted++
    const connection = engine.accept({
      send: (frame) => {
        const message = JSON.parse(frame) as { type: string; batch?: unknown[] }
        const replica = connection.session().replicaId
        if ((message.type === 'changes' || message.type === 'snapshot') && replica !== null)
          sent.set(replica, (sent.get(replica) ?? 0) + (message.batch?.length ?? 0))
        if (socket.readyState === WebSocket.OPEN) socket.send(frame)
      },
      close: () => socket.close(),
    })
    socket.on('message', (data) => {
      void connection.receive(String(data)).then(notify)
    })
    socket.on('close', () => {
      void connection.closed().then(notify)
    })
    socket.on('error', (error) => errors.push(error))
    notify()
  })

  const tick = setInterval(() => void engine.tick(), 50)
  return {
    url: `ws://127.0.0.1:${port}/sync`,
    engine,
    store,
    accepted: () => accepted,
    errors: () => errors,
    changesSentTo: (replicaId) => sent.get(replicaId) ?? 0,
    onActivity(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    terminateAll() {
      for (const client of server.clients) client.terminate()
    },
    async close() {
      clearInterval(tick)
      for (const client of server.clients) client.terminate()
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      )
    },
  }
}

/** True when every connection has applied the whole log of `space` and every replica's uploads are stored. */
export function isHubQuiet(hub: TestHub, space: string): boolean {
  return hub.engine
    .sessions()
    .every((session) =>
      session.spaces.every((stream) => stream.space !== space || stream.acked >= stream.head),
    )
}
