import { randomUUID } from 'node:crypto'
import type Database from 'better-sqlite3'

/**
 * The schema version this build writes, kept in SQLite's `user_version`. Version 2 added the
 * spaces' collected-deletion marks (`spaces.collected_at` and `spaces.collected`), version 3
 * the deleted spaces (`deleted_spaces`): a build that did not know them would take a
 * deleted space's name for a new space.
 */
export const SCHEMA_VERSION = 3

/**
 * The relay database's tables.
 *
 * `log` and `records` rows can be large (a change, a record's versions), so they keep rowid
 * tables with a unique index; the small bookkeeping tables are clustered on their key.
 * `records.key` is the record key encoded by `encodeUtf16Key`, so that SQLite's byte order
 * is JavaScript's string order (see there). `spaces.collected` is the `received` of the
 * space's latest `CollectedMark` as JSON, and `collected_at` its `at`; NULL (and 0) until a
 * compaction collects a deletion.
 */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS spaces (
  space TEXT PRIMARY KEY, head INTEGER NOT NULL, floor INTEGER NOT NULL,
  collected_at INTEGER NOT NULL DEFAULT 0, collected TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS received (
  space TEXT NOT NULL, replica TEXT NOT NULL, counter INTEGER NOT NULL, PRIMARY KEY (space, replica)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
  space TEXT NOT NULL, seq INTEGER NOT NULL, change TEXT NOT NULL, UNIQUE (space, seq)
);
CREATE TABLE IF NOT EXISTS records (
  space TEXT NOT NULL, key BLOB NOT NULL, versions TEXT NOT NULL,
  last_seq INTEGER NOT NULL, tombstone INTEGER NOT NULL, UNIQUE (space, key)
);
CREATE INDEX IF NOT EXISTS records_tombstones ON records (space, last_seq) WHERE tombstone = 1;
CREATE TABLE IF NOT EXISTS acks (
  space TEXT NOT NULL, replica TEXT NOT NULL, position INTEGER NOT NULL, seen_at INTEGER NOT NULL,
  PRIMARY KEY (space, replica)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replica_owners (
  replica TEXT PRIMARY KEY, subject TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted_spaces (
  space TEXT PRIMARY KEY, deleted_at INTEGER NOT NULL
) WITHOUT ROWID;
`

/** Brings a version 1 database to version 2: the columns of the collected-deletion marks. */
const ADD_COLLECTED_MARKS = `
ALTER TABLE spaces ADD COLUMN collected_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN collected TEXT;
`

/**
 * Brings a database at `version` (its `user_version`, at most {@link SCHEMA_VERSION}; 0 for a
 * new one) to {@link SCHEMA_VERSION}, creating any table it lacks, in one transaction: a crash
 * midway leaves the database as it was, to be upgraded on the next open, rather than with
 * some columns added under the old version number.
 */
export function migrate(db: Database.Database, version: number): void {
  db.transaction(() => {
    if (version === 1) db.exec(ADD_COLLECTED_MARKS)
    db.exec(SCHEMA)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  })()
}

/**
 * The name of the database's log (`SpaceMeta.log`), made when a database without one is
 * opened: a new database, or a backup copy (see {@link forgetLogName}). Restored, a copy's
 * positions past its head mean other changes than those replicas read there before.
 */
export function logName(db: Database.Database): string {
  db.exec(LOG_TABLE)
  const row = db.prepare("SELECT value FROM relay_meta WHERE key = 'log'").get() as
    | { value: string }
    | undefined
  if (row !== undefined) return row.value
  const name = randomUUID()
  db.prepare("INSERT INTO relay_meta (key, value) VALUES ('log', ?)").run(name)
  return name
}

/**
 * Drops the log's name from a backup copy, so that every relay database made from the copy
 * names its log anew when a relay first opens it. Restoring one copy twice thus gives two
 * logs: a replica that read the first past the copy's head reads the second from the start.
 */
export function forgetLogName(db: Database.Database): void {
  db.exec(LOG_TABLE)
  db.prepare("DELETE FROM relay_meta WHERE key = 'log'").run()
}

/**
 * Where the log's name is kept: created by {@link logName} on open (a database an older build
 * made may have no table yet).
 */
const LOG_TABLE =
  'CREATE TABLE IF NOT EXISTS relay_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID'

/** What the store uses of a prepared statement. */
export interface Query<TParams extends unknown[], TRow> {
  get(...params: TParams): TRow | undefined
  all(...params: TParams): TRow[]
  run(...params: TParams): { readonly changes: number }
}

/** A row of `spaces`. */
export interface SpaceRow {
  readonly head: number
  readonly floor: number
  readonly collected_at: number
  readonly collected: string | null
}

/** A row of {@link DESCRIBE_SPACES}. */
export interface SpaceSummaryRow {
  readonly space: string
  readonly head: number
  readonly logEntries: number
  readonly writers: number
  readonly readers: number
  readonly links: number
}

/** Every space with its sizes (see `RelayStore.describeSpaces`); read-only, so `chorus-relay spaces` runs it beside a relay. */
export const DESCRIBE_SPACES = `SELECT s.space AS space, s.head AS head, s.head - s.floor AS logEntries,
    (SELECT count(*) FROM received AS r WHERE r.space = s.space AND substr(r.replica, 1, 6) <> 'relay-') AS writers,
    (SELECT count(*) FROM acks AS a WHERE a.space = s.space AND substr(a.replica, 1, 6) <> 'relay-') AS readers,
    (SELECT count(*) FROM received AS r WHERE r.space = s.space AND substr(r.replica, 1, 6) = 'relay-') AS links
  FROM spaces AS s ORDER BY s.space`

/** Every statement the store runs, prepared once per connection. */
export function prepareStatements(db: Database.Database) {
  const q = <TParams extends unknown[], TRow = unknown>(sql: string): Query<TParams, TRow> =>
    db.prepare<TParams, TRow>(sql)
  return {
    space: q<[string], { head: number; floor: number }>('SELECT head, floor FROM spaces WHERE space = ?'),
    /** `space` with the mark: for loading and compacting, not for every append and read. */
    spaceWithMark: q<[string], SpaceRow>(
      'SELECT head, floor, collected_at, collected FROM spaces WHERE space = ?',
    ),
    received: q<[string], { replica: string; counter: number }>(
      'SELECT replica, counter FROM received WHERE space = ?',
    ),
    receivedOne: q<[string, string], { counter: number }>(
      'SELECT counter FROM received WHERE space = ? AND replica = ?',
    ),
    upsertSpace: q<[string, number]>(
      'INSERT INTO spaces (space, head, floor) VALUES (?, ?, 0) ON CONFLICT (space) DO UPDATE SET head = excluded.head',
    ),
    upsertReceived: q<[string, string, number]>(
      'INSERT INTO received (space, replica, counter) VALUES (?, ?, ?) ON CONFLICT (space, replica) DO UPDATE SET counter = excluded.counter',
    ),
    readLog: q<[string, number, number], { seq: number; change: string }>(
      'SELECT seq, change FROM log WHERE space = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    snapshotFirst: q<[string, number], { key: Buffer; versions: string }>(
      'SELECT key, versions FROM records WHERE space = ? ORDER BY key LIMIT ?',
    ),
    snapshotAfter: q<[string, Buffer, number], { key: Buffer; versions: string }>(
      'SELECT key, versions FROM records WHERE space = ? AND key > ? ORDER BY key LIMIT ?',
    ),
    ackExists: q<[string, string], { one: number }>(
      'SELECT 1 AS one FROM acks WHERE space = ? AND replica = ?',
    ),
    upsertAck: q<[string, string, number, number]>(
      'INSERT INTO acks (space, replica, position, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (space, replica) DO UPDATE SET position = max(position, excluded.position), seen_at = max(seen_at, excluded.seen_at)',
    ),
    forget: q<[string, number]>('DELETE FROM acks WHERE space = ? AND seen_at < ?'),
    countStale: q<[string, number], { n: number }>(
      'SELECT count(*) AS n FROM acks WHERE space = ? AND seen_at < ?',
    ),
    lowestAck: q<[string, number], { lowest: number | null }>(
      'SELECT min(position) AS lowest FROM acks WHERE space = ? AND seen_at >= ?',
    ),
    setFloor: q<[number, string]>('UPDATE spaces SET floor = ? WHERE space = ?'),
    deleteLog: q<[string, number]>('DELETE FROM log WHERE space = ? AND seq <= ?'),
    deleteTombstones: q<[string, number]>(
      'DELETE FROM records WHERE space = ? AND tombstone = 1 AND last_seq <= ?',
    ),
    setCollected: q<[number, string, string]>(
      'UPDATE spaces SET collected_at = ?, collected = ? WHERE space = ?',
    ),
    /**
     * Per replica, the highest counter of its changes stored at or below the floor (the
     * second parameter), where above 0, found without the log entries compaction deleted. A
     * replica's changes are stored in counter order, each above the replica's received
     * counter: the lowest counter it has above the floor, less one, covers every change it has
     * at or below it (and only counters it skipped besides); with nothing above the floor,
     * its received counter does.
     */
    collectedCounters: q<[string, number, string], { replica: string; counter: number }>(
      `SELECT replica, counter FROM (
        SELECT received.replica AS replica, coalesce(above.lowest - 1, received.counter) AS counter
        FROM received LEFT JOIN (
          SELECT json_extract(change, '$.dot[0]') AS replica, min(json_extract(change, '$.dot[1]')) AS lowest
          FROM log WHERE space = ? AND seq > ? GROUP BY json_extract(change, '$.dot[0]')
        ) AS above ON above.replica = received.replica
        WHERE received.space = ?
      ) WHERE counter > 0`,
    ),
    /** The replicas whose changes are versions of the tombstones `deleteTombstones` takes. */
    tombstoneWriters: q<[string, number], { replica: string }>(
      `SELECT DISTINCT json_extract(version.value, '$.dot[0]') AS replica
      FROM records, json_each(records.versions) AS version
      WHERE records.space = ? AND records.tombstone = 1 AND records.last_seq <= ?`,
    ),
    listSpaces: q<[], { space: string }>('SELECT space FROM spaces ORDER BY space'),
    describeSpaces: q<[], SpaceSummaryRow>(DESCRIBE_SPACES),
    stats: q<[], { spaces: number; entries: number }>(
      'SELECT count(*) AS spaces, coalesce(sum(head - floor), 0) AS entries FROM spaces',
    ),
    claim: q<[string, string]>(
      'INSERT INTO replica_owners (replica, subject) VALUES (?, ?) ON CONFLICT (replica) DO NOTHING',
    ),
    owner: q<[string], { subject: string }>('SELECT subject FROM replica_owners WHERE replica = ?'),
    deletedSpaces: q<[], { space: string }>('SELECT space FROM deleted_spaces'),
    markDeleted: q<[string, number]>('INSERT INTO deleted_spaces (space, deleted_at) VALUES (?, ?)'),
    /**
     * The owners of the space's replicas that no other space knows: a replica id writes in
     * one space, and its binding to a user goes with it.
     */
    deleteOwners: q<[{ space: string }]>(
      `DELETE FROM replica_owners WHERE replica IN (
        SELECT replica FROM received WHERE space = @space UNION SELECT replica FROM acks WHERE space = @space
      ) AND replica NOT IN (
        SELECT replica FROM received WHERE space <> @space UNION SELECT replica FROM acks WHERE space <> @space
      )`,
    ),
    deleteAllLog: q<[string]>('DELETE FROM log WHERE space = ?'),
    deleteRecords: q<[string]>('DELETE FROM records WHERE space = ?'),
    deleteReceived: q<[string]>('DELETE FROM received WHERE space = ?'),
    deleteAcks: q<[string]>('DELETE FROM acks WHERE space = ?'),
    deleteSpaceRow: q<[string]>('DELETE FROM spaces WHERE space = ?'),
  }
}

/** Most rows one statement of {@link prepareBulkStatements} inserts or looks up. */
export const MAX_BULK_ROWS = 100

/**
 * Statements over several rows at once, one per row count (1 to {@link MAX_BULK_ROWS}),
 * prepared on first use. An append writes many rows, and each better-sqlite3 call costs about
 * as much as a small insert itself: one statement per hundred rows instead of one per row.
 */
export function prepareBulkStatements(db: Database.Database) {
  const cached = (row: string, sql: (rows: string) => string) => {
    const statements = new Map<number, Query<unknown[], unknown>>()
    return <TRow>(count: number): Query<unknown[], TRow> => {
      if (!Number.isSafeInteger(count) || count < 1 || count > MAX_BULK_ROWS) {
        throw new RangeError(`a bulk statement takes 1 to ${MAX_BULK_ROWS} rows, got ${count}`)
      }
      let statement = statements.get(count)
      if (statement === undefined) {
        statement = db.prepare<unknown[], unknown>(sql(Array.from({ length: count }, () => row).join(', ')))
        statements.set(count, statement)
      }
      return statement as Query<unknown[], TRow>
    }
  }
  return {
    /** Parameters per row: space, seq, change. */
    insertLog: cached('(?, ?, ?)', (rows) => `INSERT INTO log (space, seq, change) VALUES ${rows}`),
    /**
     * Parameters per row: space, key, versions, last_seq, tombstone. `versions` is the
     * versions' texts joined by commas, without the brackets of the JSON array it is stored as.
     */
    upsertRecords: cached(
      "(?, ?, '[' || ? || ']', ?, ?)",
      (rows) =>
        `INSERT INTO records (space, key, versions, last_seq, tombstone) VALUES ${rows} ON CONFLICT (space, key) DO UPDATE SET versions = excluded.versions, last_seq = excluded.last_seq, tombstone = excluded.tombstone`,
    ),
    /** Parameters: the space, then one key per row. */
    records: cached('?', (keys) => `SELECT key, versions FROM records WHERE space = ? AND key IN (${keys})`),
  }
}
