import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'
import type { Timers } from '../timers.js'
import {
  backoffDelay,
  INITIAL_LINK,
  type LinkEffect,
  type LinkInput,
  type LinkPhase,
  type LinkState,
  type ReconnectPolicy,
  stepLink,
} from './reconnect.js'
import { frameText, ReadyState, type WebSocketConstructorLike, type WebSocketLike } from './websocket-like.js'

/** How long a closing socket may take to finish its closing handshake before it is dropped. */
const RELEASE_TIMEOUT_MS = 2_000
/** How long `prepare` (an app's token function) may take before the attempt counts as failed. */
export const PREPARE_TIMEOUT_MS = 30_000

/** Options for {@link SocketLink}. */
export interface SocketLinkOptions {
  readonly url: string
  readonly WebSocket: WebSocketConstructorLike
  readonly timers: Timers
  /** A uniform draw in [0, 1) for the backoff's jitter. */
  readonly random: () => number
  readonly policy: ReconnectPolicy
  /**
   * Runs before each socket is opened (fetching the token the next connection presents); the
   * socket opens once it resolves, if it is still wanted. A rejection counts as one more
   * failed attempt: reported through `onError` and retried with backoff.
   */
  readonly prepare?: () => Promise<void>
  /**
   * What a `prepare` that has not settled after {@link PREPARE_TIMEOUT_MS} is reported as (it
   * then counts as a failed attempt, and its late outcome is ignored). Default: `internal`.
   */
  readonly prepareTimedOut?: () => ChorusError
  /** A socket opened; `send` writes a text frame to it (and does nothing once it is gone). */
  readonly onOpen: (send: (frame: string) => void) => void
  /** The open socket went away. */
  readonly onClose: () => void
  /** A frame arrived. Frames are handed over one at a time, in arrival order. */
  readonly onFrame: (text: string) => Promise<void>
  readonly onPhase: (phase: LinkPhase) => void
  /** A failure with no caller: a frame that could not be read or handled. */
  readonly onError: (error: ChorusError) => void
}

/**
 * Keeps one WebSocket to the hub: opens it, hands it to the engine, and reconnects with
 * backoff when it drops — the runtime of the {@link stepLink} machine.
 *
 * Inputs are processed one at a time even when an effect's callback feeds another one in
 * (a detach that makes the app call `disconnect()`), so effects never act on a stale phase.
 */
export class SocketLink {
  readonly #options: SocketLinkOptions
  #state: LinkState = INITIAL_LINK
  #socket: WebSocketLike | null = null
  #timer: unknown = null
  #inbound: Promise<void> = Promise.resolve()
  readonly #queued: LinkInput[] = []
  #stepping = false
  readonly #releasing = new Set<Promise<void>>()
  /** The timeout of the `prepare` being waited for, if any. */
  #preparing: unknown = null

  constructor(options: SocketLinkOptions) {
    this.#options = options
  }

  get phase(): LinkPhase {
    return this.#state.phase
  }

  /** Connects (at once, even while a reconnect is scheduled). */
  start(): void {
    this.#input({ type: 'start' })
  }

  /** Disconnects and stays disconnected until {@link start}. */
  stop(): void {
    this.#input({ type: 'stop' })
  }

  /** True while the link waits for `prepare` (a token, say) before it opens its socket. */
  get preparing(): boolean {
    return this.#preparing !== null
  }

  /** The hub answered hello: the next drop backs off from the first step again. */
  ready(): void {
    // Called after every frame once the session is up: nothing to reset then, so no step.
    if (this.#state.phase === 'open' && this.#state.attempt === 0) return
    this.#input({ type: 'ready' })
  }

  /** The network is back: a scheduled reconnect happens now. */
  online(): void {
    this.#input({ type: 'online' })
  }

  /** The network is gone: hang up the socket now and reconnect later. */
  offline(): void {
    this.#input({ type: 'offline' })
  }

  /** The hub refused this replica for good: disconnect and never reconnect. */
  refused(): void {
    this.#input({ type: 'refused' })
  }

  /** Resolves once every socket this link closed has finished closing (or was dropped). */
  async released(): Promise<void> {
    while (this.#releasing.size > 0) await Promise.all(this.#releasing)
  }

  #input(input: LinkInput): void {
    this.#queued.push(input)
    if (this.#stepping) return
    this.#stepping = true
    try {
      for (let next = this.#queued.shift(); next !== undefined; next = this.#queued.shift()) {
        const before = this.#state.phase
        const step = stepLink(this.#state, next)
        this.#state = step.state
        for (const effect of step.effects) this.#perform(effect)
        if (this.#state.phase !== before) this.#options.onPhase(this.#state.phase)
      }
    } finally {
      this.#stepping = false
    }
  }

  #perform(effect: LinkEffect): void {
    const { timers } = this.#options
    switch (effect.type) {
      case 'open-socket':
        if (this.#options.prepare === undefined) this.#open(effect.socket)
        else this.#prepareAndOpen(effect.socket, this.#options.prepare)
        return
      case 'close-socket':
        this.#close()
        return
      case 'attach': {
        const socket = this.#socket
        if (socket !== null) this.#options.onOpen((frame) => this.#send(socket, frame))
        return
      }
      case 'detach':
        this.#options.onClose()
        return
      case 'schedule': {
        const delay = backoffDelay(this.#options.policy, effect.attempt, this.#options.random())
        this.#timer = timers.setTimeout(() => {
          this.#timer = null
          this.#input({ type: 'timer' })
        }, delay)
        return
      }
      case 'cancel-timer':
        if (this.#timer !== null) timers.clearTimeout(this.#timer)
        this.#timer = null
        return
    }
  }

  #prepareAndOpen(id: number, prepare: () => Promise<void>): void {
    const { timers } = this.#options
    // Still wanted: no newer attempt, no stop, no refusal while it ran, and not given up on
    // (`#close` and the timeout end the wait).
    const wanted = () =>
      this.#preparing === timer && this.#state.socket === id && this.#state.phase === 'opening'
    const fail = (error: ChorusError) => {
      if (!wanted()) return
      this.#endPreparing()
      this.#options.onError(error)
      this.#input({ type: 'closed', socket: id })
    }
    this.#endPreparing()
    const timer: unknown = timers.setTimeout(() => {
      fail(
        this.#options.prepareTimedOut?.() ??
          new ChorusError(
            ErrorCode.Internal,
            `preparing the connection took longer than ${PREPARE_TIMEOUT_MS / 1000} s; trying again`,
          ),
      )
    }, PREPARE_TIMEOUT_MS)
    this.#preparing = timer
    let preparing: Promise<void>
    try {
      preparing = prepare()
    } catch (error) {
      preparing = Promise.reject(error)
    }
    preparing.then(
      () => {
        if (!wanted()) return
        this.#endPreparing()
        this.#open(id)
      },
      (error: unknown) =>
        fail(
          isChorusError(error)
            ? error
            : new ChorusError(ErrorCode.Internal, 'preparing the connection failed', { cause: error }),
        ),
    )
  }

  /** Stops waiting for `prepare`: its timeout is cleared, and a late outcome is ignored. */
  #endPreparing(): void {
    if (this.#preparing === null) return
    this.#options.timers.clearTimeout(this.#preparing)
    this.#preparing = null
  }

  #open(id: number): void {
    let socket: WebSocketLike
    try {
      socket = new this.#options.WebSocket(this.#options.url)
    } catch (error) {
      // A constructor that throws (a port the browser blocks, say) is one more failed
      // attempt; reported so a permanent misconfiguration is visible, retried with backoff.
      this.#options.onError(
        new ChorusError(ErrorCode.Internal, `could not open a WebSocket to ${this.#options.url}`, {
          cause: error,
        }),
      )
      queueMicrotask(() => this.#input({ type: 'closed', socket: id }))
      return
    }
    this.#socket = socket
    socket.onopen = () => this.#input({ type: 'opened', socket: id })
    socket.onmessage = (event) => this.#receive(id, event.data)
    socket.onclose = () => this.#input({ type: 'closed', socket: id })
    socket.onerror = ignoreSocketError
  }

  #send(socket: WebSocketLike, frame: string): void {
    if (this.#socket !== socket || socket.readyState !== ReadyState.Open) return
    try {
      socket.send(frame)
    } catch (error) {
      this.#options.onError(
        new ChorusError(ErrorCode.Internal, 'sending a frame failed; reconnecting', { cause: error }),
      )
      this.#close()
      this.#input({ type: 'closed', socket: this.#state.socket })
    }
  }

  #receive(id: number, data: unknown): void {
    this.#inbound = this.#inbound
      .then(async () => {
        // Frames of a socket that has since closed still count (a hub sends its refusal and
        // hangs up at once), unless a newer socket replaced it or the app disconnected.
        if (!this.#delivers(id)) return
        const text = await frameText(data)
        if (text === undefined) {
          this.#options.onError(
            new ChorusError(ErrorCode.MalformedFrame, `ignored a frame of unknown type (${typeof data})`),
          )
          return
        }
        if (this.#delivers(id)) await this.#options.onFrame(text)
      })
      .catch((error: unknown) => {
        this.#options.onError(
          isChorusError(error)
            ? error
            : new ChorusError(ErrorCode.Internal, 'handling a received frame failed', { cause: error }),
        )
      })
  }

  #delivers(id: number): boolean {
    return this.#state.socket === id && this.#state.phase !== 'stopped'
  }

  /** Closes the current socket; its late events are ignored, and `released()` waits for it. */
  #close(): void {
    this.#endPreparing()
    const socket = this.#socket
    this.#socket = null
    if (socket === null) return
    socket.onopen = null
    socket.onmessage = null
    if (socket.readyState === ReadyState.Closed) {
      socket.onclose = null
      return
    }
    const { timers } = this.#options
    let finish = (): void => undefined
    const released = new Promise<void>((resolve) => {
      const timeout = timers.setTimeout(() => {
        socket.terminate?.()
        finish()
      }, RELEASE_TIMEOUT_MS)
      finish = () => {
        timers.clearTimeout(timeout)
        socket.onclose = null
        this.#releasing.delete(released)
        resolve()
      }
    })
    this.#releasing.add(released)
    socket.onclose = () => finish()
    try {
      socket.close(1000, 'closed by the client')
    } catch (error) {
      this.#options.onError(
        new ChorusError(ErrorCode.Internal, 'closing the socket failed', { cause: error }),
      )
      finish()
    }
  }
}

/**
 * Socket errors carry no detail a program can use (browsers hide it on purpose); the close
 * event that always follows drives the reconnect. The handler must exist all the same: `ws`
 * throws an 'error' event that has no listener.
 */
function ignoreSocketError(): void {
  return
}
