// @vitest-environment happy-dom
import type { Replica, Row } from '@chorus/client'
import { useCollection } from '@chorus/react'
import { memo, StrictMode } from 'react'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount, unmountAll, until } from './helpers/dom.js'
import { closeReplicas, memoryReplica, writeAndRender, writeAndSettle } from './helpers/replicas.js'

interface Note {
  title: string
  done?: boolean
}

let replica: Replica

beforeEach(async () => {
  replica = await memoryReplica()
})

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
})

function Titles({ renders, seen }: { renders?: { count: number }; seen?: (number | 'loading')[] }) {
  const rows = useCollection<Note>('notes')
  if (renders !== undefined) renders.count++
  seen?.push(rows?.length ?? 'loading')
  if (rows === undefined) return <p>loading</p>
  return (
    <ul>
      {rows.map((row) => (
        <li key={row.id}>
          {row.value.title}
          {row.value.done === true ? ' (done)' : ''}
        </li>
      ))}
    </ul>
  )
}

const Item = memo(function Item({ row, rowRenders }: { row: Row<Note>; rowRenders: Map<string, number> }) {
  rowRenders.set(row.id, (rowRenders.get(row.id) ?? 0) + 1)
  return <li>{row.value.title}</li>
})

function MemoList({ rowRenders }: { rowRenders: Map<string, number> }) {
  const rows = useCollection<Note>('notes') ?? []
  return (
    <ul>
      {rows.map((row) => (
        <Item key={row.id} row={row} rowRenders={rowRenders} />
      ))}
    </ul>
  )
}

/** The two newest notes (the last ids), live. */
function Newest() {
  const rows = useCollection<Note>('notes', { order: 'desc', limit: 2 })
  return rows === undefined ? (
    <p>loading</p>
  ) : (
    <ul>
      {rows.map((row) => (
        <li key={row.id}>{row.value.title}</li>
      ))}
    </ul>
  )
}

const items = (view: { container: HTMLElement }) =>
  [...view.container.querySelectorAll('li')].map((item) => item.textContent)

describe('useCollection', () => {
  it('shows undefined until loaded, then the rows, and follows local writes', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    const view = await mount(replica, <Titles />)
    await until('the first rows', () => items(view).length === 1)
    expect(items(view)).toEqual(['Groceries'])

    await notes.put('n2', { title: 'Call the bank' })
    await until('the new note', () => items(view).length === 2)
    expect(items(view)).toEqual(['Groceries', 'Call the bank'])

    await notes.patch('n1', { done: true })
    await until('the patch', () => items(view)[0] === 'Groceries (done)')

    await notes.delete('n2')
    await until('the deletion', () => items(view).length === 1)
    expect(items(view)).toEqual(['Groceries (done)'])
  })

  it('with a page, shows that page and keeps it current', async () => {
    const notes = replica.collection<Note>('notes')
    for (const id of ['a', 'b', 'c']) await notes.put(id, { title: `note ${id}` })
    const view = await mount(replica, <Newest />)
    await until('the newest two', () => items(view).length === 2)
    expect(items(view)).toEqual(['note c', 'note b'])
    await notes.put('d', { title: 'note d' })
    await until('the new newest', () => items(view)[0] === 'note d')
    expect(items(view)).toEqual(['note d', 'note c'])
  })

  it('renders again only when the rows changed', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    const renders = { count: 0 }
    const view = await mount(replica, <Titles renders={renders} />)
    await until('the first rows', () => items(view).length === 1)
    const loaded = renders.count

    await writeAndSettle(() => notes.put('n1', { title: 'Groceries' }))
    expect(renders.count).toBe(loaded)

    // The component's query delivers before this later one, and act renders what it caused.
    await writeAndRender(replica, 'notes', () => notes.put('n1', { title: 'Groceries', done: true }))
    expect(renders.count).toBe(loaded + 1)
    expect(items(view)).toEqual(['Groceries (done)'])
  })

  it('keeps unchanged rows identical, so memo components skip them', async () => {
    const notes = replica.collection<Note>('notes')
    for (const id of ['a', 'b', 'c']) await notes.put(id, { title: `note ${id}` })
    const rowRenders = new Map<string, number>()
    const view = await mount(replica, <MemoList rowRenders={rowRenders} />)
    await until('three rows', () => items(view).length === 3)
    expect(Object.fromEntries(rowRenders)).toEqual({ a: 1, b: 1, c: 1 })

    await notes.put('b', { title: 'note b, edited' })
    await until('the edit', () => items(view)[1] === 'note b, edited')
    expect(Object.fromEntries(rowRenders)).toEqual({ a: 1, b: 2, c: 1 })
  })

  it('shares one live query between the components reading a collection, and stops it with the last', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    const original = Object.getPrototypeOf(notes).subscribe.bind(notes) as typeof notes.subscribe
    const stops = vi.fn()
    const subscribe = vi.spyOn(notes, 'subscribe').mockImplementation((listener) => {
      const stop = original(listener)
      return () => {
        stops()
        stop()
      }
    })

    const view = await mount(
      replica,
      <>
        <Titles />
        <Titles />
      </>,
    )
    await until('both lists', () => items(view).length === 2)
    expect(subscribe).toHaveBeenCalledTimes(1)

    await view.render(<Titles />)
    expect(stops).not.toHaveBeenCalled()
    await view.render(<p>nothing</p>)
    expect(stops).toHaveBeenCalledTimes(1)

    // Nobody listened while this happened: the next reader loads afresh instead of showing stale rows.
    await notes.put('n2', { title: 'Call the bank' })
    const seen: (number | 'loading')[] = []
    await view.render(<Titles seen={seen} />)
    await until('both notes', () => items(view).length === 2)
    expect(subscribe).toHaveBeenCalledTimes(2)
    expect(seen).toEqual(['loading', 2])
  })

  it('works under StrictMode, leaving one live query running', async () => {
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries' })
    const live = { count: 0 }
    const original = Object.getPrototypeOf(notes).subscribe.bind(notes) as typeof notes.subscribe
    vi.spyOn(notes, 'subscribe').mockImplementation((listener) => {
      live.count++
      const stop = original(listener)
      return () => {
        live.count--
        stop()
      }
    })
    const view = await mount(
      replica,
      <StrictMode>
        <Titles />
      </StrictMode>,
    )
    await until('the rows', () => items(view).length === 1)
    expect(live.count).toBe(1)
    await notes.put('n2', { title: 'Call the bank' })
    await until('the new note', () => items(view).length === 2)
  })
})
