import {
  type Change,
  ChorusError,
  ErrorCode,
  freezeJson,
  type HlcState,
  type ListedRecord,
  type LocalBatch,
  localBatchRecord,
  type RecordId,
  type RecordPage,
  type RecordState,
  type RemoteBatch,
  type ReplicaId,
  type ReplicaMeta,
  type ReplicaStore,
  type SnapshotResume,
  type SpaceId,
  type StoredRecord,
  sqliteFailure,
} from '@chorus/core'
import { frozen } from './frozen.js'

/**
 * The schema version, kept in SQLite's `user_version`. Version 2 added `meta.log`, version 3
 * `meta.max_frame`, version 4 `meta.resume` (JSON text).
 */
const SCHEMA_VERSION = 4

const SCHEMA = `
  CREATE TABLE meta (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    replica_id TEXT NOT NULL,
    space TEXT NOT NULL,
    counter INTEGER NOT NULL,
    clock_wall INTEGER NOT NULL,
    clock_counter INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    log TEXT,
    max_frame INTEGER,
    resume TEXT
  );
  -- id is the record id in UTF-16BE: byte order is then JavaScript's string order (UTF-16
  -- code units), which SQLite's text collation (UTF-8 bytes) is not, and lone surrogates
  -- survive, which they would not as TEXT.
  CREATE TABLE records (
    collection TEXT NOT NULL,
    id BLOB NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (collection, id)
  ) WITHOUT ROWID;
  CREATE TABLE outbox (
    counter INTEGER PRIMARY KEY,
    change TEXT NOT NULL
  );
`

/** The part of better-sqlite3's statement API this store uses. */
interface SqliteStatement {
  run(...params: unknown[]): unknown
  get(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
}

/** The part of better-sqlite3's `Database` this store uses. */
interface SqliteDatabase {
  prepare(source: string): SqliteStatement
  pragma(source: string, options?: { readonly simple?: boolean }): unknown
  exec(source: string): unknown
  transaction(fn: () => void): { immediate(): void }
  close(): unknown
}

type SqliteConstructor = new (filename: string, options?: { readonly timeout?: number }) => SqliteDatabase

/**
 * How long opening waits for a file another connection has locked, in ms: time for a process
 * that is shutting down to let go, not for one that keeps running (it holds the lock until it
 * closes the store).
 */
const OPEN_WAIT_MS = 1_000

interface MetaRow {
  readonly replica_id: string
  readonly space: string
  readonly counter: number
  readonly clock_wall: number
  readonly clock_counter: number
  readonly cursor: number
  readonly log: string | null
  readonly max_frame: number | null
  readonly resume: string | null
}

/** Options for {@link openSqliteReplicaStore}. */
export interface SqliteReplicaStoreOptions {
  /** The database file (created if missing; its directory must exist), or `':memory:'`. */
  readonly path: string
}

/**
 * Opens (creating if needed) a replica's SQLite database file, with better-sqlite3.
 *
 * better-sqlite3 is an optional peer dependency: install it to use this store. It is loaded
 * only here, so browser bundles of `@chorus/client` never see it.
 */
export function openSqliteReplicaStore(options: SqliteReplicaStoreOptions): Promise<SqliteReplicaStore> {
  return SqliteReplicaStore.open(options)
}

/** The stores this process has open, to say so when a file fails to open because of one. */
const openHere = new Set<SqliteReplicaStore>()

/** The open store of this process on the file at `path` (the same file by its real path), if any. */
async function openedHere(path: string): Promise<SqliteReplicaStore | undefined> {
  if (openHere.size === 0) return undefined
  try {
    const { realpath } = (await import(/* @vite-ignore */ FS_PROMISES)) as NodeFsPromises
    const target = await realpath(path)
    for (const store of openHere) {
      if ((await realpath(store.path).catch(() => null)) === target) return store
    }
  } catch {
    // The file cannot be resolved: no store of this process can hold it.
  }
  return undefined
}

/**
 * True when a file exists at `path` and this process may not write it (SQLite reports some such
 * opens as an I/O error of its locks, not as read-only).
 */
async function isReadOnlyFile(path: string): Promise<boolean> {
  try {
    const { access } = (await import(/* @vite-ignore */ FS_PROMISES)) as NodeFsPromises
    await access(path, WRITABLE)
    return false
  } catch (error) {
    const code = (error as { code?: unknown }).code
    return code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
  }
}

/**
 * A durable {@link ReplicaStore} in one SQLite file, for Node processes.
 *
 * WAL journal with `synchronous = FULL`: a write's promise resolves only once its commit is
 * on disk, so a process killed at any point (kill -9, power loss) keeps every write whose
 * promise resolved, and none half-done. Each write is one immediate transaction. The store
 * holds the file locked (`locking_mode = EXCLUSIVE`) from opening until it is closed, so a
 * second process — or a second store in this one — fails to open it with `storage-failed`:
 * two replicas on one file would each apply and write behind the other's back. The lock goes
 * with the process, kill -9 included.
 */
export class SqliteReplicaStore implements ReplicaStore {
  /** The database file. */
  readonly path: string
  readonly #db: SqliteDatabase
  readonly #sql: ReturnType<typeof prepare>
  #closed = false
  #fault: { readonly cause: unknown } | null = null

  private constructor(path: string, db: SqliteDatabase) {
    this.path = path
    this.#db = db
    this.#sql = prepare(db)
  }

  /** See {@link openSqliteReplicaStore}. */
  static async open(options: SqliteReplicaStoreOptions): Promise<SqliteReplicaStore> {
    if (typeof options !== 'object' || options === null) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        'openSqliteReplicaStore needs an options object: openSqliteReplicaStore({ path })',
      )
    }
    const { path } = options
    if (typeof path !== 'string' || path === '') {
      throw new ChorusError(ErrorCode.InvalidArgument, 'the SQLite path must be a non-empty string')
    }
    // Node would open the file named up to the NUL and leave the rest out: another file.
    if (path.includes('\0')) {
      throw new ChorusError(ErrorCode.InvalidArgument, 'the SQLite path must not contain a NUL character')
    }
    const Database = await loadBetterSqlite3()
    const what = `opening the SQLite database ${JSON.stringify(path)}`
    let db: SqliteDatabase | undefined
    try {
      db = new Database(path, { timeout: OPEN_WAIT_MS })
      migrate(db, path)
      // Take the write lock now, and (exclusive locking) keep it until the store closes.
      db.exec('BEGIN IMMEDIATE')
      db.exec('COMMIT')
      const store = new SqliteReplicaStore(path, db)
      openHere.add(store)
      return store
    } catch (error) {
      db?.close()
      const failure = sqliteFailure(error, what, false)
      if (await isReadOnlyFile(path)) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `${what} failed: the database file is read-only. Give this process write access to the file and its directory.`,
          { cause: error },
        )
      }
      const holder = await openedHere(path)
      if (holder === undefined) throw failure
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `${what} failed: this process has it open already, in a store not closed (${JSON.stringify(holder.path)}). Use that store, or close it first; a store that createReplica refused is still open.`,
        { cause: error },
      )
    }
  }

  /**
   * Test hook: the next write transaction does its writes, then fails, as when the disk is
   * full — it rolls back, and the call rejects with `storage-failed` whose cause is `cause`.
   */
  failNextWrite(
    cause: unknown = Object.assign(new Error('simulated: disk full'), { code: 'SQLITE_FULL' }),
  ): void {
    this.#fault = { cause }
  }

  async loadMeta(): Promise<ReplicaMeta | undefined> {
    return this.#read('reading the replica metadata', () => this.#meta())
  }

  async initMeta(meta: ReplicaMeta): Promise<void> {
    this.#write('creating the replica metadata', () => {
      this.#sql.insertMeta.run(
        meta.replicaId,
        meta.space,
        meta.counter,
        meta.clock.wall,
        meta.clock.counter,
        meta.cursor,
      )
    })
  }

  async getRecord(collection: string, id: RecordId): Promise<RecordState | undefined> {
    return this.#read('reading a record', () => {
      const row = this.#sql.getRecord.get(collection, idKey(id)) as { state: string } | undefined
      return row === undefined ? undefined : frozen(JSON.parse(row.state) as RecordState)
    })
  }

  async getRecords(
    keys: readonly { readonly collection: string; readonly id: RecordId }[],
  ): Promise<(RecordState | undefined)[]> {
    return this.#read('reading records', () =>
      keys.map(({ collection, id }) => {
        const row = this.#sql.getRecord.get(collection, idKey(id)) as { state: string } | undefined
        return row === undefined ? undefined : frozen(JSON.parse(row.state) as RecordState)
      }),
    )
  }

  async listRecordsPage(collection: string, page: RecordPage): Promise<StoredRecord[]> {
    return this.#read('listing a page of records', () =>
      this.#pageRows(collection, page).map((row) => toRecord(collection, row)),
    )
  }

  /** `listRecordsPage`, with a record whose only version is a put given as its value alone. */
  async listValuesPage(collection: string, page: RecordPage): Promise<ListedRecord[]> {
    return this.#read('listing a page of records', () =>
      this.#pageRows(collection, page).map((row) => toListed(collection, row)),
    )
  }

  #pageRows(collection: string, page: RecordPage): { id: Uint8Array; state: string }[] {
    const limit = page.limit ?? -1 // SQLite: a negative LIMIT means none
    const statement =
      page.order === 'asc'
        ? page.after === undefined
          ? this.#sql.pageAsc
          : this.#sql.pageAscAfter
        : page.after === undefined
          ? this.#sql.pageDesc
          : this.#sql.pageDescAfter
    return (
      page.after === undefined
        ? statement.all(collection, limit)
        : statement.all(collection, idKey(page.after), limit)
    ) as { id: Uint8Array; state: string }[]
  }

  async listRecords(collection: string): Promise<StoredRecord[]> {
    return this.#read('listing records', () =>
      (this.#sql.listRecords.all(collection) as { id: Uint8Array; state: string }[]).map((row) =>
        toRecord(collection, row),
      ),
    )
  }

  async allRecords(): Promise<StoredRecord[]> {
    return this.#read('listing records', () =>
      (this.#sql.allRecords.all() as { collection: string; id: Uint8Array; state: string }[]).map((row) =>
        toRecord(row.collection, row),
      ),
    )
  }

  async hasRecords(): Promise<boolean> {
    return this.#read('looking for records', () => this.#sql.anyRecord.get() !== undefined)
  }

  async commitLocal(write: {
    readonly record: StoredRecord
    readonly change: Change
    readonly clock: HlcState
  }): Promise<void> {
    const { record, change, clock } = write
    const counter = change.dot[1]
    this.#write('saving a local write', () => {
      const meta = this.#requireMeta()
      if (counter !== meta.counter + 1) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `saving a local write failed: another replica instance writes to ${JSON.stringify(this.path)} — its counter is at ${meta.counter}, this write has ${counter}. Nothing was written. Open one replica per file at a time, and restart to continue from what is stored.`,
        )
      }
      this.#sql.putRecord.run(record.collection, idKey(record.id), JSON.stringify(record.state))
      this.#sql.insertOutbox.run(counter, JSON.stringify(change))
      this.#sql.updateCounter.run(counter, clock.wall, clock.counter)
    })
  }

  async commitLocalBatch(batch: LocalBatch): Promise<void> {
    const { changes } = batch
    const last = changes[changes.length - 1]
    if (last === undefined) return
    this.#write('saving local writes', () => {
      const meta = this.#requireMeta()
      const first = changes[0]?.dot[1] ?? 0
      if (first !== meta.counter + 1 || last.dot[1] !== meta.counter + changes.length) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `saving local writes failed: another replica instance writes to ${JSON.stringify(this.path)} — its counter is at ${meta.counter}, these writes start at ${first}. Nothing was written. Open one replica per file at a time, and restart to continue from what is stored.`,
        )
      }
      for (let i = 0; i < changes.length; i++) {
        const record = localBatchRecord(batch, i)
        const change = changes[i] as Change
        this.#sql.putRecord.run(record.collection, idKey(record.id), JSON.stringify(record.state))
        this.#sql.insertOutbox.run(change.dot[1], JSON.stringify(change))
      }
      this.#sql.updateCounter.run(last.dot[1], batch.clock.wall, batch.clock.counter)
    })
  }

  async applyRemote(batch: RemoteBatch): Promise<void> {
    this.#write('applying remote changes', () => {
      const meta = this.#requireMeta()
      for (const record of batch.records) {
        // A record with no versions left is removed (see `ReplicaStore.applyRemote`).
        if (record.state.versions.length === 0)
          this.#sql.deleteRecord.run(record.collection, idKey(record.id))
        else this.#sql.putRecord.run(record.collection, idKey(record.id), JSON.stringify(record.state))
      }
      this.#sql.updateClock.run(batch.clock.wall, batch.clock.counter, batch.cursor ?? meta.cursor)
      if (batch.log !== undefined) this.#sql.updateLog.run(batch.log)
      if (batch.maxFrame !== undefined) this.#sql.updateMaxFrame.run(batch.maxFrame)
      if (batch.resume !== undefined)
        this.#sql.updateResume.run(batch.resume === null ? null : JSON.stringify(batch.resume))
    })
  }

  async readOutbox(after: number, limit: number): Promise<Change[]> {
    return this.#read('reading the outbox', () => {
      // SQLite reads a negative LIMIT as "no limit".
      if (limit <= 0) return []
      return (this.#sql.readOutbox.all(after, Math.floor(limit)) as { change: string }[]).map((row) =>
        frozen(JSON.parse(row.change) as Change),
      )
    })
  }

  async outboxSize(): Promise<number> {
    return this.#read('counting the outbox', () => (this.#sql.outboxSize.get() as { n: number }).n)
  }

  async dropOutbox(upTo: number): Promise<void> {
    this.#write('dropping acknowledged changes', () => {
      this.#sql.dropOutbox.run(upTo)
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    openHere.delete(this)
    this.#db.close()
  }

  /**
   * Closes the store and deletes its file, with the journal files SQLite keeps beside it
   * (`-wal`, `-shm`). Opening the path again makes a new replica.
   */
  async destroy(): Promise<void> {
    await this.close()
    if (this.path === ':memory:') return
    const what = `deleting the SQLite database ${JSON.stringify(this.path)}`
    try {
      const { rm } = (await import(/* @vite-ignore */ FS_PROMISES)) as NodeFsPromises
      // The journals first: a crash part way leaves the database whole, not a journal that a
      // new database at this path would take for its own.
      for (const suffix of ['-wal', '-shm', '-journal', ''])
        await rm(`${this.path}${suffix}`, { force: true })
    } catch (error) {
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `${what} failed: check that this process may write to its directory.`,
        { cause: error },
      )
    }
  }

  #meta(): ReplicaMeta | undefined {
    const row = this.#sql.getMeta.get() as MetaRow | undefined
    if (row === undefined) return undefined
    return {
      replicaId: row.replica_id as ReplicaId,
      space: row.space as SpaceId,
      counter: row.counter,
      clock: { wall: row.clock_wall, counter: row.clock_counter },
      cursor: row.cursor,
      ...(row.log === null ? {} : { log: row.log }),
      ...(row.max_frame === null ? {} : { maxFrame: row.max_frame }),
      ...(row.resume === null ? {} : { resume: JSON.parse(row.resume) as SnapshotResume }),
    }
  }

  #requireMeta(): ReplicaMeta {
    const meta = this.#meta()
    if (meta === undefined) throw new ChorusError(ErrorCode.Internal, 'the store has no replica metadata yet')
    return meta
  }

  #check(): void {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
  }

  #read<TResult>(what: string, run: () => TResult): TResult {
    this.#check()
    try {
      return run()
    } catch (error) {
      throw sqliteFailure(error, what, false)
    }
  }

  /** Runs `body` in one immediate transaction; if it throws, or the fault hook is armed, it rolls back. */
  #write(what: string, body: () => void): void {
    this.#check()
    const fault = this.#fault
    this.#fault = null
    try {
      this.#db
        .transaction(() => {
          body()
          if (fault !== null) throw new InjectedFault(fault.cause)
        })
        .immediate()
    } catch (error) {
      throw sqliteFailure(error instanceof InjectedFault ? error.cause : error, what, true)
    }
  }
}

/** Carries the fault hook's cause out of a transaction, which rolls back when it is thrown. */
class InjectedFault extends Error {
  constructor(cause: unknown) {
    super('injected storage fault', { cause })
  }
}

function prepare(db: SqliteDatabase) {
  return {
    getMeta: db.prepare('SELECT * FROM meta WHERE only = 1'),
    insertMeta: db.prepare(
      'INSERT INTO meta (only, replica_id, space, counter, clock_wall, clock_counter, cursor) VALUES (1, ?, ?, ?, ?, ?, ?)',
    ),
    updateCounter: db.prepare(
      'UPDATE meta SET counter = ?, clock_wall = ?, clock_counter = ? WHERE only = 1',
    ),
    updateClock: db.prepare('UPDATE meta SET clock_wall = ?, clock_counter = ?, cursor = ? WHERE only = 1'),
    updateLog: db.prepare('UPDATE meta SET log = ? WHERE only = 1'),
    updateMaxFrame: db.prepare('UPDATE meta SET max_frame = ? WHERE only = 1'),
    updateResume: db.prepare('UPDATE meta SET resume = ? WHERE only = 1'),
    getRecord: db.prepare('SELECT state FROM records WHERE collection = ? AND id = ?'),
    listRecords: db.prepare('SELECT id, state FROM records WHERE collection = ? ORDER BY id'),
    pageAsc: db.prepare('SELECT id, state FROM records WHERE collection = ? ORDER BY id LIMIT ?'),
    pageAscAfter: db.prepare(
      'SELECT id, state FROM records WHERE collection = ? AND id > ? ORDER BY id LIMIT ?',
    ),
    pageDesc: db.prepare('SELECT id, state FROM records WHERE collection = ? ORDER BY id DESC LIMIT ?'),
    pageDescAfter: db.prepare(
      'SELECT id, state FROM records WHERE collection = ? AND id < ? ORDER BY id DESC LIMIT ?',
    ),
    allRecords: db.prepare('SELECT collection, id, state FROM records ORDER BY collection, id'),
    putRecord: db.prepare('INSERT OR REPLACE INTO records (collection, id, state) VALUES (?, ?, ?)'),
    deleteRecord: db.prepare('DELETE FROM records WHERE collection = ? AND id = ?'),
    anyRecord: db.prepare('SELECT 1 AS one FROM records LIMIT 1'),
    insertOutbox: db.prepare('INSERT INTO outbox (counter, change) VALUES (?, ?)'),
    readOutbox: db.prepare('SELECT change FROM outbox WHERE counter > ? ORDER BY counter LIMIT ?'),
    outboxSize: db.prepare('SELECT count(*) AS n FROM outbox'),
    dropOutbox: db.prepare('DELETE FROM outbox WHERE counter <= ?'),
  }
}

/** Sets durability and creates (or checks) the schema. */
function migrate(db: SqliteDatabase, path: string): void {
  // Before WAL: the WAL index then lives in this process, and no other connection gets in.
  db.pragma('locking_mode = EXCLUSIVE')
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  const version = db.pragma('user_version', { simple: true })
  if (version === SCHEMA_VERSION) return
  if (version === 1 || version === 2 || version === 3) {
    db.transaction(() => {
      if (version === 1) db.exec('ALTER TABLE meta ADD COLUMN log TEXT')
      if (version <= 2) db.exec('ALTER TABLE meta ADD COLUMN max_frame INTEGER')
      db.exec('ALTER TABLE meta ADD COLUMN resume TEXT')
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    }).immediate()
    return
  }
  if (typeof version === 'number' && version > SCHEMA_VERSION) {
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `${JSON.stringify(path)} was created by a newer version of Chorus (schema ${version}, this one knows ${SCHEMA_VERSION}). Update @chorus/client, or use another path.`,
    )
  }
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as {
    n: number
  }
  if (tables.n > 0) {
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `${JSON.stringify(path)} holds tables but is not a Chorus replica database. Use another path.`,
    )
  }
  db.transaction(() => {
    db.exec(SCHEMA)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  }).immediate()
}

function toRecord(collection: string, row: { id: Uint8Array; state: string }): StoredRecord {
  return frozen({ collection, id: idFromKey(row.id), state: JSON.parse(row.state) as RecordState })
}

/** {@link toRecord}, or only the value (frozen) of a record whose only version is a put. */
function toListed(collection: string, row: { id: Uint8Array; state: string }): ListedRecord {
  const state = JSON.parse(row.state) as RecordState
  const only = state.versions.length === 1 ? state.versions[0] : undefined
  if (only === undefined || only.op.type !== 'put')
    return frozen({ collection, id: idFromKey(row.id), state })
  freezeJson(only.op.value)
  return { id: idFromKey(row.id), value: only.op.value }
}

/** A record id as UTF-16BE bytes: byte order is code-unit order, and every string round-trips. */
function idKey(id: string): Uint8Array {
  const bytes = new Uint8Array(id.length * 2)
  for (let i = 0; i < id.length; i++) {
    const unit = id.charCodeAt(i)
    bytes[2 * i] = unit >> 8
    bytes[2 * i + 1] = unit & 0xff
  }
  return bytes
}

function idFromKey(bytes: Uint8Array): RecordId {
  let id = ''
  for (let i = 0; i + 1 < bytes.length; i += 2)
    id += String.fromCharCode(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0))
  return id as RecordId
}

/**
 * Loads better-sqlite3 on first use. The specifier is computed so this browser-first
 * package's compilation does not pull in better-sqlite3's types (and all of Node's with
 * them), and so bundlers do not try to follow a native module.
 */
/** Node's `fs/promises`, loaded like better-sqlite3 so browser bundles never see it. */
const FS_PROMISES = 'node:fs/promises'

/** The part of Node's `fs/promises` the store uses. */
interface NodeFsPromises {
  rm(path: string, options: { readonly force: boolean }): Promise<void>
  realpath(path: string): Promise<string>
  access(path: string, mode: number): Promise<void>
}

/** `fs.constants.W_OK`. */
const WRITABLE = 2

async function loadBetterSqlite3(): Promise<SqliteConstructor> {
  const specifier = 'better-sqlite3'
  let loaded: unknown
  try {
    loaded = await import(/* @vite-ignore */ specifier)
  } catch (error) {
    throw new ChorusError(
      ErrorCode.StorageFailed,
      'the SQLite store needs the better-sqlite3 package, which could not be loaded: install it (npm install better-sqlite3).',
      { cause: error },
    )
  }
  const Database = (loaded as { default?: unknown }).default
  if (typeof Database !== 'function') {
    throw new ChorusError(ErrorCode.StorageFailed, 'better-sqlite3 did not load as expected: reinstall it.')
  }
  return Database as SqliteConstructor
}
