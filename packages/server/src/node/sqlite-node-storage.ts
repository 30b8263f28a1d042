import { statSync } from 'node:fs'
import { ChorusError, ErrorCode, isChorusError, sqliteCode, sqliteFailure } from '@chorus/core'
import Database from 'better-sqlite3'
import { messageOf } from '../error-message.js'
import { hash32 } from '../hash.js'
import type { AppendResult, NodeStorage, PendingAppend } from '../storage.js'

/** The schema version, kept in SQLite's `user_version`. */
const SCHEMA_VERSION = 1

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS fence (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    epoch INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    checksum INTEGER NOT NULL
  );
`

interface RecordRow {
  readonly seq: number
  readonly body: string
  readonly checksum: number
}

/** Options for {@link SqliteNodeStorage}. */
export interface SqliteNodeStorageOptions {
  /**
   * `true` (the default): `synchronous = FULL`, every commit is fsync'd before its append
   * resolves. `false`: `synchronous = OFF`, commits reach the operating system but are not
   * fsync'd — they survive a killed process, not a power loss or a kernel crash. For
   * benchmarks and for measuring what the fsync costs.
   */
  readonly fsync?: boolean
}

/** Counters of a {@link SqliteNodeStorage} handle (volatile). */
export interface SqliteNodeStorageStats {
  /** Appends stored (each append of a group commit counts). */
  readonly appends: number
  /** Transactions committed: fewer than `appends` when group commits joined them. */
  readonly commits: number
  readonly records: number
  /** Checkpoints stored (appends with `replace`), each of which deleted the rows before it. */
  readonly checkpoints: number
  readonly fenced: number
  readonly failed: number
}

/**
 * A durable {@link NodeStorage}: one SQLite file per node (better-sqlite3, WAL journal,
 * `synchronous = FULL` unless `fsync: false`).
 *
 * - **Durable and atomic.** Each append — or each group of appends given to `appendAll` — is
 *   one immediate transaction; its promise resolves `ok` only after the commit reached the
 *   disk, so a process killed at any point (kill -9, power loss) keeps every append that
 *   resolved and none half-done.
 * - **Fencing in the file.** The highest epoch any successful append carried is a row of the
 *   database, read and raised inside the append's transaction. A zombie — this process
 *   resumed with stale state, or a second process that opened the same file — is refused
 *   (`fenced`) by the storage itself once anyone has written a newer epoch.
 * - **Checked on the way out.** Every record is stored as JSON text with a checksum; `load`
 *   verifies both, and a damaged, truncated or foreign file fails with a `ChorusError`
 *   (`storage-failed`) that says so, never with a partial log.
 *
 * better-sqlite3 is synchronous: each call does its work before its promise settles. Use one
 * handle per node process; close it when the node stops.
 */
export class SqliteNodeStorage<TRecord> implements NodeStorage<TRecord> {
  /** The database file (or `:memory:`). */
  readonly path: string
  readonly #db: Database.Database
  readonly #sql: ReturnType<typeof prepare>
  /** The append transaction, made once (better-sqlite3 builds a wrapper per `transaction` call). */
  readonly #commit: Database.Transaction<
    (appends: readonly PendingAppend<TRecord>[], bodies: readonly string[][]) => AppendResult
  >
  readonly #counters = { appends: 0, commits: 0, records: 0, checkpoints: 0, fenced: 0, failed: 0 }
  #failNext: string | null = null
  #closed = false
  /** The device and inode of the database file as opened (null in memory), and of its WAL once seen. */
  #identity: string | null = null
  #walIdentity: string | null = null

  /**
   * Opens (creating if needed) the node's database file. Throws `invalid-argument` for an
   * empty path and `storage-failed` for a file that cannot be opened or is not a node log.
   */
  constructor(path: string, options: SqliteNodeStorageOptions = {}) {
    if (typeof path !== 'string' || path === '') {
      throw new ChorusError(ErrorCode.InvalidArgument, 'the node storage path must be a non-empty string')
    }
    this.path = path
    let db: Database.Database
    try {
      db = new Database(path)
    } catch (error) {
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `cannot open the node database ${JSON.stringify(path)}: check that its directory exists and is writable`,
        { cause: error },
      )
    }
    try {
      const version = db.pragma('user_version', { simple: true }) as number
      if (version > SCHEMA_VERSION) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `the node database ${JSON.stringify(path)} has schema ${version}; this version reads up to ${SCHEMA_VERSION}`,
        )
      }
      db.pragma('journal_mode = WAL')
      db.pragma(options.fsync === false ? 'synchronous = OFF' : 'synchronous = FULL')
      db.exec(SCHEMA)
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
      this.#sql = prepare(db)
      this.#commit = db.transaction((appends, bodies) => this.#store(appends, bodies))
    } catch (error) {
      db.close()
      if (isChorusError(error)) throw error
      // A full disk, an I/O error, a read-only file or another process's lock is not a damaged
      // file: said as what it is, since an operator told "damaged" may delete a node's data.
      if (/^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CANTOPEN)/.test(sqliteCode(error) ?? ''))
        throw sqliteFailure(error, `opening the node database ${JSON.stringify(path)}`, false)
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `the node database ${JSON.stringify(path)} is damaged or not a node database (${messageOf(error)})`,
        { cause: error },
      )
    }
    this.#db = db
    this.#identity = path === ':memory:' ? null : fileIdentity(path)
  }

  /** A snapshot of this handle's counters. */
  get stats(): SqliteNodeStorageStats {
    return { ...this.#counters }
  }

  /** The highest epoch a successful append carried, or null before any. */
  get epoch(): number | null {
    this.#assertOpen()
    return this.#sql.epoch.get()?.epoch ?? null
  }

  /**
   * Every record, in append order. Rejects with `storage-failed` when a record fails its
   * checksum or is not JSON (the file was damaged outside this class).
   */
  async load(): Promise<readonly TRecord[]> {
    this.#assertOpen()
    let rows: RecordRow[]
    try {
      rows = this.#sql.all.all()
    } catch (error) {
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `cannot read the node database ${JSON.stringify(this.path)}: it is damaged (${messageOf(error)})`,
        { cause: error },
      )
    }
    return rows.map((row) => {
      if (typeof row.body !== 'string' || hash32(row.body) !== row.checksum) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `record ${row.seq} of the node database ${JSON.stringify(this.path)} fails its checksum: the file is damaged`,
        )
      }
      try {
        return JSON.parse(row.body) as TRecord
      } catch (error) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `record ${row.seq} of the node database ${JSON.stringify(this.path)} is not JSON: the file is damaged`,
          { cause: error },
        )
      }
    })
  }

  async append(records: readonly TRecord[], epoch: number | null, replace = false): Promise<AppendResult> {
    return this.appendAll([{ records, epoch, replace }])
  }

  /**
   * A group commit: every append in one transaction (one fsync); all stored or none. A
   * checkpoint (`replace`) deletes the rows before it in the same transaction.
   */
  async appendAll(appends: readonly PendingAppend<TRecord>[]): Promise<AppendResult> {
    this.#assertOpen()
    for (const { epoch } of appends) {
      if (epoch !== null && !Number.isSafeInteger(epoch)) {
        throw new ChorusError(ErrorCode.InvalidArgument, `epoch must be an integer or null, got ${epoch}`)
      }
    }
    if (this.#failNext !== null) {
      const message = this.#failNext
      this.#failNext = null
      this.#counters.failed++
      return { ok: false, reason: 'failed', message }
    }
    let bodies: string[][]
    try {
      bodies = appends.map(({ records }) =>
        records.map((record) => {
          const body = JSON.stringify(record)
          if (typeof body !== 'string') throw new TypeError('a record is not JSON-serialisable')
          return body
        }),
      )
    } catch (error) {
      this.#counters.failed++
      return { ok: false, reason: 'failed', message: `cannot serialise the records: ${messageOf(error)}` }
    }
    try {
      const outcome = this.#commit.immediate(appends, bodies)
      if (outcome.ok) {
        this.#counters.appends += appends.length
        this.#counters.commits++
        this.#counters.records += bodies.reduce((sum, group) => sum + group.length, 0)
        for (const append of appends) if (append.replace === true) this.#counters.checkpoints++
      } else this.#counters.fenced++
      return outcome
    } catch (error) {
      this.#counters.failed++
      return { ok: false, reason: 'failed', message: sqliteFailure(error, 'the append', true).message }
    }
  }

  /**
   * Refuses a commit when the database file or its write-ahead log is no longer the one this
   * handle opened: deleted or replaced under a running node, every later commit would go to
   * an unlinked file and be acknowledged, then be gone at the next start.
   */
  #checkFiles(): void {
    if (this.#identity === null) return
    const now = fileIdentity(this.path)
    const wal = fileIdentity(`${this.path}-wal`)
    this.#walIdentity ??= wal
    if (now === this.#identity && (this.#walIdentity === null || wal === this.#walIdentity)) return
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `the node database ${this.path}${now === this.#identity ? '-wal' : ''} was deleted or replaced while the node ran: nothing more is stored. Stop the node, put the file back (or start it afresh to catch up from the others), and start it again.`,
    )
  }

  /** The body of an append's transaction: the files checked, the fence check, then the rows. */
  #store(appends: readonly PendingAppend<TRecord>[], bodies: readonly string[][]): AppendResult {
    this.#checkFiles()
    const stored = this.#sql.epoch.get()?.epoch ?? null
    let fence = stored
    for (const { epoch } of appends) {
      if (epoch === null) continue
      if (fence !== null && epoch < fence) return { ok: false, reason: 'fenced', epoch: fence }
      fence = epoch
    }
    if (fence !== null && fence !== stored) this.#sql.setEpoch.run(fence)
    appends.forEach((append, index) => {
      if (append.replace === true) this.#sql.clear.run()
      for (const body of bodies[index] as string[]) this.#sql.insert.run(body, hash32(body))
    })
    return { ok: true }
  }

  /** Makes the next append fail as a broken disk would (for tests of the runtime's handling). */
  failNextAppend(message = 'SqliteNodeStorage.failNextAppend was called'): void {
    this.#failNext = message
  }

  /** Closes the file; later calls throw `closed`. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#db.close()
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new ChorusError(ErrorCode.Closed, `the node database ${JSON.stringify(this.path)} is closed`)
    }
  }
}

function prepare(db: Database.Database) {
  return {
    all: db.prepare<[], RecordRow>('SELECT seq, body, checksum FROM records ORDER BY seq'),
    insert: db.prepare<[string, number]>('INSERT INTO records (body, checksum) VALUES (?, ?)'),
    clear: db.prepare<[]>('DELETE FROM records'),
    epoch: db.prepare<[], { epoch: number }>('SELECT epoch FROM fence WHERE only = 1'),
    setEpoch: db.prepare<[number]>('INSERT OR REPLACE INTO fence (only, epoch) VALUES (1, ?)'),
  }
}

/** The device and inode of the file at `path`, or null when there is none. */
function fileIdentity(path: string): string | null {
  const stat = statSync(path, { throwIfNoEntry: false })
  return stat === undefined ? null : `${stat.dev}:${stat.ino}`
}
