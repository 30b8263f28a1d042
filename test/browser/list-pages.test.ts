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
