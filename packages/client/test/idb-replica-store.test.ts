import {
  applyChange,
  asRecordId,
  asReplicaId,
  createLwwResolver,
  ErrorCode,
  formatHlc,
  isChorusError,
  makeChange,
} from '@chorus/core'
import { runReplicaStoreConformance } from '@chorus/testkit/conformance'
import { forceCloseDatabase, IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { isTabFenced } from '../src/storage/idb-errors.js'
import { openIdbReplicaStore } from '../src/storage/idb-replica-store.js'

runReplicaStoreConformance('IdbReplicaStore (fake-indexeddb)', async () => {
  const factory = new IDBFactory()
  const name = 'chorus:conformance'
  let current = await openIdbReplicaStore({ name, indexedDB: factory })
  return {
    store: current,
    reopen: async () => {
      current = await openIdbReplicaStore({ name, indexedDB: factory })
      return current
    },
    failNextWrite: () => current.failNextWrite(),
  }
})

// With the key range class, collections are read with getAll over key ranges, not cursors.
runReplicaStoreConformance('IdbReplicaStore (fake-indexeddb, with IDBKeyRange)', async () => {
  const factory = new IDBFactory()
  const name = 'chorus:conformance'
  let current = await openIdbReplicaStore({ name, indexedDB: factory, IDBKeyRange })
  return {
    store: current,
    reopen: async () => {
      current = await openIdbReplicaStore({ name, indexedDB: factory, IDBKeyRange })
      return current
    },
    failNextWrite: () => current.failNextWrite(),
  }
})

/** What a rejected promise rejected with. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('expected a rejection'),
    (error: unknown) => error,
  )
}

/** Opens a database directly, at `version`, creating `stores` if new. */
function rawOpen(
  factory: IDBFactory,
  name: string,
  version: number,
  stores: string[] = [],
): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, version)
    request.onupgradeneeded = () => {
      for (const store of stores) request.result.createObjectStore(store)
    }
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
}

describe('IdbReplicaStore: failures say what to do and never half-write', () => {
  it('a database made by a newer schema is refused with storage-failed (VersionError)', async () => {
    const factory = new IDBFactory()
    ;(await rawOpen(factory, 'newer', 7)).close()
    const error = await failure(openIdbReplicaStore({ name: 'newer', indexedDB: factory }))
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/newer version of this app/)
    expect((error as Error).cause).toMatchObject({ name: 'VersionError' })
  })

  it('a database that is not a Chorus replica is refused, and left alone', async () => {
    const factory = new IDBFactory()
    ;(await rawOpen(factory, 'foreign', 1, ['todos'])).close()
    const error = await failure(openIdbReplicaStore({ name: 'foreign', indexedDB: factory }))
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/not a Chorus replica database.*another dbName/)
    const again = await rawOpen(factory, 'foreign', 1)
    expect(Array.from(again.objectStoreNames as ArrayLike<string>)).toEqual(['todos'])
    again.close()
  })

  it('an open blocked by another tab is refused with storage-failed', async () => {
    const request = { result: undefined, error: null } as unknown as IDBOpenDBRequest
    const blocking = {
      open: () => {
        queueMicrotask(() => request.onblocked?.(new Event('blocked') as IDBVersionChangeEvent))
        return request
      },
    } as unknown as IDBFactory
    const error = await failure(openIdbReplicaStore({ name: 'blocked', indexedDB: blocking }))
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/blocked.*Close this app's other tabs/)
  })

  it('lets go of the database when another tab deletes it, and then fails with storage-failed', async () => {
    const factory = new IDBFactory()
    const store = await openIdbReplicaStore({ name: 'deleted', indexedDB: factory })
    await new Promise<void>((resolve, reject) => {
      const request = factory.deleteDatabase('deleted')
      request.onsuccess = () => resolve()
      request.onerror = () => reject(request.error)
      request.onblocked = () => reject(new Error('the store did not let go of the database'))
    })
    const error = await failure(store.loadMeta())
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/deleted or upgraded by another tab.*Reload/)
    await store.close()
  })

  it('a connection the browser closes abnormally fails later calls with storage-failed', async () => {
    const factory = new IDBFactory()
    let request: IDBOpenDBRequest | undefined
    const watched = {
      open: (name: string, version?: number) => {
        request = factory.open(name, version)
        return request
      },
    } as unknown as IDBFactory
    const store = await openIdbReplicaStore({ name: 'terminated', indexedDB: watched })
    // What a browser does to a connection after a disk error or when site data is cleared.
    forceCloseDatabase(request?.result as never)
    const error = await failure(store.getRecord('notes', asRecordId('a')))
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/browser closed the IndexedDB database/)
    await store.close()
  })

  it('without IndexedDB, opening fails with storage-failed and says what to use instead', async () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'indexedDB')
    Reflect.deleteProperty(globalThis, 'indexedDB')
    try {
      const error = await failure(openIdbReplicaStore({ name: 'none' }))
      expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
      expect((error as Error).message).toMatch(/IndexedDB is not available.*storage 'memory'/)
    } finally {
      if (saved !== undefined) Object.defineProperty(globalThis, 'indexedDB', saved)
    }
  })

  it('the quota fault aborts the transaction: storage-failed with advice, nothing committed', async () => {
    const factory = new IDBFactory()
    const store = await openIdbReplicaStore({ name: 'quota', indexedDB: factory })
    await store.initMeta({
      replicaId: 'me' as never,
      space: 'quota' as never,
      counter: 0,
      clock: { wall: 0, counter: 0 },
      cursor: 0,
    })
    store.failNextWrite()
    const error = await failure(store.applyRemote({ records: [], clock: { wall: 5, counter: 1 }, cursor: 3 }))
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/quota.*Nothing was written.*navigator\.storage\.persist/)
    expect((error as Error).cause).toMatchObject({ name: 'QuotaExceededError' })
    expect(await store.loadMeta()).toMatchObject({ cursor: 0, clock: { wall: 0, counter: 0 } })
    await store.close()
  })
})

describe('IdbReplicaStore leadership: the epoch fences a tab that was taken over', () => {
  const freshMeta = () => ({
    replicaId: 'tab-replica' as never,
    space: 'notes-space' as never,
    counter: 0,
    clock: { wall: 0, counter: 0 },
    cursor: 0,
  })

  it('after another instance claims the connection, the old one can neither upload, apply nor drop', async () => {
    const factory = new IDBFactory()
    const name = 'chorus:fencing'
    const frozenTab = await openIdbReplicaStore({ name, indexedDB: factory })
    await frozenTab.initMeta(freshMeta())
    const otherTab = await openIdbReplicaStore({ name, indexedDB: factory })
    expect(await frozenTab.claimLeadership()).toBe(1)
    await frozenTab.readOutbox(0, 10)
    expect(await otherTab.claimLeadership()).toBe(2)

    const refusals = await Promise.all([
      failure(frozenTab.readOutbox(0, 10)),
      failure(frozenTab.applyRemote({ records: [], clock: { wall: 1, counter: 0 }, cursor: 5 })),
      failure(frozenTab.dropOutbox(3)),
    ])
    for (const refusal of refusals) {
      expect(isChorusError(refusal) && refusal.code).toBe(ErrorCode.StorageFailed)
      expect(isTabFenced(refusal)).toBe(true)
    }
    // Nothing of the refused apply landed; the new leader works.
    expect((await otherTab.loadMeta())?.cursor).toBe(0)
    await otherTab.applyRemote({ records: [], clock: { wall: 2, counter: 0 }, cursor: 1 })
    expect((await otherTab.loadMeta())?.cursor).toBe(1)
    // Once it knows it follows, the old tab reads again (without leader-only checks).
    frozenTab.releaseLeadership()
    expect(await frozenTab.readOutbox(0, 10)).toEqual([])
    await Promise.all([frozenTab.close(), otherTab.close()])
  })

  it('keeps the later clock when instances write out of order', async () => {
    const factory = new IDBFactory()
    const store = await openIdbReplicaStore({ name: 'chorus:clock', indexedDB: factory })
    await store.initMeta(freshMeta())
    await store.applyRemote({ records: [], clock: { wall: 500, counter: 2 }, cursor: null })
    await store.applyRemote({ records: [], clock: { wall: 400, counter: 9 }, cursor: null })
    expect((await store.loadMeta())?.clock).toEqual({ wall: 500, counter: 2 })
    // A local write behind the stored clock (another tab's instance wrote meanwhile) keeps it too.
    const change = makeChange({
      collection: 'notes',
      id: asRecordId('a'),
      record: undefined,
      resolver: createLwwResolver(),
      intent: { type: 'put', value: { title: 'a' } },
      dot: [asReplicaId('tab-replica'), 1],
      hlc: formatHlc({ wall: 400, counter: 9, replica: asReplicaId('tab-replica') }),
    })
    await store.commitLocal({
      record: { collection: 'notes', id: asRecordId('a'), state: applyChange(undefined, change).state },
      change,
      clock: { wall: 400, counter: 9 },
    })
    expect(await store.loadMeta()).toMatchObject({ counter: 1, clock: { wall: 500, counter: 2 } })
    await store.close()
  })
})
