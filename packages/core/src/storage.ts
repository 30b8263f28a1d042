import type { Change } from './change.js'
import type { HlcState } from './hlc.js'
import type { RecordId, ReplicaId, SpaceId } from './ids.js'
import type { JsonObject } from './json.js'
import type { SnapshotResume } from './protocol/messages.js'
import type { RecordState } from './record.js'

/** What a replica keeps about itself besides records. */
export interface ReplicaMeta {
  readonly replicaId: ReplicaId
  readonly space: SpaceId
  /** The counter of this replica's latest change (0 before the first). */
  readonly counter: number
  /** The clock's state when that change (or the latest remote one) was stamped. */
  readonly clock: HlcState
  /** The hub log position applied here (0: nothing yet). */
  readonly cursor: number
  /**
   * Which hub log `cursor` is a position in, as the hub named it in its `hello` (absent
   * until a hub named one). A relay restored from a backup has a new one: positions past
   * the copy's head then mean other changes than the replica read there.
   */
  readonly log?: string
  /**
   * The longest frame, in bytes, the hub last named (in its `hello`, or refusing a longer
   * frame); absent until one did. Kept so that a replica restarted offline still refuses a
   * write that hub could never take, instead of finding out once it is back online.
   */
  readonly maxFrame?: number
  /**
   * The deletions the hub collected, as far as this replica has reached them (see
   * {@link CollectedMark}): per replica, the highest counter covered. A record whose versions
   * are all deletes with dots this covers is as good as absent (see `isCollected`). Absent
   * until the hub's first `collected` reached the replica.
   */
  readonly collected?: Readonly<Record<string, number>>
  /**
   * The snapshot this replica was taking in, for the hub to send the rest of (see
   * `HelloMessage.resume`): absent when there is none, or none it could resume.
   */
  readonly resume?: SnapshotResume
}

/** A record with its key. */
export interface StoredRecord {
  readonly collection: string
  readonly id: RecordId
  readonly state: RecordState
}

/**
 * Which records of a collection {@link ReplicaStore.listRecordsPage} returns: those after
 * `after` in `order`, at most `limit`.
 */
export interface RecordPage {
  /** Id order (`'asc'`, UTF-16 code units, as JavaScript compares strings) or its reverse. */
  readonly order: 'asc' | 'desc'
  /** Only ids after this one in `order` (exclusive); from the first id without it. */
  readonly after?: RecordId
  /** At most this many records (a positive integer); all the rest without it. */
  readonly limit?: number
}

/**
 * A record as {@link ReplicaStore.listValuesPage} gives it: when its only version is a put,
 * just that value (frozen) — the value every built-in resolver reads from one version — and
 * otherwise the whole record, for the resolver to read.
 */
export type ListedRecord =
  | { readonly id: RecordId; readonly value: JsonObject; readonly state?: undefined }
  | StoredRecord

/**
 * Where a replica keeps its data: IndexedDB in browsers, SQLite or memory elsewhere.
 *
 * Contract (checked by `@chorus/testkit`'s `runReplicaStoreConformance`):
 * - `commitLocal` and `applyRemote` are atomic: after a crash, all of the call's writes are
 *   there or none is. A promise that resolved means the writes are durable (for a durable
 *   implementation) and visible to every later read.
 * - Calls are made one at a time by the engine; an implementation need not serialise them.
 * - The outbox is ordered by counter and holds exactly the changes committed locally and not
 *   yet dropped; `dropOutbox(n)` removes those with counter ≤ n and is idempotent.
 * - Failures reject with a `ChorusError` (`storage-failed`, with the cause), never half-write.
 */
export interface ReplicaStore {
  /** The replica's metadata, or `undefined` for a store never initialised. */
  loadMeta(): Promise<ReplicaMeta | undefined>
  /** Writes the metadata of a new replica. */
  initMeta(meta: ReplicaMeta): Promise<void>
  getRecord(collection: string, id: RecordId): Promise<RecordState | undefined>
  /**
   * Several records at once, in the order asked (`undefined` where there is none). Optional:
   * without it the engine calls `getRecord` per key. One read instead of many for a batch of
   * writes (see `commitLocalBatch`).
   */
  getRecords?(
    keys: readonly { readonly collection: string; readonly id: RecordId }[],
  ): Promise<(RecordState | undefined)[]>
  /** Every record of a collection, in id order (UTF-16 code units, as JavaScript compares strings). */
  listRecords(collection: string): Promise<StoredRecord[]>
  /**
   * Part of a collection's records (see {@link RecordPage}), in the page's order. Optional:
   * without it the engine reads `listRecords` and takes the part asked for. One read of the
   * newest records, say, instead of the whole collection, so a first screen shows before a
   * large collection is read in full.
   */
  listRecordsPage?(collection: string, page: RecordPage): Promise<StoredRecord[]>
  /**
   * `listRecordsPage`, with each record whose only version is a put given as that value alone
   * (see {@link ListedRecord}). Optional: a store that keeps records as text implements it so
   * a list does not build a version object per record only to read its value back.
   */
  listValuesPage?(collection: string, page: RecordPage): Promise<ListedRecord[]>
  /** Every record, for checkers and exports. */
  allRecords(): Promise<StoredRecord[]>
  /**
   * Whether the store holds any record (optional: without it the engine assumes it may). A
   * snapshot applied to a store with none cannot leave stale records behind, so the engine
   * skips looking for them.
   */
  hasRecords?(): Promise<boolean>
  /** A local write: the record, the change into the outbox, counter and clock, atomically. */
  commitLocal(write: {
    readonly record: StoredRecord
    readonly change: Change
    readonly clock: HlcState
  }): Promise<void>
  /**
   * Several local writes in one atomic commit: for each change, in order, its record and the
   * change into the outbox; then counter and clock as after the last. Counters are
   * consecutive from the stored counter + 1. Optional: without it the engine calls
   * `commitLocal` per write. The engine uses it for writes an app issues together (a loop of
   * `put`s not awaited one by one), so they cost one transaction instead of one each.
   */
  commitLocalBatch?(batch: LocalBatch): Promise<void>
  /**
   * Most writes the engine gives one `commitLocalBatch` (a positive integer). Optional:
   * without it the engine's default (1,000). A store whose commits cost much more per
   * transaction than per write (IndexedDB in a browser) asks for more.
   */
  readonly maxLocalBatch?: number
  /**
   * Remote changes applied: their records, the clock and (when set) the cursor, atomically.
   * A record whose state has no versions is removed (a deletion the hub collected while this
   * replica was away, see `SnapshotMessage.received`). With `log`, the metadata's `log`
   * becomes it, and `cursor` is stored as given even when lower (0 after a hub restored
   * from a backup: the replica reads that log from its start). With `maxFrame`, the
   * metadata's `maxFrame` becomes it; with `resume`, its `resume` (null: none).
   */
  applyRemote(batch: RemoteBatch): Promise<void>
  /** Own changes with counter > `after`, in counter order, at most `limit`. */
  readOutbox(after: number, limit: number): Promise<Change[]>
  /** How many changes the outbox holds. */
  outboxSize(): Promise<number>
  dropOutbox(upTo: number): Promise<void>
  close(): Promise<void>
  /**
   * Deletes everything the store holds, for good, closing it first if it is still open (it
   * may also be called after `close`): opened again at the same place (the same database
   * name or file), it is a new, empty store. Optional: a replica on a store without it cannot
   * be destroyed (`Replica.destroy` rejects with `invalid-argument`). Failures reject with
   * `storage-failed`.
   */
  destroy?(): Promise<void>
}

/** What {@link ReplicaStore.applyRemote} stores. */
export interface RemoteBatch {
  readonly records: readonly StoredRecord[]
  readonly clock: HlcState
  readonly cursor: number | null
  readonly log?: string
  readonly maxFrame?: number
  readonly resume?: SnapshotResume | null
}

/**
 * The metadata `meta` becomes once a remote batch is stored (see {@link ReplicaStore.applyRemote}),
 * with `clock` as the store keeps it: `cursor` unless null, `log` and `maxFrame` when given, and
 * `resume` when given (removed when null).
 */
export function remoteMeta(
  meta: ReplicaMeta,
  batch: Omit<RemoteBatch, 'records' | 'clock'>,
  clock: HlcState,
): ReplicaMeta {
  const next: ReplicaMeta = {
    ...meta,
    clock,
    cursor: batch.cursor ?? meta.cursor,
    ...(batch.log === undefined ? {} : { log: batch.log }),
    ...(batch.maxFrame === undefined ? {} : { maxFrame: batch.maxFrame }),
  }
  if (batch.resume === undefined) return next
  if (batch.resume !== null) return { ...next, resume: batch.resume }
  const { resume: _dropped, ...rest } = next
  return rest
}

/**
 * Local writes committed together (see {@link ReplicaStore.commitLocalBatch}): the changes
 * in counter order and, by index, the state of each change's record once it is applied —
 * `undefined` where the record holds that change alone (a new record, or a put over every
 * version it held: nearly every write), so that a batch of thousands carries no state
 * object for them. {@link localBatchRecord} gives the record either way.
 */
export interface LocalBatch {
  readonly changes: readonly Change[]
  readonly states: readonly (RecordState | undefined)[]
  readonly clock: HlcState
}

/** The record `batch.changes[index]` leaves, as {@link LocalBatch} describes it. */
export function localBatchRecord(batch: LocalBatch, index: number): StoredRecord {
  const change = batch.changes[index] as Change
  const state = batch.states[index] ?? { versions: [change] }
  return { collection: change.collection, id: change.id, state }
}

/**
 * One replica's changes for {@link HubStore.appendMany}.
 *
 * `through`, when set, marks a sparse batch: the replica sent again those of its changes up
 * to `through` that it still holds, after the hub lost changes it had acknowledged (a relay
 * restored from a backup), and the others are gone for good. Its changes need not be
 * consecutive; each one above what is stored is taken in rising order, and then every
 * counter up to `through` counts as received, so the replica's stream continues after it.
 */
export interface HubAppend {
  readonly replica: ReplicaId
  readonly changes: readonly Change[]
  readonly through?: number
}

/**
 * The changes of `changes` an append takes after counter `received` (see {@link HubAppend}):
 * the gap-free continuation, or with `through` every one above it in rising order; and the
 * received counter after them. Changes of another replica are the caller's to refuse.
 */
export function appendable(
  changes: readonly Change[],
  received: number,
  through?: number,
): { readonly fresh: Change[]; readonly received: number } {
  const fresh: Change[] = []
  let counter = received
  for (const change of changes) {
    const at = change.dot[1]
    if (at <= counter) continue
    if (through === undefined ? at !== counter + 1 : at > through) break
    fresh.push(change)
    counter = at
  }
  return { fresh, received: through === undefined ? counter : Math.max(counter, through) }
}

/** What the hub knows durably about a space. */
export interface SpaceMeta {
  readonly head: number
  readonly floor: number
  readonly received: { readonly [replica: string]: number }
  /**
   * The name of this log (optional): a store whose log can be replaced by an older copy (a
   * restored backup) names each copy differently, so that replicas holding positions in the
   * log it replaced read it from the start instead of skipping what now has those positions.
   */
  readonly log?: string
  /**
   * The space's latest {@link CollectedMark} (optional; absent until a compaction collected a
   * deletion). A store that has one collects no more deletions until every replica it still
   * knows has acknowledged a position past its `at`, so a replica is never owed two marks.
   */
  readonly collected?: CollectedMark
  /**
   * True for a space deleted with {@link HubStore.deleteSpace} (absent otherwise): it holds
   * nothing, and the hub refuses every session that names it.
   */
  readonly deleted?: boolean
}

/**
 * The deletions a hub collected in its latest compaction that collected any (see
 * PROTOCOL.md, `collected`): at log position `at` (the head when it compacted), every record
 * whose versions were all deletes, each stored at or below the floor — that is, with a dot
 * `received` covers (per replica, the highest counter it had stored at or below the floor).
 */
export interface CollectedMark {
  readonly at: number
  readonly received: Readonly<Record<string, number>>
}

/** A log entry: a change and the position the hub gave it. */
export interface LogEntry {
  readonly seq: number
  readonly change: Change
}

/** The outcome of an append. */
export interface AppendResult {
  /** The space's last position after the append. */
  readonly head: number
  /** The highest counter of the replica now stored. */
  readonly received: number
  /** How many changes were new. */
  readonly appended: number
}

/**
 * A change's JSON text exactly as `encodeChange` writes it, from a caller that has it anyway.
 *
 * A hub encodes every change it streams; passing that text to the store lets a store that
 * keeps changes as JSON write it as is rather than stringify the change again (once for the
 * log, once more for the record). It must return what `encodeChange(change)` returns.
 */
export type ChangeText = (change: Change) => string

/**
 * Where a hub (the relay) keeps each space: its log of changes and their compacted state.
 *
 * Contract (checked by `@chorus/testkit`'s `runHubStoreConformance`):
 * - `append` stores only the gap-free continuation of what it holds for that replica
 *   (counters received+1, received+2, …), skipping duplicates and stopping at a gap — or,
 *   given `through` (a sparse batch, see {@link HubAppend}), every change above what it holds
 *   in rising order, and then counts every counter up to `through` as received. Log
 *   entries and the compacted records are updated in one atomic, durable commit: once the
 *   promise resolves the hub may acknowledge, and a crash must not lose it.
 * - Positions are 1, 2, 3, … per space, without gaps, in append order.
 * - `readSnapshot` pages through the records' current versions in {@link recordKey} order
 *   (UTF-16 code units, as JavaScript compares strings; SQLite needs a matching collation): every change
 *   appended before the first page was read is in some page or superseded by one that is.
 * - Once `deleteSpace` has deleted a space, `append`, `readLog` and `readSnapshot` of it
 *   reject with `space-deleted`: a read made as the deletion commits must not pass for a
 *   caught-up log or a bootstrap's last page.
 * - Failures reject with a `ChorusError` (`storage-failed`) and leave nothing half-written.
 */
export interface HubStore {
  loadSpace(space: SpaceId): Promise<SpaceMeta>
  /**
   * `text`, when given, is each change's wire text (see {@link ChangeText}); a store may
   * ignore it. `through`, when given, makes the append sparse (see {@link HubAppend}).
   */
  append(
    space: SpaceId,
    replica: ReplicaId,
    changes: readonly Change[],
    text?: ChangeText,
    through?: number,
  ): Promise<AppendResult>
  /**
   * Several replicas' appends in one atomic, durable commit (group commit: one disk flush
   * instead of one each). Each behaves as its own `append`, in order; results in the same
   * order. If any fails, none is stored. Optional: without it the hub appends one by one.
   */
  appendMany?(space: SpaceId, appends: readonly HubAppend[], text?: ChangeText): Promise<AppendResult[]>
  /**
   * Entries with seq > `after`, in order, at most `limit`. A store that reads each change as
   * its `encodeChange` text may hand that text to `onText` (optional), so that a hub streams
   * it as is instead of encoding the parsed change again.
   */
  readLog(
    space: SpaceId,
    after: number,
    limit: number,
    onText?: (change: Change, text: string) => void,
  ): Promise<LogEntry[]>
  /** Up to `limit` records' versions after `afterKey`; `nextKey` null on the last page. */
  readSnapshot(
    space: SpaceId,
    afterKey: string | null,
    limit: number,
  ): Promise<{ readonly changes: Change[]; readonly nextKey: string | null }>
  /**
   * Deletes everything the space holds (its log, records and counters, and the replicas'
   * positions in it) in one atomic, durable commit, and keeps its name as deleted for good:
   * `loadSpace` then says `deleted`, and an append to it rejects with `space-deleted`.
   * Resolves true when it deleted the space, false when it was deleted already. Optional: a
   * hub over a store without it cannot delete spaces.
   */
  deleteSpace?(space: SpaceId): Promise<boolean>
  /**
   * The space's log head as stored now. For a store other hubs append to too (relays on one
   * database), which a hub hears of late: a hub answers a `ping` with it, so that the answer
   * covers what any of them had stored. Optional: a hub over a store of its own answers with
   * the head it keeps.
   */
  readHead?(space: SpaceId): Promise<number>
  close(): Promise<void>
}

/** The key that orders records in snapshots: collection and id, unambiguously joined. */
export function recordKey(collection: string, id: string): string {
  return `${collection}\u0000${id}`
}
