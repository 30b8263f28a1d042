import {
  type Change,
  canonicalJson,
  coversDot,
  type Dot,
  descends,
  encodeVv,
  type JsonValue,
  mergeVv,
  type RecordState,
  type ResolverLookup,
  recordContext,
  recordKey,
  type StoredRecord,
  type VersionVector,
} from '@chorus/core'

/** One replica's data, as the checkers read it. */
export interface ReplicaSnapshot {
  readonly name: string
  readonly records: readonly StoredRecord[]
}

/** A checker's verdict: `ok`, or the problems found, each readable on its own. */
export interface CheckResult {
  readonly ok: boolean
  readonly problems: readonly string[]
}

function verdict(problems: string[]): CheckResult {
  return { ok: problems.length === 0, problems }
}

function versionsFingerprint(state: RecordState): string {
  return state.versions.map((version) => `${version.dot[0]}:${version.dot[1]}`).join('|')
}

/** How {@link checkConvergence} describes a record that reads as deleted. */
const DELETED = '<deleted>'

/**
 * Convergence: every replica holds the same records, with the same versions (siblings),
 * and reads the same resolved value from each — save a record of deletions only that the
 * hub collected (`collected`, by record key): a replica that bootstrapped after that does
 * not hold it at all.
 */
export function checkConvergence(
  replicas: readonly ReplicaSnapshot[],
  resolvers: ResolverLookup,
  collected: ReadonlyMap<string, VersionVector> = new Map(),
): CheckResult {
  const problems: string[] = []
  const reference = replicas[0]
  if (reference === undefined) return verdict(problems)
  const describe = (snapshot: ReplicaSnapshot) => {
    const out = new Map<string, { versions: string; value: string; deletesOnly: boolean }>()
    for (const record of snapshot.records) {
      const resolved = resolvers(record.collection).resolve(record.state.versions)
      const value = resolved.value === undefined ? DELETED : canonicalJson(resolved.value as JsonValue)
      out.set(recordKey(record.collection, record.id), {
        versions: versionsFingerprint(record.state),
        value,
        deletesOnly: record.state.versions.every((version) => version.op.type === 'delete'),
      })
    }
    return out
  }
  const expected = describe(reference)
  for (const replica of replicas.slice(1)) {
    const actual = describe(replica)
    const keys = new Set([...expected.keys(), ...actual.keys()])
    for (const key of keys) {
      const a = expected.get(key)
      const b = actual.get(key)
      const label = key.replace('\u0000', '/')
      if (a === undefined || b === undefined) {
        // A deletion the hub collected is gone from a replica that bootstrapped after it, and
        // stays with the replicas that applied it: both read the record as deleted.
        if (collected.has(key) && (a ?? b)?.deletesOnly === true) continue
        problems.push(`${label}: present on ${a === undefined ? replica.name : reference.name} only`)
      } else if (a.versions !== b.versions) {
        problems.push(`${label}: versions ${reference.name}=[${a.versions}] ${replica.name}=[${b.versions}]`)
      } else if (a.value !== b.value) {
        problems.push(`${label}: value ${reference.name}=${a.value} ${replica.name}=${b.value}`)
      }
    }
  }
  return verdict(problems)
}

/**
 * No acknowledged write lost: every change the hub acknowledged is, on every replica, either
 * still a version of its record or superseded by a version whose writer had seen it.
 *
 * `acked` maps a replica id to the highest counter the hub acknowledged; `writes` are all
 * changes made, so each acknowledged dot can be found. This is the right check for every
 * resolver: `lww` keeps losing versions as siblings, it only reads the winner. A record a
 * replica does not hold, or holds again after a write that never saw the deletion, whose
 * deletion the hub collected (`collected`: the context of what it collected, by record key),
 * was superseded by that deletion.
 */
export function checkAcknowledgedWrites(
  replicas: readonly ReplicaSnapshot[],
  writes: readonly Change[],
  acked: ReadonlyMap<string, number>,
  collected: ReadonlyMap<string, VersionVector> = new Map(),
): CheckResult {
  const problems: string[] = []
  for (const replica of replicas) {
    const contexts = new Map<string, VersionVector>()
    for (const record of replica.records) {
      contexts.set(recordKey(record.collection, record.id), recordContext(record.state))
    }
    for (const write of writes) {
      if (write.dot[1] > (acked.get(write.dot[0]) ?? 0)) continue
      const key = recordKey(write.collection, write.id)
      // Superseded where the record is now, or by a deletion the hub collected (which a
      // write that never saw it may have outlived: the record is back, without it).
      const context = contexts.get(key)
      const gone = collected.get(key)
      const covered =
        (context !== undefined && coversDot(context, write.dot)) ||
        (gone !== undefined && coversDot(gone, write.dot))
      if (!covered) {
        problems.push(
          `${replica.name}: acknowledged write ${write.dot[0]}:${write.dot[1]} to ${write.collection}/${write.id} is lost`,
        )
      }
    }
  }
  return verdict(problems)
}

/** One observation for the causality checker. */
export type CausalEvent =
  | {
      readonly kind: 'write'
      readonly session: string
      readonly collection: string
      readonly id: string
      readonly dot: Dot
    }
  | {
      readonly kind: 'read'
      readonly session: string
      readonly collection: string
      readonly id: string
      /** The record's context as the read saw it. */
      readonly context: VersionVector
    }
  | {
      /** The hub collected the deletion of a record (by `recordKey`), whose context this is. */
      readonly kind: 'collect'
      readonly key: string
      readonly context: VersionVector
    }

/**
 * Session guarantees over a history of reads and writes.
 *
 * Read-your-writes: a read in a session sees every earlier write of that session to the
 * record. Monotonic reads: a session's reads of a record never go back in causal history.
 * A session is one replica incarnation: a wiped replica starts a new session. Once the hub
 * collected a record's deletion, what that deletion covered is history no read need keep:
 * a write that never saw it may bring the record back without it.
 */
export function checkCausality(history: readonly CausalEvent[]): CheckResult {
  const problems: string[] = []
  const lastWrite = new Map<string, Dot>()
  const lastRead = new Map<string, VersionVector>()
  const collected = new Map<string, VersionVector>()
  for (const event of history) {
    if (event.kind === 'collect') {
      collected.set(event.key, mergeVv(collected.get(event.key) ?? {}, event.context))
      continue
    }
    const record = recordKey(event.collection, event.id)
    const key = `${event.session}\u0000${record}`
    const label = `${event.session} ${event.collection}/${event.id}`
    if (event.kind === 'write') {
      lastWrite.set(key, event.dot)
      continue
    }
    const gone = collected.get(record) ?? {}
    const written = lastWrite.get(key)
    if (written !== undefined && !coversDot(event.context, written) && !coversDot(gone, written)) {
      problems.push(
        `${label}: read [${encodeVv(event.context)}] misses own write ${written[0]}:${written[1]}`,
      )
    }
    const previous = lastRead.get(key)
    if (previous !== undefined && !descends(event.context, beyond(previous, gone))) {
      problems.push(`${label}: read [${encodeVv(event.context)}] went back from [${encodeVv(previous)}]`)
    }
    lastRead.set(key, event.context)
  }
  return verdict(problems)
}

/** `vv` without the replicas whose counter in it `gone` covers. */
function beyond(vv: VersionVector, gone: VersionVector): VersionVector {
  const out: Record<string, number> = {}
  for (const [replica, counter] of Object.entries(vv))
    if (counter > (gone[replica] ?? 0)) out[replica] = counter
  return out
}
