/** How long to wait before reconnecting: exponential backoff, capped. */
export interface ReconnectPolicy {
  /** The ceiling of the first wait, in milliseconds. */
  readonly baseMs: number
  /** The largest ceiling, in milliseconds, however many attempts failed. */
  readonly maxMs: number
  /**
   * How long an open connection may stay silent before it is taken for dead, hung up and
   * opened again: after half of it with no frame from the relay the replica sends a `ping`,
   * which a live relay answers at once, and with no frame in the other half it reconnects. A
   * network that vanishes without closing the socket (a laptop closed, a Wi-Fi that hands out
   * no more packets) is noticed within this time, not when the operating system gives up
   * (minutes). Only with a relay that answers pings.
   */
  readonly silenceMs: number
}

/** Defaults: first retry within 250 ms, then doubling up to 30 s; 30 s of silence is a dead connection. */
export const DEFAULT_RECONNECT: ReconnectPolicy = { baseMs: 250, maxMs: 30_000, silenceMs: 30_000 }

/**
 * The wait before reconnect attempt `attempt` (0 for the first after a drop), given a
 * uniform draw in [0, 1).
 *
 * Full jitter — uniform in [0, min(max, base · 2^attempt)) — rather than a fixed doubling:
 * when a relay restarts, its thousands of clients spread their reconnects over the window
 * instead of arriving in synchronised waves.
 */
export function backoffDelay(policy: ReconnectPolicy, attempt: number, draw: number): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 52))
  return Math.floor(Math.min(Math.max(draw, 0), 1) * ceiling)
}

/**
 * Where the connection is.
 *
 * `stopped`: not wanted (before `connect()` or after `disconnect()`). `opening`: a socket is
 * connecting. `open`: the socket is open and the engine attached. `waiting`: the socket
 * dropped and a reconnect is scheduled. `refused`: the hub refused this replica for good;
 * nothing reconnects.
 */
export type LinkPhase = 'stopped' | 'opening' | 'open' | 'waiting' | 'refused'

/** The connection as plain data. `socket` numbers sockets so a late event from an old one is ignored. */
export interface LinkState {
  readonly phase: LinkPhase
  /** Failed attempts since the hub last said hello: the backoff exponent. */
  readonly attempt: number
  readonly socket: number
}

/** What the runtime tells the connection. */
export type LinkInput =
  | { readonly type: 'start' }
  | { readonly type: 'stop' }
  | { readonly type: 'opened'; readonly socket: number }
  /** The hub answered hello: the connection works, so the backoff starts over. */
  | { readonly type: 'ready' }
  | { readonly type: 'closed'; readonly socket: number }
  | { readonly type: 'timer' }
  /** The platform reports the network is back: retry now instead of waiting out the backoff. */
  | { readonly type: 'online' }
  /**
   * The platform reports the network is gone: hang up now rather than trust a socket that
   * may linger half-open, and reconnect with backoff (or at once on `online`).
   */
  | { readonly type: 'offline' }
  | { readonly type: 'refused' }

/** What the connection asks the runtime to do, in order. */
export type LinkEffect =
  | { readonly type: 'open-socket'; readonly socket: number }
  | { readonly type: 'close-socket'; readonly socket: number }
  /** Hand the open socket to the engine. */
  | { readonly type: 'attach' }
  /** Take it away again. */
  | { readonly type: 'detach' }
  /** Reconnect after the backoff for `attempt`. */
  | { readonly type: 'schedule'; readonly attempt: number }
  | { readonly type: 'cancel-timer' }

/** The connection before `connect()`. */
export const INITIAL_LINK: LinkState = { phase: 'stopped', attempt: 0, socket: 0 }

/**
 * Advances the connection by one input; pure, like the protocol machines in core.
 *
 * Inputs that do not apply to the current phase (a second `start`, an event from a socket
 * that was replaced) change nothing.
 */
export function stepLink(state: LinkState, input: LinkInput): { state: LinkState; effects: LinkEffect[] } {
  const effects: LinkEffect[] = []
  const open = (from: LinkState): LinkState => {
    const socket = from.socket + 1
    effects.push({ type: 'open-socket', socket })
    return { ...from, phase: 'opening', socket }
  }
  const hangUp = (from: LinkState): void => {
    if (from.phase === 'open') effects.push({ type: 'detach' })
    if (from.phase === 'open' || from.phase === 'opening')
      effects.push({ type: 'close-socket', socket: from.socket })
    if (from.phase === 'waiting') effects.push({ type: 'cancel-timer' })
  }
  switch (input.type) {
    case 'start':
      if (state.phase === 'stopped') return { state: open(state), effects }
      if (state.phase === 'waiting') {
        effects.push({ type: 'cancel-timer' })
        return { state: open(state), effects }
      }
      return { state, effects }
    case 'stop':
      if (state.phase === 'refused' || state.phase === 'stopped') return { state, effects }
      hangUp(state)
      return { state: { ...state, phase: 'stopped', attempt: 0 }, effects }
    case 'opened':
      if (state.phase !== 'opening' || input.socket !== state.socket) return { state, effects }
      effects.push({ type: 'attach' })
      return { state: { ...state, phase: 'open' }, effects }
    case 'ready':
      return {
        state: state.phase === 'open' && state.attempt !== 0 ? { ...state, attempt: 0 } : state,
        effects,
      }
    case 'closed':
      if (input.socket !== state.socket || (state.phase !== 'open' && state.phase !== 'opening'))
        return { state, effects }
      if (state.phase === 'open') effects.push({ type: 'detach' })
      effects.push({ type: 'schedule', attempt: state.attempt })
      return { state: { ...state, phase: 'waiting', attempt: state.attempt + 1 }, effects }
    case 'timer':
      return state.phase === 'waiting' ? { state: open(state), effects } : { state, effects }
    case 'offline':
      if (state.phase !== 'open' && state.phase !== 'opening') return { state, effects }
      hangUp(state)
      effects.push({ type: 'schedule', attempt: state.attempt })
      return { state: { ...state, phase: 'waiting', attempt: state.attempt + 1 }, effects }
    case 'online':
      if (state.phase !== 'waiting') return { state, effects }
      effects.push({ type: 'cancel-timer' })
      return { state: open(state), effects }
    case 'refused':
      if (state.phase === 'refused') return { state, effects }
      hangUp(state)
      return { state: { ...state, phase: 'refused' }, effects }
  }
}
