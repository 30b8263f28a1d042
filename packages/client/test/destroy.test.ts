import {
  type ChorusError,
  createReplica,
  deleteReplica,
  ErrorCode,
  isChorusError,
  openIdbReplicaStore,
  type Replica,
} from '@chorus/client'
import { MemoryReplicaStore } from '@chorus/core'
import { forceCloseDatabase, IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FakeLocks } from './helpers/fake-locks.js'
import { idbReplicas, poll } from './helpers/idb-replicas.js'
import { startTestHub, type TestHub } from './helpers/test-hub.js'

// Deleting a replica's data on this device: `replica.destroy()` and `deleteReplica()`. Tabs
// in Node as in tabs.test.ts: one fake-indexeddb factory is the origin, Node's
// BroadcastChannel and a fake `navigator.locks` connect the replicas opened on one database.

let hub: TestHub
const locks = new FakeLocks()
const hadNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator')

beforeAll(async () => {
  Object.defineProperty(globalThis, 'navigator', { value: { locks }, configurable: true, writable: true })
  hub = await startTestHub()
})

afterAll(async () => {
  await hub.close()
  if (hadNavigator === undefined) Reflect.deleteProperty(globalThis, 'navigator')
  else Object.defineProperty(globalThis, 'navigator', hadNavigator)
})

const replicas = idbReplicas(() => hub, 'lww')
const offline: Replica[] = []

afterEach(async () => {
  await replicas.closeAll()
  await Promise.all(offline.splice(0).map((replica) => replica.close()))
})

let spaces = 0
function nextSpace(): string {
  spaces += 1
  return `destroy-${spaces}`
}

/** A replica with no relay on `indexedDB`'s database `dbName`. */
async function offlineReplica(
  space: string,
  indexedDB: IDBFactory,
  dbName = `db-${space}`,
): Promise<Replica> {
  const replica = await createReplica({
    space,
    storage: 'indexeddb',
    indexedDB,
    IDBKeyRange,
    dbName,
    networkEvents: null,
  })
  offline.push(replica)
  return replica
}

async function rejection(promise: Promise<unknown>): Promise<ChorusError> {
  const outcome = await promise.then(
    () => new Error('expected a rejection'),
    (error: unknown) => error,
  )
  if (!isChorusError(outcome)) throw outcome
  return outcome
}

async function databaseNames(indexedDB: IDBFactory): Promise<string[]> {
  return (await indexedDB.databases()).map((database) => database.name as string)
}

describe('replica.destroy', () => {
  it('refuses while own changes are unacknowledged, deleting nothing, and the replica goes on', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const replica = await offlineReplica(space, origin)
    await replica.collection('notes').put('a', { title: 'only here' })
    await replica.collection('notes').put('b', { title: 'here too' })

    const refused = await rejection(replica.destroy())
    expect(refused.code).toBe(ErrorCode.PendingChanges)
    expect(refused.message).toContain('2 own changes')
    expect(await replica.collection('notes').get('a')).toEqual({ title: 'only here' })
    await replica.collection('notes').put('c', { title: 'after' })
    expect(replica.pending).toBe(3)
    expect(await databaseNames(origin)).toContain(`db-${space}`)
  })

  it('with discardPending deletes them too: calls then reject, and the replica made again is new and empty', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const replica = await offlineReplica(space, origin)
    await replica.collection('notes').put('a', { title: 'gone' })
    const firstId = replica.replicaId

    await replica.destroy({ discardPending: true })
    expect(await databaseNames(origin)).not.toContain(`db-${space}`)
    expect((await rejection(replica.collection('notes').get('a'))).code).toBe(ErrorCode.Closed)
    expect((await rejection(replica.destroy())).code).toBe(ErrorCode.Closed)

    const again = await offlineReplica(space, origin)
    expect(again.replicaId).not.toBe(firstId)
    expect(await again.collection('notes').list()).toEqual([])
    expect(again.pending).toBe(0)
  })

  it('a synced replica is destroyed at once; made again, it reads the space back from the relay', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const replica = await replicas.open(space, origin, 'synced')
    await replica.collection('notes').put('a', { title: 'kept on the relay' })
    await replica.synced()

    await replica.destroy()
    expect(await databaseNames(origin)).not.toContain('synced')
    const again = await replicas.open(space, origin, 'synced')
    expect(again.replicaId).not.toBe(replica.replicaId)
    await again.synced()
    expect(await again.collection('notes').get('a')).toEqual({ title: 'kept on the relay' })
  })

  it('rejects bad options, and a store that cannot delete its data', async () => {
    const replica = await offlineReplica(nextSpace(), new IDBFactory())
    expect((await rejection(replica.destroy('all' as never))).code).toBe(ErrorCode.InvalidArgument)
    expect((await rejection(replica.destroy({ discardPending: 'yes' } as never))).code).toBe(
      ErrorCode.InvalidArgument,
    )

    const store = new MemoryReplicaStore()
    Object.defineProperty(store, 'destroy', { value: undefined })
    const custom = await createReplica({ space: nextSpace(), storage: store, networkEvents: null })
    offline.push(custom)
    const refused = await rejection(custom.destroy({ discardPending: true }))
    expect(refused.code).toBe(ErrorCode.InvalidArgument)
    expect(refused.message).toContain('no destroy method')
    // Nothing happened: the replica is open.
    await custom.collection('notes').put('a', { ok: true })
  })

  it('a replica in memory is destroyed like one on disk', async () => {
    const replica = await createReplica({ space: nextSpace(), storage: 'memory', networkEvents: null })
    offline.push(replica)
    await replica.collection('notes').put('a', { title: 'x' })
    expect((await rejection(replica.destroy())).code).toBe(ErrorCode.PendingChanges)
    await replica.destroy({ discardPending: true })
    expect((await rejection(replica.collection('notes').list())).code).toBe(ErrorCode.Closed)
  })
})

describe('deleteReplica', () => {
  it('refuses a database holding unacknowledged changes, and deletes it with discardPending', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const replica = await offlineReplica(space, origin)
    await replica.collection('notes').put('a', { title: 'only here' })
    const id = replica.replicaId
    await replica.close()

    const refused = await rejection(
      deleteReplica({ space, dbName: `db-${space}`, indexedDB: origin, IDBKeyRange }),
    )
    expect(refused.code).toBe(ErrorCode.PendingChanges)
    const reopened = await offlineReplica(space, origin)
    expect(reopened.replicaId).toBe(id)
    expect(await reopened.collection('notes').get('a')).toEqual({ title: 'only here' })
    await reopened.close()

    await deleteReplica({ space, dbName: `db-${space}`, indexedDB: origin, discardPending: true })
    expect(await databaseNames(origin)).not.toContain(`db-${space}`)
  })

  it('names the database as createReplica does, and a database that is not there is no error', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const replica = await createReplica({ space, indexedDB: origin, IDBKeyRange, networkEvents: null })
    offline.push(replica)
    await replica.close()
    expect(await databaseNames(origin)).toContain(`chorus:${space}`)
    await deleteReplica({ space, indexedDB: origin })
    expect(await databaseNames(origin)).not.toContain(`chorus:${space}`)
    await deleteReplica({ space: 'never-opened', indexedDB: origin })
    expect(await databaseNames(origin)).toEqual([])
  })

  it('closes a replica open in this process on the database it deletes, and it says so', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const replica = await offlineReplica(space, origin)
    await replica.collection('notes').put('a', { title: 'only here' })
    const errors: ChorusError[] = []
    replica.on('error', (error) => errors.push(error))
    await deleteReplica({ space, dbName: `db-${space}`, indexedDB: origin, discardPending: true })
    await poll(() => errors.length > 0, 'the replica to say it closed', 5_000)
    expect(errors.map((error) => error.code)).toEqual([ErrorCode.Closed])
    expect(errors[0]?.message).toContain("this replica's data was deleted")
    expect((await rejection(replica.collection('notes').get('a'))).code).toBe(ErrorCode.Closed)
    expect(await databaseNames(origin)).not.toContain(`db-${space}`)
  })

  it('rejects bad options', async () => {
    expect((await rejection(deleteReplica(undefined as never))).code).toBe(ErrorCode.InvalidArgument)
    expect((await rejection(deleteReplica({} as never))).code).toBe(ErrorCode.InvalidArgument)
    expect(
      (
        await rejection(
          deleteReplica({ space: 's', indexedDB: new IDBFactory(), discardPending: 1 as never }),
        )
      ).code,
    ).toBe(ErrorCode.InvalidArgument)
    expect((await rejection(deleteReplica({ space: 's', dbName: '' }))).code).toBe(ErrorCode.InvalidArgument)
    // An option of createReplica's that deleteReplica does not take is named as its own.
    const unknown = await rejection(deleteReplica({ space: 's', url: 'ws://127.0.0.1:1' } as never))
    expect(unknown.message).toBe(
      'unknown option "url" of deleteReplica: use space, dbName, indexedDB, IDBKeyRange, tabs, discardPending',
    )
  })
})

describe('a database the browser closes under a tab', () => {
  it('closes that tab’s replica, says why, and lets another tab lead and sync', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const connections: IDBOpenDBRequest[] = []
    // The same origin, watched: the connections the first tab opens, to close them as a
    // browser does when site data is cleared or storage evicted.
    const watched = new Proxy(origin, {
      get(target, key) {
        if (key === 'open')
          return (name: string, version?: number) => {
            const request = target.open(name, version)
            connections.push(request)
            return request
          }
        const value = Reflect.get(target, key)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const first = await replicas.open(space, watched, 'evicted')
    const second = await replicas.open(space, origin, 'evicted')
    await first.collection('notes').put('before', { by: 'first' })
    await second.synced()
    const errors: ChorusError[] = []
    first.on('error', (error) => errors.push(error))

    for (const request of connections) forceCloseDatabase(request.result as never)
    await poll(() => errors.length > 0, 'the first tab to say its database closed', 5_000)
    expect(errors[0]?.code).toBe(ErrorCode.Closed)
    expect(errors[0]?.message).toContain("the browser closed this replica's database")
    expect((await rejection(first.collection('notes').get('before'))).code).toBe(ErrorCode.Closed)

    // The lock went with it: the second tab leads, and its write reaches the relay.
    await second.collection('notes').put('after', { by: 'second' })
    await second.synced()
    const elsewhere = await replicas.open(space, new IDBFactory(), 'elsewhere')
    await elsewhere.synced()
    expect(await elsewhere.collection('notes').get('after')).toEqual({ by: 'second' })
  })
})

describe('destroying a replica tabs share', () => {
  /** Two tabs on database `dbName`, synced once, then offline (the switch is shared). */
  async function offlineTabs(dbName: string) {
    const space = nextSpace()
    const origin = new IDBFactory()
    const first = await replicas.open(space, origin, dbName)
    const second = await replicas.open(space, origin, dbName)
    await first.synced()
    second.disconnect()
    return { first, second, origin }
  }

  it('every tab closes its replica and says why', async () => {
    const space = nextSpace()
    const origin = new IDBFactory()
    const first = await replicas.open(space, origin, 'shared')
    const second = await replicas.open(space, origin, 'shared')
    expect(second.replicaId).toBe(first.replicaId)
    await first.collection('notes').put('a', { title: 'a' })
    await second.synced()
    const errors: ChorusError[] = []
    second.on('error', (error) => errors.push(error))

    await first.destroy()
    await poll(() => errors.length > 0, 'the other tab to hear of it', 5_000)
    expect(errors[0]?.code).toBe(ErrorCode.Closed)
    expect(errors).toHaveLength(1)
    expect(errors[0]?.message).toContain("this replica's data was deleted (destroy in another tab")
    expect((await rejection(second.collection('notes').get('a'))).code).toBe(ErrorCode.Closed)
    expect(await databaseNames(origin)).not.toContain('shared')
  })

  it("another tab's unacknowledged writes are counted", async () => {
    const { first, second } = await offlineTabs('shared-pending')
    await second.collection('notes').put('b', { by: 'the other tab' })

    expect((await rejection(first.destroy())).code).toBe(ErrorCode.PendingChanges)
    expect(await first.collection('notes').get('b')).toEqual({ by: 'the other tab' })
  })

  it('a write another tab commits while this one closes is counted again: nothing is deleted', async () => {
    const { first, second, origin } = await offlineTabs('shared-race')
    const lock = 'chorus:shared-race:write'
    // Hold the tabs' write lock, so the other tab's write waits for it first, then the deletion.
    let release!: () => void
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    void locks.request(lock, { mode: 'exclusive' }, () => held)
    const write = second.collection('notes').put('late', { by: 'the other tab' })
    await poll(() => locks.waiting(lock) === 1, 'the write to wait for the lock', 5_000)
    const destroyed = rejection(first.destroy())
    await poll(() => locks.waiting(lock) === 2, 'the deletion to wait for the lock', 5_000)
    release()
    await write

    expect((await destroyed).code).toBe(ErrorCode.PendingChanges)
    expect((await rejection(first.collection('notes').get('late'))).code).toBe(ErrorCode.Closed)
    expect(await second.collection('notes').get('late')).toEqual({ by: 'the other tab' })
    const store = await openIdbReplicaStore({ name: 'shared-race', indexedDB: origin })
    expect(await store.outboxSize()).toBe(1)
    await store.close()
  })
})
