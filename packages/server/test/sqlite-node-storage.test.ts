import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ErrorCode, isChorusError } from '@chorus/core'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { SqliteNodeStorage } from '../src/node/sqlite-node-storage.js'
import type { TestRecord } from './support/node-storage-conformance.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const scratch = mkdtempSync(join(tmpdir(), 'chorus-sqlite-node-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

let files = 0
function freshPath(): string {
  return join(scratch, `node-${++files}.sqlite`)
}

/** Opens and loads `path`; resolves with the error either step threw. */
async function openFailure(path: string): Promise<unknown> {
  try {
    const storage = new SqliteNodeStorage<TestRecord>(path)
    try {
      await storage.load()
    } finally {
      storage.close()
    }
  } catch (error) {
    return error
  }
  return new Error('expected opening or loading to fail')
}

async function filled(count: number): Promise<string> {
  const path = freshPath()
  const storage = new SqliteNodeStorage<TestRecord>(path)
  for (let n = 1; n <= count; n++) {
    await storage.append([{ type: 'entry', n, text: 'x'.repeat(200) }], 1)
  }
  storage.close()
  return path
}

describe('SqliteNodeStorage', () => {
  it('refuses a file that is not a node database, with storage-failed', async () => {
    const path = freshPath()
    writeFileSync(path, 'this is a text file, not SQLite '.repeat(100))
    const error = await openFailure(path)
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/damaged or not a node database/)
  })

  it('refuses a truncated database file, with storage-failed', async () => {
    const path = await filled(300)
    const size = readFileSync(path).length
    expect(size).toBeGreaterThan(16_384)
    truncateSync(path, Math.floor(size / 2))
    const error = await openFailure(path)
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/damaged/)
  })

  it('refuses a record changed behind its back (checksum), with storage-failed naming it', async () => {
    const path = await filled(3)
    const db = new Database(path)
    db.prepare('UPDATE records SET body = ? WHERE seq = 2').run('{"type":"entry","n":999}')
    db.close()
    const error = await openFailure(path)
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/record 2 .* fails its checksum/)
  })

  it('refuses a database written by a newer version', async () => {
    const path = await filled(1)
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    const error = await openFailure(path)
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/schema 99/)
  })

  it('refuses a bad path or a missing directory, and use after close', async () => {
    expect(() => new SqliteNodeStorage('')).toThrow(
      expect.objectContaining({ code: ErrorCode.InvalidArgument }),
    )
    const missing = await openFailure(join(scratch, 'no', 'such', 'dir.sqlite'))
    expect(isChorusError(missing, ErrorCode.StorageFailed)).toBe(true)
    const storage = new SqliteNodeStorage<TestRecord>(freshPath())
    storage.close()
    await expect(storage.load()).rejects.toMatchObject({ code: ErrorCode.Closed })
  })

  it('says a database another process holds locked is locked, not damaged', async () => {
    const path = freshPath()
    // A rollback-journal database that another connection holds an exclusive lock on: the
    // switch to WAL waits for it (SQLite's busy timeout), then fails with SQLITE_BUSY, as
    // opening on a full disk fails with SQLITE_FULL.
    const other = new Database(path)
    other.exec('CREATE TABLE held (x); BEGIN EXCLUSIVE; INSERT INTO held VALUES (1)')
    try {
      const failure = await openFailure(path)
      expect(isChorusError(failure, ErrorCode.StorageFailed)).toBe(true)
      expect((failure as Error).message).toMatch(/another process holds the database locked/)
      expect((failure as Error).message).not.toMatch(/damaged/)
    } finally {
      other.exec('ROLLBACK')
      other.close()
    }
  }, 20_000)

  it('refuses appends once its file or write-ahead log is deleted or replaced under it', async () => {
    for (const change of ['delete the file', 'replace the file', 'delete the log'] as const) {
      const path = freshPath()
      const storage = new SqliteNodeStorage<TestRecord>(path)
      try {
        expect(await storage.append([{ type: 'entry', n: 1, text: 'kept' }], 1)).toEqual({ ok: true })
        if (change === 'delete the log') rmSync(`${path}-wal`)
        else {
          rmSync(path)
          if (change === 'replace the file') writeFileSync(path, '')
        }
        // Before, it was stored in the unlinked file and acknowledged, and gone at the next start.
        const refused = await storage.append([{ type: 'entry', n: 2, text: 'lost' }], 1)
        expect(refused).toMatchObject({ ok: false, reason: 'failed' })
        expect((refused as { message: string }).message).toMatch(/was deleted or replaced while the node ran/)
      } finally {
        storage.close()
      }
    }
  })

  it('fences a second handle on the same file: the zombie cannot write behind a newer epoch', async () => {
    const path = freshPath()
    const zombie = new SqliteNodeStorage<TestRecord>(path)
    const successor = new SqliteNodeStorage<TestRecord>(path)
    try {
      expect(await zombie.append([{ type: 'entry', n: 1 }], 1)).toEqual({ ok: true })
      expect(await successor.append([{ type: 'entry', n: 2 }], 2)).toEqual({ ok: true })
      expect(await zombie.append([{ type: 'entry', n: 3 }], 1)).toEqual({
        ok: false,
        reason: 'fenced',
        epoch: 2,
      })
      expect((await zombie.load()).map((record) => record.n)).toEqual([1, 2])
      expect(zombie.stats.fenced).toBe(1)
    } finally {
      zombie.close()
      successor.close()
    }
  })

  it('group commits appends in one transaction: all stored, or none when one of them is fenced', async () => {
    const path = freshPath()
    const storage = new SqliteNodeStorage<TestRecord>(path, { fsync: false })
    try {
      const group = [
        { records: [{ type: 'entry', n: 1 }], epoch: 1 },
        { records: [{ type: 'entry', n: 2 }], epoch: null },
        { records: [{ type: 'entry', n: 3 }], epoch: 2 },
      ] as const
      expect(await storage.appendAll(group)).toEqual({ ok: true })
      expect(storage.stats).toMatchObject({ appends: 3, commits: 1, records: 3 })
      // The first append raised the fence to 2 within the group; an older one later in it
      // refuses the whole group.
      const refused = await storage.appendAll([
        { records: [{ type: 'entry', n: 4 }], epoch: 3 },
        { records: [{ type: 'entry', n: 5 }], epoch: 2 },
      ])
      expect(refused).toEqual({ ok: false, reason: 'fenced', epoch: 3 })
      expect((await storage.load()).map((record) => record.n)).toEqual([1, 2, 3])
      expect(storage.epoch).toBe(2)
    } finally {
      storage.close()
    }
  })

  it.each([
    ['on the event loop', 'direct'],
    ['on a worker thread (WorkerNodeStorage)', 'worker'],
  ])(
    'keeps every acknowledged append when its process is killed with SIGKILL mid-stream, committing %s',
    async (_, kind) => {
      const path = freshPath()
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=@chorus/source',
          'packages/server/test/fixtures/node-storage-writer.ts',
          path,
          '1000000',
          kind,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      )
      const exit = new Promise<NodeJS.Signals | null>((done) =>
        child.once('exit', (_code, signal) => done(signal)),
      )
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += String(chunk)
      })
      const acknowledged = await new Promise<number>((done, fail) => {
        let highest = 0
        let partial = ''
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          fail(new Error(`the writer acknowledged only ${highest} appends in 20 s; stderr: ${stderr}`))
        }, 20_000)
        child.stdout.on('data', (chunk: Buffer) => {
          const lines = (partial + String(chunk)).split('\n')
          partial = lines.pop() ?? ''
          for (const line of lines) {
            const match = /^appended (\d+)$/.exec(line)
            if (match !== null) highest = Math.max(highest, Number(match[1]))
          }
          if (highest >= 300) {
            clearTimeout(timer)
            child.kill('SIGKILL')
            done(highest)
          }
        })
        child.once('exit', (code) => {
          clearTimeout(timer)
          if (highest < 300)
            fail(new Error(`the writer exited (${code}) after ${highest} appends; stderr: ${stderr}`))
        })
      })
      expect(await exit).toBe('SIGKILL')

      const storage = new SqliteNodeStorage<TestRecord>(path)
      try {
        const numbers = (await storage.load()).map((record) => record.n)
        // Every acknowledged append is there, in order, with nothing half-written after it.
        expect(numbers.length).toBeGreaterThanOrEqual(acknowledged)
        expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1))
        expect(storage.epoch).toBe(1)
        expect(await storage.append([{ type: 'entry', n: 0 }], 0)).toEqual({
          ok: false,
          reason: 'fenced',
          epoch: 1,
        })
      } finally {
        storage.close()
      }
    },
    30_000,
  )
})
