import {
  type AppendResult,
  applyChange,
  type Change,
  ChorusError,
  ErrorCode,
  isChorusError,
  isDeleted,
  type LogEntry,
  type RecordState,
  type ReplicaId,
  recordKey,
  type SpaceId,
  type SpaceMeta,
} from '@chorus/core'
import Database from 'better-sqlite3'
import type { CompactOptions, CompactResult, RelayStore, RelayStoreStats } from './relay-store.js'
import { prepareStatements, SCHEMA, SCHEMA_VERSION } from './sqlite-schema.js'
import { decodeUtf16Key, encodeUtf16Key } from './utf16-key.js'

/** The write transactions of {@link SqliteRelayStore}, as its `beforeCommit` hook names them. */
export type SqliteWrite = 'append' | 'acks' | 'compact' | 'claim'

/** Options for {@link SqliteRelayStore}. */
export interface SqliteRelayStoreOptions {
  /**
   * Called inside every write transaction, after its writes and just before it commits; a
   * throw rolls the whole transaction back. For fault-injection tests (a full disk).
   */
  readonly beforeCommit?: (write: SqliteWrite) => void
}

interface PendingAck {
  readonly space: SpaceId
  readonly replica: ReplicaId
  position: number
  seenAt: number
}

function ackKey(space: SpaceId, replica: ReplicaId): string {
  return `${space}\u0000${replica}`
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
  readonly #sql: ReturnType<typeof prepareStatements>
  readonly #beforeCommit: ((write: SqliteWrite) => void) | undefined
  readonly #pendingAcks = new Map<string, PendingAck>()
  readonly #knownAcks = new Set<string>()
  /** The pending write of first-seen replicas' acknowledgements (see `noteAck`). */
  #ackWrite: Promise<void> | null = null
  #closed = false

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
      db.exec(SCHEMA)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
      this.#sql = prepareStatements(db)
    } catch (error) {
      db.close()
      if (isChorusError(error)) throw error
      throw new ChorusError(ErrorCode.StorageFailed, `cannot prepare the relay database at ${path}`, {
        cause: error,
      })
    }
    this.#db = db
  }

  async loadSpace(space: SpaceId): Promise<SpaceMeta> {
    return this.#run('loading a space', () => {
      const row = this.#sql.space.get(space)
      const received: Record<string, number> = {}
      for (const entry of this.#sql.received.all(space)) received[entry.replica] = entry.counter
      return { head: row?.head ?? 0, floor: row?.floor ?? 0, received }
    })
  }

  async append(space: SpaceId, replica: ReplicaId, changes: readonly Change[]): Promise<AppendResult> {
    return this.#run('appending changes', () =>
      this.#db.transaction(() => {
        const result = this.#appendRows(space, replica, changes)
        this.#beforeCommit?.('append')
        return result
      })(),
    )
  }

  /** Several replicas' appends in one transaction: one fsync for all of them. */
  async appendMany(
    space: SpaceId,
    appends: readonly { readonly replica: ReplicaId; readonly changes: readonly Change[] }[],
  ): Promise<AppendResult[]> {
    return this.#run('appending changes', () =>
      this.#db.transaction(() => {
        const results = appends.map(({ replica, changes }) => this.#appendRows(space, replica, changes))
        this.#beforeCommit?.('append')
        return results
      })(),
    )
  }

  /** An append's writes, inside the caller's transaction. */
  #appendRows(space: SpaceId, replica: ReplicaId, changes: readonly Change[]): AppendResult {
    let head = this.#sql.space.get(space)?.head ?? 0
    let received = this.#sql.receivedOne.get(space, replica)?.counter ?? 0
    const fresh: Change[] = []
    for (const change of changes) {
      if (change.dot[0] !== replica) {
        throw new ChorusError(
          ErrorCode.ReplicaMismatch,
          `a change from ${change.dot[0]} was appended as ${replica}`,
        )
      }
      if (change.dot[1] <= received) continue
      if (change.dot[1] !== received + 1) break
      fresh.push(change)
      received = change.dot[1]
    }
    if (fresh.length === 0) return { head, received, appended: 0 }
    const touched = new Map<string, { key: Buffer; state: RecordState; seq: number }>()
    for (const change of fresh) {
      head += 1
      this.#sql.insertLog.run(space, head, JSON.stringify(change))
      const text = recordKey(change.collection, change.id)
      const known = touched.get(text)
      const key = known?.key ?? encodeUtf16Key(text)
      const current = known === undefined ? this.#readRecord(space, key) : known.state
      const { state, applied } = applyChange(current, change)
      if (applied) touched.set(text, { key, state, seq: head })
    }
    for (const { key, state, seq } of touched.values()) {
      this.#sql.upsertRecord.run(space, key, JSON.stringify(state.versions), seq, isDeleted(state) ? 1 : 0)
    }
    this.#sql.upsertReceived.run(space, replica, received)
    this.#sql.upsertSpace.run(space, head)
    return { head, received, appended: fresh.length }
  }

  async readLog(space: SpaceId, after: number, limit: number): Promise<LogEntry[]> {
    return this.#run('reading the log', () =>
      this.#logRows(space, after, limit).map((row) => ({
        seq: row.seq,
        change: JSON.parse(row.change) as Change,
      })),
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
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `a snapshot page needs a limit of at least 1, got ${limit}`,
      )
    }
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
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `an acknowledged position must be ≥ 0, got ${position}`,
      )
    }
    const firstSeen = this.#run('recording an acknowledgement', () => {
      const key = ackKey(space, replica)
      const pending = this.#pendingAcks.get(key)
      if (pending !== undefined) {
        pending.position = Math.max(pending.position, position)
        pending.seenAt = Math.max(pending.seenAt, now)
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
          this.#run('recording an acknowledgement', () => this.#flushAcks())
          resolve()
        } catch (error) {
          reject(error)
        }
      })
    })
    return this.#ackWrite
  }

  async flushAcks(): Promise<void> {
    this.#run('writing acknowledgements', () => this.#flushAcks())
  }

  async compact(space: SpaceId, options: CompactOptions): Promise<CompactResult> {
    return this.#run('compacting a space', () => {
      this.#flushAcks()
      const row = this.#sql.space.get(space)
      if (row === undefined) {
        return { floor: 0, logEntriesDeleted: 0, tombstonesDeleted: 0, replicasForgotten: 0 }
      }
      const cutoff = Number.isFinite(options.horizonMs) ? options.now - options.horizonMs : null
      const stale = cutoff === null ? 0 : (this.#sql.countStale.get(space, cutoff)?.n ?? 0)
      const lowest = this.#sql.lowestAck.get(space, cutoff ?? Number.MIN_SAFE_INTEGER)?.lowest ?? null
      const floor = Math.max(row.floor, Math.min(lowest ?? row.head, row.head))
      // Every append lands above the floor, so while the floor stays put there is nothing to
      // delete: skip the write (and its fsync) for the many spaces that did not move.
      if (stale === 0 && floor === row.floor) {
        return { floor, logEntriesDeleted: 0, tombstonesDeleted: 0, replicasForgotten: 0 }
      }
      const result = this.#db.transaction(() => {
        const replicasForgotten = cutoff === null ? 0 : this.#sql.forget.run(space, cutoff).changes
        if (floor > row.floor) this.#sql.setFloor.run(floor, space)
        const logEntriesDeleted = this.#sql.deleteLog.run(space, floor).changes
        const tombstonesDeleted = this.#sql.deleteTombstones.run(space, floor).changes
        this.#beforeCommit?.('compact')
        return { floor, logEntriesDeleted, tombstonesDeleted, replicasForgotten }
      })()
      if (result.replicasForgotten > 0) {
        for (const key of this.#knownAcks) if (key.startsWith(`${space}\u0000`)) this.#knownAcks.delete(key)
      }
      return result
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
    return this.#run('claiming a replica id', () => {
      const owner = this.#sql.owner.get(replica)?.subject
      if (owner !== undefined) return owner === subject
      this.#db.transaction(() => {
        this.#sql.claim.run(replica, subject)
        this.#beforeCommit?.('claim')
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

  #readRecord(space: SpaceId, key: Buffer): RecordState | undefined {
    const row = this.#sql.record.get(space, key)
    return row === undefined ? undefined : { versions: JSON.parse(row.versions) as Change[] }
  }

  #flushAcks(): void {
    if (this.#pendingAcks.size === 0) return
    this.#db.transaction(() => {
      for (const ack of this.#pendingAcks.values()) {
        this.#sql.upsertAck.run(ack.space, ack.replica, ack.position, ack.seenAt)
      }
      this.#beforeCommit?.('acks')
    })()
    this.#pendingAcks.clear()
  }

  /** Runs a storage operation: `closed` after close, `storage-failed` for SQLite's errors. */
  #run<TResult>(what: string, operation: () => TResult): TResult {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    try {
      return operation()
    } catch (error) {
      if (isChorusError(error)) throw error
      const detail = error instanceof Error ? error.message : String(error)
      throw new ChorusError(ErrorCode.StorageFailed, `${what} failed: ${detail}`, { cause: error })
    }
  }
}
