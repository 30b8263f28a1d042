import { MemoryReplicaStore } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { versionValue } from '../src/change.js'
import { asReplicaId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'

function openReplica(): Promise<ReplicaEngine> {
  return openReplicaEngine({
    store: new MemoryReplicaStore(),
    space: 'team',
    now: () => 1_700_000_000_000,
    createReplicaId: () => asReplicaId('alice'),
  })
}

describe('ReplicaEngine writes take the value as it is when called', () => {
  it('a put stores the value it was given, even if the caller reuses the object before the write lands', async () => {
    const replica = await openReplica()
    const draft = { title: 'Groceries', items: ['milk'] }
    const written = replica.put('notes', 'note-1', draft)
    // A form resetting its state right after submitting.
    draft.title = ''
    draft.items.push('eggs')
    const change = await written
    expect(versionValue(change)).toEqual({ title: 'Groceries', items: ['milk'] })
    expect(await replica.get('notes', 'note-1')).toEqual({ title: 'Groceries', items: ['milk'] })
  })

  it('a patch stores the fields it was given, even if the caller reuses the object before the write lands', async () => {
    const replica = await openReplica()
    await replica.put('notes', 'note-1', { title: 'Groceries', done: false })
    const fields = { done: true }
    const written = replica.patch('notes', 'note-1', fields)
    fields.done = false
    await written
    expect(await replica.get('notes', 'note-1')).toEqual({ title: 'Groceries', done: true })
  })

  it('a value read with get is read-only: editing it throws and changes no record', async () => {
    const replica = await openReplica()
    await replica.put('notes', 'note-1', { title: 'Groceries', tags: ['b', 'a'] })
    await replica.patch('notes', 'note-1', { done: false })
    const read = (await replica.get('notes', 'note-1')) as { title: string; tags: string[] }
    // Sorting for display, or editing a form bound to the object, without writing.
    expect(() => read.tags.sort()).toThrow(TypeError)
    expect(() => {
      read.title = 'unsaved edit'
    }).toThrow(TypeError)
    expect(Object.isFrozen(read)).toBe(true)
    expect(await replica.get('notes', 'note-1')).toEqual({
      title: 'Groceries',
      tags: ['b', 'a'],
      done: false,
    })
    // A copy is the app's to change.
    const copy = structuredClone(read)
    copy.tags.sort()
    expect(copy.tags).toEqual(['a', 'b'])
  })
})

describe('ReplicaEngine reads after writes', () => {
  it('a read issued after a write, awaited or not, sees it, as IndexedDB orders its transactions', async () => {
    const engine = await openReplica()
    void engine.put('notes', 'a', { n: 1 })
    expect(await engine.get('notes', 'a')).toEqual({ n: 1 })
    void engine.put('notes', 'b', { n: 2 })
    expect((await engine.list('notes')).map((row) => row.id)).toEqual(['a', 'b'])
    void engine.patch('notes', 'a', { n: 3 })
    expect(await engine.rows('notes', ['a'])).toEqual([{ id: 'a', value: { n: 3 } }])
    void engine.delete('notes', 'b')
    expect(await engine.get('notes', 'b')).toBeUndefined()
    expect((await engine.record('notes', 'b'))?.versions).toHaveLength(1)
    expect(await engine.conflicts({ collection: 'notes' })).toEqual([])
    // A write that fails does not hold reads up, and they still see what was stored.
    await expect(engine.put('notes', '', { n: 4 })).rejects.toThrow()
    expect(await engine.get('notes', 'a')).toEqual({ n: 3 })
  })
})
