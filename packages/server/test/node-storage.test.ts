import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { MemoryNodeStorage } from '../src/memory-node-storage.js'
import { SqliteNodeStorage } from '../src/node/sqlite-node-storage.js'
import { WorkerNodeStorage } from '../src/node/worker-node-storage.js'
import { runNodeStorageConformance, type TestRecord } from './support/node-storage-conformance.js'

const scratch = mkdtempSync(join(tmpdir(), 'chorus-node-storage-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

runNodeStorageConformance('MemoryNodeStorage', async () => {
  const storage = new MemoryNodeStorage<TestRecord>()
  return { storage, reopen: async () => storage, cleanup: async () => {} }
})

let files = 0
runNodeStorageConformance('SqliteNodeStorage (real files)', async () => {
  const path = join(scratch, `conformance-${++files}.sqlite`)
  const handles = [new SqliteNodeStorage<TestRecord>(path)]
  return {
    storage: handles[0] as SqliteNodeStorage<TestRecord>,
    reopen: async () => {
      for (const handle of handles) handle.close()
      const next = new SqliteNodeStorage<TestRecord>(path)
      handles.push(next)
      return next
    },
    cleanup: async () => {
      for (const handle of handles) handle.close()
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
    },
  }
})

runNodeStorageConformance('WorkerNodeStorage (real files, a worker thread)', async () => {
  const path = join(scratch, `conformance-${++files}.sqlite`)
  const handles = [await WorkerNodeStorage.open<TestRecord>(path)]
  return {
    storage: handles[0] as WorkerNodeStorage<TestRecord>,
    reopen: async () => {
      for (const handle of handles) await handle.close()
      const next = await WorkerNodeStorage.open<TestRecord>(path)
      handles.push(next)
      return next
    },
    cleanup: async () => {
      for (const handle of handles) await handle.close()
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
    },
  }
})
