import type { WebSocketConstructorLike, WebSocketLike, WebSocketMessageLike } from '@chorus/client'
import { createHubEngine, type HubConnection, type HubEngine } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'

/**
 * Core's hub engine over an in-memory store, reached through a WebSocket-shaped pair that
 * lives in this process: frames cross in order, each in its own macrotask, as on a socket.
 * It lets replicas in a DOM test environment sync without a server or a port.
 */
export interface InProcessHub {
  readonly url: string
  readonly engine: HubEngine
  readonly WebSocket: WebSocketConstructorLike
}

export function createInProcessHub(): InProcessHub {
  const engine = createHubEngine({ store: new MemoryHubStore(), now: () => Date.now() })

  class InProcessSocket implements WebSocketLike {
    readyState = 0
    onopen: ((event: unknown) => void) | null = null
    onmessage: ((event: WebSocketMessageLike) => void) | null = null
    onclose: ((event: unknown) => void) | null = null
    onerror: ((event: unknown) => void) | null = null
    #connection: HubConnection | null = null
    /** Closed by this side (the replica): nothing more is delivered to it. */
    #closedHere = false
    #inbound: Promise<void> = Promise.resolve()

    constructor(_url: string) {
      setTimeout(() => {
        if (this.readyState !== 0) return
        this.#connection = engine.accept({
          // A frame the hub sent before it hung up still arrives (its refusal, say), as on a
          // socket; one sent after this side closed does not.
          send: (frame) => {
            if (this.readyState !== 1) return
            setTimeout(() => {
              if (!this.#closedHere) this.onmessage?.({ data: frame })
            }, 0)
          },
          close: () => this.#hangUp(),
        })
        this.readyState = 1
        this.onopen?.({})
      }, 0)
    }

    send(data: string): void {
      if (this.readyState !== 1) return
      const connection = this.#connection
      if (connection === null) return
      this.#inbound = this.#inbound.then(() => connection.receive(data))
    }

    close(): void {
      this.#closedHere = true
      this.#hangUp()
    }

    #hangUp(): void {
      if (this.readyState >= 2) return
      this.readyState = 3
      const connection = this.#connection
      if (connection !== null) this.#inbound = this.#inbound.then(() => connection.closed())
      setTimeout(() => this.onclose?.({ code: 1000, reason: '' }), 0)
    }
  }

  return { url: 'ws://in-process.test/sync', engine, WebSocket: InProcessSocket }
}
