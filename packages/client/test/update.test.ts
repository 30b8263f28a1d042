import { createReplica } from '@chorus/client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { replicaPool } from './helpers/replicas.js'
import { everyStorage } from './helpers/storages.js'
import { startTestHub, type TestHub } from './helpers/test-hub.js'

const storages = everyStorage('update')

interface Counter {
  title: string
  n: number
}

describe.each(storages)('Collection.update on %s storage', (_name, storage) => {
  it('updates issued together (one batch) each see the one before: no increment is lost', async () => {
    const replica = await createReplica({ space: 'counting', ...(await storage()) })
    const counters = replica.collection<Counter>('counters')
    await counters.put('c', { title: 'kept', n: 0 })
    const written = await Promise.all(
      Array.from({ length: 200 }, () => counters.update('c', (current) => ({ n: (current?.n ?? 0) + 1 }))),
    )
    expect(written.every((wrote) => wrote)).toBe(true)
    expect(await counters.get('c')).toEqual({ title: 'kept', n: 200 })
    expect(replica.pending).toBe(201)
    await replica.close()
  })

  it('resolves false and writes nothing when the function returns undefined; rejects with what it throws', async () => {
    const replica = await createReplica({ space: 'counting', ...(await storage()) })
    const counters = replica.collection<Counter>('counters')
    await counters.put('c', { title: 'kept', n: 1 })
    expect(await counters.update('c', () => undefined)).toBe(false)
    const oops = new Error('no')
    await expect(
      counters.update('c', () => {
        throw oops
      }),
    ).rejects.toBe(oops)
    await expect(counters.update('c', () => ({ n: Number.NaN }))).rejects.toMatchObject({
      code: 'invalid-argument',
    })
    expect(replica.pending).toBe(1)
    expect(await counters.get('c')).toEqual({ title: 'kept', n: 1 })
    await replica.close()
  })
})

describe.each(storages)('Collection.read on %s storage', (_name, storage) => {
  it('reads the value and no conflict; undefined for a record not there or deleted', async () => {
    const replica = await createReplica({ space: 'counting', ...(await storage()) })
    const counters = replica.collection<Counter>('counters')
    expect(await counters.read('c')).toEqual({ value: undefined, conflict: [] })
    await counters.put('c', { title: 'kept', n: 1 })
    const read = await counters.read('c')
    expect(read).toEqual({ value: { title: 'kept', n: 1 }, conflict: [] })
    expect(Object.isFrozen(read.value)).toBe(true)
    await counters.delete('c')
    expect(await counters.read('c')).toEqual({ value: undefined, conflict: [] })
    await replica.close()
    await expect(counters.read('c')).rejects.toMatchObject({ code: 'closed' })
  })
})

describe('Collection.update between two replicas on a relay', () => {
  let hub: TestHub
  const pool = replicaPool(41)
  beforeAll(async () => {
    hub = await startTestHub()
  })
  afterEach(() => pool.closeAll())
  afterAll(() => hub.close())

  it('an app that writes only over what it showed skips its write when a synced edit changed the record', async () => {
    const alice = await pool.create(hub, { resolvers: { notes: 'manual' } })
    const bob = await pool.create(hub, { resolvers: { notes: 'manual' } })
    const aliceNotes = alice.collection<{ body: string }>('notes')
    await aliceNotes.put('n', { body: 'one' })
    await alice.synced()
    await bob.synced()
    const shown = await aliceNotes.get('n')
    await bob.collection<{ body: string }>('notes').patch('n', { body: 'one two' })
    await bob.synced()
    await alice.synced()
    const overShown = (current: { readonly body: string } | undefined) =>
      current?.body === shown?.body ? { body: `${shown?.body} three` } : undefined
    expect(await aliceNotes.update('n', overShown)).toBe(false)
    // The app merges its edit into what is there now, and writes.
    expect(await aliceNotes.update('n', (current) => ({ body: `${current?.body} three` }))).toBe(true)
    await alice.synced()
    await bob.synced()
    expect(await bob.collection('notes').get('n')).toEqual({ body: 'one two three' })
    expect(await bob.conflicts()).toEqual([])
  })

  it('Collection.read gives a conflict’s versions with the value, on both replicas', async () => {
    const alice = await pool.create(hub, { resolvers: { notes: 'manual' } })
    const bob = await pool.create(hub, { resolvers: { notes: 'manual' } })
    alice.disconnect()
    bob.disconnect()
    await alice.collection<{ body: string }>('notes').put('r', { body: 'alice' })
    await bob.collection<{ body: string }>('notes').put('r', { body: 'bob' })
    alice.connect()
    bob.connect()
    await alice.synced()
    await bob.synced()
    await alice.synced()
    for (const replica of [alice, bob]) {
      const notes = replica.collection<{ body: string }>('notes')
      const read = await notes.read('r')
      expect(read.value).toEqual(await notes.get('r'))
      expect(read.conflict.map((version) => version.value?.body).sort()).toEqual(['alice', 'bob'])
      expect(read.conflict).toEqual(
        (await replica.conflicts({ collection: 'notes', ids: ['r'] }))[0]?.versions,
      )
    }
  })
})
