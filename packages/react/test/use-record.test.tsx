// @vitest-environment happy-dom
import type { Replica } from '@chorus/client'
import { useRecord } from '@chorus/react'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { act, flush, mount, unmountAll, until } from './helpers/dom.js'
import { closeReplicas, memoryReplica, missingNotices } from './helpers/replicas.js'

interface Note {
  title: string
}

let replica: Replica

beforeEach(async () => {
  replica = await memoryReplica()
})

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
})

function Title({ id, renders }: { id: string; renders?: { count: number } }) {
  const note = useRecord<Note>('notes', id)
  if (renders !== undefined) renders.count++
  if (note === undefined) return <p>loading</p>
  if (note === null) return <p>no such note</p>
  return <h1>{note.title}</h1>
}

describe('useRecord', () => {
  it('reads undefined while loading, null for a missing record, then follows its writes', async () => {
    const notes = replica.collection<Note>('notes')
    const view = await mount(replica, <Title id="n1" />)
    await until('the missing record', () => view.text() === 'no such note')

    await notes.put('n1', { title: 'Groceries' })
    await until('the record', () => view.text() === 'Groceries')
    await notes.patch('n1', { title: 'Groceries for Sunday' })
    await until('the patch', () => view.text() === 'Groceries for Sunday')
    await notes.delete('n1')
    await until('the deletion', () => view.text() === 'no such note')
  })

  it('reads again on reload, when records changed that no change event named', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    const tab = missingNotices(replica)
    const view = await mount(tab.replica, <Title id="n1" />)
    await until('the record', () => view.text() === 'Groceries')
    tab.mute(true)
    await notes.put('n1', { title: 'Groceries for Sunday' })
    await flush()
    expect(view.text()).toBe('Groceries')
    tab.reload()
    await until('the record read again', () => view.text() === 'Groceries for Sunday')
  })

  it('renders again only when its own record changed', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    const renders = { count: 0 }
    const view = await mount(replica, <Title id="n1" renders={renders} />)
    await until('the record', () => view.text() === 'Groceries')
    const loaded = renders.count

    // A read queued after the component's re-read finishes after it; act renders what it caused.
    await act(async () => {
      await notes.put('n2', { title: 'Call the bank' })
      await notes.put('n1', { title: 'Groceries' })
      await notes.get('n1')
    })
    expect(renders.count).toBe(loaded)

    await act(async () => {
      await notes.put('n1', { title: 'Groceries and flowers' })
      await notes.get('n1')
    })
    expect(renders.count).toBe(loaded + 1)
    expect(view.text()).toBe('Groceries and flowers')
  })

  it('follows a change of id', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    await notes.put('n2', { title: 'Call the bank' })
    const view = await mount(replica, <Title id="n1" />)
    await until('the first record', () => view.text() === 'Groceries')
    await view.render(<Title id="n2" />)
    await until('the second record', () => view.text() === 'Call the bank')
  })
})
