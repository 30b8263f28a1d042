/**
 * The schema version this build writes, kept in `chorus_meta` under `schema`. A database
 * written by a newer build is refused rather than misread.
 */
export const POSTGRES_SCHEMA_VERSION = 1

/**
 * The channel on which relays sharing one database tell each other what they stored (see
 * `StoreEvent`): `NOTIFY` is delivered when the transaction that sent it commits, so a relay
 * told of an append can read it at once.
 */
export const NOTIFY_CHANNEL = 'chorus_relay'

/**
 * The first key of the transaction-level advisory locks that serialise the writes to one
 * space (appends and compactions, from every relay): the second is `hashtext(space)`. Two
 * spaces whose names hash alike only wait for each other. Held only for one transaction.
 */
export const SPACE_LOCK = 0x63686f72

/** The lock held while a relay creates or upgrades the tables, so two starting at once do not race. */
export const MIGRATION_LOCK = 0x63686f73

/**
 * The tables, all prefixed `chorus_` so that they can live in a database shared with other
 * things. They mirror the SQLite store's (see `sqlite-schema.ts`): `records.key` is the
 * record key encoded by `encodeUtf16Key`, and `bytea` compares bytes as SQLite's BLOBs do,
 * so snapshots page in JavaScript string order. Where the SQLite store reads a change's dot
 * out of its JSON, this one keeps it in columns (`log.replica` and `log.counter`, and each
 * record's versions' replicas in `records.writers`): PostgreSQL's JSON functions refuse text
 * holding `\u0000`, which a record id or a value may.
 */
export const POSTGRES_SCHEMA = `
CREATE TABLE IF NOT EXISTS chorus_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS chorus_spaces (
  space text PRIMARY KEY, head bigint NOT NULL, floor bigint NOT NULL,
  collected_at bigint NOT NULL DEFAULT 0, collected text
);
CREATE TABLE IF NOT EXISTS chorus_received (
  space text NOT NULL, replica text NOT NULL, counter bigint NOT NULL, PRIMARY KEY (space, replica)
);
CREATE TABLE IF NOT EXISTS chorus_log (
  space text NOT NULL, seq bigint NOT NULL, replica text NOT NULL, counter bigint NOT NULL,
  change text NOT NULL, PRIMARY KEY (space, seq)
);
CREATE TABLE IF NOT EXISTS chorus_records (
  space text NOT NULL, key bytea NOT NULL, versions text NOT NULL, writers text[] NOT NULL,
  last_seq bigint NOT NULL, tombstone boolean NOT NULL, PRIMARY KEY (space, key)
);
CREATE INDEX IF NOT EXISTS chorus_records_tombstones ON chorus_records (space, last_seq) WHERE tombstone;
CREATE TABLE IF NOT EXISTS chorus_acks (
  space text NOT NULL, replica text NOT NULL, position bigint NOT NULL, seen_at bigint NOT NULL,
  PRIMARY KEY (space, replica)
);
CREATE TABLE IF NOT EXISTS chorus_replica_owners (replica text PRIMARY KEY, subject text NOT NULL);
`

/** Every statement the store runs, by what it does. Parameters are positional (`$1` …). */
export const SQL = {
  readMeta: "SELECT key, value FROM chorus_meta WHERE key IN ('schema', 'log')",
  writeMeta:
    'INSERT INTO chorus_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  lockSpace: `SELECT pg_advisory_xact_lock(${SPACE_LOCK}, hashtext($1))`,
  /**
   * The space's row and every replica's received counter, read in one statement (one
   * snapshot): a space never written gives head 0, floor 0.
   */
  loadSpace: `SELECT s.head, s.floor, s.collected_at, s.collected,
      (SELECT json_object_agg(replica, counter) FROM chorus_received WHERE space = $1)::text AS received
    FROM (SELECT 1) AS one
    LEFT JOIN chorus_spaces AS s ON s.space = $1`,
  head: 'SELECT head FROM chorus_spaces WHERE space = $1',
  spaceWithMark: 'SELECT head, floor, collected_at, collected FROM chorus_spaces WHERE space = $1',
  receivedOf: 'SELECT replica, counter FROM chorus_received WHERE space = $1 AND replica = ANY($2::text[])',
  upsertReceived: `INSERT INTO chorus_received (space, replica, counter)
    SELECT $1, replica, counter FROM unnest($2::text[], $3::bigint[]) AS t (replica, counter)
    ON CONFLICT (space, replica) DO UPDATE SET counter = excluded.counter`,
  upsertSpace: `INSERT INTO chorus_spaces (space, head, floor) VALUES ($1, $2, 0)
    ON CONFLICT (space) DO UPDATE SET head = excluded.head`,
  insertLog: `INSERT INTO chorus_log (space, seq, replica, counter, change)
    SELECT $1, seq, replica, counter, change
    FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS t (seq, replica, counter, change)`,
  records: 'SELECT key, versions FROM chorus_records WHERE space = $1 AND key = ANY($2::bytea[])',
  /**
   * `versions` is the versions' texts joined by commas, without the brackets of its JSON
   * array; `writers` their replicas joined by commas (replica ids hold none).
   */
  upsertRecords: `INSERT INTO chorus_records (space, key, versions, writers, last_seq, tombstone)
    SELECT $1, key, '[' || versions || ']', string_to_array(writers, ','), last_seq, tombstone
    FROM unnest($2::bytea[], $3::text[], $4::text[], $5::bigint[], $6::boolean[])
      AS t (key, versions, writers, last_seq, tombstone)
    ON CONFLICT (space, key) DO UPDATE SET versions = excluded.versions, writers = excluded.writers,
      last_seq = excluded.last_seq, tombstone = excluded.tombstone`,
  /**
   * The floor and the log entries after `$2`, at most `$3`, in one statement: a compaction
   * between reading the floor and the entries could otherwise delete some of them unseen.
   * Always one row at least (the floor, with no entry when there is none).
   */
  readLog: `SELECT coalesce(s.floor, 0) AS floor, l.seq, l.change
    FROM (SELECT 1) AS one
    LEFT JOIN chorus_spaces AS s ON s.space = $1
    LEFT JOIN LATERAL (
      SELECT seq, change FROM chorus_log WHERE space = $1 AND seq > $2 ORDER BY seq LIMIT $3
    ) AS l ON true
    ORDER BY l.seq`,
  snapshotFirst: 'SELECT key, versions FROM chorus_records WHERE space = $1 ORDER BY key LIMIT $2',
  snapshotAfter:
    'SELECT key, versions FROM chorus_records WHERE space = $1 AND key > $2 ORDER BY key LIMIT $3',
  ackExists: 'SELECT 1 AS one FROM chorus_acks WHERE space = $1 AND replica = $2',
  /** One row per acknowledgement, sorted by the caller so that two relays flushing at once cannot deadlock. */
  upsertAcks: `INSERT INTO chorus_acks (space, replica, position, seen_at)
    SELECT space, replica, position, seen_at
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS t (space, replica, position, seen_at)
    ON CONFLICT (space, replica) DO UPDATE SET
      position = greatest(chorus_acks.position, excluded.position),
      seen_at = greatest(chorus_acks.seen_at, excluded.seen_at)`,
  forget: 'DELETE FROM chorus_acks WHERE space = $1 AND seen_at < $2',
  countStale: 'SELECT count(*)::int AS n FROM chorus_acks WHERE space = $1 AND seen_at < $2',
  lowestAck: 'SELECT min(position) AS lowest FROM chorus_acks WHERE space = $1 AND seen_at >= $2',
  setFloor: 'UPDATE chorus_spaces SET floor = $1 WHERE space = $2',
  deleteLog: 'DELETE FROM chorus_log WHERE space = $1 AND seq <= $2',
  deleteTombstones: 'DELETE FROM chorus_records WHERE space = $1 AND tombstone AND last_seq <= $2',
  setCollected: 'UPDATE chorus_spaces SET collected_at = $1, collected = $2 WHERE space = $3',
  /** As the SQLite store's `collectedCounters` (see there): per replica, its highest counter at or below the floor. */
  collectedCounters: `SELECT replica, counter FROM (
      SELECT r.replica, coalesce(above.lowest - 1, r.counter) AS counter
      FROM chorus_received AS r LEFT JOIN (
        SELECT replica, min(counter) AS lowest FROM chorus_log WHERE space = $1 AND seq > $2 GROUP BY replica
      ) AS above ON above.replica = r.replica
      WHERE r.space = $1
    ) AS counters WHERE counter > 0`,
  /** The replicas whose changes are versions of the tombstones `deleteTombstones` takes. */
  tombstoneWriters: `SELECT DISTINCT unnest(writers) AS replica
    FROM chorus_records WHERE space = $1 AND tombstone AND last_seq <= $2`,
  listSpaces: 'SELECT space FROM chorus_spaces WHERE head > 0 ORDER BY space COLLATE "C"',
  stats: `SELECT count(*)::int AS spaces, coalesce(sum(head - floor), 0)::float8 AS entries
    FROM chorus_spaces WHERE head > 0`,
  claim:
    'INSERT INTO chorus_replica_owners (replica, subject) VALUES ($1, $2) ON CONFLICT (replica) DO NOTHING',
  owner: 'SELECT subject FROM chorus_replica_owners WHERE replica = $1',
  notify: `SELECT pg_notify('${NOTIFY_CHANNEL}', $1)`,
} as const
