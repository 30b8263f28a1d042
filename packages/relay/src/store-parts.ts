import {
  type AppendResult,
  appendable,
  applyChange,
  type Change,
  ChorusError,
  type CollectedMark,
  ErrorCode,
  encodeChange,
  type HubAppend,
  isDeleted,
  type RecordState,
  type ReplicaId,
  recordKey,
  type SpaceId,
} from '@chorus/core'
import { encodeUtf16Key } from './utf16-key.js'

/**
 * What the relay's stores share: planning an append from what they read (which changes are
 * new, each replica's counter after it, the records it leaves), the checks of their
 * arguments, buffered acknowledgements, the compaction floor, and collected-deletion marks.
 * Each store reads and writes its own way.
 */

/** A record an append touches: its key as stored, its state, and which fresh change last changed it (-1: none). */
export interface TouchedRecord {
  readonly key: Buffer
  state: RecordState | undefined
  last: number
}

/** The records an append touches, each once, in first-touch order and by record key. */
export interface TouchedRecords {
  readonly records: TouchedRecord[]
  readonly byKey: Map<string, TouchedRecord>
}

/** The records `changes` touch, with no state yet (the store reads it into them). */
export function touchedRecords(changes: Iterable<Change>): TouchedRecords {
  const byKey = new Map<string, TouchedRecord>()
  const records: TouchedRecord[] = []
  for (const change of changes) {
    const text = recordKey(change.collection, change.id)
    if (byKey.has(text)) continue
    const record: TouchedRecord = { key: encodeUtf16Key(text), state: undefined, last: -1 }
    byKey.set(text, record)
    records.push(record)
  }
  return { records, byKey }
}

/** An append worked out against a space's head and the replicas' stored counters. */
export interface AppendPlan {
  /** Each append's result, in order. */
  readonly results: AppendResult[]
  /** The changes to store, in log order (positions `previousHead + 1` on). */
  readonly fresh: Change[]
  /** The replicas whose counters move, and to what. */
  readonly advanced: Map<string, number>
  /** The head after the append. */
  readonly head: number
}

/**
 * Works out `appends` (each as its own `append`, in order) against the space's head and
 * `stored`, which gives a replica's counter as the store holds it. Refuses a change appended
 * under another replica's id (`replica-mismatch`).
 */
export function planAppend(
  appends: readonly HubAppend[],
  previousHead: number,
  stored: (replica: ReplicaId) => number,
): AppendPlan {
  let head = previousHead
  const received = new Map<string, number>()
  const advanced = new Map<string, number>()
  const fresh: Change[] = []
  const results = appends.map(({ replica, changes, through }): AppendResult => {
    for (const change of changes) {
      if (change.dot[0] !== replica) {
        throw new ChorusError(
          ErrorCode.ReplicaMismatch,
          `a change from ${change.dot[0]} was appended as ${replica}`,
        )
      }
    }
    const before = received.get(replica) ?? stored(replica)
    const taken = appendable(changes, before, through)
    for (const change of taken.fresh) fresh.push(change)
    received.set(replica, taken.received)
    if (taken.received > before) advanced.set(replica, taken.received)
    head += taken.fresh.length
    return { head, received: taken.received, appended: taken.fresh.length }
  })
  return { results, fresh, advanced, head }
}

/** A record as an append leaves it, ready to store. */
export interface RecordWrite {
  readonly key: Buffer
  /** Its versions' texts joined by commas, without the brackets of the JSON array it is stored as. */
  readonly versions: string
  /** The versions themselves (a store that keeps their writers reads them here). */
  readonly kept: readonly Change[]
  /** The log position of the change that last changed it. */
  readonly lastSeq: number
  readonly tombstone: boolean
}

/**
 * Applies `fresh` (whose texts are `texts`) to the records they touch, which hold their
 * stored state, and returns the records that changed. A record's one version that is a
 * fresh change is its text as is; other versions are encoded again only when needed.
 */
export function recordWrites(
  touched: TouchedRecords,
  fresh: readonly Change[],
  texts: readonly string[],
  previousHead: number,
): RecordWrite[] {
  for (let i = 0; i < fresh.length; i++) {
    const change = fresh[i] as Change
    const record = touched.byKey.get(recordKey(change.collection, change.id)) as TouchedRecord
    const { state, applied } = applyChange(record.state, change)
    if (!applied) continue
    record.state = state
    record.last = i
  }
  let textOf: Map<Change, string> | null = null
  const writes: RecordWrite[] = []
  for (const { key, state, last } of touched.records) {
    if (state === undefined || last < 0) continue
    let versions: string
    if (state.versions.length === 1 && state.versions[0] === fresh[last]) {
      versions = texts[last] as string
    } else {
      textOf ??= new Map(fresh.map((change, i) => [change, texts[i] as string]))
      const known = textOf
      versions = state.versions.map((version) => known.get(version) ?? encodeChange(version)).join(',')
    }
    writes.push({
      key,
      versions,
      kept: state.versions,
      lastSeq: previousHead + last + 1,
      tombstone: isDeleted(state),
    })
  }
  return writes
}

/** Refuses a snapshot page limit below 1 (`invalid-argument`). */
export function checkSnapshotLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `a snapshot page needs a limit of at least 1, got ${limit}`,
    )
  }
}

/** Refuses an acknowledged position below 0 (`invalid-argument`). */
export function checkAckPosition(position: number): void {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new ChorusError(ErrorCode.InvalidArgument, `an acknowledged position must be ≥ 0, got ${position}`)
  }
}

/** Raises a buffered acknowledgement to `position` and `seenAt`, never lowering either. */
export function raiseAck(ack: PendingAck, position: number, seenAt: number): void {
  ack.position = Math.max(ack.position, position)
  ack.seenAt = Math.max(ack.seenAt, seenAt)
}

/**
 * The floor a compaction raises a space to: the lowest position acknowledged by the
 * replicas it still counts (the head when there are none), never below the floor it had.
 */
export function compactionFloor(
  space: { readonly floor: number; readonly head: number },
  lowest: number | null,
): number {
  return Math.max(space.floor, Math.min(lowest ?? space.head, space.head))
}

/** An acknowledgement buffered until the next flush. */
export interface PendingAck {
  readonly space: SpaceId
  readonly replica: ReplicaId
  position: number
  seenAt: number
}

/** The key of a space's replica among buffered acknowledgements. */
/** What an append to a deleted space rejects with. */
export function spaceDeleted(space: SpaceId): ChorusError {
  return new ChorusError(ErrorCode.SpaceDeleted, `space ${space} was deleted: nothing more is stored in it`)
}

/**
 * Drops from each of `held` (buffered acknowledgements, known replicas: maps or sets keyed by
 * {@link ackKey}) the keys of `space`'s replicas: for a space compacted or deleted.
 */
export function forgetSpaceAcks(
  space: SpaceId,
  ...held: readonly { keys(): Iterable<string>; delete(key: string): boolean }[]
): void {
  const prefix = ackKey(space, '' as ReplicaId)
  for (const keys of held) for (const key of [...keys.keys()]) if (key.startsWith(prefix)) keys.delete(key)
}

/** One replica's append as `appendMany` takes it (`through` only for a sparse batch). */
export function hubAppend(replica: ReplicaId, changes: readonly Change[], through?: number): HubAppend {
  return through === undefined ? { replica, changes } : { replica, changes, through }
}

export function ackKey(space: SpaceId, replica: ReplicaId): string {
  return `${space}\u0000${replica}`
}

/** A space's collected-deletion mark as its row stores it, if it has one. */
export function markOf(row: {
  readonly collected_at: number
  readonly collected: string | null
}): CollectedMark | undefined {
  if (row.collected === null) return undefined
  return { at: row.collected_at, received: JSON.parse(row.collected) as Record<string, number> }
}

/** `value` with its `collected` mark, or without the key when there is none. */
export function withMark<TValue extends object>(
  value: TValue,
  mark: CollectedMark | undefined,
): TValue & { collected?: CollectedMark } {
  return mark === undefined ? value : { ...value, collected: mark }
}
