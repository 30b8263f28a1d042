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

  it('tells a live query still waiting for its first rows that they will not come, and no other', async () => {
    const replica = await createReplica({ space: 'closing', ...(await storage()) })
    const notes = replica.collection('notes')
    await notes.put('a', { title: 'a' })
    const replicaErrors: unknown[] = []
    replica.on('error', (error) => replicaErrors.push(error))
    const loaded: string[] = []
    const loadedFailures: unknown[] = []
    notes.subscribe(
      () => loaded.push('rows'),
      undefined,
      (error) => loadedFailures.push(error),
    )
    await expect.poll(() => loaded).toEqual(['rows'])

    const waitingRows: unknown[] = []
    const waitingFailures: unknown[] = []
    notes.subscribe(
      (rows) => waitingRows.push(rows),
      undefined,
      (error) => waitingFailures.push(error),
    )
    // No onError: closing is the app's doing, not an error event.
    notes.subscribe(() => {})
    await replica.close()
    // Before, it was stopped without a word, and a view waiting for it waited for good.
    expect(waitingRows).toEqual([])
    expect(waitingFailures).toMatchObject([{ code: 'closed' }])
    expect(loadedFailures).toEqual([])
    expect(replicaErrors).toEqual([])
  })
})
