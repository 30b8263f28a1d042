import type { Change } from './change.js'
import { approximateChangeLength, assertChangeFits, assertPutFits, assertValueFits } from './change-size.js'
import { ChorusError, ErrorCode, isChorusError } from './errors.js'
import { createHlc, HLC_ZERO, type Hlc, type HlcStamp } from './hlc.js'
import {
  asRecordId,
  asSpaceId,
  assertCollectionName,
  type RecordId,
  type ReplicaId,
  type SpaceId,
} from './ids.js'
import { copyJsonObject, freezeJson, type JsonObject, ownNumber } from './json.js'
import { makeCheckedChange, type WriteIntent } from './local-change.js'
import { decodeMessage, encodeChange, encodeMessage } from './protocol/codec.js'
import {
  DEFAULT_LIMITS,
  Feature,
  MAX_PRESENCE_CHARS,
  MAX_PRESENCE_KEY_LENGTH,
  MAX_PRESENCE_KEYS,
  type ProtocolLimits,
  type SnapshotResume,
} from './protocol/messages.js'
import {
  DEFAULT_REPLICA_SESSION,
  initialReplicaSession,
  isReplicaSynced,
  type ReplicaSessionEffect,
  type ReplicaSessionInput,
  type ReplicaSessionState,
  type SnapshotPage,
  stepReplicaSession,
} from './protocol/replica-session.js'
import { applyChange, type RecordState } from './record.js'
import { recordsInPage } from './record-page.js'
import { type ConflictVersion, type Resolver, ResolverKind, resolveValueWith } from './resolver.js'
import { createResolverLookup, type ResolverConfig, type ResolverLookup } from './resolvers.js'
import { SerialQueue } from './serial-queue.js'
import {
  type ListedRecord,
  type RecordPage,
  type ReplicaMeta,
  type ReplicaStore,
  recordKey,
  remoteMeta,
  type StoredRecord,
} from './storage.js'

/**
 * What an update makes of a record (see {@link ReplicaEngine.update}): called with the
 * record's value as `get` reads it — `undefined` when there is none or it is deleted — and
 * the versions of its open conflict (empty when it has none); returns the fields to set, as
 * a patch does, or `undefined` to write nothing. It runs when the write is made, with no
 * other operation of the replica between that read and the write, and should only compute:
 * it may run again if its batch is made again.
 */
export type UpdateFunction = (
  current: JsonObject | undefined,
  conflict: readonly ConflictVersion[],
) => JsonObject | undefined

/** A record's value and the versions of its open conflict, read together (see `ReplicaEngine.read`). */
export interface RecordRead {
  /** As `get` reads it: `undefined` when there is no record, or it is deleted. */
  readonly value: JsonObject | undefined
  /** Empty when the record has no open conflict. */
  readonly conflict: readonly ConflictVersion[]
}

/** Sync status as an application shows it. */
export type SyncStatus = 'offline' | 'connecting' | 'syncing' | 'synced'

/** A record conflict as an application shows it. */
export interface Conflict {
  readonly collection: string
  readonly id: RecordId
  readonly versions: readonly ConflictVersion[]
}

/**
 * Which records {@link ReplicaEngine.conflicts} looks at: those of `collection` with these
 * ids, as a change event names them, instead of every record.
 */
export interface ConflictFilter {
  readonly collection: string
  /** Only these records of the collection (each read alone); without it, all of its records. */
  readonly ids?: readonly string[]
}

/** What changed, for live queries. */
export interface ChangeEvent {
  readonly collection: string
  readonly ids: readonly RecordId[]
  readonly origin: 'local' | 'remote'
}

/**
 * Which rows {@link ReplicaEngine.list} returns. Without options: every row, in id order.
 * With UUID v7 (or other time-ordered) ids, `{ order: 'desc', limit: 100 }` is the newest
 * hundred, and `{ order: 'desc', after: last.id }` the rest.
 */
export interface ListOptions {
  /** Id order (`'asc'`, the default; UTF-16 code units, as JavaScript compares strings) or its reverse. */
  readonly order?: 'asc' | 'desc'
  /** Only rows whose id comes after this one in `order` (exclusive). */
  readonly after?: string
  /** At most this many rows (a positive integer). */
  readonly limit?: number
}

/** Options for {@link openReplicaEngine}. */
export interface ReplicaEngineOptions {
  readonly store: ReplicaStore
  readonly space: string
  /** Wall-clock milliseconds (injected: core reads no clock). */
  readonly now: () => number
  /** Makes the id of a new replica (injected: core has no randomness). */
  readonly createReplicaId: () => ReplicaId
  readonly resolvers?: ResolverConfig
  readonly token?: string
  /**
   * The runtime renews tokens: the hub's `unauthenticated` ends the connection only (reported
   * through `onError`), and the runtime attaches the next one with a new token
   * (`attach(send, token)`). Absent: that refusal stops the session for good.
   */
  readonly renewToken?: boolean
  readonly maxDriftMs?: number
  readonly limits?: ProtocolLimits
  readonly session?: Partial<Pick<ReplicaSessionState['config'], 'batchSize' | 'window' | 'retransmitMs'>>
  /**
   * The transport delivers a connection's frames whole and in order, or closes it (a
   * WebSocket): the replica offers the `resend` feature, and with a hub that speaks it nothing
   * goes again for silence alone (see `Feature`). Absent: a transport that may lose frames.
   */
  readonly reliableTransport?: boolean
  /** Called with every change applied, local or remote (for live queries). */
  readonly onChange?: (event: ChangeEvent) => void
  /** Called when the hub acknowledges own changes up to `upTo` as durable. */
  readonly onAcked?: (upTo: number) => void
  /** Called with errors that have no caller to reject: a refused session, a failed apply. */
  readonly onError?: (error: ChorusError) => void
  /**
   * Called when the sync status or the number of changes waiting to upload changes, and when
   * the hub answered a `ping` (see `ReplicaEngine.ping`).
   */
  readonly onStatus?: (status: SyncStatus, pending: number) => void
  /** Called when a remote clock is further ahead than the drift limit. */
  readonly onSkew?: (skewMs: number, from: ReplicaId) => void
  /**
   * Called with other replicas' presence (`Feature.Presence`): each change, and `reset` when
   * what was heard no longer holds (the connection ended, or a new one starts, whose hub
   * sends everyone's again).
   */
  readonly onPresence?: (event: PresenceEvent) => void
  /**
   * For a store shared with other instances of this replica (browser tabs on one IndexedDB
   * database): runs `work` while no other instance writes. Every local write then runs
   * inside it and first catches up with the stored counter and clock, so instances never
   * reuse a counter; so does every remote apply (and removal of collected deletions), from
   * reading the records it changes to storing them, so that no instance's local write to a
   * record lands in between and is overwritten. Without it the engine assumes it is the
   * store's only writer.
   */
  readonly exclusive?: <TResult>(work: () => Promise<TResult>) => Promise<TResult>
}

/**
 * Checks a presence key and state as `ReplicaEngine.setPresence` takes them, and returns a
 * frozen copy of the state (null stays null); throws `invalid-argument` for a key that is not
 * 1–64 characters, or a state that is not a JSON object of at most 4,096 characters.
 */
export function checkPresence(key: string, state: JsonObject | null): JsonObject | null {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_PRESENCE_KEY_LENGTH) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `a presence key is a string of 1–${MAX_PRESENCE_KEY_LENGTH} characters`,
    )
  }
  if (state === null) return null
  const copy = freezeJson(copyJsonObject(state, 'presence state', MAX_PRESENCE_CHARS * 6))
  const length = JSON.stringify(copy).length
  if (length > MAX_PRESENCE_CHARS) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `presence state is ${length} characters of JSON; at most ${MAX_PRESENCE_CHARS}: keep it to who and where, not data`,
    )
  }
  return copy
}

/** What {@link ReplicaEngineOptions.onPresence} is told. */
export type PresenceEvent =
  | {
      readonly type: 'peer'
      readonly replicaId: ReplicaId
      readonly key: string
      /** Null: that replica cleared it, or went away. */
      readonly state: JsonObject | null
    }
  | { readonly type: 'reset' }

/**
 * A replica: a full leader over a {@link ReplicaStore}, and the replica side of sync.
 *
 * Every operation — local writes, remote applies, outbox reads — runs one at a time through
 * one queue, so read-modify-write of a record is never interleaved. The transport is
 * attached and detached from outside (`attach(send)`, `receive(frame)`, `detach()`); time
 * moves by `tick()`. Nothing here touches a socket, a timer or a global.
 */
export interface ReplicaEngine {
  readonly replicaId: ReplicaId
  readonly space: SpaceId
  put(collection: string, id: string, value: JsonObject): Promise<Change>
  patch(collection: string, id: string, fields: JsonObject): Promise<Change>
  delete(collection: string, id: string): Promise<Change>
  /**
   * A put (of `value`) or a delete for a caller that needs no change back, as a collection's
   * writes: those issued together into a store that commits batches share one promise, so
   * thousands cost one. It resolves once they committed, or rejects when any of them failed
   * — none of them is stored then (they commit in one transaction).
   */
  write(collection: string, id: string, type: 'put' | 'delete', value?: JsonObject): Promise<void>
  /** Settles a conflict: a put whose context covers every version. */
  resolve(collection: string, id: string, value: JsonObject): Promise<Change>
  /**
   * Reads the record and patches it with what `change` returns, with no other operation of
   * this replica between the read and the write: a remote change applied after `change`
   * ran is concurrent with the patch, never superseded by it unseen. Resolves with the
   * change written, or null when `change` returned `undefined` (nothing is written then);
   * rejects with what `change` threw, or `invalid-argument` for fields that are not a
   * JSON object.
   */
  update(collection: string, id: string, change: UpdateFunction): Promise<Change | null>
  get(collection: string, id: string): Promise<JsonObject | undefined>
  /**
   * The record's value as `get` reads it and the versions of its open conflict (empty when
   * it has none), from one read of the record: they always agree, as `update`'s `change`
   * sees them. (A `get` and a `conflicts` issued together may each see a different state of
   * the record, a remote change applied between them.)
   */
  read(collection: string, id: string): Promise<RecordRead>
  /** The collection's rows (records with a value: not deleted), as `options` select them. */
  list(collection: string, options?: ListOptions): Promise<{ id: RecordId; value: JsonObject }[]>
  /**
   * The rows of the records `ids` names, as `list` reads them (those with a value), in no
   * particular order: one read of those records alone, for bringing a list up to date after
   * a change to a few of them.
   */
  rows(collection: string, ids: readonly string[]): Promise<{ id: RecordId; value: JsonObject }[]>
  /**
   * The records whose resolver leaves a conflict to the user, in collection then id order:
   * of every record, or only of those `filter` names (a read of those alone).
   */
  conflicts(filter?: ConflictFilter): Promise<Conflict[]>
  /** The raw record state (versions), for checkers and debugging. */
  record(collection: string, id: string): Promise<RecordState | undefined>
  /**
   * A transport is up: `send` writes to it; `token`, when given, is presented from now on;
   * `readLimit`, when given, is the longest frame to ask the hub for (its `hello.maxFrame`:
   * for a link on which a frame of the hub's size takes longer than the runtime waits).
   */
  attach(send: (frame: string) => void, token?: string, readLimit?: number): void
  detach(): void
  receive(frame: string): Promise<void>
  tick(): Promise<void>
  status(): SyncStatus
  /**
   * Asks the hub where its log ends now (a `ping`, sent once the session is ready; see the
   * session's `syncAsked`). Returns the ask's number: once `session().syncAnswered` reaches
   * it, `hubHead` is at least the head the hub held after this call, so a `synced` status
   * from then on means caught up with everything the hub had stored by then.
   */
  ping(): number
  /** Own changes not yet acknowledged by the hub. */
  pending(): number
  session(): ReplicaSessionState
  /**
   * Catches up with what other instances of this replica stored (see
   * `ReplicaEngineOptions.exclusive`). Detached, it starts the session over from the stored
   * cursor, outbox and counter, as a tab that takes over the connection must; attached, it
   * picks up local writes other instances made, so they are uploaded.
   */
  refresh(): Promise<void>
  /**
   * Sets this replica's presence in the space under `key` (null clears it): ephemeral state
   * the hub passes to the other replicas on the space while this connection lasts, and that
   * is sent again on each new connection. Not stored. `key` is 1–64 characters; `state` a
   * JSON object of at most 4,096 characters; at most 32 keys. Throws `invalid-argument`.
   */
  setPresence(key: string, state: JsonObject | null): void
  /** Resolves when every queued operation has finished. */
  idle(): Promise<void>
  close(): Promise<void>
}

/** Opens (or creates) a replica over a store. */
export async function openReplicaEngine(options: ReplicaEngineOptions): Promise<ReplicaEngine> {
  const space = asSpaceId(options.space)
  const { store } = options
  let meta = await store.loadMeta()
  if (meta === undefined) {
    meta = { replicaId: options.createReplicaId(), space, counter: 0, clock: HLC_ZERO, cursor: 0 }
    await store.initMeta(meta)
  } else if (meta.space !== space) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `this store belongs to space ${meta.space}, not ${space}: use one store per space`,
    )
  }
  const first = await store.readOutbox(0, 1)
  const acked = first[0] === undefined ? meta.counter : first[0].dot[1] - 1
  return new Engine(options, meta, acked)
}

class Engine implements ReplicaEngine {
  readonly replicaId: ReplicaId
  readonly space: SpaceId
  readonly #options: ReplicaEngineOptions
  readonly #store: ReplicaStore
  readonly #queue = new SerialQueue()
  readonly #hlc: Hlc
  readonly #resolvers: ResolverLookup
  readonly #limits: ProtocolLimits
  #meta: ReplicaMeta
  #session: ReplicaSessionState
  /** Writes waiting for their batch's turn in the queue; null once another task was queued after it. */
  #openBatch: WriteBatch | null = null
  /**
   * What the last put `#intent` checked bounds its value's JSON length at, for the pending
   * write it becomes (kept here, not in the intent, which becomes the change's op as it is).
   */
  #valueBytes = 0
  #send: ((frame: string) => void) | null = null
  /** This replica's own presence, by key (see `setPresence`): sent again on each new connection. */
  readonly #presence = new Map<string, JsonObject>()
  /**
   * The keys the hub may hold own presence under on this connection: each key sent since the
   * connection began, or since presence was last sent again whole (a clear's frame may have
   * been dropped too, leaving the key held there).
   */
  #presenceSent = new Set<string>()
  /** The hub dropped frames of ours (`presence-dropped`): the next tick sends presence again. */
  #presenceOwed = false
  #closed = false
  /** The hub's log name the session took (`set-log`) and the store does not hold yet. */
  #logUnsaved = false
  /** Own versions found for `#readLost`, kept while the hub is sent them again. */
  #lost: { readonly upTo: number; readonly versions: readonly Change[] } | null = null
  /**
   * The snapshot being applied over records this replica already held: the counters its
   * first page named, by record key the dots of the versions its pages carried so far, and
   * the carried versions a held version covered, so they were not applied (see `#sweep`).
   */
  #sweeping: {
    readonly received: Readonly<Record<string, number>>
    readonly seen: Map<string, Set<string>>
    readonly shadowed: Map<string, Change[]>
  } | null = null
  /**
   * Deletions the hub collected at a position, to remove before anything past it is applied
   * (see `#collect`); kept until that is done, and the apply fails until it is.
   */
  #collectOwed: { readonly at: number; readonly received: Readonly<Record<string, number>> } | null = null
  /**
   * What this replica knows the hub holds: per writer, the highest counter of a change the hub
   * sent it or named as held (a snapshot's `received`). Complete only from a snapshot's first
   * page or the start of the hub's log on, so null until this engine read one of them, and
   * again when the hub's log changes. `#collect` reads it (see `collectedBy`).
   */
  #hubHeld: Map<string, number> | null = null
  /**
   * How far the snapshot being read has come, for the hub to send the rest of it should the
   * connection drop (`HelloMessage.resume`): its position, the key of the last record known
   * whole here (null until one is: a page may end inside a record, which the next continues),
   * and the key of the last record its pages carried. Null when there is none, or when the
   * snapshot sweeps what no page carried (see `#sweep`): the sweep needs every page of one
   * snapshot, so it cannot be resumed. Stored with the pages (`ReplicaMeta.resume`), so it
   * outlives a restart.
   */
  #resume: SnapshotProgress | null = null

  constructor(options: ReplicaEngineOptions, meta: ReplicaMeta, acked: number) {
    this.#options = options
    this.#store = options.store
    this.#meta = meta
    this.#resume = meta.resume === undefined ? null : { ...meta.resume, last: meta.resume.after }
    this.replicaId = meta.replicaId
    this.space = meta.space
    this.#resolvers = createResolverLookup(options.resolvers)
    this.#limits = options.limits ?? DEFAULT_LIMITS
    this.#hlc = createHlc({
      replicaId: meta.replicaId,
      now: options.now,
      state: meta.clock,
      ...(options.maxDriftMs === undefined ? {} : { maxDriftMs: options.maxDriftMs }),
      ...(options.onSkew === undefined ? {} : { onSkew: options.onSkew }),
    })
    this.#session = initialReplicaSession(
      {
        replicaId: meta.replicaId,
        space: meta.space,
        ...(options.token === undefined ? {} : { token: options.token }),
        ...(options.renewToken === true ? { renewToken: true } : {}),
        ...DEFAULT_REPLICA_SESSION,
        ...(options.reliableTransport === true
          ? { features: [...DEFAULT_REPLICA_SESSION.features, Feature.Resend] }
          : {}),
        ...options.session,
      },
      {
        cursor: meta.cursor,
        acked,
        local: meta.counter,
        ...(meta.log === undefined ? {} : { log: meta.log }),
        ...(meta.maxFrame === undefined ? {} : { maxFrame: meta.maxFrame }),
      },
    )
  }

  put(collection: string, id: string, value: JsonObject): Promise<Change> {
    return this.#write(collection, id, 'put', value)
  }

  patch(collection: string, id: string, fields: JsonObject): Promise<Change> {
    return this.#write(collection, id, 'patch', fields)
  }

  delete(collection: string, id: string): Promise<Change> {
    return this.#write(collection, id, 'delete', undefined)
  }

  write(collection: string, id: string, type: 'put' | 'delete', value?: JsonObject): Promise<void> {
    // A store without batches commits each write alone: each then gets its own promise.
    if (this.#store.commitLocalBatch === undefined)
      return this.#write(collection, id, type, value).then(toVoid)
    return this.#writeShared(collection, id, type, value)
  }

  resolve(collection: string, id: string, value: JsonObject): Promise<Change> {
    return this.put(collection, id, value)
  }

  update(collection: string, id: string, change: UpdateFunction): Promise<Change | null> {
    return this.#pending(collection, id, 'update', change)
  }

  async get(collection: string, id: string): Promise<JsonObject | undefined> {
    const state = await this.record(collection, id)
    if (state === undefined) return undefined
    return resolveValueWith(this.#resolvers(collection), state.versions)
  }

  async read(collection: string, id: string): Promise<RecordRead> {
    const state = await this.record(collection, id)
    if (state === undefined) return { value: undefined, conflict: NO_CONFLICT }
    const resolved = this.#resolvers(collection).resolve(state.versions)
    return { value: resolved.value, conflict: resolved.conflict ?? NO_CONFLICT }
  }

  list(collection: string, options?: ListOptions): Promise<{ id: RecordId; value: JsonObject }[]> {
    return this.#read(() => this.#list(collection, options))
  }

  async #list(collection: string, options?: ListOptions): Promise<{ id: RecordId; value: JsonObject }[]> {
    assertCollectionName(collection)
    const page = recordPage(options)
    await this.#afterWrites()
    const resolver = this.#resolvers(collection)
    const rows: { id: RecordId; value: JsonObject }[] = []
    const limit = page.limit ?? Number.POSITIVE_INFINITY
    /** Adds the rows of `records` up to the limit; false once it is reached. */
    const add = (records: readonly ListedRecord[]): boolean => {
      for (const record of records) {
        if (rows.length >= limit) return false
        const value =
          record.state === undefined ? record.value : resolveValueWith(resolver, record.state.versions)
        if (value !== undefined) rows.push({ id: record.id, value })
      }
      return rows.length < limit
    }
    // A record with one put version reads as that put's value under every built-in resolver
    // (there is nothing to settle); a custom resolver sees every record whole.
    const builtIn = (Object.values(ResolverKind) as string[]).includes(resolver.kind)
    const readPage = builtIn
      ? (this.#store.listValuesPage?.bind(this.#store) ?? this.#store.listRecordsPage?.bind(this.#store))
      : this.#store.listRecordsPage?.bind(this.#store)
    // Every row, too, is read as a page when the store can: a live query lists the whole
    // collection after every change, and a page gives the values of single-put records
    // without versions being built for them.
    if (readPage === undefined) {
      add(recordsInPage(await this.#store.listRecords(collection), page, true))
      return rows
    }
    // A deleted record takes a place in a page but gives no row: read on until the limit.
    let after = page.after
    for (;;) {
      const want = page.limit === undefined ? undefined : page.limit - rows.length
      const records = await readPage(collection, {
        order: page.order,
        ...(after === undefined ? {} : { after }),
        ...(want === undefined ? {} : { limit: want }),
      })
      const last = records[records.length - 1]
      if (!add(records) || want === undefined || last === undefined || records.length < want) return rows
      after = last.id
    }
  }

  conflicts(filter?: ConflictFilter): Promise<Conflict[]> {
    return this.#read(() => this.#conflicts(filter))
  }

  async #conflicts(filter?: ConflictFilter): Promise<Conflict[]> {
    const checked = filter === undefined ? undefined : checkConflictFilter(filter)
    await this.#afterWrites()
    let records: readonly StoredRecord[]
    if (checked === undefined) records = await this.#store.allRecords()
    else {
      const { collection, ids } = checked
      records =
        ids === undefined
          ? (await this.#store.allRecords()).filter((record) => record.collection === collection)
          : await this.#recordsOf({ collection, ids })
    }
    const out: Conflict[] = []
    for (const record of records) {
      if (record.state.versions.length < 2) continue
      const conflict = this.#resolvers(record.collection).resolve(record.state.versions).conflict
      if (conflict !== undefined)
        out.push({ collection: record.collection, id: record.id, versions: conflict })
    }
    return out.sort(compareConflicts)
  }

  rows(collection: string, ids: readonly string[]): Promise<{ id: RecordId; value: JsonObject }[]> {
    return this.#read(() => this.#rows(collection, ids))
  }

  async #rows(collection: string, ids: readonly string[]): Promise<{ id: RecordId; value: JsonObject }[]> {
    const resolver = this.#resolvers(assertCollectionName(collection))
    await this.#afterWrites()
    const rows: { id: RecordId; value: JsonObject }[] = []
    for (const record of await this.#recordsOf({ collection, ids })) {
      const value = resolveValueWith(resolver, record.state.versions)
      if (value !== undefined) rows.push({ id: record.id, value })
    }
    return rows
  }

  /** The stored records `filter` names (each once; none where there is no record). */
  async #recordsOf(filter: Required<ConflictFilter>): Promise<StoredRecord[]> {
    const collection = assertCollectionName(filter.collection)
    const keys = [...new Set(filter.ids)].map((id) => ({ collection, id: asRecordId(id) }))
    const states =
      (await this.#readRecords(keys)) ??
      (await Promise.all(keys.map((key) => this.#store.getRecord(key.collection, key.id))))
    const out: StoredRecord[] = []
    keys.forEach((key, i) => {
      const state = states[i]
      if (state !== undefined) out.push({ ...key, state })
    })
    return out
  }

  record(collection: string, id: string): Promise<RecordState | undefined> {
    return this.#read(() => this.#record(collection, id))
  }

  async #record(collection: string, id: string): Promise<RecordState | undefined> {
    const name = assertCollectionName(collection)
    const recordId = asRecordId(id)
    await this.#afterWrites()
    return this.#store.getRecord(name, recordId)
  }

  attach(send: (frame: string) => void, token?: string, readLimit?: number): void {
    this.#assertOpen()
    this.#send = send
    const resume = this.#resumable()
    void this.#input({
      type: 'connected',
      now: this.#options.now(),
      ...(token === undefined ? {} : { token }),
      ...(resume === null ? {} : { resume }),
      ...(readLimit === undefined ? {} : { readLimit }),
    })
  }

  detach(): void {
    this.#send = null
    this.#options.onPresence?.({ type: 'reset' })
    this.#announce()
    void this.#input({ type: 'disconnected', now: this.#options.now() })
  }

  setPresence(key: string, state: JsonObject | null): void {
    this.#assertOpen()
    const copy = checkPresence(key, state)
    if (copy === null) {
      if (!this.#presence.delete(key)) return
    } else {
      if (!this.#presence.has(key) && this.#presence.size >= MAX_PRESENCE_KEYS) {
        throw new ChorusError(
          ErrorCode.InvalidArgument,
          `a replica holds at most ${MAX_PRESENCE_KEYS} presence keys: clear one (null) first`,
        )
      }
      this.#presence.set(key, copy)
    }
    if (this.#session.presence)
      this.#sendPresence(key, state === null ? null : (this.#presence.get(key) ?? null))
  }

  #sendPresence(key: string, state: JsonObject | null): void {
    this.#presenceSent.add(key)
    this.#transmit(encodeMessage({ type: 'presence', space: this.space, key, state }))
  }

  receive(frame: string): Promise<void> {
    const decoded = decodeMessage(frame, this.#limits)
    if (!decoded.ok) {
      if (decoded.ofError !== true) this.#transmit(encodeMessage({ type: 'error', ...decoded.error }))
      return Promise.resolve()
    }
    return this.#input({ type: 'message', now: this.#options.now(), message: decoded.message })
  }

  tick(): Promise<void> {
    if (this.#presenceOwed) this.#resendPresence()
    return this.#input({ type: 'tick', now: this.#options.now() })
  }

  /** Asks made, counted as the session counts them once it has stepped them (`syncAsked`). */
  #asks = 0

  ping(): number {
    this.#asks += 1
    void this.#input({ type: 'ping', now: this.#options.now() })
    return this.#asks
  }

  /**
   * Sends own presence again after the hub dropped frames (see `#presenceOwed`): the current
   * state of each key, and a clear for each key sent on this connection that holds nothing
   * now. The cleared keys are then forgotten, so the set stays within the keys in use.
   */
  #resendPresence(): void {
    this.#presenceOwed = false
    if (!this.#session.presence || this.#send === null) return
    for (const key of this.#presenceSent) if (!this.#presence.has(key)) this.#sendPresence(key, null)
    this.#presenceSent = new Set()
    for (const [key, state] of this.#presence) this.#sendPresence(key, state)
  }

  status(): SyncStatus {
    const session = this.#session
    if (this.#send === null || session.phase === 'offline') return 'offline'
    if (session.phase === 'connecting') return 'connecting'
    return isReplicaSynced(session) ? 'synced' : 'syncing'
  }

  pending(): number {
    return this.#session.local - this.#session.acked
  }

  session(): ReplicaSessionState {
    return this.#session
  }

  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#openBatch = null
    return this.#queue.run(() => this.#refresh())
  }

  async #refresh(): Promise<void> {
    const stored = await this.#guard(() => this.#store.loadMeta())
    if (stored === undefined) return
    this.#hlc.observe(stored.clock)
    if (this.#send === null) {
      // Detached: whatever this instance knew of the session may be stale; start over from
      // what is stored, as a reopened replica would.
      const first = await this.#guard(() => this.#store.readOutbox(0, 1))
      const acked = first[0] === undefined ? stored.counter : first[0].dot[1] - 1
      this.#meta = { ...stored, clock: this.#hlc.state() }
      const { syncAsked, syncAnswered, pingId } = this.#session
      this.#session = {
        ...initialReplicaSession(this.#session.config, {
          cursor: stored.cursor,
          acked,
          local: stored.counter,
          ...(stored.log === undefined ? {} : { log: stored.log }),
          ...(stored.maxFrame === undefined ? {} : { maxFrame: stored.maxFrame }),
        }),
        // Asks outlive the session they were made in: the next hello answer takes them up.
        syncAsked,
        syncAnswered,
        pingId,
      }
      this.#announce()
      return
    }
    const counter = Math.max(this.#meta.counter, stored.counter)
    this.#meta = { ...this.#meta, counter, clock: this.#hlc.state() }
    if (counter > this.#session.local)
      await this.#handle({ type: 'local-write', now: this.#options.now(), counter })
  }

  idle(): Promise<void> {
    return this.#queue.idle()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#send = null
    await this.#queue.idle()
    // Reads issued before close() wait for the writes before them: they get their answer.
    while (this.#reads > 0) await new Promise<void>((resolve) => (this.#readsDone = resolve))
    await this.#store.close()
  }

  /** Reads under way (`list`, `conflicts`, `rows`, `record`): `close()` lets them finish. */
  #reads = 0
  #readsDone: (() => void) | null = null

  /** Runs a read, refused once the replica is closed, and counted as under way until it settles. */
  async #read<T>(read: () => Promise<T>): Promise<T> {
    this.#assertOpen()
    this.#reads++
    try {
      return await read()
    } finally {
      this.#reads--
      if (this.#reads === 0) this.#readsDone?.()
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this replica is closed')
  }

  /** The last collection name a write checked: a burst of writes to one collection checks it once. */
  #checkedCollection: string | null = null

  /**
   * Validates and copies the value when called — not when the queue gets to it, or an app
   * that reuses its object would write what it holds then — and reports every problem
   * through the promise, never by throwing. Not an async function: a write is one promise,
   * settled when its batch commits, without the frames an `await` would keep per write
   * while thousands issued together wait for their batch.
   */
  #write(collection: string, id: string, type: WriteIntent['type'], payload: unknown): Promise<Change> {
    // Only an update's write resolves with null (it wrote nothing).
    return this.#pending(collection, id, type, payload) as Promise<Change>
  }

  /** `#write`, for every kind of intent. */
  #pending(
    collection: string,
    id: string,
    type: PendingIntent['type'],
    payload: unknown,
  ): Promise<Change | null> {
    const intent = this.#intentOrRefusal(collection, id, type, payload)
    if (intent instanceof Promise) return intent
    const recordId = id as RecordId
    return new Promise<Change | null>((resolve, reject) => {
      const valueBytes = this.#valueBytes
      this.#batchFor().writes.push({
        collection,
        id: recordId,
        intent,
        valueBytes,
        shared: false,
        resolve,
        reject,
      })
    })
  }

  /**
   * The write's checked intent, or a rejected promise that says why: a write reports every
   * problem through its promise and never throws. (An intent is a plain object, never a
   * promise, and success allocates nothing more.)
   */
  #intentOrRefusal(
    collection: string,
    id: string,
    type: PendingIntent['type'],
    payload: unknown,
  ): PendingIntent | Promise<never> {
    try {
      return this.#intent(collection, id, type, payload)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** `#write` for writes that share their batch's promise (see {@link ReplicaEngine.write}). */
  #writeShared(collection: string, id: string, type: WriteIntent['type'], payload: unknown): Promise<void> {
    const intent = this.#intentOrRefusal(collection, id, type, payload) as WriteIntent | Promise<never>
    if (intent instanceof Promise) return intent
    const recordId = id as RecordId
    const batch = this.#batchFor()
    const { resolveShared: resolve, rejectShared: reject } = batch
    const valueBytes = this.#valueBytes
    batch.writes.push({ collection, id: recordId, intent, valueBytes, shared: true, resolve, reject })
    return batch.shared()
  }

  /**
   * A write's intent, its value checked and copied, once its collection and id are checked
   * (the id may then be used as a `RecordId`); throws when the replica is closed or the
   * write is bad.
   */
  #intent(collection: string, id: string, type: PendingIntent['type'], payload: unknown): PendingIntent {
    this.#assertOpen()
    if (this.#session.readOnly) throw readOnlyWrite(this.space)
    if (collection !== this.#checkedCollection) {
      assertCollectionName(collection)
      this.#checkedCollection = collection
    }
    asRecordId(id)
    if (type === 'put') {
      const value = copyJsonObject(payload, 'a put value', this.#frameLimit())
      this.#valueBytes = assertValueFits(value, this.#frameLimit(), 'a put value')
      return { type, value }
    }
    if (type === 'patch') {
      const fields = copyJsonObject(payload, 'patch fields', this.#frameLimit())
      assertValueFits(fields, this.#frameLimit(), 'patch fields')
      return { type, fields }
    }
    if (type === 'update') {
      if (typeof payload !== 'function') {
        throw new ChorusError(ErrorCode.InvalidArgument, 'an update takes a function of the current value')
      }
      return { type, change: payload as UpdateFunction }
    }
    return DELETE_INTENT
  }

  /**
   * The batch the next write joins: writes issued while their batch still waits at the end
   * of the queue join it, and commit together, in one store transaction where the store
   * offers one. A write never overtakes a task queued before it.
   */
  #batchFor(): WriteBatch {
    const open = this.#openBatch
    if (open !== null && open.writes.length < (this.#store.maxLocalBatch ?? MAX_WRITE_BATCH)) return open
    const batch = new WriteBatch()
    this.#openBatch = batch
    const committed = this.#queue.run(() => this.#commitWrites(batch)).then(toVoid, toVoid)
    this.#lastWrite = committed
    void committed.then(() => {
      if (this.#lastWrite === committed) this.#lastWrite = null
    })
    return batch
  }

  /**
   * The commit of the last write issued, until it settles: reads wait for it, so that a read
   * issued after a write (awaited or not) sees it, as IndexedDB orders its transactions.
   */
  #lastWrite: Promise<void> | null = null

  /** Resolves once the writes issued before this call have committed (or failed). */
  async #afterWrites(): Promise<void> {
    if (this.#lastWrite !== null) await this.#lastWrite
  }

  /**
   * Makes and commits a batch of writes; each write's promise settles with its own outcome
   * (a shared one, with the first of its writes to settle: they commit together).
   */
  async #commitWrites({ writes: batch }: WriteBatch): Promise<void> {
    if (this.#openBatch?.writes === batch) this.#openBatch = null
    const { exclusive } = this.#options
    if (exclusive === undefined) return this.#commitOwnWrites(batch)
    try {
      await exclusive(async () => {
        // Other instances may have written since: continue from the stored counter and clock.
        const stored = await this.#guard(() => this.#store.loadMeta())
        if (stored !== undefined) {
          this.#hlc.observe(stored.clock)
          this.#meta = { ...this.#meta, counter: stored.counter, clock: this.#hlc.state() }
        }
        await this.#commitOwnWrites(batch)
      })
    } catch (error) {
      // The lock or the metadata read failed before any write was made.
      for (const write of batch) write.reject(error)
    }
  }

  async #commitOwnWrites(batch: PendingWrite[]): Promise<void> {
    const commitBatch = this.#store.commitLocalBatch?.bind(this.#store)
    if (batch.length === 1 || commitBatch === undefined) {
      // One transaction per write: a failed one rejects only itself.
      for (const write of batch) {
        try {
          const made = await this.#make([write])
          const change = made.changes[0]
          if (change === undefined) continue
          const state = made.states[0] ?? { versions: [change] }
          const record = { collection: change.collection, id: change.id, state }
          await this.#guard(() => this.#store.commitLocal({ record, change, clock: this.#hlc.state() }))
          this.#meta = { ...this.#meta, counter: change.dot[1], clock: this.#hlc.state() }
          await this.#committed(made)
        } catch (error) {
          write.reject(error)
        }
      }
      return
    }
    const made = await this.#make(batch)
    const { changes, states } = made
    const last = changes[changes.length - 1]
    if (last === undefined) return
    const clock = this.#hlc.state()
    try {
      await this.#guard(() => commitBatch({ changes, states, clock }))
    } catch (error) {
      for (const write of made.writes) write.reject(error)
      return
    }
    this.#meta = { ...this.#meta, counter: last.dot[1], clock }
    await this.#committed(made)
  }

  /**
   * Makes the changes of `batch` on top of the stored records (and of each other), with
   * consecutive counters; a write whose change cannot be made is rejected and left out.
   */
  async #make(batch: readonly PendingWrite[]): Promise<MadeWrites> {
    const made: MadeWrites = { writes: [], changes: [], states: [] }
    if (batch.length === 0) return made
    const { keys, slots } = distinctRecords(batch)
    // Each distinct record's state as the batch goes: read, then as its last write left it
    // (a change alone: the record holds just that one, its state not made unless needed).
    let states: (RecordState | Change | undefined | typeof UNREAD)[]
    try {
      states = (await this.#readRecords(keys)) ?? new Array(keys.length).fill(UNREAD)
    } catch (error) {
      for (const write of batch) write.reject(error)
      return made
    }
    let counter = this.#meta.counter
    for (let i = 0; i < batch.length; i++) {
      const write = batch[i] as PendingWrite
      const slot = slots[i] as number
      try {
        const { collection, id } = write
        const known = states[slot]
        const record =
          known === UNREAD
            ? await this.#store.getRecord(collection, id)
            : known === undefined || isRecordState(known)
              ? known
              : { versions: [known] }
        const resolver = this.#resolvers(collection)
        const intent =
          write.intent.type === 'update'
            ? updatedFields(write.intent.change, record, resolver, this.#frameLimit())
            : write.intent
        if (intent === null) {
          // The update wrote nothing: the record stays as it was read.
          if (known === UNREAD) states[slot] = record
          write.resolve(null)
          continue
        }
        const change = makeCheckedChange({
          collection,
          id,
          record,
          resolver,
          intent,
          dot: [this.replicaId, counter + 1],
          hlc: this.#hlc.tick(),
        })
        // A patch carries the record's other fields too: checked whole. A put's value was
        // checked when the write was made, so that it fails alone; the put is checked again
        // with the record's context, which only now is known.
        if (change.op.type === 'patch') assertChangeFits(change, this.#frameLimit())
        else if (change.op.type === 'put') assertPutFits(change, write.valueBytes, this.#frameLimit())
        const state = record === undefined ? undefined : applyChange(record, change).state
        const only = state === undefined || (state.versions.length === 1 && state.versions[0] === change)
        states[slot] = only ? change : state
        counter += 1
        made.writes.push(write)
        made.changes.push(change)
        made.states.push(only ? undefined : state)
      } catch (error) {
        write.reject(error)
        if (write.shared) {
          // A write sharing the batch's promise failed, so they all do: make the others
          // again without them (the changes made so far may build on theirs), and without
          // those that failed already.
          const kept = new Set(made.writes)
          return this.#make(batch.filter((other, j) => !other.shared && (j > i || kept.has(other))))
        }
      }
    }
    return made
  }

  /**
   * Announces committed writes, lets the session send them, and settles their promises (a
   * shared one once: its writes all committed).
   */
  async #committed({ writes, changes }: MadeWrites): Promise<void> {
    const byCollection = new Map<string, RecordId[]>()
    for (const change of changes) {
      const ids = byCollection.get(change.collection) ?? []
      ids.push(change.id)
      byCollection.set(change.collection, ids)
    }
    for (const [collection, ids] of byCollection)
      this.#options.onChange?.({ collection, ids, origin: 'local' })
    const last = changes[changes.length - 1]
    try {
      if (last !== undefined)
        await this.#handle({ type: 'local-write', now: this.#options.now(), counter: last.dot[1] })
    } finally {
      let shared: PendingWrite | null = null
      for (let i = 0; i < writes.length; i++) {
        const write = writes[i] as PendingWrite
        if (!write.shared) write.resolve(changes[i] as Change)
        else shared ??= write
      }
      shared?.resolve(changes[0] as Change)
    }
  }

  async #guard<TResult>(operation: () => Promise<TResult>): Promise<TResult> {
    try {
      return await operation()
    } catch (error) {
      if (isChorusError(error)) throw error
      throw new ChorusError(ErrorCode.StorageFailed, 'the replica store failed; nothing was written', {
        cause: error,
      })
    }
  }

  #input(input: ReplicaSessionInput): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#openBatch = null
    return this.#queue.run(() => this.#handle(input))
  }

  /** Steps the session and performs its effects; effect results are fed back in place. */
  async #handle(input: ReplicaSessionInput): Promise<void> {
    const step = stepReplicaSession(this.#session, input)
    this.#session = step.state
    this.#announce()
    for (const effect of step.effects) await this.#perform(effect)
  }

  #announcedStatus: SyncStatus | null = null
  #announcedPending = -1
  #announcedAnswered = 0

  /**
   * Tells `onStatus` when status or backlog changed since it was last told, or an ask of
   * `ping` was answered (every input asks).
   */
  #announce(): void {
    const status = this.status()
    const pending = this.pending()
    const answered = this.#session.syncAnswered
    if (
      status === this.#announcedStatus &&
      pending === this.#announcedPending &&
      answered === this.#announcedAnswered
    )
      return
    this.#announcedStatus = status
    this.#announcedPending = pending
    this.#announcedAnswered = answered
    this.#options.onStatus?.(status, pending)
  }

  async #perform(effect: ReplicaSessionEffect): Promise<void> {
    switch (effect.type) {
      case 'send':
        // Batches go compact once the hub has accepted it in this session's hello.
        this.#transmit(encodeMessage(effect.message, { compact: this.#session.compact }))
        return
      case 'read-outbox': {
        let changes: Change[]
        try {
          changes = uploadWithin(await this.#store.readOutbox(effect.after, effect.limit), this.#frameLimit())
        } catch (error) {
          this.#report(error, 'reading the outbox', 'sending resumes on the next tick')
          await this.#handle({ type: 'outbox-failed', now: this.#options.now() })
          return
        }
        await this.#offer({ type: 'outbox-read', now: this.#options.now(), after: effect.after, changes })
        return
      }
      case 'read-lost': {
        let read: { changes: Change[]; to: number }
        try {
          read = await this.#readLost(effect.after, effect.upTo, effect.limit)
        } catch (error) {
          this.#report(error, 'reading own changes the hub lost', 'sending resumes on the next tick')
          await this.#handle({ type: 'outbox-failed', now: this.#options.now() })
          return
        }
        await this.#offer({
          type: 'outbox-read',
          now: this.#options.now(),
          after: effect.after,
          changes: read.changes,
          to: read.to,
        })
        return
      }
      case 'drop-outbox':
        // The hub holds these durably whether or not the local cleanup succeeds; a change
        // left behind is never resent (reads start after `sent`) and goes with the next drop.
        this.#options.onAcked?.(effect.upTo)
        try {
          await this.#store.dropOutbox(effect.upTo)
        } catch (error) {
          this.#report(error, 'dropping acknowledged changes from the outbox', 'they go with the next ack')
        }
        return
      case 'apply':
        if (effect.collected !== undefined && effect.from === this.#meta.cursor)
          this.#collectOwed = { at: effect.from, received: effect.collected }
        await this.#apply(effect.batch, effect.from, effect.cursor, effect.snapshot)
        return
      case 'set-log': {
        const cursor = effect.reset ? 0 : null
        // Another log: what this replica knew the hub held was of the one it replaced, and a
        // snapshot it was taking in was of that one too.
        this.#hubHeld = null
        this.#resume = null
        // The session has moved to the new log whatever the store does: so does the engine,
        // or a later apply would take the old log's cursor for a position in the new one.
        this.#meta = remoteMeta(this.#meta, { cursor, log: effect.log, resume: null }, this.#meta.clock)
        this.#logUnsaved = true
        try {
          await this.#store.applyRemote({
            records: [],
            clock: this.#hlc.state(),
            cursor,
            log: effect.log,
            resume: null,
          })
          this.#logUnsaved = false
        } catch (error) {
          // The next apply that is stored stores the name too; until then a restart names the
          // old log in its hello, and the hub reads us its log from the start: nothing skipped.
          this.#report(error, 'storing the hub log name', 'it goes with the next remote changes stored')
        }
        return
      }
      case 'set-max-frame':
        this.#meta = { ...this.#meta, maxFrame: effect.maxFrame }
        try {
          await this.#store.applyRemote({
            records: [],
            clock: this.#hlc.state(),
            cursor: null,
            maxFrame: effect.maxFrame,
          })
        } catch (error) {
          // This run goes by it anyway; a restart before it is stored goes by its own limit
          // until the hub names it again.
          this.#report(error, "storing the hub's frame limit")
        }
        return
      case 'fail':
        this.#send = null
        this.#announce()
        this.#options.onError?.(new ChorusError(effect.code, effect.message))
        return
      case 'token-refused':
        this.#options.onError?.(new ChorusError(ErrorCode.Unauthenticated, effect.message))
        return
      case 'presence-joined':
        // A new connection: what was heard on the last one no longer holds.
        this.#options.onPresence?.({ type: 'reset' })
        this.#presenceSent = new Set()
        this.#presenceOwed = false
        for (const [key, state] of this.#presence) this.#sendPresence(key, state)
        return
      case 'presence-dropped':
        this.#presenceOwed = true
        return
      case 'presence':
        this.#options.onPresence?.({
          type: 'peer',
          replicaId: effect.replicaId,
          key: effect.key,
          state: effect.state,
        })
        return
      case 'read-only':
        // Not fatal: the session keeps receiving; writes are refused from now on.
        this.#options.onError?.(new ChorusError(ErrorCode.Forbidden, effect.message))
        return
      case 'hub-storage-failed':
        this.#options.onError?.(
          new ChorusError(
            ErrorCode.StorageFailed,
            `the relay's storage failed (${effect.message}): what it has not acknowledged stays here and is sent again`,
          ),
        )
        return
    }
  }

  /**
   * The longest frame this replica sends or takes a write for: its own limit, or the hub's
   * when the hub named a smaller one (`ReplicaSessionState.maxFrame`).
   */
  #frameLimit(): number {
    const hub = this.#session.maxFrame
    return hub === null ? this.#limits.maxFrameBytes : Math.min(hub, this.#limits.maxFrameBytes)
  }

  /**
   * Gives the session what was read to send, or stops it when that is one change that can
   * never fit the hub's frames (see `#unsendable`): such a change is read alone, being larger
   * than an upload's budget.
   */
  #offer(read: Extract<ReplicaSessionInput, { type: 'outbox-read' }>): Promise<void> {
    const unsendable = read.changes.length === 1 ? this.#unsendable(read.changes[0] as Change) : null
    return this.#handle(unsendable === null ? read : { type: 'fail', now: read.now, ...unsendable })
  }

  /**
   * Why `change`, next in the outbox, can never be sent (a frame of it alone is longer than
   * the hub reads), or null. Only a hub that named a limit below this replica's own makes one:
   * writes are refused above the limit known when they are made.
   */
  #unsendable(change: Change): { code: ErrorCode; message: string } | null {
    const limit = this.#frameLimit()
    try {
      assertChangeFits(change, limit)
      return null
    } catch (error) {
      if (!isChorusError(error)) throw error
      return {
        code: ErrorCode.FrameTooLarge,
        message: `${error.message}. The hub reads frames of at most ${limit} bytes, less than this replica's ${this.#limits.maxFrameBytes}, so this change and every later one can never be uploaded; sync stops. Give the relay a frame limit at least the clients' (maxFrameBytes).`,
      }
    }
  }

  /**
   * Own changes numbered `after + 1 … upTo` that the records still hold as versions, for a
   * hub that lost them after acknowledging them (see `ReplicaSessionState.lostUpTo`): at most
   * `limit`, within an upload's size, in counter order, and the counter the read covers up to.
   * The records are scanned once per loss and the versions kept until the last one is read.
   */
  async #readLost(after: number, upTo: number, limit: number): Promise<{ changes: Change[]; to: number }> {
    if (this.#lost === null || this.#lost.upTo !== upTo) {
      const own: Change[] = []
      for (const { state } of await this.#guard(() => this.#store.allRecords())) {
        for (const version of state.versions) {
          if (version.dot[0] === this.replicaId && version.dot[1] <= upTo) own.push(version)
        }
      }
      own.sort((a, b) => a.dot[1] - b.dot[1])
      this.#lost = { upTo, versions: own }
    }
    const { versions } = this.#lost
    // The first version after `after` (they are in counter order): each batch's read costs
    // its own size, not the size of what came before it.
    let start = 0
    let end = versions.length
    while (start < end) {
      const middle = (start + end) >>> 1
      if ((versions[middle] as Change).dot[1] <= after) start = middle + 1
      else end = middle
    }
    const changes = uploadWithin(versions.slice(start, start + limit), this.#frameLimit())
    const rest = versions.length - start
    if (changes.length === rest) {
      this.#lost = null
      return { changes, to: upTo }
    }
    return { changes, to: (changes[changes.length - 1] as Change).dot[1] }
  }

  /**
   * Reports a failure of the engine's own storage work: `message` says what failed and what
   * the engine does about it, followed by the storage's own account (which says what the user
   * can do: free space, say), so the `error` event's message is whole without its `cause`.
   */
  /**
   * Reports a storage failure in `what` ("applying remote changes") and, if given, what happens
   * `then`. A store's error that names what failed itself ("applying remote changes failed: the
   * disk is full. …") is said once.
   */
  #report(error: unknown, what: string, then?: string): void {
    if (isChorusError(error) && error.code !== ErrorCode.StorageFailed) {
      this.#options.onError?.(error)
      return
    }
    const detail = error instanceof Error ? error.message : ''
    const failed = `${what} failed`
    const text =
      then !== undefined && detail.startsWith(failed)
        ? `${detail} (${then})`
        : `${failed}${then === undefined ? '' : `; ${then}`}${detail === '' ? '' : ` (${detail})`}`
    this.#options.onError?.(new ChorusError(ErrorCode.StorageFailed, text, { cause: error }))
  }

  async #apply(
    batch: readonly Change[],
    from: number | null,
    cursor: number | null,
    page?: SnapshotPage,
  ): Promise<void> {
    const now = this.#options.now()
    if (from !== null && from > this.#meta.cursor) {
      await this.#applyFailed(now)
      return
    }
    if (from !== null && this.#collectOwed !== null) {
      const outcome = await this.#exclusively(() => this.#collect())
      if (outcome === 'failed') {
        await this.#applyFailed(now)
        return
      }
      if (outcome === 'resync') {
        await this.#resync(now)
        return
      }
    }
    const nextCursor = cursor === null ? null : Math.max(cursor, this.#meta.cursor)
    let touched: Map<string, StoredRecord>
    let resume: SnapshotProgress | null
    try {
      // Read, merge and store as one step no other instance of this replica writes into: a
      // tab's local write to a record between this read and this store would be overwritten.
      ;({ touched, resume } = await this.#exclusively(() => this.#merge(batch, page, nextCursor)))
    } catch (error) {
      // The session takes the snapshot again from its first page, if this was one.
      this.#sweeping = null
      this.#report(error, 'applying remote changes', 'they will be fetched again')
      await this.#applyFailed(now)
      return
    }
    if (page?.last === true) {
      this.#sweeping = null
      // The snapshot left out whatever the hub had collected.
      this.#collectOwed = null
    }
    // A snapshot the hub resumes (its first page names no counters) goes on from what this
    // engine knew of the hub when it began.
    const resumed = page?.page === 0 && page.received === undefined && this.#resume?.cursor === page.cursor
    this.#resume = resume
    this.#noteHeld(batch, from, resumed ? undefined : page)
    this.#meta = remoteMeta(
      this.#meta,
      { cursor: nextCursor, resume: savedResume(resume) },
      this.#hlc.state(),
    )
    const byCollection = new Map<string, RecordId[]>()
    for (const record of touched.values()) {
      const ids = byCollection.get(record.collection) ?? []
      ids.push(record.id)
      byCollection.set(record.collection, ids)
    }
    for (const [collection, ids] of byCollection)
      this.#options.onChange?.({ collection, ids, origin: 'remote' })
    await this.#handle({ type: 'applied', now, cursor: nextCursor })
  }

  /**
   * The store's part of `#apply`: takes the snapshot page's dots into account, reads the
   * records the batch touches, applies it to them, sweeps at a snapshot's last page, and
   * stores the records with the clock and `cursor`. Returns the records it stored, by key.
   */
  async #merge(
    batch: readonly Change[],
    page: SnapshotPage | undefined,
    cursor: number | null,
  ): Promise<{ touched: Map<string, StoredRecord>; resume: SnapshotProgress | null }> {
    const touched = new Map<string, StoredRecord>()
    if (page !== undefined) await this.#trackSnapshot(batch, page)
    const resume = this.#resumeAfter(batch, cursor, page)
    const { keys, slots } = distinctRecords(batch)
    const stored = await this.#readRecords(keys)
    const stamps: HlcStamp[] = []
    for (let i = 0; i < batch.length; i++) {
      const change = batch[i] as Change
      const key = `${change.collection}\u0000${change.id}`
      const current =
        touched.get(key)?.state ??
        (stored === null
          ? await this.#store.getRecord(change.collection, change.id)
          : stored[slots[i] as number])
      const frozen = freezeChange(change)
      const { state, applied } = applyChange(current, frozen)
      if (!applied) {
        // The sweep may yet apply it: its stamp is taken into the clock as if it had been.
        if (page !== undefined && this.#shadow(key, current, frozen)) stamps.push(change.hlc)
        continue
      }
      touched.set(key, { collection: change.collection, id: change.id, state })
      stamps.push(change.hlc)
    }
    this.#hlc.receiveAll(stamps)
    if (page?.last === true && this.#sweeping !== null) {
      for (const record of await this.#sweep(this.#sweeping, touched)) {
        touched.set(`${record.collection}\u0000${record.id}`, record)
      }
    }
    const log = this.#logUnsaved ? this.#meta.log : undefined
    const saved = savedResume(resume)
    const resumeChanged = !sameResume(saved, this.#meta.resume ?? null)
    await this.#store.applyRemote({
      records: [...touched.values()],
      clock: this.#hlc.state(),
      cursor,
      ...(log === undefined ? {} : { log }),
      ...(resumeChanged ? { resume: saved } : {}),
    })
    if (log !== undefined) this.#logUnsaved = false
    return { touched, resume }
  }

  /**
   * Runs `work` — a read, then a write based on it — while no other instance of this replica
   * writes to the store (see `ReplicaEngineOptions.exclusive`); at once without one.
   */
  #exclusively<TResult>(work: () => Promise<TResult>): Promise<TResult> {
    const { exclusive } = this.#options
    return exclusive === undefined ? work() : exclusive(work)
  }

  /**
   * Removes the deletions the hub collected (`#collectOwed`): every record whose versions are
   * all deletes, each with a dot the hub's `received` covers. At the position this replica is
   * at, such a record is one the hub removed (the replica holds what the hub's log held up to
   * there), so a later write to it — made by a replica that never saw the deletion — is taken
   * alone here as it is there, instead of beside a deletion the hub and that writer no longer
   * know. Done at that position only: one past it may hold a deletion beside a write the hub
   * took after it.
   *
   * A record with a collected-looking deletion beside an own version the hub may not have had
   * there (not covered) cannot be told apart: the hub may have held the deletion alone, and
   * dropped it, or beside a version the own one replaced since, and kept it. Then the replica
   * reads the hub's state afresh instead (`resync`: a snapshot, whose sweep settles it). So
   * it does beside another writer's version the hub is known not to hold (`#hubHeld`): the
   * copy a restored hub came from lost it, and the hub may have held the deletion alone.
   * `failed` when the store failed: it stays owed, and nothing past it is applied.
   */
  async #collect(): Promise<'done' | 'failed' | 'resync'> {
    const owed = this.#collectOwed
    if (owed === null) return 'done'
    if (owed.at !== this.#meta.cursor) {
      this.#collectOwed = null
      return 'done'
    }
    try {
      const removed: StoredRecord[] = []
      for (const record of await this.#store.allRecords()) {
        const verdict = collectedBy(record.state, owed.received, this.replicaId, this.#hubHeld)
        if (verdict === 'unsure') {
          this.#collectOwed = null
          return 'resync'
        }
        if (verdict === 'collected') removed.push({ ...record, state: { versions: [] } })
      }
      if (removed.length > 0) {
        await this.#store.applyRemote({ records: removed, clock: this.#hlc.state(), cursor: null })
      }
    } catch (error) {
      this.#report(
        error,
        'removing the deletions the hub collected',
        'the remote changes after them will be fetched again',
      )
      return 'failed'
    }
    this.#collectOwed = null
    return 'done'
  }

  /**
   * `#resume` once a batch is stored: moved past a snapshot page, or none once the snapshot or
   * the log has reached the cursor. Every record of a page but its last is whole: the hub
   * splits only a page's sole record. A snapshot that starts where the one being read stood
   * (the hub resuming it, or starting again at the same position) keeps its progress.
   */
  #resumeAfter(
    batch: readonly Change[],
    cursor: number | null,
    page: SnapshotPage | undefined,
  ): SnapshotProgress | null {
    if (page === undefined || page.last) return page !== undefined || cursor !== null ? null : this.#resume
    const position = page.cursor
    const earlier = this.#resume
    const resume =
      page.page !== 0
        ? earlier
        : this.#sweeping !== null
          ? null
          : earlier?.cursor === position
            ? earlier
            : { cursor: position, after: null, last: null }
    if (resume === null || resume.cursor !== position) return resume
    let { after, last } = resume
    for (const change of batch) {
      const key = recordKey(change.collection, change.id)
      if (key === last) continue
      if (last !== null) after = last
      last = key
    }
    return { cursor: position, after, last }
  }

  /** Tells the session an apply failed, with the snapshot it may ask the hub to resume. */
  async #applyFailed(now: number): Promise<void> {
    const resume = this.#resumable()
    await this.#handle(
      resume === null ? { type: 'apply-failed', now } : { type: 'apply-failed', now, resume },
    )
  }

  /** `#resume` as the hub is told it, or null while no record is known whole. */
  #resumable(): SnapshotResume | null {
    return savedResume(this.#resume)
  }

  /** Raises `#hubHeld` by a batch the hub sent, which starts it afresh at a snapshot or the log's start. */
  #noteHeld(batch: readonly Change[], from: number | null, page: SnapshotPage | undefined): void {
    if (page?.page === 0)
      this.#hubHeld = page.received === undefined ? null : new Map(Object.entries(page.received))
    else if (page === undefined && from === 0) this.#hubHeld = new Map()
    const held = this.#hubHeld
    if (held === null) return
    for (const { dot } of batch) if (dot[1] > (held.get(dot[0]) ?? 0)) held.set(dot[0], dot[1])
  }

  /**
   * Reads the hub's state afresh: the cursor goes back to 0 (stored, so a restart does too),
   * and the session asks the hub for its log from the start, which it sends as a snapshot.
   */
  async #resync(now: number): Promise<void> {
    try {
      await this.#store.applyRemote({ records: [], clock: this.#hlc.state(), cursor: 0 })
    } catch (error) {
      // The hub is asked anyway; a restart before the snapshot lands here again.
      this.#report(error, 'storing the cursor', 'the hub is asked for a snapshot anyway')
    }
    this.#meta = { ...this.#meta, cursor: 0 }
    await this.#handle({ type: 'resync', now })
  }

  /**
   * Notes what a snapshot page carries. From page 0 on, when the hub named the counters the
   * snapshot covers and this replica holds records already, the dots of every page's versions
   * are kept, by record, for `#sweep` at the last.
   */
  async #trackSnapshot(batch: readonly Change[], page: SnapshotPage): Promise<void> {
    if (page.page === 0) {
      this.#sweeping = null
      const held = page.received !== undefined && (await (this.#store.hasRecords?.() ?? true))
      if (held) {
        this.#sweeping = {
          received: page.received as Record<string, number>,
          seen: new Map(),
          shadowed: new Map(),
        }
      }
    }
    const seen = this.#sweeping?.seen
    if (seen === undefined) return
    for (const change of batch) {
      const key = `${change.collection}\u0000${change.id}`
      let dots = seen.get(key)
      if (dots === undefined) {
        dots = new Set()
        seen.set(key, dots)
      }
      dots.add(`${change.dot[1]}@${change.dot[0]}`)
    }
  }

  /**
   * Keeps a version a snapshot page carried that `current` did not take because a version it
   * holds covers it (not because it holds that very version): should the sweep remove the
   * covering version, the carried one is what the hub holds of the record. True when kept.
   */
  #shadow(key: string, current: RecordState | undefined, change: Change): boolean {
    const sweeping = this.#sweeping
    if (sweeping === null || current === undefined) return false
    const [replica, counter] = change.dot
    if (current.versions.some(({ dot }) => dot[0] === replica && dot[1] === counter)) return false
    const versions = sweeping.shadowed.get(key)
    if (versions === undefined) sweeping.shadowed.set(key, [change])
    else versions.push(change)
    return true
  }

  /**
   * At a snapshot's last page: the records this replica holds, less the versions the hub had
   * stored when the snapshot began (`received`) that no page carried. Such a version was
   * replaced at the hub, or deleted and the deletion collected — once every replica the hub
   * still knew had seen it, or at once for a replica away longer than the hub's horizon, like
   * this one may have been. Gone there, it goes here too, also from beside a version the
   * pages carried (a write the hub took after it collected the deletion); a version the hub
   * had not stored (an own change still in the outbox, or one a hub restored from a backup
   * lost) stays. Where versions go, the carried versions they had covered (`shadowed`) are
   * applied to what stays: the record is then what the hub holds of it, and not absent while
   * the hub has it. A record left with no version is removed. `touched` holds the records the
   * last page changed, not stored yet: they are swept as they now stand.
   */
  async #sweep(
    sweeping: {
      readonly received: Readonly<Record<string, number>>
      readonly seen: ReadonlyMap<string, ReadonlySet<string>>
      readonly shadowed: ReadonlyMap<string, readonly Change[]>
    },
    touched: ReadonlyMap<string, StoredRecord>,
  ): Promise<StoredRecord[]> {
    const { received, seen, shadowed } = sweeping
    const swept: StoredRecord[] = []
    for (const stored of await this.#store.allRecords()) {
      const key = `${stored.collection}\u0000${stored.id}`
      const record = touched.get(key) ?? stored
      const carried = seen.get(key)
      const versions = record.state.versions
      const kept = versions.filter(
        ({ dot }) => dot[1] > ownNumber(received, dot[0]) || carried?.has(`${dot[1]}@${dot[0]}`) === true,
      )
      if (kept.length === versions.length) continue
      let state: RecordState | undefined = kept.length === 0 ? undefined : { versions: kept }
      for (const version of shadowed.get(key) ?? []) state = applyChange(state, version).state
      swept.push({ ...record, state: state ?? { versions: [] } })
    }
    return swept
  }

  /**
   * The stored records of `keys` (distinct), in their order, read at once where the store
   * can (`getRecords`); null when it cannot or there is only one.
   */
  async #readRecords(
    keys: readonly { readonly collection: string; readonly id: RecordId }[],
  ): Promise<(RecordState | undefined)[] | null> {
    if (keys.length < 2 || this.#store.getRecords === undefined) return null
    return this.#store.getRecords(keys)
  }

  #transmit(frame: string): void {
    this.#send?.(frame)
  }
}

/**
 * Whether the hub's mark of collected deletions `received` took this record (see `#collect`):
 * `collected` when every version is a delete with a dot it covers; `unsure` when a delete it
 * covers stands beside an own version it does not cover (`self`'s), or beside another
 * writer's version the hub did not hold (`hubHeld`, when known: a version the copy a hub was
 * restored from lost, whose writer has not sent it again; the hub may have held the deletion
 * alone and collected it); `kept` otherwise.
 */
function collectedBy(
  state: RecordState,
  received: Readonly<Record<string, number>>,
  self: ReplicaId,
  hubHeld: ReadonlyMap<string, number> | null,
): 'collected' | 'unsure' | 'kept' {
  const { versions } = state
  let coveredDelete = false
  let ownAfter = false
  let unheld = false
  let other = false
  for (const { op, dot } of versions) {
    const covered = dot[1] <= ownNumber(received, dot[0])
    if (covered && op.type === 'delete') coveredDelete = true
    else if (!covered && dot[0] === self) ownAfter = true
    else {
      other = true
      if (hubHeld !== null && dot[0] !== self && dot[1] > (hubHeld.get(dot[0]) ?? 0)) unheld = true
    }
  }
  if (!coveredDelete) return 'kept'
  if (ownAfter || unheld) return 'unsure'
  return other ? 'kept' : 'collected'
}

/** In a batch's list of record states: not read from the store yet. */
const UNREAD: unique symbol = Symbol('unread')

/** The slots of a batch of one (never written: slots are only read once made). */
const ONE_SLOT = new Uint32Array(1)

/**
 * The distinct records of a batch, in order of first appearance, and for each item the
 * index (slot) of its record among them: a batch keeps its records' states in an array by
 * slot, and a record written twice in one batch is read once. By collection, then id, so a
 * batch of thousands builds no key strings.
 */
function distinctRecords<TItem extends { readonly collection: string; readonly id: RecordId }>(
  items: readonly TItem[],
): { keys: TItem[]; slots: Readonly<Uint32Array> } {
  if (items.length === 1) return { keys: [items[0] as TItem], slots: ONE_SLOT }
  const keys: TItem[] = []
  const slots = new Uint32Array(items.length)
  const byCollection = new Map<string, Map<RecordId, number>>()
  let collection: string | null = null
  let byId = new Map<RecordId, number>()
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as TItem
    if (item.collection !== collection) {
      collection = item.collection
      const known = byCollection.get(collection)
      if (known === undefined) {
        byId = new Map()
        byCollection.set(collection, byId)
      } else byId = known
    }
    let slot = byId.get(item.id)
    if (slot === undefined) {
      slot = keys.length
      byId.set(item.id, slot)
      keys.push(item)
    }
    slots[i] = slot
  }
  return { keys, slots }
}

/** Every delete's intent: it holds nothing. */
const DELETE_INTENT: WriteIntent = Object.freeze({ type: 'delete' })

function toVoid(): void {}

/**
 * Writes committed together, and the one promise its shared writes return (made with the
 * first of them). Each shared write settles it: they commit together, so the first to
 * commit says so for all; a failure rejects it (see `#make`).
 */
class WriteBatch {
  readonly writes: PendingWrite[] = []
  #shared: Promise<void> | null = null
  #resolve: () => void = toVoid
  #reject: (error: unknown) => void = toVoid

  shared(): Promise<void> {
    this.#shared ??= new Promise<void>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    return this.#shared
  }

  readonly resolveShared = (): void => this.#resolve()
  readonly rejectShared = (error: unknown): void => this.#reject(error)
}

/**
 * The writes of a batch whose changes were made, each change, and its record's state after
 * it (`undefined` where the record holds that change alone), by index.
 */
interface MadeWrites {
  readonly writes: PendingWrite[]
  readonly changes: Change[]
  readonly states: (RecordState | undefined)[]
}

/** Whether a batch's entry for a record is a state rather than the change it holds alone. */
function isRecordState(known: RecordState | Change): known is RecordState {
  return (known as Partial<Change>).dot === undefined
}

/** A write waiting for its batch to be made and committed. */
/** A write as the app asks for it: an update's patch is made when the write is. */
type PendingIntent = WriteIntent | { readonly type: 'update'; readonly change: UpdateFunction }

/**
 * The patch intent of an update of `record`, or null when its function returns `undefined`;
 * throws what the function throws, or `invalid-argument` for fields that are not JSON.
 */
function updatedFields(
  change: UpdateFunction,
  record: RecordState | undefined,
  resolver: Resolver,
  frameLimit: number,
): WriteIntent | null {
  let current: JsonObject | undefined
  let conflict: readonly ConflictVersion[] = NO_CONFLICT
  if (record !== undefined) {
    const resolved = resolver.resolve(record.versions)
    current = resolved.value
    if (resolved.conflict !== undefined) conflict = resolved.conflict
  }
  const returned: unknown = change(current, conflict)
  if (returned === undefined) return null
  if (isThenable(returned)) {
    // An async function: what it resolves with comes after the write is made, and what it
    // rejects with would go unhandled.
    ;(returned as PromiseLike<unknown>).then(undefined, () => {})
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'an update takes a function that returns its fields at once, as the write is made: it returned a promise (an async function cannot be one)',
    )
  }
  const fields = copyJsonObject(returned, 'the fields an update returned', frameLimit)
  assertValueFits(fields, frameLimit, 'the fields an update returned')
  return { type: 'patch', fields }
}

/**
 * True when an update's result is a promise (or another thenable). A result that throws as its
 * `then` is read is not one: the copy of its fields then refuses it as a value that cannot be read.
 */
function isThenable(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  try {
    return typeof (value as { then?: unknown }).then === 'function'
  } catch {
    return false
  }
}

const NO_CONFLICT: readonly ConflictVersion[] = Object.freeze([])

interface PendingWrite {
  readonly collection: string
  readonly id: RecordId
  readonly intent: PendingIntent
  /** For a put, a bound of its value's UTF-8 JSON length (see `assertValueFits`). */
  readonly valueBytes: number
  /** Whether it shares its batch's promise (`resolve` and `reject` settle that). */
  readonly shared: boolean
  /** With null only for an update that wrote nothing. */
  readonly resolve: (change: Change | null) => void
  readonly reject: (error: unknown) => void
}

/**
 * Checks list options (throws `invalid-argument` for bad ones), as a store's
 * {@link RecordPage}: all rows in id order without any.
 */
export function recordPage(options: ListOptions | undefined): RecordPage {
  if (options === undefined) return { order: 'asc' }
  if (typeof options !== 'object' || options === null) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'list options must be an object: { order?, after?, limit? }',
    )
  }
  for (const key of Object.keys(options)) {
    if (key !== 'order' && key !== 'after' && key !== 'limit') {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `unknown list option ${JSON.stringify(key)}: use order, after, limit`,
      )
    }
  }
  const { order = 'asc', after, limit } = options
  if (order !== 'asc' && order !== 'desc') {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `list order must be 'asc' or 'desc', got ${String(order)}`,
    )
  }
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `list limit must be a positive integer, got ${String(limit)}`,
    )
  }
  return {
    order,
    ...(after === undefined ? {} : { after: asRecordId(after) }),
    ...(limit === undefined ? {} : { limit }),
  }
}

/** Most writes committed in one batch (one store transaction), unless the store says otherwise. */
const MAX_WRITE_BATCH = 1000

/**
 * How far the snapshot being read has come (see `ReplicaEngine.#resume`): its position, the
 * key of the last record known whole here, and the key of the last record its pages carried.
 */
interface SnapshotProgress {
  readonly cursor: number
  readonly after: string | null
  readonly last: string | null
}

/** What is stored and told the hub of `progress`: null until a record is known whole. */
function savedResume(progress: SnapshotProgress | null): SnapshotResume | null {
  return progress?.after == null ? null : { cursor: progress.cursor, after: progress.after }
}

function sameResume(a: SnapshotResume | null, b: SnapshotResume | null): boolean {
  return a === b || (a !== null && b !== null && a.cursor === b.cursor && a.after === b.after)
}

/** Freezes a received change's values, as local writes are, before it is stored. */
/**
 * `conflicts`' filter, checked: an object naming a collection, and `ids`, if given, an array
 * of record ids. Throws `invalid-argument` otherwise (a string as `ids` would be read as its
 * characters, and a filter without `ids` must not read as "no conflicts").
 */
function checkConflictFilter(filter: unknown): ConflictFilter {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter))
    throw new ChorusError(ErrorCode.InvalidArgument, 'conflicts takes no filter or { collection, ids? }')
  for (const key of Object.keys(filter)) {
    if (key !== 'collection' && key !== 'ids')
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `conflicts' filter has no option ${JSON.stringify(key)}: use { collection, ids? }`,
      )
  }
  const { collection, ids } = filter as { collection?: unknown; ids?: unknown }
  if (typeof collection !== 'string')
    throw new ChorusError(ErrorCode.InvalidArgument, "conflicts' filter needs a collection name")
  assertCollectionName(collection)
  if (ids !== undefined && (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')))
    throw new ChorusError(ErrorCode.InvalidArgument, "conflicts' filter ids must be an array of record ids")
  return ids === undefined ? { collection } : { collection, ids: ids as string[] }
}

function freezeChange(change: Change): Change {
  const op = change.op
  if (op.type === 'put') freezeJson(op.value)
  else if (op.type === 'patch') {
    freezeJson(op.fields)
    freezeJson(op.base)
  }
  return change
}

/**
 * The most characters of encoded changes one upload frame carries whatever the frame limit,
 * as the hub's frames (`HubSessionConfig.frameBytes`): a frame arrives whole or not at all, so
 * on a slow uplink a long one keeps the replica's ping unanswered behind it (256 KiB take
 * about 13 s at 20 KB/s, within the silence watchdog's 30 s).
 */
export const UPLOAD_FRAME_CHARS = 256 * 1024

/**
 * The changes, from the first, that one upload frame carries: no more than a quarter of the
 * frame limit of their encoded text (so even 3 bytes of UTF-8 per character leave room for the
 * frame's own fields), nor {@link UPLOAD_FRAME_CHARS}, and at least one. The rest are read
 * again for the next frame. Only a batch whose allocation-free estimate could come near that
 * (six characters for each counted, the longest escape) is encoded to be measured: the frame
 * encodes the changes anyway.
 */
export function uploadWithin(changes: Change[], maxFrameBytes: number): Change[] {
  const budget = Math.min(maxFrameBytes / 4, UPLOAD_FRAME_CHARS)
  let estimate = 0
  for (const change of changes) estimate += approximateChangeLength(change)
  if (estimate * 6 <= budget) return changes
  let chars = 0
  for (let i = 0; i < changes.length; i++) {
    chars += encodeChange(changes[i] as Change).length
    if (chars > budget && i > 0) return changes.slice(0, i)
  }
  return changes
}

/**
 * The error a write gets where the relay lets the replica only read the space (see
 * `ReplicaSessionState.readOnly`).
 */
export function readOnlyWrite(space: string): ChorusError {
  return new ChorusError(
    ErrorCode.Forbidden,
    `this replica may only read space ${space}: the relay refuses its writes`,
  )
}

/**
 * The order of {@link ReplicaEngine.conflicts}: by collection, then id (UTF-16 code units, as
 * JavaScript compares strings).
 */
export function compareConflicts(a: Conflict, b: Conflict): number {
  if (a.collection !== b.collection) return a.collection < b.collection ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
