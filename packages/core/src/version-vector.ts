import { ChorusError, ErrorCode } from './errors.js'
import { isReplicaId, type ReplicaId } from './ids.js'

/**
 * A version vector: for each replica, how many of its events have been seen.
 *
 * Plain object keyed by replica id, entries ≥ 1 (absent means 0). Always read through
 * {@link counterOf}: a replica id such as `constructor` must not hit `Object.prototype`.
 * Values are treated as immutable; every operation returns a new vector.
 */
export type VersionVector = { readonly [replica: string]: number }

/**
 * A dot: one event, named by the replica that made it and that replica's counter.
 *
 * Counters are per replica (not per record) and increase by one per change, so a replica's
 * changes form one gap-free stream that a peer can acknowledge by a single number.
 */
export type Dot = readonly [replica: ReplicaId, counter: number]

/** How two version vectors relate. */
export const Order = {
  Equal: 'equal',
  Before: 'before',
  After: 'after',
  Concurrent: 'concurrent',
} as const

/** One of the four relations in {@link Order}. */
export type Order = (typeof Order)[keyof typeof Order]

/** The empty vector: nothing seen. */
export const EMPTY_VV: VersionVector = Object.freeze({})

/** How many of `replica`'s events `vv` has seen. */
export function counterOf(vv: VersionVector, replica: string): number {
  return Object.hasOwn(vv, replica) ? (vv[replica] as number) : 0
}

/** True when `vv` has seen the event `dot`. */
export function coversDot(vv: VersionVector, dot: Dot): boolean {
  return counterOf(vv, dot[0]) >= dot[1]
}

/**
 * Compares two vectors.
 *
 * `before` means every event `a` has seen, `b` has seen too, and `b` has seen more; this is
 * the causal partial order, so `concurrent` is a real answer, not an error.
 */
export function compareVv(a: VersionVector, b: VersionVector): Order {
  let aAhead = false
  let bAhead = false
  for (const replica of Object.keys(a)) {
    const diff = (a[replica] as number) - counterOf(b, replica)
    if (diff > 0) aAhead = true
    else if (diff < 0) bAhead = true
  }
  for (const replica of Object.keys(b)) {
    if (!Object.hasOwn(a, replica)) bAhead = true
  }
  if (aAhead && bAhead) return Order.Concurrent
  if (aAhead) return Order.After
  if (bAhead) return Order.Before
  return Order.Equal
}

/** True when `a` has seen everything `b` has (`a` is after or equal to `b`). */
export function descends(a: VersionVector, b: VersionVector): boolean {
  for (const replica of Object.keys(b)) {
    if (counterOf(a, replica) < (b[replica] as number)) return false
  }
  return true
}

/** The least vector that has seen everything either has: pointwise maximum. */
export function mergeVv(a: VersionVector, b: VersionVector): VersionVector {
  if (a === b) return a
  const out: Record<string, number> = { ...a }
  let changed = false
  for (const replica of Object.keys(b)) {
    const n = b[replica] as number
    if (n > counterOf(out, replica)) {
      out[replica] = n
      changed = true
    }
  }
  return changed ? out : a
}

/** `vv` with `dot` added (the pointwise maximum with the dot's counter). */
export function addDot(vv: VersionVector, dot: Dot): VersionVector {
  if (coversDot(vv, dot)) return vv
  return { ...vv, [dot[0]]: dot[1] }
}

/** The next event of `replica` after `vv`: the new vector and the dot it names. */
export function incrementVv(vv: VersionVector, replica: ReplicaId): { vv: VersionVector; dot: Dot } {
  const dot: Dot = [replica, counterOf(vv, replica) + 1]
  return { vv: { ...vv, [replica]: dot[1] }, dot }
}

/** True when `value` is a well-formed version vector (replica ids valid, counters positive integers). */
export function isVersionVector(value: unknown): value is VersionVector {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  for (const [replica, n] of Object.entries(value)) {
    if (!isReplicaId(replica) || !isCounter(n)) return false
  }
  return true
}

/** True when `value` is a well-formed dot. */
export function isDot(value: unknown): value is Dot {
  return Array.isArray(value) && value.length === 2 && isReplicaId(value[0]) && isCounter(value[1])
}

/** True when `value` is an event counter: a positive safe integer. */
export function isCounter(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1
}

/**
 * Compact text form: entries sorted by replica id, `id:counter` in base 36, joined by `,`.
 *
 * Deterministic (equal vectors give equal strings), so it can key a map or an index.
 */
export function encodeVv(vv: VersionVector): string {
  return Object.keys(vv)
    .sort()
    .map((replica) => `${replica}:${(vv[replica] as number).toString(36)}`)
    .join(',')
}

/** Parses {@link encodeVv}'s form; throws `invalid-argument` when malformed. */
export function decodeVv(text: string): VersionVector {
  const out: Record<string, number> = {}
  if (text === '') return out
  for (const entry of text.split(',')) {
    const colon = entry.lastIndexOf(':')
    const replica = entry.slice(0, colon)
    const digits = entry.slice(colon + 1)
    const n = /^[0-9a-z]{1,11}$/.test(digits) ? Number.parseInt(digits, 36) : Number.NaN
    if (colon < 1 || !isReplicaId(replica) || !isCounter(n) || Object.hasOwn(out, replica)) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `${JSON.stringify(text)} is not an encoded version vector`,
      )
    }
    out[replica] = n
  }
  return out
}
