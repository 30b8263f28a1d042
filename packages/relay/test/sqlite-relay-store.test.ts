import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { asReplicaId, asSpaceId, ErrorCode, isChorusError, type LogEntry, recordKey } from '@chorus/core'
import { runHubStoreConformance } from '@chorus/testkit/conformance'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { backupDatabase } from '../src/sqlite-backup.js'
import { SqliteRelayStore, type SqliteWrite } from '../src/sqlite-relay-store.js'
import { SCHEMA_VERSION } from '../src/sqlite-schema.js'
import { decodeUtf16Key, encodeUtf16Key } from '../src/utf16-key.js'
import { WorkerRelayStore } from '../src/worker-relay-store.js'
import { makeChange, makeRun, makeTempDir } from './support/fixtures.js'

runHubStoreConformance('WorkerRelayStore', async () => {
  const temp = makeTempDir()
  const file = join(temp.dir, 'relay.db')
  const store = await WorkerRelayStore.open(file)
  return {
    store,
    reopen: async () => WorkerRelayStore.open(file),
    failNextWrite: () => {
      void store.injectFault('append')
    },
    cleanup: async () => temp.remove(),
  }
})

runHubStoreConformance('SqliteRelayStore', async () => {
  const temp = makeTempDir()
  const file = join(temp.dir, 'relay.db')
  let failNext = false
  const open = () =>
    new SqliteRelayStore(file, {
      beforeCommit: (write) => {
        if (write === 'append' && failNext) {
          failNext = false
          throw new Error('disk full (simulated)')
        }
      },
    })
  return {
    store: open(),
    reopen: async () => open(),
    failNextWrite: () => {
      failNext = true
    },
    cleanup: async () => temp.remove(),
  }
})

const SPACE = asSpaceId('team-notes')
const A = asReplicaId('alice')
const B = asReplicaId('bob')
const C = asReplicaId('carol')
const DAY = 86_400_000
const T0 = 1_700_000_000_000

/** The tables as schema version 1 made them, before the spaces' collected-deletion marks. */
const SCHEMA_V1 = `
CREATE TABLE spaces (
  space TEXT PRIMARY KEY, head INTEGER NOT NULL, floor INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE received (
  space TEXT NOT NULL, replica TEXT NOT NULL, counter INTEGER NOT NULL, PRIMARY KEY (space, replica)
) WITHOUT ROWID;
CREATE TABLE log (
  space TEXT NOT NULL, seq INTEGER NOT NULL, change TEXT NOT NULL, UNIQUE (space, seq)
);
CREATE TABLE records (
  space TEXT NOT NULL, key BLOB NOT NULL, versions TEXT NOT NULL,
  last_seq INTEGER NOT NULL, tombstone INTEGER NOT NULL, UNIQUE (space, key)
);
CREATE INDEX records_tombstones ON records (space, last_seq) WHERE tombstone = 1;
CREATE TABLE acks (
  space TEXT NOT NULL, replica TEXT NOT NULL, position INTEGER NOT NULL, seen_at INTEGER NOT NULL,
  PRIMARY KEY (space, replica)
) WITHOUT ROWID;
CREATE TABLE replica_owners (
  replica TEXT PRIMARY KEY, subject TEXT NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 1;
`

describe.each(['SqliteRelayStore', 'WorkerRelayStore'] as const)(
  '%s beyond the HubStore contract',
  (kind) => {
    let temp: ReturnType<typeof makeTempDir>
    let file: string
    let store: SqliteRelayStore | WorkerRelayStore
    let failOn: SqliteWrite | null
    let ackCommits = 0

    /** Makes the store's next commit of kind `write` fail. */
    async function fail(write: SqliteWrite): Promise<void> {
      if (store instanceof WorkerRelayStore) await store.injectFault(write)
      else failOn = write
    }

    async function open(): Promise<SqliteRelayStore | WorkerRelayStore> {
      if (kind === 'WorkerRelayStore') return WorkerRelayStore.open(file)
      return new SqliteRelayStore(file, {
        beforeCommit: (write) => {
          if (write === 'acks') ackCommits++
          if (write === failOn) {
            failOn = null
            throw new Error(`${write} failed (simulated)`)
          }
        },
      })
    }

    beforeEach(async () => {
      temp = makeTempDir()
      file = join(temp.dir, 'relay.db')
      failOn = null
      ackCommits = 0
      store = await open()
    })

    afterEach(async () => {
      await store.close()
      temp.remove()
    })

    /** Rows of a table counted through a second, read-only connection: what is committed. */
    function committed(sql: string): number {
      const reader = new Database(file, { readonly: true })
      try {
        return (reader.prepare(sql).get() as { n: number }).n
      } finally {
        reader.close()
      }
    }

    async function recordKeys(): Promise<string[]> {
      const page = await store.readSnapshot(SPACE, null, 1000)
      return page.changes.map((change) => recordKey(change.collection, change.id))
    }

    describe('compaction', () => {
      it('raises the floor to the lowest acknowledged position and drops the log below it', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 6))
        await store.noteAck(SPACE, A, 6, T0)
        await store.noteAck(SPACE, B, 4, T0)
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY })
        expect(result).toEqual({ floor: 4, logEntriesDeleted: 4, tombstonesDeleted: 0, replicasForgotten: 0 })
        expect(await store.loadSpace(SPACE)).toMatchObject({ head: 6, floor: 4 })
        expect((await store.readLog(SPACE, 4, 100)).map((entry) => entry.seq)).toEqual([5, 6])
        const below = await store.readLog(SPACE, 3, 100).catch((error: unknown) => error)
        expect(isChorusError(below, ErrorCode.ResyncRequired)).toBe(true)
        expect(committed('SELECT count(*) AS n FROM log')).toBe(2)
        // Records are compacted state, not history: all six are still there for snapshots.
        expect(await recordKeys()).toHaveLength(6)
      })

      it('never lowers the floor, and with no replica known compacts up to the head', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        expect((await store.compact(SPACE, { now: T0, horizonMs: DAY })).floor).toBe(3)
        await store.append(SPACE, A, makeRun(A, 4, 5))
        await store.noteAck(SPACE, B, 1, T0)
        expect((await store.compact(SPACE, { now: T0, horizonMs: DAY })).floor).toBe(3)
        expect(await store.readLog(SPACE, 3, 100)).toHaveLength(2)
        expect(await store.compact(asSpaceId('never-written'), { now: T0, horizonMs: DAY })).toEqual({
          floor: 0,
          logEntriesDeleted: 0,
          tombstonesDeleted: 0,
          replicasForgotten: 0,
        })
      })

      it('collects a deleted record only once every known replica has acknowledged past it', async () => {
        const put = makeChange(A, 1, { id: 'gone' })
        const remove = makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null)
        const kept = makeChange(A, 3, { id: 'kept' })
        await store.append(SPACE, A, [put, remove, kept])
        await store.noteAck(SPACE, A, 3, T0)
        await store.noteAck(SPACE, B, 1, T0)
        expect((await store.compact(SPACE, { now: T0, horizonMs: DAY })).tombstonesDeleted).toBe(0)
        expect(await recordKeys()).toEqual([recordKey('notes', 'gone'), recordKey('notes', 'kept')])
        await store.noteAck(SPACE, B, 2, T0 + 1)
        const result = await store.compact(SPACE, { now: T0 + 1, horizonMs: DAY })
        expect(result).toMatchObject({ floor: 2, tombstonesDeleted: 1 })
        expect(await recordKeys()).toEqual([recordKey('notes', 'kept')])
      })

      it('keeps a deletion that has a concurrent edit beside it, and a record written again', async () => {
        const base = makeChange(A, 1, { id: 'x' })
        const deleteX = makeChange(A, 2, { id: 'x', context: { [A]: 1 } }, null)
        const editX = makeChange(B, 1, { id: 'x', context: { [A]: 1 } }, { title: 'edited offline' })
        const deleteY = makeChange(A, 3, { id: 'y' }, null)
        const putY = makeChange(B, 2, { id: 'y', context: { [A]: 3 } }, { title: 'back' })
        await store.append(SPACE, A, [base, deleteX, deleteY])
        await store.append(SPACE, B, [editX, putY])
        await store.noteAck(SPACE, A, 5, T0)
        await store.noteAck(SPACE, B, 5, T0)
        expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toMatchObject({
          floor: 5,
          tombstonesDeleted: 0,
        })
        const page = await store.readSnapshot(SPACE, null, 100)
        expect(page.changes).toHaveLength(3)
      })

      it('forgets replicas not seen within the horizon; a forgotten one counts again once it acknowledges', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 10))
        await store.noteAck(SPACE, A, 10, T0 + 40 * DAY)
        await store.noteAck(SPACE, B, 2, T0)
        expect(await store.compact(SPACE, { now: T0 + 20 * DAY, horizonMs: 30 * DAY })).toMatchObject({
          floor: 2,
          replicasForgotten: 0,
        })
        expect(await store.compact(SPACE, { now: T0 + 40 * DAY, horizonMs: 30 * DAY })).toMatchObject({
          floor: 10,
          replicasForgotten: 1,
        })
        await store.append(SPACE, A, makeRun(A, 11, 12))
        await store.noteAck(SPACE, B, 11, T0 + 41 * DAY)
        expect((await store.compact(SPACE, { now: T0 + 41 * DAY, horizonMs: 30 * DAY })).floor).toBe(10)
        expect((await store.compact(SPACE, { now: T0 + 41 * DAY, horizonMs: Infinity })).floor).toBe(10)
      })

      it('writes a new replica through at once and buffers later progress until a flush', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 5))
        await store.noteAck(SPACE, B, 2, T0)
        expect(committed("SELECT position AS n FROM acks WHERE replica = 'bob'")).toBe(2)
        await store.noteAck(SPACE, B, 4, T0 + 1)
        await store.noteAck(SPACE, B, 3, T0 + 2)
        expect(committed("SELECT position AS n FROM acks WHERE replica = 'bob'")).toBe(2)
        await store.flushAcks()
        expect(committed("SELECT position AS n FROM acks WHERE replica = 'bob'")).toBe(4)
        await store.noteAck(SPACE, B, 5, T0 + 3)
        await store.close()
        store = await open()
        expect(committed("SELECT position AS n FROM acks WHERE replica = 'bob'")).toBe(5)
      })

      it('writes the replicas first seen together in one commit, before any of their acks resolves', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 5))
        const readers = Array.from({ length: 20 }, (_, i) => asReplicaId(`reader-${i}`))
        ackCommits = 0
        await Promise.all(readers.map((reader, i) => store.noteAck(SPACE, reader, i % 5, T0)))
        expect(committed('SELECT count(*) AS n FROM acks')).toBe(20)
        // The worker's commits are not observable from here; it runs the same store code.
        if (kind === 'SqliteRelayStore') expect(ackCommits).toBe(1)
      })

      it('rejects the acks of first-seen replicas whose write failed, and writes them with the next flush', async () => {
        await fail('acks')
        const outcome = await store.noteAck(SPACE, B, 2, T0).catch((error: unknown) => error)
        expect(isChorusError(outcome, ErrorCode.StorageFailed)).toBe(true)
        expect(committed('SELECT count(*) AS n FROM acks')).toBe(0)
        await store.flushAcks()
        expect(committed("SELECT position AS n FROM acks WHERE replica = 'bob'")).toBe(2)
      })

      it('a failing compaction changes nothing', async () => {
        const remove = makeChange(A, 1, { id: 'gone' }, null)
        await store.append(SPACE, A, [remove, ...makeRun(A, 2, 3)])
        await store.noteAck(SPACE, A, 3, T0)
        await fail('compact')
        const outcome = await store
          .compact(SPACE, { now: T0, horizonMs: DAY })
          .catch((error: unknown) => error)
        expect(isChorusError(outcome, ErrorCode.StorageFailed)).toBe(true)
        expect(await store.loadSpace(SPACE)).toMatchObject({ head: 3, floor: 0 })
        expect(await store.readLog(SPACE, 0, 100)).toHaveLength(3)
        expect(await recordKeys()).toHaveLength(3)
        expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toMatchObject({
          floor: 3,
          logEntriesDeleted: 3,
          tombstonesDeleted: 1,
        })
      })
    })

    describe('collected-deletion marks', () => {
      /** Per replica, the counter of its last change in the log at or below `floor`. */
      function lastCountersAtOrBelow(entries: readonly LogEntry[], floor: number): Record<string, number> {
        const last: Record<string, number> = {}
        for (const { seq, change } of entries) if (seq <= floor) last[change.dot[0]] = change.dot[1]
        return last
      }

      /**
       * Alice writes and deletes `gone` (positions 1 and 2) and writes `kept` (3); Bob writes a
       * record (4) and deletes `gone` too, not having seen Alice's deletion (5); Alice writes
       * and deletes `later` (6 and 7).
       */
      async function writeTwoDeletions(): Promise<void> {
        await store.append(SPACE, A, [
          makeChange(A, 1, { id: 'gone' }),
          makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null),
          makeChange(A, 3, { id: 'kept' }),
        ])
        await store.append(SPACE, B, [
          makeChange(B, 1, { id: 'bobs' }),
          makeChange(B, 2, { id: 'gone', context: { [A]: 1 } }, null),
        ])
        await store.append(SPACE, A, [
          makeChange(A, 4, { id: 'later' }),
          makeChange(A, 5, { id: 'later', context: { [A]: 4 } }, null),
        ])
      }

      /** Alice, Bob and Carol (who only reads) acknowledge `position`; the floor rises to it. */
      async function everyoneAcks(position: number, now: number): Promise<void> {
        for (const replica of [A, B, C]) await store.noteAck(SPACE, replica, position, now)
      }

      it('marks a compaction that collects a deletion at the head, with each writer’s last counter at or below the floor', async () => {
        await writeTwoDeletions()
        const history = await store.readLog(SPACE, 0, 100)
        await everyoneAcks(5, T0)
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY })
        // `gone` holds a deletion of each: Alice has changes above the floor (counters 4 and
        // 5) and Bob none, so each way of finding a writer's counter is used; Carol, who wrote
        // nothing, has no counter.
        const mark = { at: 7, received: { [A]: 3, [B]: 2 } }
        expect(result).toEqual({
          floor: 5,
          logEntriesDeleted: 5,
          tombstonesDeleted: 1,
          replicasForgotten: 0,
          collected: mark,
        })
        expect(mark.received).toEqual(lastCountersAtOrBelow(history, 5))
        expect(await store.loadSpace(SPACE)).toMatchObject({ head: 7, floor: 5, collected: mark })
        await store.close()
        store = await open()
        expect(await store.loadSpace(SPACE)).toEqual({
          head: 7,
          floor: 5,
          received: { [A]: 5, [B]: 2 },
          log: expect.any(String),
          collected: mark,
        })
      })

      it('collects no more deletions until the floor passes the mark, and then marks them anew', async () => {
        await writeTwoDeletions()
        const history = await store.readLog(SPACE, 0, 100)
        await everyoneAcks(5, T0)
        const first = (await store.compact(SPACE, { now: T0, horizonMs: DAY })).collected
        expect(first).toEqual({ at: 7, received: { [A]: 3, [B]: 2 } })
        // `later` (deleted at 7) is at the floor now, but replicas may not have been told of
        // the first mark yet: the log goes, the tombstone stays.
        await everyoneAcks(7, T0 + 1)
        expect(await store.compact(SPACE, { now: T0 + 1, horizonMs: DAY })).toEqual({
          floor: 7,
          logEntriesDeleted: 2,
          tombstonesDeleted: 0,
          replicasForgotten: 0,
          collected: first,
        })
        expect(await recordKeys()).toContain(recordKey('notes', 'later'))
        // Nothing moved: the early return still reports the mark.
        expect(await store.compact(SPACE, { now: T0 + 1, horizonMs: DAY })).toEqual({
          floor: 7,
          logEntriesDeleted: 0,
          tombstonesDeleted: 0,
          replicasForgotten: 0,
          collected: first,
        })
        await store.append(SPACE, B, makeRun(B, 3, 3))
        history.push(...(await store.readLog(SPACE, 7, 100)))
        await everyoneAcks(8, T0 + 2)
        // Only Alice wrote what this one collects (`later`): only she is named.
        const second = { at: 8, received: { [A]: 5 } }
        expect(await store.compact(SPACE, { now: T0 + 2, horizonMs: DAY })).toEqual({
          floor: 8,
          logEntriesDeleted: 1,
          tombstonesDeleted: 1,
          replicasForgotten: 0,
          collected: second,
        })
        expect(second.received[A]).toBe(lastCountersAtOrBelow(history, 8)[A])
        expect(await recordKeys()).not.toContain(recordKey('notes', 'later'))
        expect((await store.loadSpace(SPACE)).collected).toEqual(second)
      })

      it('makes no mark when a compaction collects nothing', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY })
        expect(result).toEqual({ floor: 3, logEntriesDeleted: 3, tombstonesDeleted: 0, replicasForgotten: 0 })
        expect(await store.loadSpace(SPACE)).not.toHaveProperty('collected')
      })
    })

    describe('schema versions', () => {
      /** Closes the store and makes a version 1 database by hand at a new `file`, which `setUp` then changes. */
      async function replaceWithVersion1(setUp: (db: Database.Database) => void): Promise<void> {
        await store.close()
        temp.remove()
        temp = makeTempDir()
        file = join(temp.dir, 'relay.db')
        const db = new Database(file)
        try {
          db.exec(SCHEMA_V1)
          setUp(db)
        } finally {
          db.close()
        }
      }

      it('upgrades a version 1 database in place, keeping its data, with no mark until a compaction collects', async () => {
        const gone = makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null)
        const kept = makeChange(A, 3, { id: 'kept' })
        await replaceWithVersion1((db) => {
          db.prepare('INSERT INTO spaces (space, head, floor) VALUES (?, 3, 1)').run(SPACE)
          db.prepare('INSERT INTO received (space, replica, counter) VALUES (?, ?, 3)').run(SPACE, A)
          const log = db.prepare('INSERT INTO log (space, seq, change) VALUES (?, ?, ?)')
          log.run(SPACE, 2, JSON.stringify(gone))
          log.run(SPACE, 3, JSON.stringify(kept))
          const record = db.prepare(
            'INSERT INTO records (space, key, versions, last_seq, tombstone) VALUES (?, ?, ?, ?, ?)',
          )
          record.run(SPACE, encodeUtf16Key(recordKey('notes', 'gone')), JSON.stringify([gone]), 2, 1)
          record.run(SPACE, encodeUtf16Key(recordKey('notes', 'kept')), JSON.stringify([kept]), 3, 0)
        })
        store = await open()
        expect(committed('SELECT user_version AS n FROM pragma_user_version')).toBe(SCHEMA_VERSION)
        const meta = await store.loadSpace(SPACE)
        expect(meta).toEqual({ head: 3, floor: 1, received: { [A]: 3 }, log: expect.any(String) })
        expect(meta).not.toHaveProperty('collected')
        expect(await store.readLog(SPACE, 1, 100)).toEqual([
          { seq: 2, change: gone },
          { seq: 3, change: kept },
        ])
        expect(await recordKeys()).toEqual([recordKey('notes', 'gone'), recordKey('notes', 'kept')])
        await store.append(SPACE, B, makeRun(B, 1, 1))
        await store.noteAck(SPACE, B, 3, T0)
        // Bob's only change is above the floor: he has no counter at or below it.
        expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toEqual({
          floor: 3,
          logEntriesDeleted: 2,
          tombstonesDeleted: 1,
          replicasForgotten: 0,
          collected: { at: 4, received: { [A]: 3 } },
        })
      })

      it('refuses a database a newer relay made', async () => {
        await replaceWithVersion1((db) => db.pragma(`user_version = ${SCHEMA_VERSION + 1}`))
        const outcome = await open().catch((error: unknown) => error)
        expect(isChorusError(outcome, ErrorCode.StorageFailed)).toBe(true)
        expect((outcome as Error).message).toMatch(/upgrade the relay/)
      })
    })

    describe('record order', () => {
      // U+1F600 is the surrogate pair D83D DE00: before U+E000…U+FFFF in UTF-16 order, but
      // after them in UTF-8 byte order, which is how SQLite compares TEXT.
      const ids = [
        '\u{1F600}',
        '\uFB01x',
        'a\uFFFF',
        'a\u{1F600}',
        'z',
        'a',
        '\uE000',
        'ab\u0000c',
        '\u{10FFFF}',
      ]

      it('the chosen ids order differently in UTF-16 and UTF-8, so the test can tell', () => {
        const utf16 = [...ids].sort()
        const utf8 = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')))
        expect(utf16).not.toEqual(utf8)
        for (const id of ids) expect(decodeUtf16Key(encodeUtf16Key(id))).toBe(id)
        expect(decodeUtf16Key(encodeUtf16Key('lone \uD800 surrogate'))).toBe('lone \uD800 surrogate')
      })

      it('pages snapshots in JavaScript string order, with emoji ids, one record per page', async () => {
        await store.append(
          SPACE,
          A,
          ids.map((id, i) => makeChange(A, i + 1, { id })),
        )
        const expected = ids.map((id) => recordKey('notes', id)).sort()
        const seen: string[] = []
        let afterKey: string | null = null
        for (let page = 0; page <= ids.length; page++) {
          const result: Awaited<ReturnType<SqliteRelayStore['readSnapshot']>> = await store.readSnapshot(
            SPACE,
            afterKey,
            1,
          )
          for (const change of result.changes) seen.push(recordKey(change.collection, change.id))
          if (result.nextKey === null) break
          afterKey = result.nextKey
        }
        expect(seen).toEqual(expected)
        await store.close()
        store = await open()
        expect(await recordKeys()).toEqual(expected)
      })
    })

    describe('replica ownership', () => {
      it('binds a replica id to its first subject, durably', async () => {
        expect(await store.claimReplica(A, 'alice@example.com')).toBe(true)
        expect(await store.claimReplica(A, 'alice@example.com')).toBe(true)
        expect(await store.claimReplica(A, 'mallory')).toBe(false)
        await store.close()
        store = await open()
        expect(await store.claimReplica(A, 'mallory')).toBe(false)
        expect(await store.claimReplica(C, 'mallory')).toBe(true)
      })
    })

    describe('backups', () => {
      it('copies a database in use, online or with VACUUM INTO, into files that open as the same data under a new log name', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        await store.append(SPACE, B, makeRun(B, 1, 2))
        const online = join(temp.dir, 'online.db')
        const vacuumed = join(temp.dir, 'vacuumed.db')
        await store.backup(online)
        backupDatabase(file, vacuumed)
        expect(() => backupDatabase(file, vacuumed)).toThrow(/backing up/)
        const names = new Set<string | undefined>([(await store.loadSpace(SPACE)).log])
        for (const copy of [online, vacuumed]) {
          const restored = new SqliteRelayStore(copy)
          const { log, ...copied } = await restored.loadSpace(SPACE)
          const { log: _, ...original } = await store.loadSpace(SPACE)
          expect(copied).toEqual(original)
          // Restored, the copy's positions past its head would mean other changes than those
          // replicas read from the original: it names its log anew.
          names.add(log)
          expect(await restored.readLog(SPACE, 0, 100)).toEqual(await store.readLog(SPACE, 0, 100))
          await restored.close()
        }
        expect([...names].every((name) => typeof name === 'string' && name.length > 0)).toBe(true)
        expect(names.size).toBe(3)
        // And the name lasts: the original opens again under its own.
        const name = (await store.loadSpace(SPACE)).log
        await store.close()
        store = await open()
        expect((await store.loadSpace(SPACE)).log).toBe(name)
      })
    })

    it('closes cleanly: the WAL is checkpointed away and later calls reject with closed', async () => {
      await store.append(SPACE, A, makeRun(A, 1, 2))
      expect(existsSync(`${file}-wal`)).toBe(true)
      await store.close()
      expect(existsSync(`${file}-wal`)).toBe(false)
      const outcome = await store.loadSpace(SPACE).catch((error: unknown) => error)
      expect(isChorusError(outcome, ErrorCode.Closed)).toBe(true)
      store = await open()
    })
  },
)
