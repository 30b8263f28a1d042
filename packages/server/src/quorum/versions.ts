import {
  addDot,
  canonicalJson,
  counterOf,
  coversDot,
  type Dot,
  EMPTY_VV,
  type HlcStamp,
  type JsonValue,
  mergeVv,
  type VersionVector,
} from '@chorus/core'
import { hash53 } from '../hash.js'
import type { NodeId } from '../node-id.js'

/**
 * One version of a key's value.
 *
 * `dot` names the write: the actor id of the home replica's life that coordinated it
 * (`<node>_<incarnation>`, see `Incarnation`; the plain node id in data written before
 * incarnations) and that actor's counter for this key. `context` is what the client had read before writing — the versions this one
 * supersedes. Versions neither of which has seen the other are siblings, and all of them are
 * kept. `stamp` is the coordinator's hybrid clock at the write, used only by last-write-wins.
 *
 * **Why the counter is per key and per life, and the coordinator a home replica.** A context
 * is a version vector: `{ n1_2: 5 }` claims every one of `n1_2`'s dots 1…5 *for this key*.
 * That claim is true only if whoever holds dot 5 also knows dots 1…4 (holds them, or a version
 * that superseded them). So a life of n1 numbers a key's versions from what it holds of that
 * key in memory ({@link nextDot}) and ships its whole sibling set, never the new version
 * alone: every copy of dot 5 travels with dot 4 or with what superseded it. Its stores may
 * leave before its own commit; a crash in between loses dots that replicas may hold, which is
 * why the next life numbers under a new actor id instead of from what its storage kept. A
 * counter shared by all keys (or a coordinator that does not hold the key) breaks this: a read
 * could see dot 5 but not an earlier concurrent dot 3, return a context claiming both, and the
 * next put would supersede a version its writer never saw.
 */
export interface Version {
  readonly dot: Dot
  readonly context: VersionVector
  readonly stamp: HlcStamp
  readonly value: JsonValue
}

/**
 * How a replica settles concurrent versions.
 *
 * - `siblings`: keep every version no other version has seen (dotted version vectors, as in
 *   Riak); a read returns them all and the client's next write, carrying their context,
 *   settles them. Nothing acknowledged is dropped.
 * - `lww`: keep only the version with the highest stamp, whatever the causality. Concurrent
 *   writes lose silently, and so does a causally later write whose coordinator's clock is
 *   behind; every such drop is counted (`lwwDiscarded`).
 */
export type ConflictMode = 'siblings' | 'lww'

/** The result of adding a version to a key's versions. */
export interface ApplyVersionResult {
  readonly versions: readonly Version[]
  readonly changed: boolean
  /** Versions dropped by last-write-wins without the winner having seen them. */
  readonly discarded: number
}

/** Canonical order: by stamp, then by dot, so equal sets give equal arrays everywhere. */
export function compareVersions(a: Version, b: Version): number {
  if (a.stamp !== b.stamp) return a.stamp < b.stamp ? -1 : 1
  if (a.dot[0] !== b.dot[0]) return a.dot[0] < b.dot[0] ? -1 : 1
  return a.dot[1] - b.dot[1]
}

/**
 * True when one of `versions` is `dot` or has seen it (its context covers it).
 *
 * A later dot of the same coordinator does not count: a coordinator's version 5 of a key may
 * well be concurrent with its version 3 (two clients wrote without reading each other).
 */
export function hasSeenDot(versions: readonly Version[], dot: Dot): boolean {
  return versions.some(
    (version) => (version.dot[0] === dot[0] && version.dot[1] === dot[1]) || coversDot(version.context, dot),
  )
}

/**
 * Adds `incoming` to a key's versions. The result depends only on the set of versions ever
 * added, not their order or repetition, so replicas that exchange versions converge.
 */
export function applyVersion(
  versions: readonly Version[],
  incoming: Version,
  mode: ConflictMode,
): ApplyVersionResult {
  if (mode === 'lww') {
    const current = versions[0]
    if (current === undefined) return { versions: [incoming], changed: true, discarded: 0 }
    const order = compareVersions(incoming, current)
    if (order === 0) return { versions, changed: false, discarded: 0 }
    if (order > 0) {
      const lost = coversDot(incoming.context, current.dot) ? 0 : 1
      return { versions: [incoming], changed: true, discarded: lost }
    }
    return { versions, changed: false, discarded: coversDot(current.context, incoming.dot) ? 0 : 1 }
  }
  if (hasSeenDot(versions, incoming.dot)) return { versions, changed: false, discarded: 0 }
  const kept = versions.filter((version) => !coversDot(incoming.context, version.dot))
  kept.push(incoming)
  kept.sort(compareVersions)
  return { versions: kept, changed: true, discarded: 0 }
}

/** Every version of `from` added to `into` (see {@link applyVersion}). */
export function mergeVersions(
  into: readonly Version[],
  from: readonly Version[],
  mode: ConflictMode,
): ApplyVersionResult {
  let versions = into
  let changed = false
  let discarded = 0
  for (const version of from) {
    const result = applyVersion(versions, version, mode)
    versions = result.versions
    changed ||= result.changed
    discarded += result.discarded
  }
  return { versions, changed, discarded }
}

/**
 * The dot a home replica's life `actor` gives its next version of a key: one past the highest
 * of its own dots that `versions` (all it holds of the key, in memory) or the writer's
 * `context` know of. It never repeats a dot, because within one life what it holds only
 * grows, and a new life is a new actor; and no context, even a forged one, covers the new dot.
 */
export function nextDot(versions: readonly Version[], actor: NodeId, context: VersionVector): Dot {
  return [actor, Math.max(counterOf(contextOf(versions), actor), counterOf(context, actor)) + 1]
}

/** Everything the versions have seen, their own dots included: the context a reader writes back. */
export function contextOf(versions: readonly Version[]): VersionVector {
  let vv = EMPTY_VV
  for (const version of versions) vv = addDot(mergeVv(vv, version.context), version.dot)
  return vv
}

/** The single value a register reader sees: the latest version by stamp (null when none). */
export function pickValue(versions: readonly Version[]): JsonValue | null {
  let best: Version | undefined
  for (const version of versions) if (best === undefined || compareVersions(version, best) > 0) best = version
  return best === undefined ? null : best.value
}

/**
 * A short fingerprint of a key's versions (their dots and stamps), equal on two replicas that
 * hold the same versions, and different, but for a chance in 2^53, on two that do not: what
 * read repair and anti-entropy compare (53 bits: see `hash53`).
 */
export function digestOf(versions: readonly Version[]): number {
  if (versions.length === 0) return 0
  return hash53(versions.map((version) => `${version.dot[0]}:${version.dot[1]}@${version.stamp}`).join('|'))
}

/** A version's identity as text, for logs and checkers. */
export function describeVersion(version: Version): string {
  return `${version.dot[0]}:${version.dot[1]}=${canonicalJson(version.value)}`
}
