import type { Change } from './change.js'
import {
  addDot,
  counterOf,
  coversDot,
  type Dot,
  EMPTY_VV,
  mergeVv,
  type VersionVector,
} from './version-vector.js'

/**
 * A record's state: its versions (siblings), each a change no other version has seen.
 *
 * Versions are kept sorted by hlc so that two replicas holding the same set hold the same
 * array. One version is the common case; more than one means concurrent writes that a
 * resolver settles for reading and a later write (whose context covers them) settles for good.
 */
export interface RecordState {
  readonly versions: readonly Change[]
}

/** Everything this record's versions have seen, their own dots included. */
export function recordContext(state: RecordState | undefined): VersionVector {
  if (state === undefined) return EMPTY_VV
  let vv = EMPTY_VV
  for (const version of state.versions) vv = addDot(mergeVv(vv, version.context), version.dot)
  return vv
}

/**
 * True when the record has seen `dot`: `coversDot(recordContext(state), dot)` without
 * building the context, since this check runs for every change applied.
 */
export function hasSeen(state: RecordState, dot: Dot): boolean {
  const [replica, counter] = dot
  for (const version of state.versions) {
    if (version.dot[0] === replica && version.dot[1] >= counter) return true
    if (counterOf(version.context, replica) >= counter) return true
  }
  return false
}

/** The result of applying a change: the new state, and whether anything changed. */
export interface ApplyResult {
  readonly state: RecordState
  readonly applied: boolean
}

/**
 * Applies a change (a version) to a record.
 *
 * If the record has already seen the change's dot, nothing happens: applying is idempotent,
 * and a change that arrives after one that superseded it is ignored. Otherwise the versions
 * the change has seen are dropped — exactly those, no more — and the change joins the rest.
 * It has seen what its context covers, and every earlier change of its own writer: a
 * writer's changes are one stream, and its context may not name an earlier version it no
 * longer held (a deletion it dropped when the hub collected it, which a hub restored from an
 * older copy hands back). `hasSeen` counts a version's own dot the same way, so the result
 * depends only on the set of changes applied, not their order.
 */
export function applyChange(state: RecordState | undefined, change: Change): ApplyResult {
  if (state === undefined) return { state: { versions: [change] }, applied: true }
  if (hasSeen(state, change.dot)) return { state, applied: false }
  const [writer, counter] = change.dot
  const kept = state.versions.filter(
    (version) =>
      !coversDot(change.context, version.dot) && !(version.dot[0] === writer && version.dot[1] < counter),
  )
  let at = kept.length
  while (at > 0 && compareVersions(kept[at - 1] as Change, change) > 0) at--
  kept.splice(at, 0, change)
  return { state: { versions: kept }, applied: true }
}

/**
 * The canonical order of versions: by hlc, then by dot.
 *
 * Honest replicas never issue two changes with one stamp, but the order must not depend on
 * arrival even for a peer that does, so the dot breaks ties.
 */
export function compareVersions(a: Change, b: Change): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1
  if (a.dot[0] !== b.dot[0]) return a.dot[0] < b.dot[0] ? -1 : 1
  return a.dot[1] - b.dot[1]
}

/** True when the record's only version is a tombstone. */
export function isDeleted(state: RecordState | undefined): boolean {
  return state === undefined || state.versions.every((version) => version.op.type === 'delete')
}

/** True when the record holds concurrent versions. */
export function hasSiblings(state: RecordState | undefined): boolean {
  return state !== undefined && state.versions.length > 1
}
