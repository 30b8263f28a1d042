/**
 * The schema version this build writes, kept in `chorus_meta` under `schema`. A database
 * written by a newer build is refused rather than misread. Version 2 added the deleted
 * spaces (`chorus_deleted_spaces`, and `chorus_append` refusing them).
 */
export const POSTGRES_SCHEMA_VERSION = 2

/** The SQLSTATE `chorus_append` raises for a space that was deleted. */
export const SPACE_DELETED_STATE = 'CHDEL'

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
CREATE TABLE IF NOT EXISTS chorus_deleted_spaces (space text PRIMARY KEY, deleted_at bigint NOT NULL);

-- An append's writes, computed by the relay from what it read of the space: in the one
-- transaction of this call, under the space's lock, all of them, or none (NULL) when what the
-- append depends on moved since the read — a record it touches (its \`last_seq\`, NULL for
-- one absent) or the counter of a replica it appends for — because another relay appended or
-- compacted meanwhile; the relay then reads again. Appends by other relays to other records
-- and replicas do not stand in its way: its entries take the positions after the head as it
-- is now (offsets 1, 2, … from it), and it returns that head. Then the notice to the other
-- relays, sent when it commits: \`notice\` is a JSON object, which gets the new head as its
-- first field. \`fail\`, when not null, fails the call after its writes (fault-injection tests).
CREATE OR REPLACE FUNCTION chorus_append(
  p_space text,
  read_key bytea[], read_last bigint[], read_replica text[], read_counter bigint[],
  log_offset bigint[], log_replica text[], log_counter bigint[], log_change text[],
  record_key bytea[], record_versions text[], record_writers text[], record_offset bigint[],
  record_tombstone boolean[],
  received_replica text[], received_counter bigint[],
  notice text, fail text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  base bigint;
  found_last bigint;
  found_counter bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(${SPACE_LOCK}, hashtext(p_space));
  IF EXISTS (SELECT 1 FROM chorus_deleted_spaces WHERE space = p_space) THEN
    RAISE EXCEPTION 'space % was deleted', p_space USING ERRCODE = '${SPACE_DELETED_STATE}';
  END IF;
  -- One index lookup each (a join with the arrays could scan the tables).
  FOR i IN 1 .. coalesce(cardinality(read_key), 0) LOOP
    found_last := (SELECT r.last_seq FROM chorus_records AS r WHERE r.space = p_space AND r.key = read_key[i]);
    IF found_last IS DISTINCT FROM read_last[i] THEN
      RETURN NULL;
    END IF;
  END LOOP;
  FOR i IN 1 .. coalesce(cardinality(read_replica), 0) LOOP
    found_counter := coalesce(
      (SELECT c.counter FROM chorus_received AS c WHERE c.space = p_space AND c.replica = read_replica[i]),
      0
    );
    IF found_counter <> read_counter[i] THEN
      RETURN NULL;
    END IF;
  END LOOP;
  base := coalesce((SELECT head FROM chorus_spaces WHERE space = p_space), 0);
  INSERT INTO chorus_log (space, seq, replica, counter, change)
    SELECT p_space, base + o, replica, counter, change
    FROM unnest(log_offset, log_replica, log_counter, log_change) AS t (o, replica, counter, change);
  INSERT INTO chorus_records (space, key, versions, writers, last_seq, tombstone)
    SELECT p_space, key, '[' || versions || ']', string_to_array(writers, ','), base + o, tombstone
    FROM unnest(record_key, record_versions, record_writers, record_offset, record_tombstone)
      AS t (key, versions, writers, o, tombstone)
    ON CONFLICT (space, key) DO UPDATE SET versions = excluded.versions, writers = excluded.writers,
      last_seq = excluded.last_seq, tombstone = excluded.tombstone;
  INSERT INTO chorus_received (space, replica, counter)
    SELECT p_space, replica, counter FROM unnest(received_replica, received_counter) AS t (replica, counter)
    ON CONFLICT (space, replica) DO UPDATE SET counter = excluded.counter;
  INSERT INTO chorus_spaces (space, head, floor)
    VALUES (p_space, base + coalesce(cardinality(log_offset), 0), 0)
    ON CONFLICT (space) DO UPDATE SET head = excluded.head;
  IF notice IS NOT NULL THEN
    PERFORM pg_notify(
      '${NOTIFY_CHANNEL}',
      '{"head":' || (base + coalesce(cardinality(log_offset), 0)) || ',' || substr(notice, 2)
    );
  END IF;
  IF fail IS NOT NULL THEN
    RAISE EXCEPTION '%', fail;
  END IF;
  RETURN base;
END
$$;
`

/** Every statement the store runs, by what it does. Parameters are positional (`$1` …). */
export const SQL = {
  readMeta: "SELECT key, value FROM chorus_meta WHERE key IN ('schema', 'log')",
  writeMeta:
    'INSERT INTO chorus_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  /**
   * The space's row and every replica's received counter, read in one statement (one
   * snapshot): a space never written gives head 0, floor 0.
   */
  lockSpace: `SELECT pg_advisory_xact_lock(${SPACE_LOCK}, hashtext($1))`,
  /**
   * What an append depends on, in one statement (one snapshot): the space's head (`s`,
   * always one row), the counters of the replicas in `$2` (`r`), and the records whose keys
   * are in `$3` with their `last_seq` (`k`).
   */
  appendRead: `SELECT 's' AS kind, NULL::text AS name, coalesce(s.head, 0) AS a, NULL::bytea AS key,
      NULL::text AS versions
    FROM (SELECT 1) AS one LEFT JOIN chorus_spaces AS s ON s.space = $1
    UNION ALL
    SELECT 'r', replica, counter, NULL, NULL FROM chorus_received WHERE space = $1 AND replica = ANY($2::text[])
    UNION ALL
    SELECT 'k', NULL, last_seq, key, versions FROM chorus_records WHERE space = $1 AND key = ANY($3::bytea[])
    UNION ALL
    SELECT 'd', NULL, NULL, NULL, NULL FROM chorus_deleted_spaces WHERE space = $1`,
  append: `SELECT chorus_append($1, $2::bytea[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[],
    $7::text[], $8::bigint[], $9::text[], $10::bytea[], $11::text[], $12::text[], $13::bigint[],
    $14::boolean[], $15::text[], $16::bigint[], $17, $18) AS base`,
  loadSpace: `SELECT s.head, s.floor, s.collected_at, s.collected,
      (SELECT json_object_agg(replica, counter) FROM chorus_received WHERE space = $1)::text AS received,
      EXISTS (SELECT 1 FROM chorus_deleted_spaces WHERE space = $1) AS deleted
    FROM (SELECT 1) AS one
    LEFT JOIN chorus_spaces AS s ON s.space = $1`,
  spaceWithMark: 'SELECT head, floor, collected_at, collected FROM chorus_spaces WHERE space = $1',
  /** The space's head as committed (what a ping is answered with). */
  readHead: 'SELECT head FROM chorus_spaces WHERE space = $1',
  /**
   * The floor and the log entries after `$2`, at most `$3`, in one statement: a compaction
   * between reading the floor and the entries could otherwise delete some of them unseen.
   * Always one row at least (the floor, with no entry when there is none).
   */
  readLog: `SELECT coalesce(s.floor, 0) AS floor, l.seq, l.change,
      EXISTS (SELECT 1 FROM chorus_deleted_spaces WHERE space = $1) AS deleted
    FROM (SELECT 1) AS one
    LEFT JOIN chorus_spaces AS s ON s.space = $1
    LEFT JOIN LATERAL (
      SELECT seq, change FROM chorus_log WHERE space = $1 AND seq > $2 ORDER BY seq LIMIT $3
    ) AS l ON true
    ORDER BY l.seq`,
  /**
   * A page of records, in one statement with whether the space is deleted: a page read after a
   * deletion is empty, and must not pass for the last one. Always one row at least.
   */
  snapshotFirst: `SELECT EXISTS (SELECT 1 FROM chorus_deleted_spaces WHERE space = $1) AS deleted, r.key, r.versions
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
      SELECT key, versions FROM chorus_records WHERE space = $1 ORDER BY key LIMIT $2
    ) AS r ON true
    ORDER BY r.key`,
  snapshotAfter: `SELECT EXISTS (SELECT 1 FROM chorus_deleted_spaces WHERE space = $1) AS deleted, r.key, r.versions
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
      SELECT key, versions FROM chorus_records WHERE space = $1 AND key > $2 ORDER BY key LIMIT $3
    ) AS r ON true
    ORDER BY r.key`,
  ackExists: 'SELECT 1 AS one FROM chorus_acks WHERE space = $1 AND replica = $2',
  /** One row per acknowledgement, sorted by the caller so that two relays flushing at once cannot deadlock. */
  upsertAcks: `INSERT INTO chorus_acks (space, replica, position, seen_at)
    SELECT space, replica, position, seen_at
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS t (space, replica, position, seen_at)
    WHERE NOT EXISTS (SELECT 1 FROM chorus_deleted_spaces AS d WHERE d.space = t.space)
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
  describeSpaces: `SELECT s.space, s.head, s.head - s.floor AS "logEntries",
      (SELECT count(*)::int FROM chorus_received AS r WHERE r.space = s.space AND left(r.replica, 6) <> 'relay-') AS writers,
      (SELECT count(*)::int FROM chorus_acks AS a WHERE a.space = s.space AND left(a.replica, 6) <> 'relay-') AS readers,
      (SELECT count(*)::int FROM chorus_received AS r WHERE r.space = s.space AND left(r.replica, 6) = 'relay-') AS links
    FROM chorus_spaces AS s WHERE s.head > 0 ORDER BY s.space COLLATE "C"`,
  stats: `SELECT count(*)::int AS spaces, coalesce(sum(head - floor), 0)::float8 AS entries
    FROM chorus_spaces WHERE head > 0`,
  claim:
    'INSERT INTO chorus_replica_owners (replica, subject) VALUES ($1, $2) ON CONFLICT (replica) DO NOTHING',
  owner: 'SELECT subject FROM chorus_replica_owners WHERE replica = $1',
  notify: `SELECT pg_notify('${NOTIFY_CHANNEL}', $1)`,
  /** Several notices in one transaction: delivered together, in order, or not at all. */
  notifyAll: `SELECT pg_notify('${NOTIFY_CHANNEL}', payload) FROM unnest($1::text[]) WITH ORDINALITY AS t(payload, n) ORDER BY n`,
  isDeleted: 'SELECT 1 AS one FROM chorus_deleted_spaces WHERE space = $1',
  markDeleted: 'INSERT INTO chorus_deleted_spaces (space, deleted_at) VALUES ($1, $2)',
  /** As the SQLite store's `deleteOwners` (see there). */
  deleteOwners: `DELETE FROM chorus_replica_owners WHERE replica IN (
      SELECT replica FROM chorus_received WHERE space = $1 UNION SELECT replica FROM chorus_acks WHERE space = $1
    ) AND replica NOT IN (
      SELECT replica FROM chorus_received WHERE space <> $1 UNION SELECT replica FROM chorus_acks WHERE space <> $1
    )`,
  /** Everything a space holds (its name then stays among the deleted). */
  deleteSpaceData: [
    'DELETE FROM chorus_log WHERE space = $1',
    'DELETE FROM chorus_records WHERE space = $1',
    'DELETE FROM chorus_received WHERE space = $1',
    'DELETE FROM chorus_acks WHERE space = $1',
    'DELETE FROM chorus_spaces WHERE space = $1',
  ],
} as const
