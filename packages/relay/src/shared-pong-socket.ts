import { WebSocket } from 'ws'

// biome-ignore lint/suspicious/noExplicitAny: the listener type of Node's `EventEmitter`
type Listener = (...args: any[]) => void

/**
 * A class of `ws` server-side sockets (for `WebSocketServer`'s `WebSocket` option) that keeps
 * one `pong` listener for all its sockets instead of one in each socket's table of listeners.
 *
 * The relay registers the same four listener functions on every socket it accepts (`error`,
 * `close`, `message`, `pong`), each called with the socket as `this`. Node keeps a socket's
 * listeners in a dictionary per socket, and a fourth event takes that dictionary to its next
 * size: about 96 bytes more per connection (measured with heap snapshots of idle connections).
 * With this class the first function registered for `pong` on any of its sockets is kept once,
 * in the class; each socket that registers that same function only sets a flag of its own, and
 * a pong calls it for those sockets alone. Any other `pong` listener (another function, or `once`) goes to
 * the socket's own table, as before. `off`, `removeListener` and `removeAllListeners` clear the
 * flag; `listenerCount('pong')` and `listeners('pong')` do not count the shared listener.
 *
 * Each call returns a new class, so two relays in one process keep their listeners apart.
 */
export function sharedPongSocketClass(): typeof WebSocket {
  let shared: Listener | null = null
  return class SharedPongSocket extends WebSocket {
    #hearsShared = false

    override on(event: string | symbol, listener: Listener): this {
      return this.#add(event, listener) ? this : super.on(event, listener)
    }

    override addListener(event: string | symbol, listener: Listener): this {
      return this.#add(event, listener) ? this : super.addListener(event, listener)
    }

    override off(event: string | symbol, listener: Listener): this {
      return this.#remove(event, listener) ? this : super.off(event, listener)
    }

    override removeListener(event: string | symbol, listener: Listener): this {
      return this.#remove(event, listener) ? this : super.removeListener(event, listener)
    }

    override removeAllListeners(event?: string | symbol): this {
      if (event === undefined || event === 'pong') this.#hearsShared = false
      return super.removeAllListeners(event)
    }

    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event !== 'pong' || !this.#hearsShared || shared === null) return super.emit(event, ...args)
      shared.apply(this, args)
      super.emit(event, ...args)
      return true
    }

    /** True when `listener` became (or already was) this socket's shared pong listener. */
    #add(event: string | symbol, listener: Listener): boolean {
      if (event !== 'pong' || this.#hearsShared || (shared !== null && shared !== listener)) return false
      shared = listener
      this.#hearsShared = true
      return true
    }

    #remove(event: string | symbol, listener: Listener): boolean {
      if (event !== 'pong' || !this.#hearsShared || shared !== listener) return false
      this.#hearsShared = false
      return true
    }
  }
}
