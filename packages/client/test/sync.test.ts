import {
  type ChorusError,
  ErrorCode,
  type JsonObject,
  openIdbReplicaStore,
  type Replica,
  type Row,
  type StatusEvent,
  type SyncStatus,
} from '@chorus/client'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { replicaPool } from './helpers/replicas.js'
import { isHubQuiet, startTestHub, type TestHub } from './helpers/test-hub.js'
import { hubActivity, nextEvent, replicaActivity, until, within } from './helpers/wait.js'

let hub: TestHub
const pool = replicaPool(20_240_601)

beforeEach(async () => {
  hub = await startTestHub()
})

afterEach(async () => {
  await pool.closeAll()
  await hub.close()
  expect(hub.errors()).toEqual([])
})

/** Waits until every replica's changes are stored and every replica has applied the whole log. */
function settled(...replicas: Replica[]): Promise<void> {
  return until(
    'the hub and replicas to settle',
    [hubActivity(hub), ...replicas.map(replicaActivity)],
    () =>
      replicas.every((replica) => replica.status === 'synced' && replica.pending === 0) &&
      isHubQuiet(hub, 'team-notes') &&
      hub.engine.sessions().length === replicas.length,
  )
}

/** The rows a subscription delivers, and a way to wait for one that passes a check. */
function watch(replica: Replica, collection: string) {
  const calls: (readonly Row[])[] = []
  const listeners = new Set<() => void>()
  const stop = replica.collection(collection).subscribe((rows) => {
    calls.push(rows)
    for (const listener of listeners) listener()
  })
  return {
    calls,
    stop,
    until: (what: string, check: (rows: readonly Row[]) => boolean) =>
      until(
        what,
        [
          (listener) => {
            listeners.add(listener)
            return () => listeners.delete(listener)
          },
        ],
        () => {
          const last = calls.at(-1)
          return last !== undefined && check(last)
        },
      ),
  }
}

const titles = (rows: readonly Row[]) => rows.map((row) => `${row.id}:${String(row.value.title)}`)

describe('sync between replicas over real sockets', () => {
  it('a put on one replica reaches the other', async () => {
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    const bobNotes = watch(bob, 'notes')
    await alice.collection('notes').put('n1', { title: 'Groceries' })
    await bobNotes.until('bob to see the note', (rows) => rows.length === 1)
    expect(await bob.collection('notes').get('n1')).toEqual({ title: 'Groceries' })
    expect(await bob.collection('notes').list()).toEqual([{ id: 'n1', value: { title: 'Groceries' } }])
    await within('alice to be synced', alice.synced())
    expect(alice.status).toBe('synced')
  })

  it('writes made offline upload on connect() and are acknowledged (IndexedDB storage)', async () => {
    const factory = new IDBFactory()
    const alice = await pool.create(hub, { storage: 'indexeddb', indexedDB: factory, autoConnect: false })
    const notes = alice.collection('notes')
    await notes.put('a', { title: 'one' })
    await notes.patch('a', { done: true })
    await notes.put('b', { title: 'two' })
    await notes.delete('b')
    expect(alice.status).toBe('offline')
    expect(alice.pending).toBe(4)
    alice.connect()
    await within('alice to be synced', alice.synced())
    expect(alice.status).toBe('synced')
    expect(alice.pending).toBe(0)
    expect(hub.engine.sessions()[0]?.spaces[0]?.received).toBe(4)

    const bob = await pool.create(hub)
    await settled(alice, bob)
    expect(await bob.collection('notes').list()).toEqual([{ id: 'a', value: { title: 'one', done: true } }])
  })

  it('a replica reopened from IndexedDB keeps its id, records and outbox, and uploads them', async () => {
    const factory = new IDBFactory()
    const first = await pool.create(null, { storage: 'indexeddb', indexedDB: factory, dbName: 'alice' })
    for (const id of ['a', 'b', 'c']) await first.collection('notes').put(id, { title: id })
    await first.close()

    const again = await pool.create(hub, { storage: 'indexeddb', indexedDB: factory, dbName: 'alice' })
    expect(again.replicaId).toBe(first.replicaId)
    expect(again.pending).toBe(3)
    expect(await again.collection('notes').list()).toHaveLength(3)
    await within('the upload', again.synced())
    expect(hub.engine.sessions()[0]).toMatchObject({ replicaId: first.replicaId, spaces: [{ received: 3 }] })
  })

  it('reports offline → connecting → syncing → synced, with pending and lag', async () => {
    const bob = await pool.create(hub)
    for (let i = 0; i < 5; i++) await bob.collection('notes').put(`b${i}`, { title: `from bob ${i}` })
    await settled(bob)

    const alice = await pool.create(hub, { autoConnect: false })
    const events: StatusEvent[] = []
    alice.on('status', (event) => events.push(event))
    await alice.collection('notes').put('a1', { title: 'offline 1' })
    await alice.collection('notes').put('a2', { title: 'offline 2' })
    expect(events).toEqual([
      { status: 'offline', pending: 1, lag: 0, refusal: null, wantsConnection: false, readOnly: false },
      { status: 'offline', pending: 2, lag: 0, refusal: null, wantsConnection: false, readOnly: false },
    ])
    alice.connect()
    await within('alice to be synced', alice.synced())
    await settled(alice, bob)

    const statuses = events.map((event) => event.status).filter((s, i, all) => s !== all[i - 1])
    expect(statuses.slice(0, 4)).toEqual<SyncStatus[]>(['offline', 'connecting', 'syncing', 'synced'])
    expect(events).toContainEqual({
      status: 'connecting',
      pending: 2,
      lag: 0,
      refusal: null,
      wantsConnection: true,
      readOnly: false,
    })
    // The hub's hello told alice how far behind she was: bob's five changes.
    expect(events.some((event) => event.status === 'syncing' && event.lag === 5)).toBe(true)
    expect(events.at(-1)).toEqual({
      status: 'synced',
      pending: 0,
      lag: 0,
      refusal: null,
      wantsConnection: true,
      readOnly: false,
    })
    expect(await alice.collection('notes').list()).toHaveLength(7)

    alice.disconnect()
    expect(alice.status).toBe('offline')
    expect(events.at(-1)).toEqual({
      status: 'offline',
      pending: 0,
      lag: 0,
      refusal: null,
      wantsConnection: false,
      readOnly: false,
    })
  })
})

describe('remote changes that fail to store', () => {
  it('are reported as an error event and fetched again', async () => {
    await hub.close()
    hub = await startTestHub({ session: { retransmitMs: 100 } })
    const store = await openIdbReplicaStore({ name: 'bob', indexedDB: new IDBFactory() })
    const fast = { session: { retransmitMs: 100 }, tickMs: 25 }
    const alice = await pool.create(hub, fast)
    const bob = await pool.create(hub, { ...fast, storage: store })
    await settled(alice, bob)
    const errors: ChorusError[] = []
    bob.on('error', (error) => errors.push(error))
    const reported = nextEvent('the failed apply', (listener) => bob.on('error', listener))
    store.failNextWrite()
    await alice.collection('notes').put('n1', { title: 'arrives on the second try' })
    await reported
    expect(errors.map((error) => error.code)).toEqual([ErrorCode.StorageFailed])
    // The message says what the engine does and, from the store, what the user can do.
    const [failure] = errors as [ChorusError]
    expect(failure.message.endsWith(` (${(failure.cause as Error).message})`)).toBe(true)
    expect(failure.message).toMatch(/quota/i)
    expect(await bob.collection('notes').get('n1')).toBeUndefined()
    await settled(alice, bob)
    expect(await bob.collection('notes').get('n1')).toEqual({ title: 'arrives on the second try' })
  })
})

describe('concurrent edits converge under each resolver', () => {
  async function concurrently(
    resolvers: Record<string, 'lww' | 'merge' | 'manual'>,
    base: JsonObject,
    edit: (who: 'alice' | 'bob', replica: Replica) => Promise<void>,
  ): Promise<[Replica, Replica]> {
    const alice = await pool.create(hub, { resolvers })
    const bob = await pool.create(hub, { resolvers })
    await alice.collection('notes').put('n1', base)
    await settled(alice, bob)
    alice.disconnect()
    bob.disconnect()
    await edit('alice', alice)
    await edit('bob', bob)
    alice.connect()
    bob.connect()
    await settled(alice, bob)
    return [alice, bob]
  }

  it('lww: both replicas read the same, later write', async () => {
    const [alice, bob] = await concurrently({ notes: 'lww' }, { title: 'base' }, (who, replica) =>
      replica.collection('notes').put('n1', { title: `by ${who}` }),
    )
    const value = await alice.collection('notes').get('n1')
    expect(await bob.collection('notes').get('n1')).toEqual(value)
    expect(['by alice', 'by bob']).toContain(value?.title)
    expect(await alice.conflicts()).toEqual([])
  })

  it('merge: each replica keeps both fields edited concurrently', async () => {
    const [alice, bob] = await concurrently(
      { notes: 'merge' },
      { title: 'base', body: 'base' },
      (who, replica) =>
        replica.collection('notes').patch('n1', who === 'alice' ? { title: 'alice' } : { body: 'bob' }),
    )
    expect(await alice.collection('notes').get('n1')).toEqual({ title: 'alice', body: 'bob' })
    expect(await bob.collection('notes').get('n1')).toEqual({ title: 'alice', body: 'bob' })
  })

  it('manual: both replicas show the conflict, and one resolve() settles it on both', async () => {
    const [alice, bob] = await concurrently({ notes: 'manual' }, { title: 'base' }, (who, replica) =>
      replica.collection('notes').put('n1', { title: `by ${who}` }),
    )
    for (const replica of [alice, bob]) {
      const conflicts = await replica.conflicts()
      expect(conflicts).toHaveLength(1)
      expect(conflicts[0]).toMatchObject({ collection: 'notes', id: 'n1' })
      expect(conflicts[0]?.versions.map((version) => version.value?.title).sort()).toEqual([
        'by alice',
        'by bob',
      ])
      expect(conflicts[0]?.versions.map((version) => version.replicaId).sort()).toEqual(
        [alice.replicaId, bob.replicaId].sort(),
      )
    }
    // Only among the records named: the ids of a change event, say (unknown ids and repeats
    // are fine; a bad collection name is refused as everywhere).
    const all = await alice.conflicts()
    expect(await alice.conflicts({ collection: 'notes', ids: ['n1', 'n1', 'nothing-here'] })).toEqual(all)
    expect(await alice.conflicts({ collection: 'notes', ids: ['nothing-here'] })).toEqual([])
    expect(await alice.conflicts({ collection: 'tags', ids: ['n1'] })).toEqual([])
    // A collection alone: every conflict in it.
    expect(await alice.conflicts({ collection: 'notes' })).toEqual(all)
    expect(await alice.conflicts({ collection: 'tags' })).toEqual([])
    await expect(alice.conflicts({ collection: '', ids: ['n1'] })).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
    })
    await bob.collection('notes').resolve('n1', { title: 'agreed' })
    await settled(alice, bob)
    for (const replica of [alice, bob]) {
      expect(await replica.conflicts()).toEqual([])
      expect(await replica.conflicts({ collection: 'notes', ids: ['n1'] })).toEqual([])
      expect(await replica.collection('notes').get('n1')).toEqual({ title: 'agreed' })
    }
  })
})

describe('live queries', () => {
  it('fire at once, on local and on remote changes, and stop when told', async () => {
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    const live = watch(alice, 'notes')
    await live.until('the first rows', () => true)
    expect(live.calls).toEqual([[]])

    await alice.collection('notes').put('a', { title: 'local' })
    await live.until('the local write', (rows) => rows.length === 1)
    expect(titles(live.calls.at(-1) ?? [])).toEqual(['a:local'])

    await bob.collection('notes').put('b', { title: 'remote' })
    await live.until('the remote write', (rows) => rows.length === 2)
    expect(titles(live.calls.at(-1) ?? [])).toEqual(['a:local', 'b:remote'])

    live.stop()
    const count = live.calls.length
    const other = watch(alice, 'notes')
    await bob.collection('notes').put('c', { title: 'after stop' })
    await other.until('the write after stop', (rows) => rows.length === 3)
    expect(live.calls).toHaveLength(count)
    other.stop()
  })

  it('coalesce a burst of writes into one call, and ignore other collections', async () => {
    const alice = await pool.create(null)
    const live = watch(alice, 'notes')
    await live.until('the first rows', () => true)
    const notes = alice.collection('notes')
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => notes.put(id, { title: id })))
    await alice.collection('tags').put('t', { title: 'not a note' })
    await live.until('the burst', (rows) => rows.length === 5)
    expect(live.calls.map((rows) => rows.length)).toEqual([0, 5])
    live.stop()
  })

  it('values read are frozen: editing one throws and changes nothing', async () => {
    const alice = await pool.create(null)
    await alice.collection('notes').put('a', { title: 'original', tags: ['x'] })
    const value = await alice.collection<{ title: string; tags: string[] }>('notes').get('a')
    expect(Object.isFrozen(value)).toBe(true)
    expect(Object.isFrozen(value?.tags)).toBe(true)
    expect(() => {
      ;(value as { title: string }).title = 'edited'
    }).toThrow(TypeError)
    expect(await alice.collection('notes').get('a')).toEqual({ title: 'original', tags: ['x'] })
  })
})

describe('synced()', () => {
  it("holds, once it resolves, what another replica's synced() had put on the relay", async () => {
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    await settled(alice, bob)
    for (let i = 0; i < 20; i++) {
      // bob reports synced: a synced() that trusted the relay's last report would resolve at
      // once, before the relay's next frame to bob arrived.
      expect(bob.status).toBe('synced')
      await alice.collection('notes').put(`n${i}`, { title: `note ${i}` })
      await alice.synced()
      await bob.synced()
      expect(await bob.collection('notes').get(`n${i}`)).toEqual({ title: `note ${i}` })
    }
  })

  it('called offline, resolves once reconnected and caught up with the relay', async () => {
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    await settled(alice, bob)
    bob.disconnect()
    await alice.collection('notes').put('n1', { title: 'while bob was away' })
    await alice.synced()
    let done = false
    const waiting = bob.synced().then(() => {
      done = true
    })
    await alice.collection('notes').put('n2', { title: 'also while bob was away' })
    await alice.synced()
    expect(done).toBe(false)
    bob.connect()
    await within('bob to be synced', waiting)
    expect(await bob.collection('notes').list()).toHaveLength(2)
  })
})
