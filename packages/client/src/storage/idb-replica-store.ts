import {
  type Change,
  ChorusError,
  ErrorCode,
  type HlcState,
  type ListedRecord,
  type LocalBatch,
  laterHlcState,
  type RecordId,
  type RecordPage,
  type RecordState,
  type RemoteBatch,
  type ReplicaMeta,
  type ReplicaStore,
  recordKey,
  recordsInPage,
  remoteMeta,
  type StoredRecord,
} from '@chorus/core'
import { errorName, fencedFailure, idbFailure, TabFencedError } from './idb-errors.js'
import {
  collectionEnd,
  collectionStart,
  decodeListed,
  decodeOutboxChunk,
  decodeRecord,
  encodeOutbox,
  encodeOutboxItem,
  encodeRecord,
  encodeRecordText,
  encodeSoleVersion,
  encodeVersion,
  keyCollection,
  type LegacyRecordEntry,
  type OutboxChunk,
} from './idb-layout.js'
import { getAllInDirection, requestResult, transactionDone, walk } from './idb-request.js'

/**
 * The schema version; raised (with a migration in `upgradeSchema`) when the layout changes.
 * 1: records and changes as plain objects, one outbox entry per change. 2: versions and
 * outbox chunks as compact JSON text, records keyed by `[collection, id]` inside the value.
 * 3: each record one JSON string under one string key. 4: the layout of `idb-layout.ts`, a
 * record whose only version is a put stored as a flat array holding its value, not as text.
 */
const DB_VERSION = 4
const META_KEY = 'replica'
/** Under this key of `meta`: the epoch of the tab that last took over the connection. */
const LEADER_KEY = 'leader'

/**
 * The database layout. `meta` holds the {@link ReplicaMeta} under one key. `records` holds
 * each record's id and versions as one entry (see `idb-layout.ts`) under the key
 * `recordKey(collection, id)`, so one collection is one contiguous run of keys, in IndexedDB
 * key order — UTF-16 code units, as JavaScript compares strings.
 * `outbox` holds {@link OutboxChunk}s keyed by the counter of their last change; together
 * they hold consecutive counters, from the oldest change not yet dropped to the last one.
 */
const STORE_NAMES = ['meta', 'records', 'outbox'] as const
type StoreName = (typeof STORE_NAMES)[number]

/** Options for {@link openIdbReplicaStore}. */
export interface IdbReplicaStoreOptions {
  /** The database name. One database holds one replica (one space). */
  readonly name: string
  /** The IndexedDB to use; default `globalThis.indexedDB`. Tests pass fake-indexeddb's `new IDBFactory()`. */
  readonly indexedDB?: IndexedDbFactory
  /**
   * That IndexedDB's `IDBKeyRange`; default `globalThis.IDBKeyRange` when `indexedDB` is the
   * global one. With it a collection is read in one request (`getAll` over its keys);
   * without it, by a cursor, one request per record. Tests pass fake-indexeddb's.
   */
  readonly IDBKeyRange?: KeyRangeLike
}

/**
 * An IndexedDB: the browser's `indexedDB`, or fake-indexeddb's `new IDBFactory()`. It is
 * `IDBFactory` in a project with the DOM library; in one without (a Node project), anything
 * with `open`, so that this package's types need no DOM library there.
 */
export type IndexedDbFactory = typeof globalThis extends { indexedDB: infer TFactory }
  ? TFactory
  : { open(name: string, version?: number): unknown }

/** An `IDBKeyRange` (unknown in a project without the DOM library: see {@link IndexedDbFactory}). */
export type IndexedDbKeyRange = typeof globalThis extends { IDBKeyRange: { prototype: infer TRange } }
  ? TRange
  : unknown

/** The part of `IDBKeyRange`'s static side the store uses. */
export interface KeyRangeLike {
  bound(lower: unknown, upper: unknown, lowerOpen?: boolean, upperOpen?: boolean): IndexedDbKeyRange
}

/**
 * Opens (creating if needed) a replica's IndexedDB database.
 *
 * Fails with `storage-failed` when IndexedDB is missing or refused, the database was made
 * by a newer schema or by something other than Chorus, or an older version open in another
 * tab blocks the upgrade. Only the given factory is used — no IndexedDB globals — so each
 * Node test can pass its own `new IDBFactory()` from fake-indexeddb.
 */
export function openIdbReplicaStore(options: IdbReplicaStoreOptions): Promise<IdbReplicaStore> {
  return IdbReplicaStore.open(options)
}

/**
 * A {@link ReplicaStore} in IndexedDB, for browsers (and Node tests under fake-indexeddb).
 *
 * Every write is one IndexedDB transaction, so a crash leaves all of it or none of it: a
 * local write puts the record, the outbox entry and the metadata (counter, clock) together.
 * Local writes and the metadata are committed with `durability: 'strict'` (flushed before
 * the promise resolves: they are the only copy until the hub acknowledges them); remote
 * applies and outbox drops use `'relaxed'`, since losing one to a power cut only makes the
 * hub send it again. A write that fails — quota exceeded, transaction aborted — rejects
 * with `storage-failed` and commits nothing.
 *
 * The connection closes itself when another tab deletes or upgrades the database (so that
 * tab is not blocked); later calls fail with `storage-failed` saying to reload. A commit
 * also checks the stored counter, so a second replica writing to the same database (two
 * tabs on one `dbName`) fails loudly instead of reusing counters.
 */
export class IdbReplicaStore implements ReplicaStore {
  /** The database name. */
  readonly name: string
  /**
   * Writes issued together commit in batches of up to this many: IndexedDB costs a browser
   * far more per transaction than per put (10k puts issued together took about 16% less
   * time in Chromium than in batches of 1,000).
   */
  readonly maxLocalBatch = 10_000
  readonly #keyRange: KeyRangeLike | null
  readonly #factory: IDBFactory
  readonly #db: IDBDatabase
  #closed = false
  #fence: number | null = null
  /** Set by {@link IdbReplicaStore.claimSoleUse}: local writes check the fence too. */
  #sole = false
  #lost: string | null = null
  #fault: { readonly cause: unknown } | null = null
  /**
   * Told when another connection deleted (`deleted`) or upgraded (`upgraded`) the database and
   * this store let go of it, or the browser closed it (`closed`: site data cleared, storage
   * evicted, a disk error): the replica over it then closes, saying so.
   */
  onLost: ((how: 'deleted' | 'upgraded' | 'closed') => void) | null = null

  private constructor(name: string, keyRange: KeyRangeLike | null, factory: IDBFactory, db: IDBDatabase) {
    this.name = name
    this.#keyRange = keyRange
    this.#factory = factory
    this.#db = db
    db.onversionchange = (event) => {
      this.#lost = `the IndexedDB database ${JSON.stringify(name)} was deleted or upgraded by another tab or version of the app, so this replica let go of it. Reload to continue.`
      db.close()
      this.onLost?.(event.newVersion === null ? 'deleted' : 'upgraded')
    }
    db.onclose = () => {
      this.#lost = `the browser closed the IndexedDB database ${JSON.stringify(name)} (site data cleared, or a disk error). Reload to continue.`
      this.onLost?.('closed')
    }
  }

  /** See {@link openIdbReplicaStore}. */
  static async open(options: IdbReplicaStoreOptions): Promise<IdbReplicaStore> {
    const { name } = options
    if (typeof name !== 'string' || name === '') {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        'the IndexedDB database name must be a non-empty string',
      )
    }
    const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB
    if (factory === undefined || factory === null) {
      throw new ChorusError(
        ErrorCode.StorageFailed,
        "IndexedDB is not available here. In a browser it may be disabled (some private modes): use storage 'memory'. In Node, pass `indexedDB` (fake-indexeddb), or use the SQLite store from '@chorus/client/sqlite'.",
      )
    }
    const global = globalThis as { indexedDB?: IDBFactory; IDBKeyRange?: KeyRangeLike }
    const keyRange = options.IDBKeyRange ?? (factory === global.indexedDB ? global.IDBKeyRange : undefined)
    return new IdbReplicaStore(name, keyRange ?? null, factory, await openDatabase(factory, name))
  }

  /**
   * Test hook: the next write transaction does its writes, then aborts, as when the disk is
   * full — nothing commits, and the call rejects with `storage-failed` whose cause is `cause`
   * (by default a `QuotaExceededError`).
   */
  failNextWrite(
    cause: unknown = new DOMException('simulated: the storage quota is used up', 'QuotaExceededError'),
  ): void {
    this.#fault = { cause }
  }

  async loadMeta(): Promise<ReplicaMeta | undefined> {
    return this.#read('reading the replica metadata', 'meta', (store) =>
      requestResult<ReplicaMeta | undefined>(store.get(META_KEY)),
    )
  }

  async initMeta(meta: ReplicaMeta): Promise<void> {
    await this.#write('creating the replica metadata', ['meta'], 'strict', async (tx) => {
      await requestResult(tx.objectStore('meta').put(meta, META_KEY))
    })
  }

  async getRecord(collection: string, id: RecordId): Promise<RecordState | undefined> {
    const text = await this.#read('reading a record', 'records', (store) =>
      requestResult<unknown>(store.get(recordKey(collection, id))),
    )
    return text === undefined ? undefined : decodeRecord(collection, text).state
  }

  async getRecords(
    keys: readonly { readonly collection: string; readonly id: RecordId }[],
  ): Promise<(RecordState | undefined)[]> {
    const keyRange = this.#keyRange
    const records = await this.#read('reading records', 'records', async (store) => {
      const absent = keyRange === null ? null : await absentKeys(store, keyRange, keys)
      // A request (and a promise) only for a record that may exist: a batch of new records,
      // thousands at once, makes none.
      const texts: unknown[] = new Array(keys.length).fill(undefined)
      const reads: Promise<void>[] = []
      for (let i = 0; i < keys.length; i++) {
        const { collection, id } = keys[i] as { readonly collection: string; readonly id: RecordId }
        if (absent?.get(collection)?.has(id) === true) continue
        reads.push(
          requestResult<unknown>(store.get(recordKey(collection, id))).then((text) => {
            texts[i] = text
          }),
        )
      }
      await Promise.all(reads)
      return texts
    })
    return records.map((text, i) =>
      text === undefined
        ? undefined
        : decodeRecord((keys[i] as { collection: string }).collection, text).state,
    )
  }

  async listRecords(collection: string): Promise<StoredRecord[]> {
    const keyRange = this.#keyRange
    if (keyRange !== null) {
      const records = await this.#read('listing records', 'records', (store) =>
        readPage(store, keyRange, collection, { order: 'asc' }, decodeRecord),
      )
      if (records !== null) return records
    }
    const start = collectionStart(collection)
    const end = collectionEnd(collection)
    return this.#read('listing records', 'records', async (store) => {
      const records: StoredRecord[] = []
      // The collection's keys run from `start` to just before `end`: jump there, read while it lasts.
      await walk(store.openCursor(), (cursor) => {
        const key = cursor.primaryKey
        if (typeof key === 'string' && key < start) {
          cursor.continue(start)
          return 'moved'
        }
        if (typeof key !== 'string' || key >= end) return 'stop'
        records.push(decodeRecord(collection, cursor.value))
        return 'next'
      })
      return records
    })
  }

  async listRecordsPage(collection: string, page: RecordPage): Promise<StoredRecord[]> {
    return (await this.#listPage(collection, page, decodeRecord)) ?? this.#pageOfAll(collection, page)
  }

  async listValuesPage(collection: string, page: RecordPage): Promise<ListedRecord[]> {
    return (await this.#listPage(collection, page, decodeListed)) ?? this.#pageOfAll(collection, page)
  }

  /** A page cut from the whole collection: for a store without `IDBKeyRange`, which cannot read a range. */
  async #pageOfAll(collection: string, page: RecordPage): Promise<StoredRecord[]> {
    return recordsInPage(await this.listRecords(collection), page)
  }

  /** A page read as a key range, each record decoded by `decode`; null without `IDBKeyRange`. */
  async #listPage<TRecord>(
    collection: string,
    page: RecordPage,
    decode: (collection: string, text: unknown) => TRecord,
  ): Promise<TRecord[] | null> {
    const { order, after, limit = Number.POSITIVE_INFINITY } = page
    const keyRange = this.#keyRange
    if (keyRange === null) return null
    return this.#read('listing records', 'records', async (store) => {
      const direct = await readPage(store, keyRange, collection, page, decode)
      if (direct !== null) return direct
      // The newest few without IndexedDB 3 (`readPage` reads any other page): a backward
      // cursor, one request per record.
      const range = collectionRange(keyRange, collection, order, after)
      const found: TRecord[] = []
      await walk(store.openCursor(range, 'prev'), (cursor) => {
        found.push(decode(collection, cursor.value))
        return found.length >= limit ? 'stop' : 'next'
      })
      return found
    })
  }

  async allRecords(): Promise<StoredRecord[]> {
    const [keys, values] = await this.#read('listing records', 'records', (store) =>
      Promise.all([requestResult(store.getAllKeys()), requestResult(store.getAll())]),
    )
    return values.map((text, i) => decodeRecord(keyCollection(keys[i] as IDBValidKey), text))
  }

  async hasRecords(): Promise<boolean> {
    const keys = await this.#read('looking for records', 'records', (store) =>
      requestResult(store.getAllKeys(null, 1)),
    )
    return keys.length > 0
  }

  async commitLocal(write: {
    readonly record: StoredRecord
    readonly change: Change
    readonly clock: HlcState
  }): Promise<void> {
    await this.#commitLocal('saving a local write', {
      changes: [write.change],
      states: [write.record.state],
      clock: write.clock,
    })
  }

  async commitLocalBatch(batch: LocalBatch): Promise<void> {
    await this.#commitLocal('saving local writes', batch)
  }

  /**
   * Stores local writes in one transaction: each record, the changes as outbox chunks, and
   * counter and clock as after the last. Each record is encoded just before its `put`, so
   * the browser stores the first while the rest are encoded; the outbox chunks, made after
   * them, while it stores the records.
   */
  async #commitLocal(what: string, batch: LocalBatch): Promise<void> {
    const { changes, states, clock } = batch
    const last = changes[changes.length - 1]
    if (last === undefined) return
    const first = changes[0]?.dot[1] ?? 0
    await this.#write(what, ['meta', 'records', 'outbox'], 'strict', async (tx) => {
      if (this.#sole) await this.#checkFence(tx)
      const meta = await requireMeta(tx)
      if (first !== meta.counter + 1 || last.dot[1] !== meta.counter + changes.length) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `${what} failed: another replica instance (a second tab or process) writes to the IndexedDB database ${JSON.stringify(this.name)} — its counter is at ${meta.counter}, ${changes.length === 1 ? 'this write has' : 'these writes start at'} ${first}. Nothing was written. Open one replica per database at a time, and reload to continue from what is stored.`,
        )
      }
      const records = tx.objectStore('records')
      const outbox = tx.objectStore('outbox')
      // A failed put aborts the transaction, which `#write` reports: no promise per request.
      for (let i = 0; i < changes.length; i++) {
        const change = changes[i] as Change
        const state = states[i]
        records.put(
          state === undefined ? encodeSoleVersion(change) : encodeRecord(change.id, state.versions),
          recordKey(change.collection, change.id),
        )
      }
      encodeOutbox(changes, (key, chunk) => outbox.put(chunk, key))
      tx.objectStore('meta').put(
        { ...meta, counter: last.dot[1], clock: laterHlcState(meta.clock, clock) },
        META_KEY,
      )
    })
  }

  async applyRemote(batch: RemoteBatch): Promise<void> {
    // A record with no versions left is removed (see `ReplicaStore.applyRemote`).
    const entries = batch.records.map((record) => ({
      key: recordKey(record.collection, record.id),
      text: record.state.versions.length === 0 ? null : encodeRecord(record.id, record.state.versions),
    }))
    await this.#write('applying remote changes', ['meta', 'records'], 'relaxed', async (tx) => {
      await this.#checkFence(tx)
      const meta = await requireMeta(tx)
      const records = tx.objectStore('records')
      // A failed put aborts the transaction, which `#write` reports: no promise per request.
      for (const { key, text } of entries) {
        if (text === null) records.delete(key)
        else records.put(text, key)
      }
      tx.objectStore('meta').put(remoteMeta(meta, batch, laterHlcState(meta.clock, batch.clock)), META_KEY)
    })
  }

  async readOutbox(after: number, limit: number): Promise<Change[]> {
    // Counters are integers: the first one after `after` is at least this.
    const first = Math.floor(after) + 1
    return this.#readFenced('reading the outbox', 'outbox', async (store) => {
      const changes: Change[] = []
      if (limit <= 0) return changes
      // A chunk is keyed by its last counter: the first key ≥ `first` is the chunk holding it.
      await walk(store.openCursor(), (cursor) => {
        if ((cursor.primaryKey as number) < first) {
          cursor.continue(first)
          return 'moved'
        }
        for (const change of decodeOutboxChunk(cursor.value as OutboxChunk)) {
          if (change.dot[1] < first) continue
          changes.push(change)
          if (changes.length >= limit) return 'stop'
        }
        return 'next'
      })
      return changes
    })
  }

  async outboxSize(): Promise<number> {
    return this.#read('counting the outbox', 'outbox', async (store) => {
      let size = 0
      await walk(store.openCursor(), (cursor) => {
        size += (cursor.primaryKey as number) - (cursor.value as OutboxChunk).first + 1
        return 'next'
      })
      return size
    })
  }

  async dropOutbox(upTo: number): Promise<void> {
    await this.#write('dropping acknowledged changes', ['meta', 'outbox'], 'relaxed', async (tx) => {
      await this.#checkFence(tx)
      await walk(tx.objectStore('outbox').openCursor(), (cursor) => {
        const chunk = cursor.value as OutboxChunk
        if (chunk.first > upTo) return 'stop'
        if ((cursor.primaryKey as number) <= upTo) {
          cursor.delete()
          return 'next'
        }
        // The chunk straddles `upTo`: keep its later changes, under the same key.
        const kept = (JSON.parse(chunk.changes) as [string, string, [string, number]][]).filter(
          (item) => item[2][1] > upTo,
        )
        cursor.update({ first: Math.floor(upTo) + 1, changes: JSON.stringify(kept) } satisfies OutboxChunk)
        return 'stop'
      })
    })
  }

  /**
   * Takes over this replica's connection for this instance (a browser tab): raises the
   * stored leader epoch and returns it. From then on, reading the outbox for upload, applying
   * remote changes and dropping acknowledged ones check that epoch in the same transaction,
   * and fail with `storage-failed` (see {@link isTabFenced}) once another instance took over:
   * a tab that was frozen and wakes up cannot upload or apply behind the new leader's back.
   */
  async claimLeadership(): Promise<number> {
    const epoch = await this.#write('taking over the connection', ['meta'], 'strict', async (tx) => {
      const stored = await requestResult<{ epoch: number } | undefined>(
        tx.objectStore('meta').get(LEADER_KEY),
      )
      const next = (stored?.epoch ?? 0) + 1
      await requestResult(tx.objectStore('meta').put({ epoch: next }, LEADER_KEY))
      return next
    })
    this.#fence = epoch
    return epoch
  }

  /**
   * Takes the database for this instance alone, when no tabs share it (`tabs: false`, or no
   * Web Locks): claims the leader epoch as {@link claimLeadership} does, and from then on
   * local writes check it too. So an instance opened later on the same database takes it
   * over: everything this one would store after that — uploads, remote applies, acknowledged
   * drops and local writes — is refused instead of landing beside the other's work.
   */
  async claimSoleUse(): Promise<void> {
    await this.claimLeadership()
    this.#sole = true
  }

  /** This instance no longer leads: leader-only operations are no longer checked (nor expected). */
  releaseLeadership(): void {
    this.#fence = null
  }

  /** Fails when another instance took over since this one claimed the connection. */
  async #checkFence(tx: IDBTransaction): Promise<void> {
    const mine = this.#fence
    if (mine === null) return
    const stored = await requestResult<{ epoch: number } | undefined>(tx.objectStore('meta').get(LEADER_KEY))
    const current = stored?.epoch ?? 0
    if (current !== mine) throw new TabFencedError(mine, current, this.#sole)
  }

  /** Like `#read`, with the leader epoch checked in the same transaction. */
  async #readFenced<TResult>(
    what: string,
    store: StoreName,
    body: (store: IDBObjectStore) => Promise<TResult>,
  ): Promise<TResult> {
    if (this.#fence === null) return this.#read(what, store, body)
    this.#check()
    try {
      const tx = this.#db.transaction([store, 'meta'], 'readonly')
      await this.#checkFence(tx)
      return await body(tx.objectStore(store))
    } catch (error) {
      if (error instanceof TabFencedError) throw fencedFailure(error, what)
      throw idbFailure(error, what, false)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#db.close()
  }

  /**
   * Closes the store and deletes its database. Other connections to it (other tabs) are told
   * with a `versionchange` event and let go (see the class comment), once their transactions
   * finish; one that does not let go within 10 s — a tab of an app that holds its own
   * connection — makes this reject with `storage-failed`, and the browser deletes the
   * database once that tab closes it.
   */
  async destroy(): Promise<void> {
    await this.close()
    await deleteDatabase(this.#factory, this.name)
  }

  #check(): void {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    if (this.#lost !== null) throw new ChorusError(ErrorCode.StorageFailed, this.#lost)
  }

  /** Runs `body` over one store in a readonly transaction. */
  async #read<TResult>(
    what: string,
    store: StoreName,
    body: (store: IDBObjectStore) => Promise<TResult>,
  ): Promise<TResult> {
    this.#check()
    try {
      return await body(this.#db.transaction(store, 'readonly').objectStore(store))
    } catch (error) {
      throw idbFailure(error, what, false)
    }
  }

  /**
   * Runs `body` in one readwrite transaction and resolves only once it committed. If the
   * body throws, or the fault hook is armed, the transaction is aborted: nothing commits.
   */
  async #write<TResult>(
    what: string,
    stores: StoreName[],
    durability: IDBTransactionDurability,
    body: (tx: IDBTransaction) => Promise<TResult>,
  ): Promise<TResult> {
    this.#check()
    let tx: IDBTransaction
    try {
      tx = this.#db.transaction(stores, 'readwrite', { durability })
    } catch (error) {
      throw idbFailure(error, what, true)
    }
    // The transaction's outcome as a value, so an abort we cause is never an unhandled rejection.
    const done = transactionDone(tx).then(
      () => undefined,
      (error: unknown) => ({ error }),
    )
    let result: TResult
    try {
      result = await body(tx)
    } catch (error) {
      abort(tx)
      await done
      throw idbFailure(error, what, true)
    }
    const fault = this.#fault
    if (fault !== null) {
      this.#fault = null
      abort(tx)
      await done
      throw idbFailure(fault.cause, what, true)
    }
    const outcome = await done
    if (outcome !== undefined) throw idbFailure(outcome.error, what, true)
    return result
  }
}

/**
 * The keys of `collection`'s records after `after` in `order`: every one lies from
 * `collectionStart` to just before `collectionEnd`.
 */
function collectionRange(
  keyRange: KeyRangeLike,
  collection: string,
  order: 'asc' | 'desc',
  after: string | undefined,
): IDBKeyRange {
  const start = collectionStart(collection)
  if (after === undefined) return keyRange.bound(start, collectionEnd(collection), false, true)
  return order === 'asc'
    ? keyRange.bound(recordKey(collection, after), collectionEnd(collection), true, true)
    : keyRange.bound(start, recordKey(collection, after), false, true)
}

/**
 * A page of a collection's records in one request. Null when the page is the newest few
 * (newest first, with a limit) and IndexedDB cannot read backwards in one request (before
 * IndexedDB 3).
 *
 * Newest first without a limit, the page is the whole range: it is read forwards and
 * reversed here, since Chromium reads a large range backwards more slowly (listing the
 * older 9,900 of 10k notes took about 4% longer).
 */
async function readPage<TRecord>(
  store: IDBObjectStore,
  keyRange: KeyRangeLike,
  collection: string,
  page: RecordPage,
  decode: (collection: string, text: unknown) => TRecord,
): Promise<TRecord[] | null> {
  const { order, after, limit } = page
  const range = collectionRange(keyRange, collection, order, after)
  const backward = order === 'desc' && limit !== undefined
  const request = backward
    ? getAllInDirection<unknown>(store, range, limit, 'prev')
    : (store.getAll(range, limit) as IDBRequest<unknown[]>)
  if (request === null) return null
  const texts = await requestResult(request)
  if (order === 'desc' && !backward) texts.reverse()
  const records: TRecord[] = []
  for (const text of texts) records.push(decode(collection, text))
  return records
}

/**
 * For each collection among `keys`, the ids of `keys` that have no record, found with one
 * `getAllKeys` over the span of the asked ids, so that a batch of new records costs one
 * request rather than one each. A key read costs far less than a request, so the span may
 * hold many more records than were asked for; a collection is left out (its records are
 * read one by one) when it holds more than {@link ABSENT_SPAN_FACTOR} times as many.
 */
async function absentKeys(
  store: IDBObjectStore,
  keyRange: KeyRangeLike,
  keys: readonly { readonly collection: string; readonly id: RecordId }[],
): Promise<Map<string, { has(id: string): boolean }>> {
  const asked = new Map<string, string[]>()
  for (const { collection, id } of keys) {
    const ids = asked.get(collection)
    if (ids === undefined) asked.set(collection, [id])
    else ids.push(id)
  }
  const absent = new Map<string, { has(id: string): boolean }>()
  await Promise.all(
    [...asked].map(async ([collection, ids]) => {
      let low = ids[0] as string
      let high = low
      for (const id of ids) {
        if (id < low) low = id
        if (id > high) high = id
      }
      const most = ABSENT_SPAN_FACTOR * ids.length + 64
      const stored = await requestResult(
        store.getAllKeys(keyRange.bound(recordKey(collection, low), recordKey(collection, high)), most),
      )
      if (stored.length >= most) return
      if (stored.length === 0) {
        // Nothing stored in the span (new records): no set of the ids needed.
        absent.set(collection, ALL_ABSENT)
        return
      }
      const missing = new Set(ids)
      const skip = collection.length + 1
      for (const key of stored) missing.delete((key as string).slice(skip))
      absent.set(collection, missing)
    }),
  )
  return absent
}

/** See {@link absentKeys}. */
const ABSENT_SPAN_FACTOR = 16

/** What {@link absentKeys} gives a collection none of whose asked ids is stored. */
const ALL_ABSENT = { has: (_id: string) => true }

async function requireMeta(tx: IDBTransaction): Promise<ReplicaMeta> {
  const meta = await requestResult<ReplicaMeta | undefined>(tx.objectStore('meta').get(META_KEY))
  if (meta === undefined) throw new ChorusError(ErrorCode.Internal, 'the store has no replica metadata yet')
  return meta
}

/** Aborts a transaction that may already have finished (a failed request aborts it by itself). */
function abort(tx: IDBTransaction): void {
  try {
    tx.abort()
  } catch (error) {
    // InvalidStateError: it already finished, and `done` reports how. Anything else is news.
    if (errorName(error) !== 'InvalidStateError') throw error
  }
}

/** Why an upgrade was given up: not a Chorus database, or its data could not be converted. */
type UpgradeFailure =
  | { readonly kind: 'foreign'; readonly missing: readonly string[] }
  | { readonly kind: 'migration'; readonly cause: unknown }

/** The store that receives the records while a migration copies them, renamed `records` after. */
const MIGRATING_RECORDS = 'records-next'

/**
 * Creates the stores of a new database, or brings one of an older schema up to date, inside
 * the upgrade transaction. On `fail` the upgrade is aborted: the database keeps its version
 * and its data, as for a database some other code made.
 */
function upgradeSchema(
  db: IDBDatabase,
  tx: IDBTransaction,
  oldVersion: number,
  fail: (failure: UpgradeFailure) => void,
): void {
  if (oldVersion === 0) {
    db.createObjectStore('meta')
    db.createObjectStore('records')
    db.createObjectStore('outbox')
    return
  }
  const missing = STORE_NAMES.filter((store) => !db.objectStoreNames.contains(store))
  if (missing.length > 0) {
    fail({ kind: 'foreign', missing })
    tx.abort()
    return
  }
  const failMigration = (cause: unknown) => {
    fail({ kind: 'migration', cause })
    tx.abort()
  }
  if (oldVersion < 2) migrateOutboxFromVersion1(tx, failMigration)
  if (oldVersion < 3) migrateRecords(db, tx, failMigration)
  else if (oldVersion === 3) migrateRecordsFromVersion3(tx, failMigration)
}

/** Rewrites every entry of `store` with `convert`, one cursor step at a time; `done` at the end. */
function rewrite(
  tx: IDBTransaction,
  store: string,
  visit: (cursor: IDBCursorWithValue) => void,
  fail: (cause: unknown) => void,
  done: () => void = () => undefined,
): void {
  const request = tx.objectStore(store).openCursor()
  request.onsuccess = () => {
    const cursor = request.result
    try {
      if (cursor === null) {
        done()
        return
      }
      visit(cursor)
      cursor.continue()
    } catch (error) {
      fail(error)
    }
  }
}

/**
 * Versions 1 and 2 → 4: each record moves from a value keyed by `[collection, id]` inside it
 * (version 1: plain objects; version 2: its versions as JSON text) to its entry alone under
 * `recordKey(collection, id)`. A key path cannot change, so the records are copied into a
 * new store, which then replaces the old one.
 */
function migrateRecords(db: IDBDatabase, tx: IDBTransaction, fail: (cause: unknown) => void): void {
  const target = db.createObjectStore(MIGRATING_RECORDS)
  rewrite(
    tx,
    'records',
    (cursor) => {
      const entry = cursor.value as LegacyRecordEntry
      const text =
        typeof entry.versions === 'string'
          ? // Version 2's text is `[version, …]`: the id goes in front.
            `[${JSON.stringify(entry.id)}${entry.versions.length > 2 ? ',' : ''}${entry.versions.slice(1)}`
          : encodeRecordText(entry.id, (entry as unknown as StoredRecord).state.versions)
      // Decoding checks that the text is what this version reads.
      const { versions } = decodeRecord(entry.collection, text).state
      target.put(encodeRecord(entry.id, versions), recordKey(entry.collection, entry.id))
    },
    fail,
    () => {
      db.deleteObjectStore('records')
      target.name = 'records'
    },
  )
}

/**
 * Version 3 → 4: a record whose only version is a put becomes its array entry; the others
 * keep their text, which version 4 stores as it is. Every record is decoded, as a check.
 * Done in the upgrade transaction, like the migrations before it: the database is
 * converted entirely or not at all, and reads at version 4's speed from the first open.
 */
function migrateRecordsFromVersion3(tx: IDBTransaction, fail: (cause: unknown) => void): void {
  rewrite(
    tx,
    'records',
    (cursor) => {
      const record = decodeRecord(keyCollection(cursor.primaryKey), cursor.value)
      const entry = encodeRecord(record.id, record.state.versions)
      if (typeof entry !== 'string') cursor.update(entry)
    },
    fail,
  )
}

/** Version 1 → 2: each outbox entry (a change under its counter) becomes a chunk of that one change, under the same key. */
function migrateOutboxFromVersion1(tx: IDBTransaction, fail: (cause: unknown) => void): void {
  rewrite(
    tx,
    'outbox',
    (cursor) => {
      const change = cursor.value as Change
      cursor.update({
        first: change.dot[1],
        changes: `[${encodeOutboxItem(change, encodeVersion(change))}]`,
      } satisfies OutboxChunk)
    },
    fail,
  )
}

/** How long deleting a database waits for other connections to let go before saying so. */
const DELETE_WAIT_MS = 10_000

function deleteDatabase(factory: IDBFactory, name: string): Promise<void> {
  const what = `deleting the IndexedDB database ${JSON.stringify(name)}`
  return new Promise((resolve, reject) => {
    let request: IDBOpenDBRequest
    try {
      request = factory.deleteDatabase(name)
    } catch (error) {
      reject(idbFailure(error, what, false))
      return
    }
    // Other connections were told to let go; one that is still finishing a transaction holds
    // the deletion up (the browser says so with `blocked`) until it has. One that does not
    // let go at all is reported after a while, but the deletion still waits for it.
    let stuck: ReturnType<typeof setTimeout> | undefined
    request.onblocked = () => {
      stuck ??= setTimeout(
        () =>
          reject(
            new ChorusError(
              ErrorCode.StorageFailed,
              `${what} is waiting for another tab that keeps it open: the browser deletes it once that tab closes. Close this app's other tabs.`,
            ),
          ),
        DELETE_WAIT_MS,
      )
    }
    request.onsuccess = () => {
      clearTimeout(stuck)
      resolve()
    }
    request.onerror = () => {
      clearTimeout(stuck)
      reject(idbFailure(request.error, what, false))
    }
  })
}

function openDatabase(factory: IDBFactory, name: string): Promise<IDBDatabase> {
  const what = `opening the IndexedDB database ${JSON.stringify(name)}`
  return new Promise((resolve, reject) => {
    let request: IDBOpenDBRequest
    try {
      request = factory.open(name, DB_VERSION)
    } catch (error) {
      reject(idbFailure(error, what, false))
      return
    }
    let gaveUp = false
    let upgrade: UpgradeFailure | null = null
    request.onupgradeneeded = (event) => {
      const tx = request.transaction
      if (tx === null) return
      upgradeSchema(request.result, tx, event.oldVersion, (failure) => {
        upgrade ??= failure
      })
    }
    request.onblocked = () => {
      gaveUp = true
      reject(
        new ChorusError(
          ErrorCode.StorageFailed,
          `${what} is blocked: another tab has an older version of it open and does not let go. Close this app's other tabs, then reload.`,
        ),
      )
    }
    request.onsuccess = () => {
      const db = request.result
      // Opened after all, once the blocking tab let go: nobody is waiting for it any more.
      if (gaveUp) {
        db.close()
        return
      }
      const missing = STORE_NAMES.filter((store) => !db.objectStoreNames.contains(store))
      if (missing.length > 0) {
        db.close()
        reject(foreignDatabase(what, missing))
        return
      }
      resolve(db)
    }
    request.onerror = () => {
      if (gaveUp) return
      const failure = upgrade as UpgradeFailure | null
      if (failure === null) reject(idbFailure(request.error, what, false))
      else if (failure.kind === 'foreign') reject(foreignDatabase(what, failure.missing))
      else {
        reject(
          new ChorusError(
            ErrorCode.StorageFailed,
            `${what} failed: its data, stored by an older version of Chorus, could not be brought up to date, so it was left as it was. An older version of the app can still read it; otherwise pass another dbName, or clear this site's data.`,
            { cause: failure.cause },
          ),
        )
      }
    }
  })
}

function foreignDatabase(what: string, missing: readonly string[]): ChorusError {
  return new ChorusError(
    ErrorCode.StorageFailed,
    `${what} failed: the database exists but is not a Chorus replica database (no ${missing.join(', ')} store). Pass another dbName.`,
  )
}
