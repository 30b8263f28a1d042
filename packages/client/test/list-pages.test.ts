import { IDBFactory, IDBKeyRange, IDBObjectStore } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { createReplica, type Replica } from '../src/replica.js'
import { openIdbReplicaStore } from '../src/storage/idb-replica-store.js'

const open: Replica[] = []

afterEach(async () => {
  await Promise.all(open.splice(0).map((replica) => replica.close()))
})

const stores = {
  memory: () => createReplica({ space: 'pages', storage: 'memory' }),
  'indexeddb (cursor reads)': () =>
    createReplica({ space: 'pages', storage: 'indexeddb', indexedDB: new IDBFactory() }),
  'indexeddb (key ranges)': async () =>
    createReplica({
      space: 'pages',
      storage: await openIdbReplicaStore({ name: 'pages', indexedDB: new IDBFactory(), IDBKeyRange }),
    }),
}

/** Ids `n00`…`n<count-1>`, written in shuffled order, with every fifth one deleted. */
async function filled(
  make: () => Promise<Replica>,
  count: number,
): Promise<{ replica: Replica; kept: string[] }> {
  const replica = await make()
  open.push(replica)
  const notes = replica.collection<{ n: number }>('notes')
  const ids = Array.from({ length: count }, (_, n) => `n${String(n).padStart(2, '0')}`)
  const shuffled = ids.map((id, n) => ({ id, n, key: (n * 37) % count })).sort((a, b) => a.key - b.key)
  await Promise.all(shuffled.map(({ id, n }) => notes.put(id, { n })))
  await replica.collection('other').put('n50', { n: -1 })
  const deleted = ids.filter((_, n) => n % 5 === 2)
  await Promise.all(deleted.map((id) => notes.delete(id)))
  return { replica, kept: ids.filter((id) => !deleted.includes(id)) }
}

for (const [name, make] of Object.entries(stores)) {
  describe(`collection.list pages (${name})`, () => {
    it('reads the newest first page, then the rest after it: together every row once', async () => {
      const { replica, kept } = await filled(make, 40)
      const notes = replica.collection<{ n: number }>('notes')
      const first = await notes.list({ order: 'desc', limit: 10 })
      // Deleted records take no place in a page: it is full all the same.
      expect(first.map((row) => row.id)).toEqual([...kept].reverse().slice(0, 10))
      const rest = await notes.list({ order: 'desc', after: first[first.length - 1]?.id ?? '' })
      expect([...first, ...rest].map((row) => row.id)).toEqual([...kept].reverse())
      expect(rest.every((row) => Object.isFrozen(row.value))).toBe(true)
    })

    it('pages forwards through the collection, and without options lists every row in id order', async () => {
      const { replica, kept } = await filled(make, 23)
      const notes = replica.collection<{ n: number }>('notes')
      const seen: string[] = []
      let after: string | undefined
      for (;;) {
        const page = await notes.list({ limit: 4, ...(after === undefined ? {} : { after }) })
        seen.push(...page.map((row) => row.id))
        if (page.length < 4) break
        after = page[page.length - 1]?.id
      }
      expect(seen).toEqual(kept)
      expect((await notes.list()).map((row) => row.id)).toEqual(kept)
      expect(await notes.list({ order: 'asc', after: 'n99' })).toEqual([])
      expect((await notes.list({ order: 'desc', after: 'n04', limit: 2 })).map((row) => row.id)).toEqual([
        'n03',
        'n01',
      ])
    })

    it('pages read puts, patched records and rewritten records alike, as get reads them, frozen', async () => {
      const replica = await make()
      open.push(replica)
      const notes = replica.collection<{ n: number; tag?: string }>('notes')
      await notes.put('a', { n: 1 })
      await notes.put('b', { n: 2 })
      await notes.patch('b', { tag: 'patched' })
      await notes.put('c', { n: 3 })
      await notes.put('c', { n: 4 })
      const rows = await notes.list({ order: 'desc', limit: 10 })
      expect(rows).toEqual([
        { id: 'c', value: { n: 4 } },
        { id: 'b', value: { n: 2, tag: 'patched' } },
        { id: 'a', value: { n: 1 } },
      ])
      for (const row of rows) {
        expect(row.value).toEqual(await notes.get(row.id))
        expect(Object.isFrozen(row.value)).toBe(true)
      }
    })
  })
}

describe('collection.list with a resolver of its own', () => {
  it('hands every record whole to a custom resolver, single-version ones too', async () => {
    const replica = await createReplica({
      space: 'pages',
      storage: await openIdbReplicaStore({ name: 'custom', indexedDB: new IDBFactory(), IDBKeyRange }),
      resolvers: {
        notes: {
          kind: 'shout',
          resolve: (versions) => {
            const last = versions[versions.length - 1]
            const value = last?.op.type === 'put' ? { ...last.op.value, loud: true } : undefined
            return { value, stamps: {}, floor: null }
          },
        },
      },
    })
    open.push(replica)
    const notes = replica.collection<{ n: number; loud?: boolean }>('notes')
    await notes.put('a', { n: 1 })
    expect(await notes.list({ order: 'desc', limit: 5 })).toEqual([{ id: 'a', value: { n: 1, loud: true } }])
  })
})

describe('collection.list options', () => {
  it('rejects a limit that is not a positive integer, an unknown order and an empty after', async () => {
    const replica = await createReplica({ space: 'pages', storage: 'memory' })
    open.push(replica)
    const notes = replica.collection('notes')
    for (const options of [
      { limit: 0 },
      { limit: 2.5 },
      { limit: -1 },
      { order: 'newest' },
      { after: '' },
      'desc',
    ]) {
      await expect(notes.list(options as never)).rejects.toMatchObject({ code: 'invalid-argument' })
    }
  })
})

describe('IdbReplicaStore without IndexedDB 3 (no getAll with a direction)', () => {
  it('reads pages in both orders with getAll and a backward cursor', async () => {
    const prototype = IDBObjectStore.prototype as unknown as { getAllRecords?: unknown }
    const saved = prototype.getAllRecords
    delete prototype.getAllRecords
    try {
      const { replica, kept } = await filled(stores['indexeddb (key ranges)'], 30)
      const notes = replica.collection<{ n: number }>('notes')
      const newest = await notes.list({ order: 'desc', limit: 7 })
      expect(newest.map((row) => row.id)).toEqual([...kept].reverse().slice(0, 7))
      const rest = await notes.list({ order: 'desc', after: newest[6]?.id ?? '' })
      expect([...newest, ...rest].map((row) => row.id)).toEqual([...kept].reverse())
      expect((await notes.list({ after: 'n10', limit: 3 })).map((row) => row.id)).toEqual([
        'n11',
        'n13',
        'n14',
      ])
    } finally {
      prototype.getAllRecords = saved
    }
  })
})
