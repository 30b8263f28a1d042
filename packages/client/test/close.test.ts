import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createReplica, type ReplicaOptions } from '@chorus/client'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { afterAll, describe, expect, it } from 'vitest'
import { openSqliteReplicaStore } from '../src/storage/sqlite-replica-store.js'

const scratch = mkdtempSync(join(tmpdir(), 'chorus-close-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

let files = 0
const storages: [string, () => Promise<Partial<ReplicaOptions>>][] = [
  ['memory', async () => ({ storage: 'memory' })],
  ['fake-indexeddb', async () => ({ storage: 'indexeddb', indexedDB: new IDBFactory(), IDBKeyRange })],
  [
    'SQLite',
    async () => ({ storage: await openSqliteReplicaStore({ path: join(scratch, `${++files}.sqlite`) }) }),
  ],
]

describe.each(storages)('close() on %s storage', (_name, storage) => {
  it('answers the reads issued before it, behind a write not yet committed, then refuses more', async () => {
    const replica = await createReplica({ space: 'closing', ...(await storage()) })
    const notes = replica.collection('notes')
    await notes.put('a', { title: 'a' })
    // A read waits for the writes issued before it, here the put of b.
    const writing = notes.put('b', { title: 'b' })
    const reads = Promise.all([notes.get('a'), notes.get('b'), notes.list(), replica.conflicts()])
    const closing = replica.close()
    expect(await reads).toEqual([
      { title: 'a' },
      { title: 'b' },
      [
        { id: 'a', value: { title: 'a' } },
        { id: 'b', value: { title: 'b' } },
      ],
      [],
    ])
    await writing
    await closing
    await expect(notes.get('a')).rejects.toMatchObject({ code: 'closed' })
  })
})
