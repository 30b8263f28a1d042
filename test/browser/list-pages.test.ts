import { createReplica } from '@chorus/client'
import { describe, expect, it } from 'vitest'

// In Chromium (see the `browser` project): pages are read from real IndexedDB, with
// IndexedDB 3's getAll({ direction: 'prev' }) where the browser has it.
describe('collection.list pages on Chromium IndexedDB', () => {
  it('shows the newest 100 of 300 notes first, then the rest after them, deleted ones left out', async () => {
    const dbName = `pages-${Date.now().toString(36)}`
    const replica = await createReplica({ space: 'pages', dbName })
    try {
      const notes = replica.collection<{ title: string }>('notes')
      // Time-ordered ids, written out of order.
      const ids = Array.from({ length: 300 }, (_, n) => `0197${String(n).padStart(6, '0')}`)
      await Promise.all([...ids].reverse().map((id) => notes.put(id, { title: `note ${id}` })))
      await replica.collection('other').put('0198', { title: 'not a note' })
      const deleted = [ids[299], ids[150]] as string[]
      await Promise.all(deleted.map((id) => notes.delete(id)))
      const newestFirst = ids.filter((id) => !deleted.includes(id)).reverse()

      const first = await notes.list({ order: 'desc', limit: 100 })
      expect(first.map((row) => row.id)).toEqual(newestFirst.slice(0, 100))
      expect(first[0]?.value).toEqual({ title: `note ${newestFirst[0]}` })
      const rest = await notes.list({ order: 'desc', after: first[99]?.id ?? '' })
      expect(rest.map((row) => row.id)).toEqual(newestFirst.slice(100))
      expect((await notes.list()).map((row) => row.id)).toEqual([...newestFirst].reverse())
    } finally {
      await replica.close()
      await new Promise<void>((resolve, reject) => {
        const request = indexedDB.deleteDatabase(dbName)
        request.onsuccess = () => resolve()
        request.onerror = () => reject(request.error)
      })
    }
  })
})

/** A database as schema version 3 left it: every record one JSON text. */
function writeVersion3(name: string, records: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 3)
    request.onupgradeneeded = () => {
      const db = request.result
      db.createObjectStore('meta').put(
        { replicaId: 'replica-me', space: 'pages', counter: 3, clock: { wall: 0, counter: 0 }, cursor: 0 },
        'replica',
      )
      const store = db.createObjectStore('records')
      for (const [key, text] of Object.entries(records)) store.put(text, key)
      db.createObjectStore('outbox')
    }
    request.onsuccess = () => {
      request.result.close()
      resolve()
    }
    request.onerror = () => reject(request.error)
  })
}

describe('a schema version 3 database on Chromium IndexedDB', () => {
  it('is brought to version 4 when opened, and lists its notes as before, frozen', async () => {
    const dbName = `v3-${Date.now().toString(36)}`
    await writeVersion3(dbName, {
      'notes\u0000a': '["a",["replica-me",1,"000001700000000.000001",{},"put",{"title":"a","tags":["x"]}]]',
      'notes\u0000b':
        '["b",["replica-me",2,"000001700000000.000002",{},"patch",{"done":true},{"title":"b"},{},null]]',
      'notes\u0000c': '["c",["replica-me",3,"000001700000000.000003",{"replica-me":1},"put",{"title":"c"}]]',
    })
    const replica = await createReplica({ space: 'pages', dbName, resolvers: { notes: 'manual' } })
    try {
      const notes = replica.collection<{ title: string; done?: boolean; tags?: string[] }>('notes')
      const rows = await notes.list({ order: 'desc' })
      expect(rows).toEqual([
        { id: 'c', value: { title: 'c' } },
        { id: 'b', value: { title: 'b', done: true } },
        { id: 'a', value: { title: 'a', tags: ['x'] } },
      ])
      expect(Object.isFrozen(rows[2]?.value.tags)).toBe(true)
      await notes.put('a', { title: 'a2' })
      expect(await notes.list({ order: 'asc', limit: 1 })).toEqual([{ id: 'a', value: { title: 'a2' } }])
    } finally {
      await replica.close()
    }
    const version = await new Promise<number>((resolve, reject) => {
      const request = indexedDB.open(dbName)
      request.onsuccess = () => {
        resolve(request.result.version)
        request.result.close()
      }
      request.onerror = () => reject(request.error)
    })
    expect(version).toBe(4)
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.deleteDatabase(dbName)
      request.onsuccess = () => resolve()
      request.onerror = () => reject(request.error)
    })
  })
})
