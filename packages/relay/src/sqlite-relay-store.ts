import { statSync } from 'node:fs'
import {
  type AppendResult,
  type Change,
  type ChangeText,
  ChorusError,
  type CollectedMark,
  ErrorCode,
  encodeChange,
  type HubAppend,
  isChorusError,
  type LogEntry,
  type ReplicaId,
  type SpaceId,
  type SpaceMeta,
  sqliteFailure,
} from '@chorus/core'
import Database from 'better-sqlite3'
import type {
  CompactOptions,
  CompactResult,
  RelayStore,
  RelayStoreStats,
  SpaceSummary,
} from './relay-store.js'
import {
  forgetLogName,
  logName,
  MAX_BULK_ROWS,
  migrate,
  prepareBulkStatements,
  prepareStatements,
  type Query,
  SCHEMA_VERSION,
} from './sqlite-schema.js'
import {
  ackKey,
  checkAckPosition,
  checkSnapshotLimit,
  compactionFloor,
  forgetSpaceAcks,
  hubAppend,
  markOf,
  type PendingAck,
  planAppend,
  raiseAck,
  recordWrites,
  spaceDeleted,
  type TouchedRecord,
  touchedRecords,
  withMark,
} from './store-parts.js'
import { decodeUtf16Key, encodeUtf16Key } from './utf16-key.js'

/** The write transactions of {@link SqliteRelayStore}, as its `beforeCommit` hook names them. */
export type SqliteWrite = 'append' | 'acks' | 'compact' | 'claim' | 'delete'

/** Options for {@link SqliteRelayStore}. */
export interface SqliteRelayStoreOptions {
  /**
   * Called inside every write transaction, after its writes and just before it commits; a
   * throw rolls the whole transaction back. For fault-injection tests (a full disk).
   */
  readonly beforeCommit?: (write: SqliteWrite) => void
}

/**
 * The relay's embedded store: one SQLite file (better-sqlite3) in WAL mode.
 *
 * Durability: `journal_mode = WAL` with `synchronous = FULL`, so every commit is fsynced
 * before the call that made it resolves, and the hub acknowledges only after that. `NORMAL`
 * would survive a killed process (kill -9) as well, since the WAL is in the OS's cache, but
 * could roll back the last commits on power loss or an OS crash, and an acknowledged change
 * must survive those too.
 *
 * Each append is one transaction: the log rows, the compacted records and the replica's
 * received counter. Record keys are stored as UTF-16 code units (`encodeUtf16Key`) so
 * snapshots page in JavaScript string order, as the `HubStore` contract requires.
 *
 * Each call does its work synchronously before its promise settles (better-sqlite3 is
 * synchronous), so two calls never interleave. One relay process per file: the hub keeps
 * each space's head in memory.
 */
export class SqliteRelayStore implements RelayStore {
  /** Where the database lives (`:memory:` for a throwaway one). */
  readonly path: string
  readonly #db: Database.Database
  /** The log's name (see `logName`). */
  readonly #log: string
  readonly #sql: ReturnType<typeof prepareStatements>
  readonly #bulkSql: ReturnType<typeof prepareBulkStatements>
  /** `#appendRows` in one transaction, wrapped once: a busy relay appends a thousand times a second. */
  readonly #appendTransaction: (
    space: SpaceId,
    appends: readonly HubAppend[],
    text: ChangeText,
  ) => AppendResult[]
  readonly #beforeCommit: ((write: SqliteWrite) => void) | undefined
  readonly #pendingAcks = new Map<string, PendingAck>()
  readonly #knownAcks = new Set<string>()
  /** Spaces deleted with `deleteSpace`, read at open: one process owns the file. */
  readonly #deleted = new Set<string>()
  /** The pending write of first-seen replicas' acknowledgements (see `noteAck`). */
  #ackWrite: Promise<void> | null = null
  #closed = false
  /** The database file as opened (device and inode), to tell it from one put in its place. */
  #identity: string | null = null
  /** The write-ahead log's, once it exists. */
  #walIdentity: string | null | undefined

  constructor(path: string, options: SqliteRelayStoreOptions = {}) {
    this.path = path
    this.#beforeCommit = options.beforeCommit
    let db: Database.Database
    try {
      db = new Database(path)
    } catch (error) {
      throw new ChorusError(ErrorCode.StorageFailed, `cannot open the relay database at ${path}`, {
        cause: error,
      })
    }
    try {
      const version = db.pragma('user_version', { simple: true }) as number
      if (version > SCHEMA_VERSION) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `the relay database at ${path} has schema ${version}; this relay reads up to ${SCHEMA_VERSION}: upgrade the relay`,
        )
      }
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = FULL')
      migrate(db, version)
      this.#log = logName(db)
      this.#sql = prepareStatements(db)
      this.#bulkSql = prepareBulkStatements(db)
    } catch (error) {
      db.close()
      if (isChorusError(error)) throw error
      throw new ChorusError(ErrorCode.StorageFailed, `cannot prepare the relay database at ${path}`, {
        cause: error,
      })
    }
    this.#db = db
    this.#identity = path === ':memory:' ? null : fileIdentity(path)
    for (const row of this.#sql.deletedSpaces.all()) this.#deleted.add(row.space)
    this.#appendTransaction = db.transaction((space, appends, text) => {
      const results = this.#appendRows(space, appends, text)
      this.#committing('append')
      return results
    })
  }

  /**
   * The end of every write transaction, before it commits: the database and its write-ahead
   * log must still be the files this store opened. One deleted or replaced under a running
   * relay (an operator's mistake, a cleanup job) would take every later commit with it, each
   * acknowledged: the transaction is refused instead, and the relay stops acknowledging.
   */
  #committing(write: SqliteWrite): void {
    this.#checkFiles()
    this.#beforeCommit?.(write)
  }

  #checkFiles(): void {
    if (this.path === ':memory:') return
    const now = fileIdentity(this.path)
    const wal = fileIdentity(`${this.path}-wal`)
    this.#walIdentity ??= wal
    if (now === this.#identity && (this.#walIdentity === null || wal === this.#walIdentity)) return
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `the relay's database ${this.path}${now === this.#identity ? '-wal' : ''} was deleted or replaced while the relay ran: nothing more is stored. Stop the relay, put the file back (or restore a backup), and start it again.`,
    )
  }

  async loadSpace(space: SpaceId): Promise<SpaceMeta> {
    return this.#run('loading a space', () => {
      if (this.#deleted.has(space)) return { head: 0, floor: 0, received: {}, log: this.#log, deleted: true }
      const row = this.#sql.spaceWithMark.get(space)
      const received: Record<string, number> = {}
      for (const entry of this.#sql.received.all(space)) received[entry.replica] = entry.counter
      const meta = { head: row?.head ?? 0, floor: row?.floor ?? 0, received, log: this.#log }
      return withMark(meta, row === undefined ? undefined : markOf(row))
    })
  }

  async append(
    space: SpaceId,
    replica: ReplicaId,
    changes: readonly Change[],
    text: ChangeText = encodeChange,
    through?: number,
  ): Promise<AppendResult> {
    const append = hubAppend(replica, changes, through)
    const [result] = this.#appendAll(space, [append], text)
    return result as AppendResult
  }

  /** Several replicas' appends in one transaction: one fsync for all of them. */
  async appendMany(
    space: SpaceId,
    appends: readonly HubAppend[],
    text: ChangeText = encodeChange,
  ): Promise<AppendResult[]> {
    return this.#appendAll(space, appends, text)
  }

  #appendAll(space: SpaceId, appends: readonly HubAppend[], text: ChangeText): AppendResult[] {
    return this.#write('appending changes', () => this.#appendTransaction(space, appends, text))
  }

  /**
   * The appends' writes, inside the caller's transaction, each append behaving as its own
   * `append` in order. The statements go over all of them at once: the log rows and the
   * records in multi-row statements, the records they touch read with one lookup (none in a
   * space with no changes yet, which has no records), and each change stored as the text
   * the hub sends it as.
   */
  #appendRows(space: SpaceId, appends: readonly HubAppend[], text: ChangeText): AppendResult[] {
    if (this.#deleted.has(space)) throw spaceDeleted(space)
    const previousHead = this.#sql.space.get(space)?.head ?? 0
    const { results, fresh, advanced, head } = planAppend(
      appends,
      previousHead,
      (replica) => this.#sql.receivedOne.get(space, replica)?.counter ?? 0,
    )
    if (fresh.length === 0) {
      // A sparse batch of changes all gone still moves the replica's received counter.
      for (const [replica, counter] of advanced) this.#sql.upsertReceived.run(space, replica, counter)
      return results
    }
    const texts: string[] = []
    const logParams: unknown[] = []
    for (let i = 0; i < fresh.length; i++) {
      const json = text(fresh[i] as Change)
      texts.push(json)
      logParams.push(space, previousHead + i + 1, json)
    }
    this.#bulk(this.#bulkSql.insertLog, logParams, 3)
    const touched = touchedRecords(fresh)
    // A space with no changes yet has no records to read.
    if (previousHead > 0) this.#readRecords(space, touched.records, touched.byKey)
    const recordParams: unknown[] = []
    for (const write of recordWrites(touched, fresh, texts, previousHead)) {
      recordParams.push(space, write.key, write.versions, write.lastSeq, write.tombstone ? 1 : 0)
    }
    if (recordParams.length > 0) this.#bulk(this.#bulkSql.upsertRecords, recordParams, 5)
    for (const [replica, counter] of advanced) this.#sql.upsertReceived.run(space, replica, counter)
    this.#sql.upsertSpace.run(space, head)
    return results
  }

  /** Reads the stored state of `records` into them: one lookup per hundred keys. */
  #readRecords(
    space: SpaceId,
    records: readonly TouchedRecord[],
    byKey: ReadonlyMap<string, TouchedRecord>,
  ): void {
    for (let at = 0; at < records.length; at += MAX_BULK_ROWS) {
      const count = Math.min(MAX_BULK_ROWS, records.length - at)
      const params: unknown[] = [space]
      for (let i = at; i < at + count; i++) params.push((records[i] as TouchedRecord).key)
      const rows = this.#bulkSql.records<{ key: Buffer; versions: string }>(count).all(...params)
      for (const row of rows) {
        const record = byKey.get(decodeUtf16Key(row.key))
        if (record !== undefined) record.state = { versions: JSON.parse(row.versions) as Change[] }
      }
    }
  }

  /** Runs a multi-row statement over `params` (`width` per row), a hundred rows at a time. */
  #bulk(statement: (rows: number) => Query<unknown[], unknown>, params: unknown[], width: number): void {
    const chunk = MAX_BULK_ROWS * width
    for (let at = 0; at < params.length; at += chunk) {
      const part = at === 0 && params.length <= chunk ? params : params.slice(at, at + chunk)
      statement(part.length / width).run(...part)
    }
  }

  /**
   * Each row's text goes to `onText`. Rows this build wrote hold `encodeChange`'s text; older
   * builds wrote `JSON.stringify` of the change the hub decoded, whose fields the codec builds
   * in wire order, so their text is the same.
   */
  async readLog(
    space: SpaceId,
    after: number,
    limit: number,
    onText?: (change: Change, text: string) => void,
  ): Promise<LogEntry[]> {
    return this.#run('reading the log', () =>
      this.#logRows(space, after, limit).map((row) => {
        const change = JSON.parse(row.change) as Change
        onText?.(change, row.change)
        return { seq: row.seq, change }
      }),
    )
  }

  /**
   * `readLog`'s entries as one JSON array, built from the stored text without parsing it: for
   * handing a page to another thread as a single string. With `skip`, the first `skip`
   * entries (which the caller holds) are left out, but the floor is still checked at `after`.
   */
  readLogJson(space: SpaceId, after: number, limit: number, skip = 0): string {
    return this.#run('reading the log', () => {
      const rows = this.#logRows(space, after, limit, skip)
      const parts = rows.map((row) => `{"seq":${row.seq},"change":${row.change}}`)
      return `[${parts.join(',')}]`
    })
  }

  #logRows(space: SpaceId, after: number, limit: number, skip = 0): { seq: number; change: string }[] {
    // Read after a deletion, the log is empty: it must not pass for caught up.
    if (this.#deleted.has(space)) throw spaceDeleted(space)
    const floor = this.#sql.space.get(space)?.floor ?? 0
    if (after < floor) {
      throw new ChorusError(ErrorCode.ResyncRequired, `log entries up to ${floor} were compacted`)
    }
    if (limit - skip < 1) return []
    return this.#sql.readLog.all(space, after + skip, limit - skip)
  }

  async readSnapshot(
    space: SpaceId,
    afterKey: string | null,
    limit: number,
  ): Promise<{ changes: Change[]; nextKey: string | null }> {
    return this.#run('reading a snapshot', () => {
      const { rows, nextKey } = this.#snapshotRows(space, afterKey, limit)
      return { changes: rows.flatMap((row) => JSON.parse(row.versions) as Change[]), nextKey }
    })
  }

  /**
   * `readSnapshot`'s page as one JSON object, built from the stored text without parsing it:
   * for handing a page to another thread as a single string.
   */
  readSnapshotJson(space: SpaceId, afterKey: string | null, limit: number): string {
    return this.#run('reading a snapshot', () => {
      const { rows, nextKey } = this.#snapshotRows(space, afterKey, limit)
      // Each row holds a JSON array of versions: their elements joined make the page's array.
      const versions = rows.map((row) => row.versions.slice(1, -1)).filter((inner) => inner.length > 0)
      return `{"changes":[${versions.join(',')}],"nextKey":${JSON.stringify(nextKey)}}`
    })
  }

  #snapshotRows(
    space: SpaceId,
    afterKey: string | null,
    limit: number,
  ): { rows: { versions: string }[]; nextKey: string | null } {
    checkSnapshotLimit(limit)
    // Read after a deletion, the page is empty: it must not pass for the last one.
    if (this.#deleted.has(space)) throw spaceDeleted(space)
    const rows =
      afterKey === null
        ? this.#sql.snapshotFirst.all(space, limit + 1)
        : this.#sql.snapshotAfter.all(space, encodeUtf16Key(afterKey), limit + 1)
    const page = rows.slice(0, limit)
    const last = page[page.length - 1]
    const nextKey = rows.length > limit && last !== undefined ? decodeUtf16Key(last.key) : null
    return { rows: page, nextKey }
  }

  async noteAck(space: SpaceId, replica: ReplicaId, position: number, now: number): Promise<void> {
    checkAckPosition(position)
    // Sent before the space was deleted: nothing of it is kept.
    if (this.#deleted.has(space)) return
    const firstSeen = this.#run('recording an acknowledgement', () => {
      const key = ackKey(space, replica)
      const pending = this.#pendingAcks.get(key)
      if (pending !== undefined) {
        raiseAck(pending, position, now)
        return false
      }
      const known = this.#knownAcks.has(key) || this.#sql.ackExists.get(space, replica) !== undefined
      this.#knownAcks.add(key)
      this.#pendingAcks.set(key, { space, replica, position, seenAt: now })
      return !known
    })
    // A replica seen for the first time is written through: until it is durable, a crash
    // could let compaction collect tombstones this replica has not seen. The replicas first
    // seen in one turn of the event loop share that write (a space's subscribers all
    // acknowledge their first batch together); a compaction meanwhile writes them first.
    if (firstSeen) await this.#writeAcksSoon()
  }

  /** Writes every buffered acknowledgement after the frames already read: one commit for all. */
  #writeAcksSoon(): Promise<void> {
    this.#ackWrite ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.#ackWrite = null
        // `close` wrote them.
        if (this.#closed && this.#pendingAcks.size === 0) {
          resolve()
          return
        }
        try {
          this.#write('recording an acknowledgement', () => this.#flushAcks())
          resolve()
        } catch (error) {
          reject(error)
        }
      })
    })
    return this.#ackWrite
  }

  async flushAcks(): Promise<void> {
    this.#write('writing acknowledgements', () => this.#flushAcks())
  }

  async compact(space: SpaceId, options: CompactOptions): Promise<CompactResult> {
    return this.#write('compacting a space', () => {
      this.#flushAcks()
      const row = this.#sql.spaceWithMark.get(space)
      if (row === undefined) {
        return { floor: 0, logEntriesDeleted: 0, tombstonesDeleted: 0, replicasForgotten: 0 }
      }
      const mark = markOf(row)
      const cutoff = Number.isFinite(options.horizonMs) ? options.now - options.horizonMs : null
      const stale = cutoff === null ? 0 : (this.#sql.countStale.get(space, cutoff)?.n ?? 0)
      const lowest = this.#sql.lowestAck.get(space, cutoff ?? Number.MIN_SAFE_INTEGER)?.lowest ?? null
      const floor = compactionFloor(row, lowest)
      // Every append lands above the floor, so while the floor stays put there is nothing to
      // delete: skip the write (and its fsync) for the many spaces that did not move.
      if (stale === 0 && floor === row.floor) {
        return withMark({ floor, logEntriesDeleted: 0, tombstonesDeleted: 0, replicasForgotten: 0 }, mark)
      }
      const result = this.#db.transaction(() => {
        const replicasForgotten = cutoff === null ? 0 : this.#sql.forget.run(space, cutoff).changes
        if (floor > row.floor) this.#sql.setFloor.run(floor, space)
        const logEntriesDeleted = this.#sql.deleteLog.run(space, floor).changes
        const { tombstonesDeleted, collected } =
          options.collect === false
            ? { tombstonesDeleted: 0, collected: mark }
            : this.#collect(space, floor, row.head, mark)
        this.#committing('compact')
        return withMark({ floor, logEntriesDeleted, tombstonesDeleted, replicasForgotten }, collected)
      })()
      if (result.replicasForgotten > 0) {
        forgetSpaceAcks(space, this.#knownAcks)
      }
      return result
    })
  }

  /**
   * Inside `compact`'s transaction: deletes the tombstones at or below `floor` and, if there
   * were any, marks them collected at `head`. Not while the space's mark stands (`floor` not
   * past its `at`): a replica still known may not have reached that mark yet, and a replica
   * is never owed two. Returns the space's mark after it.
   */
  #collect(
    space: SpaceId,
    floor: number,
    head: number,
    mark: CollectedMark | undefined,
  ): { tombstonesDeleted: number; collected: CollectedMark | undefined } {
    if (mark !== undefined && floor <= mark.at) return { tombstonesDeleted: 0, collected: mark }
    // The mark names only the replicas that wrote what it collected: few, however many wrote
    // to the space (a receiver takes at most `maxVectorEntries`).
    const writers = new Set(this.#sql.tombstoneWriters.all(space, floor).map((row) => row.replica))
    const tombstonesDeleted = this.#sql.deleteTombstones.run(space, floor).changes
    if (tombstonesDeleted === 0) return { tombstonesDeleted, collected: mark }
    const received: Record<string, number> = {}
    for (const entry of this.#sql.collectedCounters.all(space, floor, space)) {
      if (writers.has(entry.replica)) received[entry.replica] = entry.counter
    }
    this.#sql.setCollected.run(head, JSON.stringify(received), space)
    return { tombstonesDeleted, collected: { at: head, received } }
  }

  async describeSpaces(): Promise<SpaceSummary[]> {
    return this.#run('describing spaces', () => {
      // Acknowledgements still buffered count too.
      this.#flushAcks()
      return this.#sql.describeSpaces.all().map((row) => ({ ...row, space: row.space as SpaceId }))
    })
  }

  async deleteSpace(space: SpaceId): Promise<boolean> {
    return this.#write('deleting a space', () => {
      if (this.#deleted.has(space)) return false
      this.#db.transaction(() => {
        this.#sql.deleteOwners.run({ space })
        this.#sql.deleteAllLog.run(space)
        this.#sql.deleteRecords.run(space)
        this.#sql.deleteReceived.run(space)
        this.#sql.deleteAcks.run(space)
        this.#sql.deleteSpaceRow.run(space)
        this.#sql.markDeleted.run(space, Date.now())
        this.#committing('delete')
      })()
      this.#deleted.add(space)
      forgetSpaceAcks(space, this.#pendingAcks, this.#knownAcks)
      return true
    })
  }

  async listSpaces(): Promise<SpaceId[]> {
    return this.#run('listing spaces', () => this.#sql.listSpaces.all().map((row) => row.space as SpaceId))
  }

  async stats(): Promise<RelayStoreStats> {
    return this.#run('reading statistics', () => {
      const row = this.#sql.stats.get()
      return { spaces: row?.spaces ?? 0, logEntries: row?.entries ?? 0 }
    })
  }

  async claimReplica(replica: ReplicaId, subject: string): Promise<boolean> {
    return this.#write('claiming a replica id', () => {
      const owner = this.#sql.owner.get(replica)?.subject
      if (owner !== undefined) return owner === subject
      this.#db.transaction(() => {
        this.#sql.claim.run(replica, subject)
        this.#committing('claim')
      })()
      return true
    })
  }

  /**
   * Copies the database to `destination` while the store stays in use (SQLite's online
   * backup). Copying the live file with `cp` can produce a corrupt copy in WAL mode.
   */
  async backup(destination: string): Promise<void> {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    try {
      await this.#db.backup(destination)
      // Each database made from the copy names its log anew (see `forgetLogName`).
      const copy = new Database(destination, { fileMustExist: true })
      try {
        forgetLogName(copy)
      } finally {
        copy.close()
      }
    } catch (error) {
      throw new ChorusError(ErrorCode.StorageFailed, `backing up to ${destination} failed`, { cause: error })
    }
  }

  /** Writes buffered acknowledgements and closes the database; later calls reject with `closed`. */
  async close(): Promise<void> {
    if (this.#closed) return
    let failure: unknown
    try {
      this.#flushAcks()
    } catch (error) {
      failure = error
    }
    this.#closed = true
    this.#db.close()
    if (failure !== undefined) {
      throw new ChorusError(ErrorCode.StorageFailed, 'writing buffered acknowledgements failed at close', {
        cause: failure,
      })
    }
  }

  #flushAcks(): void {
    if (this.#pendingAcks.size === 0) return
    this.#db.transaction(() => {
      for (const ack of this.#pendingAcks.values()) {
        this.#sql.upsertAck.run(ack.space, ack.replica, ack.position, ack.seenAt)
      }
      this.#committing('acks')
    })()
    this.#pendingAcks.clear()
  }

  /**
   * Runs a storage operation: `closed` after close, `storage-failed` for SQLite's errors, saying
   * what to do (a full disk: free space, then retry).
   */
  #run<TResult>(what: string, operation: () => TResult, write = false): TResult {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    try {
      return operation()
    } catch (error) {
      throw sqliteFailure(error, what, write)
    }
  }

  /** {@link SqliteRelayStore.#run} for a write, whose failure also says that nothing of it was kept. */
  #write<TResult>(what: string, operation: () => TResult): TResult {
    return this.#run(what, operation, true)
  }
}

/** A file's device and inode, or null when there is none at `path`. */
function fileIdentity(path: string): string | null {
  try {
    // Every commit asks (twice): a missing file answers undefined rather than with a thrown error.
    const stat = statSync(path, { throwIfNoEntry: false })
    return stat === undefined ? null : `${stat.dev}:${stat.ino}`
  } catch {
    return null
  }
}
