// @vitest-environment happy-dom
import type { Replica, Row } from '@chorus/client'
import { useQuery } from '@chorus/react'
import { memo, StrictMode } from 'react'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount, unmountAll, until } from './helpers/dom.js'
import { closeReplicas, memoryReplica, writeAndRender } from './helpers/replicas.js'

interface Task {
  title: string
  done: boolean
  rank: number
}

let replica: Replica

beforeEach(async () => {
  replica = await memoryReplica()
})

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
})

function Titles() {
  const byId = useQuery<Task, Map<string, string>>(
    'tasks',
    (rows) => new Map(rows.map((row) => [row.id, row.value.title])),
  )
  const ranks = useQuery<Task, Set<number>>('tasks', (rows) => new Set(rows.map((row) => row.value.rank)))
  if (byId === undefined || ranks === undefined) return <p>loading</p>
  return <p>{`${[...byId.values()].join(',')} ranks ${[...ranks].join(',')}`}</p>
}

/** The open tasks, highest rank first, at most `limit`, their titles containing `term`. */
function openTasks(rows: readonly Row<Task>[], term: string, limit: number): readonly Row<Task>[] {
  return rows
    .filter((row) => !row.value.done && row.value.title.includes(term))
    .sort((a, b) => b.value.rank - a.value.rank)
    .slice(0, limit)
}

const Item = memo(function Item({ row, renders }: { row: Row<Task>; renders: Map<string, number> }) {
  renders.set(row.id, (renders.get(row.id) ?? 0) + 1)
  return <li>{row.value.title}</li>
})

function OpenTasks({
  term = '',
  limit = 10,
  renders,
  listRenders,
}: {
  term?: string
  limit?: number
  renders: Map<string, number>
  listRenders: { count: number }
}) {
  const tasks = useQuery<Task, readonly Row<Task>[]>('tasks', (rows) => openTasks(rows, term, limit), [
    term,
    limit,
  ])
  if (tasks === undefined) return <p>loading</p>
  return <List tasks={tasks} renders={renders} listRenders={listRenders} />
}

const List = memo(function List({
  tasks,
  renders,
  listRenders,
}: {
  tasks: readonly Row<Task>[]
  renders: Map<string, number>
  listRenders: { count: number }
}) {
  listRenders.count++
  return (
    <ul>
      {tasks.map((row) => (
        <Item key={row.id} row={row} renders={renders} />
      ))}
    </ul>
  )
})

function Count() {
  const open = useQuery<Task, number>('tasks', (rows) => rows.filter((row) => !row.value.done).length)
  return <p>{open === undefined ? 'loading' : `${open} open`}</p>
}

const items = (view: { container: HTMLElement }) =>
  [...view.container.querySelectorAll('li')].map((item) => item.textContent)

async function seed(): Promise<void> {
  const tasks = replica.collection<Task>('tasks')
  await tasks.put('a', { title: 'buy milk', done: false, rank: 1 })
  await tasks.put('b', { title: 'call the bank', done: false, rank: 3 })
  await tasks.put('c', { title: 'buy stamps', done: true, rank: 5 })
  await tasks.put('d', { title: 'water plants', done: false, rank: 2 })
}

describe('useQuery', () => {
  it('shows what the selection makes of the rows, and follows changes to them', async () => {
    await seed()
    const view = await mount(replica, <OpenTasks renders={new Map()} listRenders={{ count: 0 }} />)
    await until('the open tasks', () => items(view).length === 3)
    expect(items(view)).toEqual(['call the bank', 'water plants', 'buy milk'])

    const tasks = replica.collection<Task>('tasks')
    await tasks.patch('a', { rank: 10 })
    await until('the new order', () => items(view)[0] === 'buy milk')
    await tasks.patch('b', { done: true })
    await until('the finished task gone', () => items(view).length === 2)
    expect(items(view)).toEqual(['buy milk', 'water plants'])
  })

  it('selects again when a dependency changes', async () => {
    await seed()
    const renders = new Map<string, number>()
    const listRenders = { count: 0 }
    const view = await mount(replica, <OpenTasks renders={renders} listRenders={listRenders} />)
    await until('the open tasks', () => items(view).length === 3)
    await view.render(<OpenTasks term="buy" renders={renders} listRenders={listRenders} />)
    expect(items(view)).toEqual(['buy milk'])
    await view.render(<OpenTasks term="buy" limit={0} renders={renders} listRenders={listRenders} />)
    expect(items(view)).toEqual([])
  })

  it('hands back the last result when a change leaves the selection as it was', async () => {
    await seed()
    const renders = new Map<string, number>()
    const listRenders = { count: 0 }
    const view = await mount(
      replica,
      <StrictMode>
        <OpenTasks renders={renders} listRenders={listRenders} />
      </StrictMode>,
    )
    await until('the open tasks', () => items(view).length === 3)
    const loaded = listRenders.count
    const itemRenders = Object.fromEntries(renders)

    // A finished task changes: the open tasks are the same rows, so the list is not rendered.
    const tasks = replica.collection<Task>('tasks')
    await writeAndRender(replica, 'tasks', () => tasks.patch('c', { title: 'buy more stamps' }))
    expect(listRenders.count).toBe(loaded)

    // One open task changes: the list renders again, and only that row's item with it.
    await writeAndRender(replica, 'tasks', () => tasks.patch('d', { title: 'water the plants' }))
    expect(listRenders.count).toBeGreaterThan(loaded)
    expect(items(view)).toEqual(['call the bank', 'water the plants', 'buy milk'])
    expect(renders.get('d')).toBeGreaterThan(itemRenders.d as number)
    expect(renders.get('a')).toBe(itemRenders.a)
    expect(renders.get('b')).toBe(itemRenders.b)
  })

  it('derives values other than rows, such as a count', async () => {
    await seed()
    const view = await mount(replica, <Count />)
    await until('the count', () => view.text() === '3 open')
    await replica.collection<Task>('tasks').patch('a', { done: true })
    await until('the new count', () => view.text() === '2 open')
  })

  it('follows a selection into a Map or a Set, whose contents are not in its own keys', async () => {
    const tasks = replica.collection<Task>('tasks')
    const view = await mount(replica, <Titles />)
    await until('the empty selection', () => view.text() === ' ranks ')
    await tasks.put('a', { title: 'stamps', done: false, rank: 2 })
    await until('the first task', () => view.text() === 'stamps ranks 2')
    await tasks.put('b', { title: 'plants', done: false, rank: 5 })
    await until('the second task', () => view.text() === 'stamps,plants ranks 2,5')
  })
})
