import type { AdvancedEntry, CollectedMark, HubStore, ReplicaId, SharedPresence, SpaceId } from '@chorus/core'

/** When a compaction may forget replicas and raise a space's floor. */
export interface CompactOptions {
  /** Wall-clock milliseconds now. */
  readonly now: number
  /**
   * A replica whose last acknowledgement is older than this is forgotten: it no longer holds
   * back the floor, and when it returns below the floor it bootstraps from a snapshot.
   * `Infinity` keeps every replica until it catches up.
   */
  readonly horizonMs: number
  /**
   * Whether to collect deletions (default true). A relay passes false for a space it keeps in
   * step with other relays (see `RelayOptions.links`): their stores hold the same records,
   * and one that collected a deletion the others keep would diverge from them.
   */
  readonly collect?: boolean
}

/** What one compaction did. */
export interface CompactResult {
  /** The space's floor after compaction: log positions at or below it are gone. */
  readonly floor: number
  readonly logEntriesDeleted: number
  /** Records whose every version was a delete, all known replicas past them, removed. */
  readonly tombstonesDeleted: number
  /** Replicas not seen within the horizon, no longer tracked. */
  readonly replicasForgotten: number
  /**
   * The space's latest mark of collected deletions after this compaction (see
   * `CollectedMark`): a new one when it collected any (`tombstonesDeleted > 0`), else the one
   * it had, if any. The relay hands it to its hub, which tells every replica at `at`.
   */
  readonly collected?: CollectedMark
}

/** One space as `describeSpaces` lists it, for operators. */
export interface SpaceSummary {
  readonly space: SpaceId
  /** Changes stored in it so far: its log's head. */
  readonly head: number
  /** Log entries kept, above the compacted floor. */
  readonly logEntries: number
  /** Replicas whose changes it holds (linked relays apart). */
  readonly writers: number
  /** Replicas whose acknowledged position it keeps (heard from within the horizon; linked relays apart). */
  readonly readers: number
  /** Relays linked to it (see `RelayOptions.links`): those whose log it holds a position in. */
  readonly links: number
}

/** Totals for metrics. */
export interface RelayStoreStats {
  /** Spaces with at least one stored change. */
  readonly spaces: number
  /** Log entries retained (appended and not yet compacted away), over all spaces. */
  readonly logEntries: number
  /**
   * For a store shared with other relays: appends tried again since it opened because another
   * relay changed what they had read (the same records, or the same replica's counter).
   */
  readonly appendRetries?: number
}

/**
 * What a relay needs from its storage beyond the {@link HubStore} contract: the acknowledged
 * positions that drive compaction, compaction itself, and replica ownership.
 *
 * Contract, beyond `HubStore`'s:
 * - `noteAck` never lowers a stored position. It may buffer an update of a replica it
 *   already tracks (losing one only makes the floor lower, which is safe), but a replica seen
 *   for the first time is written durably before it resolves: a replica the store does not
 *   know cannot hold back tombstone collection.
 * - `compact` raises the floor to the lowest acknowledged position among the replicas
 *   acknowledged within the horizon (to the head when there are none), never lowers it, and
 *   in one transaction deletes the log entries at or below it and the records whose every
 *   version is a delete and whose last change is at or below it — the latter only when the
 *   space has no {@link CollectedMark} yet or the new floor is past its `at` (so every replica
 *   still known has been told of the deletions collected before), and then it stores a new
 *   mark at the head, which `loadSpace` returns as `collected`. `readLog` below the floor
 *   rejects with `resync-required`.
 * - `claimReplica` binds a replica id to the first subject that claims it, durably.
 */
export interface RelayStore extends HubStore {
  /** Records that `replica` has applied the space's log up to `position` at time `now`. */
  noteAck(space: SpaceId, replica: ReplicaId, position: number, now: number): Promise<void>
  /** Writes buffered acknowledgements durably. */
  flushAcks(): Promise<void>
  compact(space: SpaceId, options: CompactOptions): Promise<CompactResult>
  /** Every space with stored changes. */
  listSpaces(): Promise<SpaceId[]>
  /** Every space with stored changes, with its sizes, in name order (UTF-8 bytes). */
  describeSpaces(): Promise<SpaceSummary[]>
  /**
   * See `HubStore.deleteSpace`; here it also forgets the space's replicas (their
   * acknowledged positions, and their bindings to users unless another space knows them),
   * and drops acknowledgements of it noted later.
   */
  deleteSpace(space: SpaceId): Promise<boolean>
  stats(): Promise<RelayStoreStats>
  /** True when `replica` is unclaimed (and now claimed by `subject`) or already `subject`'s. */
  claimReplica(replica: ReplicaId, subject: string): Promise<boolean>
  /**
   * For a store that several relays share (optional): calls `listener` with what the other
   * relays stored, so that this relay streams it to its own connections. Returns a function
   * that stops it. A store without it belongs to one relay.
   */
  watch?(listener: (event: StoreEvent) => void): () => void
  /** With `watch`: whether the store hears the other relays now (false while its connection for that is down). */
  listening?(): boolean
  /**
   * With `watch`: tells the other relays sharing the store of presence changes here (they
   * hear them as a `presence` event). Best effort, stored nowhere.
   */
  publishPresence?(entries: readonly SharedPresence[]): Promise<void>
}

/**
 * What another relay did to a shared store (see {@link RelayStore.watch}).
 * - `appended`: the space's log now reaches `head`, and the replicas named in `received`
 *   (when given) have their changes stored up to those counters (without it, others' may
 *   have moved too); `entries`, when given, are what was appended.
 * - `collected`: a compaction left this mark of collected deletions on the space.
 * - `deleted`: the space was deleted (see `RelayStore.deleteSpace`).
 * - `resync`: events may have been missed (the store lost its connection and got it back):
 *   every space in use may have moved.
 * - `presence`: presence changes at the relay whose store is `from` (see `publishPresence`).
 */
export type StoreEvent =
  | {
      readonly type: 'appended'
      readonly space: SpaceId
      readonly head: number
      readonly received?: Readonly<Record<string, number>>
      /** The appended entries, when they fitted in the news: up to `head`, in order. */
      readonly entries?: readonly AdvancedEntry[]
    }
  | { readonly type: 'collected'; readonly space: SpaceId; readonly mark: CollectedMark }
  | { readonly type: 'deleted'; readonly space: SpaceId }
  | { readonly type: 'resync' }
  | { readonly type: 'presence'; readonly from: string; readonly entries: readonly SharedPresence[] }
