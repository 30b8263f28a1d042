import {
  asRecordId,
  asReplicaId,
  asSpaceId,
  type Change,
  HLC_ZERO,
  isChorusError,
  MemoryReplicaStore,
  openReplicaEngine,
  type ReplicaStore,
} from '@chorus/core'
import { IDBFactory, IDBKeyRange, IDBObjectStore } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { createReplica } from '../src/replica.js'
import { openIdbReplicaStore } from '../src/storage/idb-replica-store.js'

const alice = asReplicaId('alice')

function put(counter: number, id: string): Change {
  return {
    collection: 'notes',
    id: asRecordId(id),
    dot: [alice, counter],
    context: {},
    hlc: `000001700000000.00000${counter}@alice` as Change['hlc'],
    op: { type: 'put', value: { n: counter } },
  }
}

async function freshStore() {
  const store = await openIdbReplicaStore({ name: 'batch', indexedDB: new IDBFactory() })
  await store.initMeta({ replicaId: alice, space: asSpaceId('team'), counter: 0, clock: HLC_ZERO, cursor: 0 })
  return store
}

describe('IdbReplicaStore batches', () => {
  it('commitLocalBatch stores every record and outbox entry and the last counter, in one transaction', async () => {
    const store = await freshStore()
    const changes = [put(1, 'a'), put(2, 'b')]
    const clock = { wall: 1_700_000_000_000, counter: 2 }
    await store.commitLocalBatch({
      changes,
      states: [undefined, { versions: [changes[1] as Change] }],
      clock,
    })
    expect((await store.readOutbox(0, 10)).map((change) => change.dot[1])).toEqual([1, 2])
    expect(await store.loadMeta()).toMatchObject({ counter: 2, clock })
    const records = await store.getRecords([
      { collection: 'notes', id: asRecordId('b') },
      { collection: 'notes', id: asRecordId('missing') },
      { collection: 'notes', id: asRecordId('a') },
    ])
    expect(records.map((record) => record?.versions[0]?.dot[1])).toEqual([2, undefined, 1])
    await store.close()
  })

  it('commitLocalBatch refuses counters that do not follow the stored one, and writes nothing', async () => {
    const store = await freshStore()
    const change = put(2, 'a')
    const failure = await store
      .commitLocalBatch({ changes: [change], states: [undefined], clock: HLC_ZERO })
      .catch((error: unknown) => error)
    expect(isChorusError(failure, 'storage-failed')).toBe(true)
    expect(await store.outboxSize()).toBe(0)
    await store.close()
  })

  it('a replica on IndexedDB commits puts issued together in one batch', async () => {
    const store = await openIdbReplicaStore({ name: 'replica', indexedDB: new IDBFactory() })
    const batches: number[] = []
    const commit = store.commitLocalBatch.bind(store)
    store.commitLocalBatch = (batch) => {
      batches.push(batch.changes.length)
      return commit(batch)
    }
    const replica = await createReplica({ space: 'team', storage: store })
    const notes = replica.collection('notes')
    await Promise.all(Array.from({ length: 50 }, (_, n) => notes.put(`n${n}`, { n })))
    expect(batches).toEqual([50])
    expect(replica.pending).toBe(50)
    expect(await notes.list()).toHaveLength(50)
    await replica.close()
  })

  it("a replica given IDBKeyRange finds a batch's absent records with one key read, not a get each", async () => {
    const factory = new IDBFactory()
    const replica = await createReplica({ space: 'team', indexedDB: factory, IDBKeyRange, tabs: false })
    const notes = replica.collection('notes')
    await Promise.all(Array.from({ length: 20 }, (_, n) => notes.put(`a${n}`, { n })))
    const gets: unknown[] = []
    const store = IDBObjectStore.prototype
    const get = store.get
    store.get = function (this: IDBObjectStore, query: IDBValidKey | IDBKeyRange) {
      if (this.name === 'records') gets.push(query)
      return get.call(this, query)
    }
    try {
      await Promise.all(Array.from({ length: 20 }, (_, n) => notes.put(`b${n}`, { n })))
    } finally {
      store.get = get
    }
    expect(gets).toEqual([])
    expect((await notes.list()).map((row) => row.id)).toHaveLength(40)
    await replica.close()
  })

  it('a batch of puts, patches and deletes over new and stored records reads back as the same writes in memory', async () => {
    const factory = new IDBFactory()
    const open = (store: ReplicaStore) =>
      openReplicaEngine({ store, space: 'team', now: () => 1_700_000_000_000, createReplicaId: () => alice })
    const idb = await open(await openIdbReplicaStore({ name: 'mixed', indexedDB: factory, IDBKeyRange }))
    const memory = await open(new MemoryReplicaStore())
    for (const engine of [idb, memory]) {
      await engine.put('notes', 'stored', { n: 0 })
      await engine.put('notes', 'gone', { n: 0 })
    }
    const writes = (engine: typeof idb) => [
      engine.write('notes', 'new', 'put', { n: 1 }),
      engine.patch('notes', 'stored', { done: true }),
      engine.write('notes', 'gone', 'delete'),
      engine.patch('notes', 'patched', { n: 2 }),
      engine.write('notes', 'removed', 'delete'),
      engine.write('notes', 'twice', 'put', { n: 3 }),
      engine.patch('notes', 'twice', { n: 4 }),
      engine.write('tags', 'stored', 'put', { tag: 'x' }),
    ]
    await Promise.all(writes(idb))
    await Promise.all(writes(memory))
    await idb.close()
    const reopened = await open(await openIdbReplicaStore({ name: 'mixed', indexedDB: factory, IDBKeyRange }))
    for (const [collection, id] of [
      ['notes', 'new'],
      ['notes', 'stored'],
      ['notes', 'gone'],
      ['notes', 'patched'],
      ['notes', 'removed'],
      ['notes', 'twice'],
      ['tags', 'stored'],
    ] as const) {
      expect(await reopened.record(collection, id)).toEqual(await memory.record(collection, id))
      expect(await reopened.get(collection, id)).toEqual(await memory.get(collection, id))
    }
    expect(await reopened.get('notes', 'twice')).toEqual({ n: 4 })
    expect(reopened.pending()).toBe(10)
    await reopened.close()
  })
})
