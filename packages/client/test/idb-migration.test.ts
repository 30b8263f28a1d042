import {
  applyChange,
  asRecordId,
  asReplicaId,
  asSpaceId,
  type Change,
  ErrorCode,
  isChorusError,
  type ReplicaMeta,
  type StoredRecord,
} from '@chorus/core'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { createReplica } from '../src/replica.js'
import { openIdbReplicaStore } from '../src/storage/idb-replica-store.js'

const me = asReplicaId('replica-me')
const peer = asReplicaId('replica-peer')

function change(replica: typeof me, counter: number, id: string, op: Change['op'], context = {}): Change {
  return {
    collection: 'notes',
    id: asRecordId(id),
    dot: [replica, counter],
    context,
    hlc: `000001700000000.0000${counter}@${replica}` as Change['hlc'],
    op,
  }
}

/** What Chorus stored in schema version 1: a conflict, a patch, a tombstone, two changes not yet acknowledged. */
function version1Data() {
  const first = change(me, 1, 'a', { type: 'put', value: { title: 'first', tags: ['x'] } })
  const mine = change(me, 2, 'a', { type: 'put', value: { title: 'mine' } }, { [me]: 1 })
  const theirs = change(peer, 1, 'a', { type: 'put', value: { title: 'theirs' } }, { [me]: 1 })
  const patch = change(me, 3, 'b', {
    type: 'patch',
    fields: { done: true },
    base: { title: 'b' },
    stamps: { title: `000001700000000.00001@${peer}` as Change['hlc'] },
    floor: null,
  })
  const gone = change(peer, 2, 'c', { type: 'delete' })
  let a = applyChange(undefined, first).state
  a = applyChange(a, mine).state
  a = applyChange(a, theirs).state
  const records: StoredRecord[] = [
    { collection: 'notes', id: asRecordId('a'), state: a },
    { collection: 'notes', id: asRecordId('b'), state: { versions: [patch] } },
    { collection: 'notes', id: asRecordId('c'), state: { versions: [gone] } },
  ]
  const meta: ReplicaMeta = {
    replicaId: me,
    space: asSpaceId('team'),
    counter: 3,
    clock: { wall: 1_700_000_000_000, counter: 3 },
    cursor: 2,
  }
  // Change 1 was acknowledged and dropped; 2 and 3 wait in the outbox, one entry each.
  return { meta, records, outbox: [mine, patch] }
}

/** Writes `data` the way schema version 1 laid it out. */
function writeVersion1(
  factory: IDBFactory,
  name: string,
  data: ReturnType<typeof version1Data>,
  record: (stored: StoredRecord) => unknown = (stored) => stored,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, 1)
    request.onupgradeneeded = () => {
      const db = request.result
      db.createObjectStore('meta').put(data.meta, 'replica')
      const records = db.createObjectStore('records', { keyPath: ['collection', 'id'] })
      for (const stored of data.records) records.put(record(stored))
      const outbox = db.createObjectStore('outbox')
      for (const queued of data.outbox) outbox.put(queued, queued.dot[1])
    }
    request.onsuccess = () => {
      request.result.close()
      resolve()
    }
    request.onerror = () => reject(request.error)
  })
}

/**
 * What Chorus stored in schema version 2 for {@link version1Data}: records keyed by
 * `[collection, id]` inside the value, versions as JSON text of tuples, the outbox as one
 * chunk of changes 2 and 3. Written out literally, as a build of that layout wrote it.
 */
const VERSION2_RECORDS = [
  {
    collection: 'notes',
    id: 'a',
    versions:
      '[["replica-peer",1,"000001700000000.00001",{"replica-me":1},"put",{"title":"theirs"}],["replica-me",2,"000001700000000.00002",{"replica-me":1},"put",{"title":"mine"}]]',
  },
  {
    collection: 'notes',
    id: 'b',
    versions:
      '[["replica-me",3,"000001700000000.00003",{},"patch",{"done":true},{"title":"b"},{"title":"000001700000000.00001@replica-peer"},null]]',
  },
  { collection: 'notes', id: 'c', versions: '[["replica-peer",2,"000001700000000.00002",{},"delete"]]' },
]
const VERSION2_OUTBOX = {
  first: 2,
  changes:
    '[["notes","a",["replica-me",2,"000001700000000.00002",{"replica-me":1},"put",{"title":"mine"}]],["notes","b",["replica-me",3,"000001700000000.00003",{},"patch",{"done":true},{"title":"b"},{"title":"000001700000000.00001@replica-peer"},null]]]',
}

/** Writes {@link version1Data} the way schema version 2 laid it out; `records` replaces its records. */
function writeVersion2(
  factory: IDBFactory,
  name: string,
  meta: ReplicaMeta,
  records: readonly unknown[] = VERSION2_RECORDS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, 2)
    request.onupgradeneeded = () => {
      const db = request.result
      db.createObjectStore('meta').put(meta, 'replica')
      const store = db.createObjectStore('records', { keyPath: ['collection', 'id'] })
      for (const record of records) store.put(record)
      db.createObjectStore('outbox').put(VERSION2_OUTBOX, 3)
    }
    request.onsuccess = () => {
      request.result.close()
      resolve()
    }
    request.onerror = () => reject(request.error)
  })
}

function databaseVersion(factory: IDBFactory, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name)
    request.onsuccess = () => {
      const { version } = request.result
      request.result.close()
      resolve(version)
    }
    request.onerror = () => reject(request.error)
  })
}

/**
 * Opens the database `old` that an earlier layout wrote and checks that it reads as `data`:
 * meta, records, a page, the outbox.
 */
async function openMigrated(
  factory: IDBFactory,
  withKeyRange: boolean,
  data: ReturnType<typeof version1Data>,
): Promise<Awaited<ReturnType<typeof openIdbReplicaStore>>> {
  const store = await openIdbReplicaStore({
    name: 'old',
    indexedDB: factory,
    ...(withKeyRange ? { IDBKeyRange } : {}),
  })
  expect(await store.loadMeta()).toEqual(data.meta)
  for (const stored of data.records)
    expect(await store.getRecord(stored.collection, stored.id)).toEqual(stored.state)
  expect(await store.listRecords('notes')).toEqual(data.records)
  expect(await store.listRecordsPage('notes', { order: 'desc', limit: 2 })).toEqual(
    [...data.records].reverse().slice(0, 2),
  )
  expect(await store.readOutbox(0, 10)).toEqual(data.outbox)
  expect(await store.outboxSize()).toBe(2)
  return store
}

/**
 * A local write on a migrated store that settles the first record's two siblings: it lands in
 * the record as in the outbox. Returns the change.
 */
async function settleFirstRecord(
  store: Awaited<ReturnType<typeof openIdbReplicaStore>>,
  records: readonly StoredRecord[],
): Promise<Change> {
  const a = records[0] as StoredRecord
  const settle = change(me, 4, 'a', { type: 'put', value: { title: 'settled' } }, { [me]: 2, [peer]: 1 })
  const settled = applyChange(a.state, settle).state
  await store.commitLocal({
    record: { collection: 'notes', id: a.id, state: settled },
    change: settle,
    clock: { wall: 1_700_000_000_001, counter: 0 },
  })
  expect(await store.getRecord('notes', a.id)).toEqual(settled)
  return settle
}

describe('IdbReplicaStore opens a database of schema version 1', () => {
  for (const withKeyRange of [false, true]) {
    it(`reads what it holds and keeps writing${withKeyRange ? ' (with IDBKeyRange)' : ''}`, async () => {
      const factory = new IDBFactory()
      const data = version1Data()
      await writeVersion1(factory, 'old', data)
      const store = await openMigrated(factory, withKeyRange, data)
      expect(await store.readOutbox(2, 10)).toEqual([data.outbox[1]])

      const settle = await settleFirstRecord(store, data.records)
      expect(await store.readOutbox(0, 10)).toEqual([...data.outbox, settle])
      await store.dropOutbox(3)
      expect(await store.readOutbox(0, 10)).toEqual([settle])
      expect(await store.outboxSize()).toBe(1)
      expect((await store.loadMeta())?.counter).toBe(4)
      await store.close()
    })
  }

  it('a replica on it shows the notes and the conflict, counts the changes waiting to upload, and settles', async () => {
    const factory = new IDBFactory()
    await writeVersion1(factory, 'old-replica', version1Data())
    const replica = await createReplica({
      space: 'team',
      dbName: 'old-replica',
      indexedDB: factory,
      tabs: false,
      resolvers: { notes: 'manual' },
    })
    const notes = replica.collection<{ title?: string; done?: boolean }>('notes')
    expect((await notes.list()).map((row) => [row.id, row.value])).toEqual([
      ['a', { title: 'mine' }],
      ['b', { title: 'b', done: true }],
    ])
    expect(await replica.conflicts()).toHaveLength(1)
    expect(replica.pending).toBe(2)
    await notes.resolve('a', { title: 'settled' })
    await notes.put('d', { title: 'new' })
    expect(replica.pending).toBe(4)
    expect(await replica.conflicts()).toEqual([])
    expect(await notes.get('a')).toEqual({ title: 'settled' })
    await replica.close()
    expect(await databaseVersion(factory, 'old-replica')).toBe(4)
  })

  it('refuses data it cannot convert with storage-failed, and leaves the database at version 1', async () => {
    const factory = new IDBFactory()
    const data = version1Data()
    await writeVersion1(factory, 'damaged', data, (stored) =>
      stored.id === 'b' ? { collection: stored.collection, id: stored.id } : stored,
    )
    const error = await openIdbReplicaStore({ name: 'damaged', indexedDB: factory }).then(
      () => new Error('expected a rejection'),
      (failure: unknown) => failure,
    )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/older version of Chorus.*left as it was/)
    expect(await databaseVersion(factory, 'damaged')).toBe(1)
  })
})

describe('IdbReplicaStore opens a database of schema version 2', () => {
  for (const withKeyRange of [false, true]) {
    it(`reads what it holds and keeps writing${withKeyRange ? ' (with IDBKeyRange)' : ''}`, async () => {
      const factory = new IDBFactory()
      const data = version1Data()
      await writeVersion2(factory, 'old', data.meta)
      const store = await openMigrated(factory, withKeyRange, data)
      expect(await store.allRecords()).toEqual(data.records)
      expect(await store.listRecordsPage('notes', { order: 'asc', after: asRecordId('a') })).toEqual(
        data.records.slice(1),
      )

      const settle = await settleFirstRecord(store, data.records)
      await store.dropOutbox(3)
      expect(await store.readOutbox(0, 10)).toEqual([settle])
      await store.close()
      expect(await databaseVersion(factory, 'old')).toBe(4)
    })
  }

  it('a replica on it shows the notes and the conflict, and counts the changes waiting to upload', async () => {
    const factory = new IDBFactory()
    await writeVersion2(factory, 'old-replica', version1Data().meta)
    const replica = await createReplica({
      space: 'team',
      dbName: 'old-replica',
      indexedDB: factory,
      tabs: false,
      resolvers: { notes: 'manual' },
    })
    const notes = replica.collection<{ title?: string; done?: boolean }>('notes')
    expect((await notes.list({ order: 'desc' })).map((row) => [row.id, row.value])).toEqual([
      ['b', { title: 'b', done: true }],
      ['a', { title: 'mine' }],
    ])
    expect(await replica.conflicts()).toHaveLength(1)
    expect(replica.pending).toBe(2)
    await notes.put('d', { title: 'new' })
    expect((await notes.list()).map((row) => row.id)).toEqual(['a', 'b', 'd'])
    await replica.close()
  })

  it('refuses records it cannot read with storage-failed, and leaves the database at version 2', async () => {
    const factory = new IDBFactory()
    const [a, b] = VERSION2_RECORDS
    await writeVersion2(factory, 'damaged', version1Data().meta, [a, { ...b, versions: '[["replica-me"' }])
    const error = await openIdbReplicaStore({ name: 'damaged', indexedDB: factory }).then(
      () => new Error('expected a rejection'),
      (failure: unknown) => failure,
    )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/older version of Chorus.*left as it was/)
    expect(await databaseVersion(factory, 'damaged')).toBe(2)
    const reopened = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open('damaged')
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    expect(
      Array.from({ length: reopened.objectStoreNames.length }, (_, i) =>
        reopened.objectStoreNames.item(i),
      ).sort(),
    ).toEqual(['meta', 'outbox', 'records'])
    reopened.close()
  })
})

/**
 * What Chorus stored in schema version 3 for {@link version1Data}, plus two records whose
 * only version is a put (`d` with an empty context; `e` with a context and an hlc stamped by
 * another replica): each record one JSON string under `collection U+0000 id`. Written out
 * literally, as a build of that layout wrote it.
 */
const VERSION3_RECORDS: Record<string, string> = {
  'notes\u0000a':
    '["a",["replica-peer",1,"000001700000000.00001",{"replica-me":1},"put",{"title":"theirs"}],["replica-me",2,"000001700000000.00002",{"replica-me":1},"put",{"title":"mine"}]]',
  'notes\u0000b':
    '["b",["replica-me",3,"000001700000000.00003",{},"patch",{"done":true},{"title":"b"},{"title":"000001700000000.00001@replica-peer"},null]]',
  'notes\u0000c': '["c",["replica-peer",2,"000001700000000.00002",{},"delete"]]',
  'notes\u0000d': '["d",["replica-peer",3,"000001700000000.00003",{},"put",{"title":"d"}]]',
  'notes\u0000e':
    '["e",["replica-peer",4,"000001700000000.00004@replica-me",{"replica-me":1},"put",{"title":"e","tags":["x"]}]]',
}

/** {@link version1Data} with the records `d` and `e` of {@link VERSION3_RECORDS}. */
function version3Data(): ReturnType<typeof version1Data> {
  const data = version1Data()
  const d = change(peer, 3, 'd', { type: 'put', value: { title: 'd' } })
  const e = {
    ...change(peer, 4, 'e', { type: 'put', value: { title: 'e', tags: ['x'] } }, { [me]: 1 }),
    hlc: `000001700000000.00004@${me}` as Change['hlc'],
  }
  return {
    ...data,
    records: [
      ...data.records,
      { collection: 'notes', id: asRecordId('d'), state: { versions: [d] } },
      { collection: 'notes', id: asRecordId('e'), state: { versions: [e] } },
    ],
  }
}

/** Writes {@link version3Data} the way schema version 3 laid it out; `records` replaces its records. */
function writeVersion3(
  factory: IDBFactory,
  name: string,
  meta: ReplicaMeta,
  records: Record<string, string> = VERSION3_RECORDS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, 3)
    request.onupgradeneeded = () => {
      const db = request.result
      db.createObjectStore('meta').put(meta, 'replica')
      const store = db.createObjectStore('records')
      for (const [key, text] of Object.entries(records)) store.put(text, key)
      db.createObjectStore('outbox').put(VERSION2_OUTBOX, 3)
    }
    request.onsuccess = () => {
      request.result.close()
      resolve()
    }
    request.onerror = () => reject(request.error)
  })
}

/** Every entry of the `records` store, by key, as the database holds it. */
function rawRecords(factory: IDBFactory, name: string): Promise<Map<IDBValidKey, unknown>> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name)
    request.onsuccess = () => {
      const db = request.result
      const store = db.transaction('records').objectStore('records')
      const keys = store.getAllKeys()
      const values = store.getAll()
      values.onsuccess = () => {
        db.close()
        resolve(new Map(keys.result.map((key, i) => [key, values.result[i]])))
      }
      values.onerror = () => reject(values.error)
    }
    request.onerror = () => reject(request.error)
  })
}

describe('IdbReplicaStore opens a database of schema version 3', () => {
  for (const withKeyRange of [false, true]) {
    it(`reads what it holds and keeps writing${withKeyRange ? ' (with IDBKeyRange)' : ''}`, async () => {
      const factory = new IDBFactory()
      const data = version3Data()
      await writeVersion3(factory, 'old', data.meta)
      const store = await openMigrated(factory, withKeyRange, data)
      expect(await store.allRecords()).toEqual(data.records)
      const settle = await settleFirstRecord(store, data.records)
      await store.dropOutbox(3)
      expect(await store.readOutbox(0, 10)).toEqual([settle])
      await store.close()
      expect(await databaseVersion(factory, 'old')).toBe(4)
    })
  }

  it('stores a record whose only version is a put as an array holding its value, and keeps the others as text', async () => {
    const factory = new IDBFactory()
    await writeVersion3(factory, 'old', version3Data().meta)
    await (await openIdbReplicaStore({ name: 'old', indexedDB: factory })).close()
    const raw = await rawRecords(factory, 'old')
    expect(raw.get('notes\u0000d')).toEqual(['d', 'replica-peer', 3, '000001700000000.00003', { title: 'd' }])
    expect(raw.get('notes\u0000e')).toEqual([
      'e',
      'replica-peer',
      4,
      '000001700000000.00004@replica-me',
      { title: 'e', tags: ['x'] },
      { 'replica-me': 1 },
    ])
    for (const key of ['notes\u0000a', 'notes\u0000b', 'notes\u0000c'])
      expect(raw.get(key)).toBe(VERSION3_RECORDS[key])
  })

  it('a replica on it lists the notes newest first, their values frozen', async () => {
    const factory = new IDBFactory()
    await writeVersion3(factory, 'old-replica', version3Data().meta)
    const replica = await createReplica({
      space: 'team',
      dbName: 'old-replica',
      indexedDB: factory,
      tabs: false,
      resolvers: { notes: 'manual' },
    })
    const notes = replica.collection<{ title?: string; done?: boolean; tags?: string[] }>('notes')
    const rows = await notes.list({ order: 'desc' })
    expect(rows.map((row) => [row.id, row.value])).toEqual([
      ['e', { title: 'e', tags: ['x'] }],
      ['d', { title: 'd' }],
      ['b', { title: 'b', done: true }],
      ['a', { title: 'mine' }],
    ])
    expect(Object.isFrozen(rows[0]?.value)).toBe(true)
    expect(Object.isFrozen(rows[0]?.value.tags)).toBe(true)
    expect(await replica.conflicts()).toHaveLength(1)
    await notes.put('e', { title: 'e2' })
    expect(await notes.get('e')).toEqual({ title: 'e2' })
    await replica.close()
  })

  it('refuses records it cannot read with storage-failed, and leaves the database at version 3', async () => {
    const factory = new IDBFactory()
    await writeVersion3(factory, 'damaged', version3Data().meta, {
      ...VERSION3_RECORDS,
      'notes\u0000d': '["d",["replica-peer"',
    })
    const error = await openIdbReplicaStore({ name: 'damaged', indexedDB: factory }).then(
      () => new Error('expected a rejection'),
      (failure: unknown) => failure,
    )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/older version of Chorus.*left as it was/)
    expect(await databaseVersion(factory, 'damaged')).toBe(3)
    expect((await rawRecords(factory, 'damaged')).get('notes\u0000e')).toBe(VERSION3_RECORDS['notes\u0000e'])
  })
})

describe('IdbReplicaStore schema version 4', () => {
  it('keeps a record that is one put as an array holding its value, and any other record as text', async () => {
    const factory = new IDBFactory()
    const replica = await createReplica({ space: 'team', dbName: 'fresh', indexedDB: factory, tabs: false })
    const notes = replica.collection<{ title: string; done?: boolean }>('notes')
    await notes.put('a', { title: 'a' })
    await notes.put('b', { title: 'b' })
    await notes.patch('b', { done: true })
    await notes.put('c', { title: 'c' })
    await notes.delete('c')
    const { replicaId } = replica
    await replica.close()
    const raw = await rawRecords(factory, 'fresh')
    const a = raw.get('notes\u0000a') as unknown[]
    expect(a).toEqual(['a', replicaId, 1, expect.any(String), { title: 'a' }])
    expect(a[3]).not.toContain('@')
    expect(typeof raw.get('notes\u0000b')).toBe('string')
    expect(typeof raw.get('notes\u0000c')).toBe('string')

    // A put over the patched record makes it one put again; with IDBKeyRange, pages read both forms.
    const reopened = await createReplica({
      space: 'team',
      dbName: 'fresh',
      indexedDB: factory,
      IDBKeyRange,
      tabs: false,
    })
    const again = reopened.collection<{ title: string; done?: boolean }>('notes')
    expect(await again.list({ order: 'desc' })).toEqual([
      { id: 'b', value: { title: 'b', done: true } },
      { id: 'a', value: { title: 'a' } },
    ])
    await again.put('b', { title: 'b2' })
    const rows = await again.list({ order: 'asc', limit: 2 })
    expect(rows).toEqual([
      { id: 'a', value: { title: 'a' } },
      { id: 'b', value: { title: 'b2' } },
    ])
    expect(Object.isFrozen(rows[0]?.value)).toBe(true)
    await reopened.close()
    const b = (await rawRecords(factory, 'fresh')).get('notes\u0000b') as unknown[]
    expect(b.slice(0, 3)).toEqual(['b', replicaId, 6])
    expect(b[4]).toEqual({ title: 'b2' })
    // Written over the patch, the put's context covers it: stored after the value.
    expect(b[5]).toEqual({ [replicaId]: 3 })
  })

  it('refuses a records entry it cannot read with storage-failed', async () => {
    const factory = new IDBFactory()
    const replica = await createReplica({ space: 'team', dbName: 'odd', indexedDB: factory, tabs: false })
    await replica.collection('notes').put('a', { title: 'a' })
    await replica.close()
    await new Promise<void>((resolve, reject) => {
      const request = factory.open('odd')
      request.onsuccess = () => {
        const db = request.result
        const tx = db.transaction('records', 'readwrite')
        tx.objectStore('records').put(['a', 'replica-x', 1, '000001700000000.00001'], 'notes\u0000a')
        tx.oncomplete = () => {
          db.close()
          resolve()
        }
        tx.onerror = () => reject(tx.error)
      }
    })
    for (const keyRange of [undefined, IDBKeyRange]) {
      const store = await openIdbReplicaStore({
        name: 'odd',
        indexedDB: factory,
        ...(keyRange === undefined ? {} : { IDBKeyRange: keyRange }),
      })
      for (const read of [
        () => store.getRecord('notes', asRecordId('a')),
        () => store.listRecords('notes'),
        () => store.listValuesPage('notes', { order: 'desc' }),
      ]) {
        const error = await read().then(
          () => new Error('expected a rejection'),
          (failure: unknown) => failure,
        )
        expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
      }
      await store.close()
    }
  })
})
