import { copyFileSync, existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ErrorCode, isChorusError, type ReplicaId, recordKey } from '@chorus/core'
import { runHubStoreConformance } from '@chorus/testkit/conformance'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteRelayStore, type SqliteWrite } from '../src/sqlite-relay-store.js'
import { SCHEMA_VERSION } from '../src/sqlite-schema.js'
import { backupDatabase } from '../src/sqlite-tools.js'
import { encodeUtf16Key } from '../src/utf16-key.js'
import { WorkerRelayStore } from '../src/worker-relay-store.js'
import { makeChange, makeRun, makeTempDir } from './support/fixtures.js'
import { A, B, DAY, runRelayStoreSuite, SPACE, T0 } from './support/relay-store-suite.js'

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

type SqliteKind = 'SqliteRelayStore' | 'WorkerRelayStore'

/** A store of `kind` over a database file, with its fault hook and commit count. */
function sqliteStore(kind: SqliteKind) {
  const temp = makeTempDir()
  const file = join(temp.dir, 'relay.db')
  let failOn: SqliteWrite | null = null
  let ackCommits = 0
  let current: SqliteRelayStore | WorkerRelayStore | null = null
  async function open(): Promise<SqliteRelayStore | WorkerRelayStore> {
    current =
      kind === 'WorkerRelayStore'
        ? await WorkerRelayStore.open(file)
        : new SqliteRelayStore(file, {
            beforeCommit: (write) => {
              if (write === 'acks') ackCommits++
              if (write === failOn) {
                failOn = null
                throw new Error(`${write} failed (simulated)`)
              }
            },
          })
    return current
  }
  /** A number read through a second, read-only connection: what is committed. */
  function committed(sql: string, ...params: unknown[]): number | undefined {
    const reader = new Database(file, { readonly: true })
    try {
      return (reader.prepare(sql).get(...params) as { n: number } | undefined)?.n
    } finally {
      reader.close()
    }
  }
  return {
    temp,
    file,
    open,
    committed,
    fail: async (write: SqliteWrite) => {
      if (current instanceof WorkerRelayStore) await current.injectFault(write)
      else failOn = write
    },
    ackCommits: () => (kind === 'SqliteRelayStore' ? ackCommits : null),
  }
}

for (const kind of ['SqliteRelayStore', 'WorkerRelayStore'] as const) {
  runRelayStoreSuite(kind, async () => {
    const sqlite = sqliteStore(kind)
    return {
      store: await sqlite.open(),
      reopen: sqlite.open,
      fail: sqlite.fail,
      committedLogRows: async () => sqlite.committed('SELECT count(*) AS n FROM log') ?? 0,
      committedAck: async (replica: ReplicaId) =>
        sqlite.committed('SELECT position AS n FROM acks WHERE replica = ?', replica),
      committedAckRows: async () => sqlite.committed('SELECT count(*) AS n FROM acks') ?? 0,
      ackCommits: sqlite.ackCommits,
      cleanup: async () => sqlite.temp.remove(),
    }
  })
}

describe.each(['SqliteRelayStore', 'WorkerRelayStore'] as const)('%s files', (kind) => {
  let sqlite: ReturnType<typeof sqliteStore>
  let temp: ReturnType<typeof makeTempDir>
  let file: string
  let store: SqliteRelayStore | WorkerRelayStore

  const open = () => sqlite.open()
  const committed = (sql: string) => sqlite.committed(sql)

  beforeEach(async () => {
    sqlite = sqliteStore(kind)
    temp = sqlite.temp
    file = sqlite.file
    store = await open()
  })

  afterEach(async () => {
    await store.close()
    temp.remove()
  })

  async function recordKeys(): Promise<string[]> {
    const page = await store.readSnapshot(SPACE, null, 1000)
    return page.changes.map((change) => recordKey(change.collection, change.id))
  }

  describe('schema versions', () => {
    /** Closes the store and makes a version 1 database by hand at a new `file`, which `setUp` then changes. */
    async function replaceWithVersion1(setUp: (db: Database.Database) => void): Promise<void> {
      await store.close()
      temp.remove()
      sqlite = sqliteStore(kind)
      temp = sqlite.temp
      file = sqlite.file
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

  describe('backups', () => {
    it('copies a database in use, online or with VACUUM INTO, into files that open as the same data under a new log name, each copy of them too', async () => {
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
      // A copy of a copy too, however many are made: each database restored from one names
      // its log anew, so restoring the same backup twice makes two logs.
      const pristine = join(temp.dir, 'pristine.db')
      backupDatabase(file, pristine)
      for (const again of ['again-1.db', 'again-2.db']) {
        copyFileSync(pristine, join(temp.dir, again))
        const restored = new SqliteRelayStore(join(temp.dir, again))
        names.add((await restored.loadSpace(SPACE)).log)
        await restored.close()
      }
      expect([...names].every((name) => typeof name === 'string' && name.length > 0)).toBe(true)
      expect(names.size).toBe(5)
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

  it.each(['', '-wal'])(
    'refuses every commit once its database%s is deleted under it, so nothing more is acknowledged',
    async (suffix) => {
      await store.append(SPACE, A, makeRun(A, 1, 2))
      rmSync(`${file}${suffix}`)
      const outcome = await store.append(SPACE, A, makeRun(A, 3, 3)).catch((error: unknown) => error)
      expect(isChorusError(outcome, ErrorCode.StorageFailed)).toBe(true)
      expect((outcome as Error).message).toMatch(/was deleted or replaced while the relay ran/)
      const again = await store.noteAck(SPACE, B, 1, T0).catch((error: unknown) => error)
      expect(isChorusError(again, ErrorCode.StorageFailed)).toBe(true)
      // Its close cannot write the acknowledgement it holds either; a store opened anew is new.
      await store.close().catch(() => undefined)
      store = await open()
    },
  )
})
