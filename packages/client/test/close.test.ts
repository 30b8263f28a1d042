import { createReplica } from '@chorus/client'
import { describe, expect, it } from 'vitest'
import { everyStorage } from './helpers/storages.js'

const storages = everyStorage('close')

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
