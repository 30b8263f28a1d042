import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createReplica } from '@chorus/client'
import { asRecordId, ErrorCode, isChorusError } from '@chorus/core'
import { runReplicaStoreConformance } from '@chorus/testkit/conformance'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { openSqliteReplicaStore } from '../src/storage/sqlite-replica-store.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const scratch = mkdtempSync(join(tmpdir(), 'chorus-sqlite-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/**
 * Writes a database at schema `version` as that release made it: `meta` with the columns up
 * to and including `extraColumns` (after `cursor`), its one row `metaRow`, and the records and
 * outbox tables, which no version since has changed.
 */
function writeOldDatabase(path: string, version: number, extraColumns: string, metaRow: string): void {
  const old = new Database(path)
  old.exec(`
    CREATE TABLE meta (only INTEGER PRIMARY KEY CHECK (only = 1), replica_id TEXT NOT NULL, space TEXT NOT NULL,
      counter INTEGER NOT NULL, clock_wall INTEGER NOT NULL, clock_counter INTEGER NOT NULL, cursor INTEGER NOT NULL${extraColumns});
    CREATE TABLE records (collection TEXT NOT NULL, id BLOB NOT NULL, state TEXT NOT NULL,
      PRIMARY KEY (collection, id)) WITHOUT ROWID;
    CREATE TABLE outbox (counter INTEGER PRIMARY KEY, change TEXT NOT NULL);
    INSERT INTO meta VALUES (${metaRow});
    PRAGMA user_version = ${version};
  `)
  old.close()
}

let files = 0
runReplicaStoreConformance('SqliteReplicaStore (real files)', async () => {
  const path = join(scratch, `conformance-${++files}.sqlite`)
  let current = await openSqliteReplicaStore({ path })
  return {
    store: current,
    reopen: async () => {
      current = await openSqliteReplicaStore({ path })
      return current
    },
    failNextWrite: () => current.failNextWrite(),
    cleanup: async () => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
    },
  }
})

describe('SqliteReplicaStore', () => {
  it("a replica's destroy deletes the file and its journals; a replica made there again is new", async () => {
    const path = join(scratch, 'destroyed.sqlite')
    const replica = await createReplica({
      space: 'destroyed',
      storage: await openSqliteReplicaStore({ path }),
      networkEvents: null,
    })
    await replica.collection('notes').put('a', { title: 'only here' })
    expect(existsSync(path)).toBe(true)
    await expect(replica.destroy()).rejects.toMatchObject({ code: ErrorCode.PendingChanges })
    expect(await replica.collection('notes').get('a')).toEqual({ title: 'only here' })

    await replica.destroy({ discardPending: true })
    for (const suffix of ['', '-wal', '-shm', '-journal']) expect(existsSync(`${path}${suffix}`)).toBe(false)
    const again = await createReplica({
      space: 'destroyed',
      storage: await openSqliteReplicaStore({ path }),
      networkEvents: null,
    })
    expect(again.replicaId).not.toBe(replica.replicaId)
    expect(await again.collection('notes').list()).toEqual([])
    await again.close()
  })

  it('opens a schema-1 database (before the hub log name) and upgrades it, data kept', async () => {
    const path = join(scratch, 'schema-1.sqlite')
    // Schema 1 as the first release wrote it: `meta` without the `log` column.
    writeOldDatabase(path, 1, '', "1, 'alice', 'team-notes', 0, 1700000000000, 0, 12")
    const store = await openSqliteReplicaStore({ path })
    try {
      const meta = await store.loadMeta()
      expect(meta).toEqual({
        replicaId: 'alice',
        space: 'team-notes',
        counter: 0,
        clock: { wall: 1_700_000_000_000, counter: 0 },
        cursor: 12,
      })
      await store.applyRemote({
        records: [],
        clock: { wall: 1_700_000_000_001, counter: 0 },
        cursor: null,
        log: 'log-1',
        maxFrame: 65_536,
      })
      expect(await store.loadMeta()).toMatchObject({ cursor: 12, log: 'log-1', maxFrame: 65_536 })
    } finally {
      await store.close()
    }
    const reopened = await openSqliteReplicaStore({ path })
    expect(await reopened.loadMeta()).toMatchObject({ cursor: 12, log: 'log-1', maxFrame: 65_536 })
    await reopened.close()
  })

  it('opens a schema-2 database (before the hub frame limit) and upgrades it, data kept', async () => {
    const path = join(scratch, 'schema-2.sqlite')
    writeOldDatabase(path, 2, ', log TEXT', "1, 'alice', 'team-notes', 3, 1700000000000, 0, 12, 'log-1'")
    const store = await openSqliteReplicaStore({ path })
    try {
      expect(await store.loadMeta()).toEqual({
        replicaId: 'alice',
        space: 'team-notes',
        counter: 3,
        clock: { wall: 1_700_000_000_000, counter: 0 },
        cursor: 12,
        log: 'log-1',
      })
      await store.applyRemote({
        records: [],
        clock: { wall: 1_700_000_000_001, counter: 0 },
        cursor: null,
        maxFrame: 4096,
      })
    } finally {
      await store.close()
    }
    const reopened = await openSqliteReplicaStore({ path })
    expect(await reopened.loadMeta()).toMatchObject({ cursor: 12, log: 'log-1', maxFrame: 4096 })
    await reopened.close()
  })

  it('opens a schema-3 database (before the snapshot to resume) and upgrades it, data kept', async () => {
    const path = join(scratch, 'schema-3.sqlite')
    writeOldDatabase(
      path,
      3,
      ', log TEXT, max_frame INTEGER',
      "1, 'alice', 'team-notes', 3, 1700000000000, 0, 0, 'log-1', 4096",
    )
    const resume = { cursor: 40, after: 'notes\u0000n-17' }
    const store = await openSqliteReplicaStore({ path })
    try {
      expect(await store.loadMeta()).toEqual({
        replicaId: 'alice',
        space: 'team-notes',
        counter: 3,
        clock: { wall: 1_700_000_000_000, counter: 0 },
        cursor: 0,
        log: 'log-1',
        maxFrame: 4096,
      })
      await store.applyRemote({
        records: [],
        clock: { wall: 1_700_000_000_001, counter: 0 },
        cursor: null,
        resume,
      })
    } finally {
      await store.close()
    }
    const reopened = await openSqliteReplicaStore({ path })
    expect(await reopened.loadMeta()).toMatchObject({ log: 'log-1', maxFrame: 4096, resume })
    await reopened.close()
    const db = new Database(path)
    expect(db.pragma('user_version', { simple: true })).toBe(4)
    db.close()
  })

  it('refuses a file that is not a Chorus replica database, with storage-failed', async () => {
    const path = join(scratch, 'not-a-database.sqlite')
    writeFileSync(path, 'this is a text file, not SQLite '.repeat(100))
    const error = await openSqliteReplicaStore({ path }).then(
      () => new Error('expected a rejection'),
      (reason: unknown) => reason,
    )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/not a SQLite database/)
  })

  it('a file another store has open is refused with storage-failed, and opens once that store closes', async () => {
    const path = join(scratch, 'locked.sqlite')
    const first = await openSqliteReplicaStore({ path })
    const refused = await openSqliteReplicaStore({ path }).then(
      () => null,
      (error: unknown) => error,
    )
    expect(isChorusError(refused, ErrorCode.StorageFailed)).toBe(true)
    // The holder is a store of this very process, which the message says (not "another process").
    expect((refused as Error).message).toMatch(/this process has it open already, in a store not closed/)
    await first.close()
    const second = await openSqliteReplicaStore({ path })
    expect(await second.loadMeta()).toBeUndefined()
    await second.close()
  })

  it('refuses options that are not an object, and a path with a NUL character, with invalid-argument', async () => {
    for (const options of [undefined, null, { path: join(scratch, 'x\0-other.sqlite') }]) {
      const error = await openSqliteReplicaStore(options as never).then(
        () => new Error('expected a rejection'),
        (reason: unknown) => reason,
      )
      expect(isChorusError(error, ErrorCode.InvalidArgument)).toBe(true)
    }
    expect(existsSync(join(scratch, 'x'))).toBe(false)
  })

  it('a store createReplica refused stays open for the app to pass again; a store a replica took is refused to another', async () => {
    const path = join(scratch, 'given.sqlite')
    const store = await openSqliteReplicaStore({ path })
    const refused = await createReplica({
      space: 'given',
      storage: store,
      resolvers: { notes: 'bogus' as never },
    }).then(
      () => new Error('expected a rejection'),
      (reason: unknown) => reason,
    )
    expect(isChorusError(refused, ErrorCode.InvalidArgument)).toBe(true)
    const replica = await createReplica({ space: 'given', storage: store })
    await replica.collection('notes').put('a', { title: 'kept' })
    const second = await createReplica({ space: 'given', storage: store }).then(
      () => new Error('expected a rejection'),
      (reason: unknown) => reason,
    )
    expect(isChorusError(second, ErrorCode.InvalidArgument)).toBe(true)
    expect((second as Error).message).toMatch(/storage of another replica/)
    expect(await replica.collection('notes').get('a')).toEqual({ title: 'kept' })
    await replica.close()
  })

  it('a directory that does not exist fails with storage-failed saying so', async () => {
    const error = await openSqliteReplicaStore({ path: join(scratch, 'missing', 'dir', 'r.sqlite') }).then(
      () => new Error('expected a rejection'),
      (reason: unknown) => reason,
    )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/directory exists/)
  })

  it('keeps every write that resolved when its process is killed with SIGKILL mid-stream', async () => {
    const path = join(scratch, 'killed.sqlite')
    const script = join(root, 'packages/client/test/fixtures/offline-writer.ts')
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@chorus/source', script, path, '100000'],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const confirmed = await readConfirmations(child, 40)
    const exit = new Promise<NodeJS.Signals | null>((done) =>
      child.once('exit', (_code, signal) => done(signal)),
    )
    child.kill('SIGKILL')
    expect(await exit).toBe('SIGKILL')
    expect(confirmed).toBeGreaterThanOrEqual(40)

    const store = await openSqliteReplicaStore({ path })
    try {
      const meta = await store.loadMeta()
      expect(meta?.counter).toBeGreaterThanOrEqual(confirmed)
      const outbox = await store.readOutbox(0, 1_000_000)
      // Every change written is in the outbox, gap-free, with its record: nothing half-written.
      expect(outbox.map((change) => change.dot[1])).toEqual(
        Array.from({ length: meta?.counter ?? 0 }, (_, i) => i + 1),
      )
      for (let i = 1; i <= confirmed; i++) {
        const state = await store.getRecord('notes', asRecordId(`note-${i}`))
        expect(state?.versions[0]?.op).toEqual({ type: 'put', value: { i } })
        expect(outbox[i - 1]?.id).toBe(`note-${i}`)
      }
      expect((await store.listRecords('notes')).length).toBe(meta?.counter)
    } finally {
      await store.close()
    }
  }, 30_000)
})

/** Reads the child's "wrote N" lines until `enough` arrived; returns the highest N seen. */
function readConfirmations(child: ChildProcess, enough: number): Promise<number> {
  return new Promise((resolveCount, reject) => {
    let highest = 0
    let buffered = ''
    let stderr = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the writer confirmed only ${highest} writes in 20 s; stderr: ${stderr}`))
    }, 20_000)
    child.stderr?.on('data', (data: Buffer) => {
      stderr += String(data)
    })
    child.stdout?.on('data', (data: Buffer) => {
      buffered += String(data)
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) {
        const match = /^wrote (\d+)$/.exec(line)
        if (match) highest = Math.max(highest, Number(match[1]))
      }
      if (highest >= enough) {
        clearTimeout(timer)
        resolveCount(highest)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      if (highest < enough)
        reject(new Error(`the writer exited (${code}) after ${highest} writes; stderr: ${stderr}`))
    })
  })
}
