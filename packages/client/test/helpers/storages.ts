import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ReplicaOptions } from '@chorus/client'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { afterAll } from 'vitest'
import { openSqliteReplicaStore } from '../../src/storage/sqlite-replica-store.js'

/**
 * The three storages a replica runs on in Node, each as the options that open a fresh one:
 * memory, fake-indexeddb, and SQLite in a scratch directory removed after the file's tests.
 * For `describe.each`.
 */
export function everyStorage(name: string): [string, () => Promise<Partial<ReplicaOptions>>][] {
  const scratch = mkdtempSync(join(tmpdir(), `chorus-${name}-`))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))
  let files = 0
  return [
    ['memory', async () => ({ storage: 'memory' })],
    ['fake-indexeddb', async () => ({ storage: 'indexeddb', indexedDB: new IDBFactory(), IDBKeyRange })],
    [
      'SQLite',
      async () => ({ storage: await openSqliteReplicaStore({ path: join(scratch, `${++files}.sqlite`) }) }),
    ],
  ]
}
