import { ChorusError, ErrorCode } from './errors.js'
import { type Brand, isReplicaId, type ReplicaId } from './ids.js'

/**
 * A hybrid logical clock stamp, encoded so that string order is clock order.
 *
 * Layout: 15-digit wall-clock milliseconds, `.`, 6-digit counter, `@`, replica id. Two stamps
 * compare by wall time, then counter, then replica id — a total order over every event in
 * the system, which is what last-write-wins needs to pick the same winner everywhere.
 */
export type HlcStamp = Brand<string, 'HlcStamp'>

/** A stamp taken apart. */
export interface HlcParts {
  readonly wall: number
  readonly counter: number
  readonly replica: ReplicaId
}

/** The durable part of a clock: the last stamp it issued, without the replica id. */
export interface HlcState {
  readonly wall: number
  readonly counter: number
}

const WALL_DIGITS = 15
const COUNTER_DIGITS = 6
const MAX_WALL = 10 ** WALL_DIGITS - 1
const MAX_COUNTER = 10 ** COUNTER_DIGITS - 1
const stampPattern = /^(\d{15})\.(\d{6})@(.+)$/

/** Default for how far ahead of local time a remote stamp may pull the clock: one minute. */
export const DEFAULT_MAX_DRIFT_MS = 60_000

/** The clock state before any event. */
export const HLC_ZERO: HlcState = { wall: 0, counter: 0 }

/** Encodes parts as a stamp; throws `invalid-argument` on out-of-range numbers. */
export function formatHlc(parts: HlcParts): HlcStamp {
  const { wall, counter, replica } = parts
  if (!Number.isSafeInteger(wall) || wall < 0 || wall > MAX_WALL) {
    throw new ChorusError(ErrorCode.InvalidArgument, `clock wall time ${wall} is out of range`)
  }
  if (!Number.isSafeInteger(counter) || counter < 0 || counter > MAX_COUNTER) {
    throw new ChorusError(ErrorCode.InvalidArgument, `clock counter ${counter} is out of range`)
  }
  return `${String(wall).padStart(WALL_DIGITS, '0')}.${String(counter).padStart(COUNTER_DIGITS, '0')}@${replica}` as HlcStamp
}

/** True when `value` is a well-formed stamp. */
export function isHlcStamp(value: unknown): value is HlcStamp {
  if (typeof value !== 'string') return false
  const match = stampPattern.exec(value)
  return match !== null && isReplicaId(match[3])
}

/** Splits a stamp into its parts; throws `invalid-argument` when malformed. */
export function parseHlc(stamp: string): HlcParts {
  const match = stampPattern.exec(stamp)
  if (match === null || !isReplicaId(match[3])) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${JSON.stringify(stamp)} is not a clock stamp`)
  }
  return { wall: Number(match[1]), counter: Number(match[2]), replica: match[3] }
}

/** Orders two stamps: negative when `a` is earlier, positive when later, 0 when equal. */
export function compareHlc(a: HlcStamp, b: HlcStamp): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The later of two stamps. */
export function maxHlc(a: HlcStamp, b: HlcStamp): HlcStamp {
  return a >= b ? a : b
}

function normalise(wall: number, counter: number): HlcState {
  return counter > MAX_COUNTER ? { wall: wall + 1, counter: 0 } : { wall, counter }
}

/**
 * Advances the clock for a local event at wall time `nowMs`.
 *
 * Strictly monotonic: the result is later than `state` even if `nowMs` went backwards (a
 * clock set back by NTP or the user), because the counter absorbs the difference.
 */
export function tickHlc(state: HlcState, nowMs: number): HlcState {
  const now = Math.floor(nowMs)
  if (now > state.wall) return { wall: now, counter: 0 }
  return normalise(state.wall, state.counter + 1)
}

/** What receiving a remote stamp did to the clock. */
export interface HlcReceipt {
  readonly state: HlcState
  /** Remote wall time minus local wall time, in ms (positive: the remote clock is ahead). */
  readonly skewMs: number
  /** True when the remote stamp was further ahead than the allowed drift, so it was not followed. */
  readonly clamped: boolean
}

/**
 * Merges a remote stamp into the clock, as on receiving a change.
 *
 * The clock follows a remote stamp that is ahead — that is what makes causally later events
 * get later stamps — but never further than `maxDriftMs` past local time: one replica with a
 * clock far in the future must not drag every other replica's clock with it. The remote stamp
 * itself is still accepted by the caller; only the skew is reported.
 */
export function receiveHlc(state: HlcState, remote: HlcParts, nowMs: number, maxDriftMs: number): HlcReceipt {
  const now = Math.floor(nowMs)
  const limit = now + maxDriftMs
  const clamped = remote.wall > limit
  const remoteWall = clamped ? limit : remote.wall
  const remoteCounter = clamped ? 0 : remote.counter
  const wall = Math.max(state.wall, now, remoteWall)
  let counter: number
  if (wall === state.wall && wall === remoteWall) counter = Math.max(state.counter, remoteCounter) + 1
  else if (wall === state.wall) counter = state.counter + 1
  else if (wall === remoteWall) counter = remoteCounter + 1
  else counter = 0
  return { state: normalise(wall, counter), skewMs: remote.wall - now, clamped }
}

/** A stateful clock for one replica, over the pure functions above. */
/** The later of two clock states (by wall time, then counter). */
export function laterHlcState(a: HlcState, b: HlcState): HlcState {
  if (a.wall !== b.wall) return a.wall > b.wall ? a : b
  return a.counter >= b.counter ? a : b
}

export interface Hlc {
  readonly replicaId: ReplicaId
  /** Stamps a local event. */
  tick(): HlcStamp
  /**
   * Catches up with a state persisted by another instance of this replica (another tab on
   * the same database): the clock never runs behind what is stored.
   */
  observe(stored: HlcState): void
  /** Merges a remote stamp; returns the skew it showed. */
  receive(stamp: HlcStamp): HlcReceipt
  /**
   * Merges the stamps of a batch of remote changes. The clock ends past every one of them, as
   * receiving each in turn leaves it, but only the latest (stamps order as strings) and any
   * further ahead than the drift limit (each reported, as `receive` does) are taken apart.
   */
  receiveAll(stamps: readonly HlcStamp[]): void
  /** The durable state to persist alongside the writes it stamped. */
  state(): HlcState
}

/** Options for {@link createHlc}. */
export interface HlcOptions {
  readonly replicaId: ReplicaId
  /** Wall-clock milliseconds; injected so core never reads a real clock. */
  readonly now: () => number
  readonly maxDriftMs?: number
  /** State restored from storage, so stamps stay monotonic across restarts. */
  readonly state?: HlcState
  /** Called when a remote stamp is further ahead than `maxDriftMs`. */
  readonly onSkew?: (skewMs: number, from: ReplicaId) => void
}

/** Creates a clock for one replica. */
export function createHlc(options: HlcOptions): Hlc {
  const { replicaId, now } = options
  const maxDriftMs = options.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS
  let state = options.state ?? HLC_ZERO
  // Between ticks the state is its two numbers; the object is made when asked for.
  let wall = state.wall
  let counter = state.counter
  let stale = false
  // A burst of local events shares one wall time: its digits are formatted once, and each
  // stamp only adds its counter (the check `formatHlc` makes runs once per wall time too;
  // the counter is kept in range as `tickHlc` keeps it).
  let prefixWall = -1
  let prefix = ''
  const suffix = `@${replicaId}`
  const set = (next: HlcState) => {
    state = next
    wall = next.wall
    counter = next.counter
    stale = false
  }
  const current = (): HlcState => {
    if (stale) set({ wall, counter })
    return state
  }
  function receive(stamp: HlcStamp): HlcReceipt {
    const remote = parseHlc(stamp)
    const receipt = receiveHlc(current(), remote, now(), maxDriftMs)
    set(receipt.state)
    if (receipt.clamped) options.onSkew?.(receipt.skewMs, remote.replica)
    return receipt
  }
  return {
    replicaId,
    tick() {
      // `tickHlc`, without an object per tick.
      const nowMs = Math.floor(now())
      if (nowMs > wall) {
        wall = nowMs
        counter = 0
      } else if (counter < MAX_COUNTER) counter += 1
      else {
        wall += 1
        counter = 0
      }
      stale = true
      if (wall !== prefixWall) {
        const stamp = formatHlc({ wall, counter, replica: replicaId })
        prefix = stamp.slice(0, WALL_DIGITS + 1)
        prefixWall = wall
        return stamp
      }
      return `${prefix}${String(counter).padStart(COUNTER_DIGITS, '0')}${suffix}` as HlcStamp
    },
    receive,
    receiveAll(stamps) {
      // A stamp later than this one has a wall time past the drift limit (the wall digits
      // compare first; a replica id sorts below U+FFFF).
      const limit = Math.floor(now()) + maxDriftMs
      const beyond =
        limit < MAX_WALL ? `${String(limit).padStart(WALL_DIGITS, '0')}.${String(MAX_COUNTER)}@\uffff` : null
      let latest: HlcStamp | null = null
      for (const stamp of stamps) {
        if (beyond !== null && stamp > beyond) receive(stamp)
        else if (latest === null || stamp > latest) latest = stamp
      }
      if (latest !== null) receive(latest)
    },
    observe(stored) {
      set(laterHlcState(current(), stored))
    },
    state: current,
  }
}
