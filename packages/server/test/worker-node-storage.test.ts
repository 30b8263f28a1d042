import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ErrorCode, isChorusError } from '@chorus/core'
import { afterAll, describe, expect, it } from 'vitest'
import { SqliteNodeStorage } from '../src/node/sqlite-node-storage.js'
import { WorkerNodeStorage } from '../src/node/worker-node-storage.js'
import type { TestRecord } from './support/node-storage-conformance.js'

const scratch = mkdtempSync(join(tmpdir(), 'chorus-worker-storage-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  return new Error('expected a rejection')
}

describe('WorkerNodeStorage', () => {
  it('writes the same file SqliteNodeStorage reads, and reads what it wrote', async () => {
    const path = join(scratch, 'shared.sqlite')
    const worker = await WorkerNodeStorage.open<TestRecord>(path, { fsync: false })
    expect(await worker.append([{ type: 'entry', n: 1 }], 3)).toEqual({ ok: true })
    expect(await worker.appendAll([{ records: [{ type: 'entry', n: 2 }], epoch: null }])).toEqual({
      ok: true,
    })
    await worker.close()
    const direct = new SqliteNodeStorage<TestRecord>(path)
    expect(await direct.load()).toEqual([
      { type: 'entry', n: 1 },
      { type: 'entry', n: 2 },
    ])
    expect(await direct.append([{ type: 'entry', n: 3 }], 2)).toEqual({
      ok: false,
      reason: 'fenced',
      epoch: 3,
    })
    direct.close()
  })

  it('refuses a bad path or a foreign file as SqliteNodeStorage does, and calls after close', async () => {
    const empty = await failure(WorkerNodeStorage.open(''))
    expect(isChorusError(empty) && empty.code).toBe(ErrorCode.InvalidArgument)
    const missing = await failure(WorkerNodeStorage.open(join(scratch, 'no-such-dir', 'x.sqlite')))
    expect(isChorusError(missing) && missing.code).toBe(ErrorCode.StorageFailed)
    const foreign = join(scratch, 'foreign.sqlite')
    writeFileSync(foreign, 'not a database, just text that is long enough to be read as a header'.repeat(20))
    const bad = await failure(WorkerNodeStorage.open(foreign))
    expect(isChorusError(bad) && bad.code).toBe(ErrorCode.StorageFailed)
    const storage = await WorkerNodeStorage.open<TestRecord>(join(scratch, 'closed.sqlite'))
    await storage.close()
    await storage.close()
    const closed = await failure(storage.load())
    expect(isChorusError(closed) && closed.code).toBe(ErrorCode.Closed)
  })

  it('an append the disk refused resolves failed and stores nothing', async () => {
    const storage = await WorkerNodeStorage.open<TestRecord>(join(scratch, 'fail.sqlite'))
    await storage.failNextAppend('the disk is gone')
    expect(await storage.append([{ type: 'entry', n: 1 }], null)).toEqual({
      ok: false,
      reason: 'failed',
      message: 'the disk is gone',
    })
    expect(await storage.load()).toEqual([])
    await storage.close()
  })
})
