// @vitest-environment happy-dom
import { useConflicts } from '@chorus/react'
import { describe, expect, it, vi } from 'vitest'
import { act, mount, until } from './helpers/dom.js'
import { conflictOnTwoDevices, devicesOnHub, missingNotices, whenReplicas } from './helpers/replicas.js'

interface Note {
  title: string
}

const device = devicesOnHub({ notes: 'manual', tags: 'manual' })

function Conflicts({ collection, renders }: { collection?: string; renders?: { count: number } }) {
  const conflicts = useConflicts(collection)
  if (renders !== undefined) renders.count++
  if (conflicts === undefined) return <p>loading</p>
  if (conflicts.length === 0) return <p>no conflicts</p>
  return (
    <ul>
      {conflicts.map((conflict) => (
        <li key={`${conflict.collection}/${conflict.id}`}>
          {`${conflict.collection}/${conflict.id}: `}
          {conflict.versions.map((version) => String(version.value?.title)).join(' | ')}
        </li>
      ))}
    </ul>
  )
}

describe('useConflicts', () => {
  it('lists a conflict on both devices, and drops it on both once one resolves it', async () => {
    const [a, b] = await conflictOnTwoDevices(device)
    const viewA = await mount(a, <Conflicts />)
    const viewB = await mount(b, <Conflicts />)
    await until('the conflict on A', () => viewA.text().startsWith('notes/n1'))
    await until('the conflict on B', () => viewB.text().startsWith('notes/n1'))
    expect(viewA.text().split(': ')[1]?.split(' | ').sort()).toEqual(['from A', 'from B'])
    expect(viewB.text()).toBe(viewA.text())

    await a.collection<Note>('notes').resolve('n1', { title: 'merged' })
    await until('A to settle', () => viewA.text() === 'no conflicts')
    await until('B to settle', () => viewB.text() === 'no conflicts')
    expect(await b.collection<Note>('notes').get('n1')).toEqual({ title: 'merged' })
  })

  it('reads every conflict again on reload, when records changed that no change event named', async () => {
    const [a, b] = await conflictOnTwoDevices(device)
    const tab = missingNotices(a)
    const view = await mount(tab.replica, <Conflicts />)
    await until('the conflict', () => view.text().startsWith('notes/n1'))
    tab.mute(true)
    await b.collection<Note>('notes').resolve('n1', { title: 'merged' })
    await whenReplicas([a, b], async () => (await a.conflicts()).length === 0, 'A to store the resolution')
    expect(view.text()).toMatch(/^notes\/n1/)
    tab.reload()
    await until('the conflicts read again', () => view.text() === 'no conflicts')
  })

  it('lists only the conflicts of the collection it is given', async () => {
    const [a] = await conflictOnTwoDevices(device)
    const view = await mount(
      a,
      <>
        <section id="tags">
          <Conflicts collection="tags" />
        </section>
        <section id="notes">
          <Conflicts collection="notes" />
        </section>
      </>,
    )
    const text = (id: string) => view.container.querySelector(`#${id}`)?.textContent
    await until('the notes conflict', () => text('notes')?.startsWith('notes/n1') === true)
    expect(text('tags')).toBe('no conflicts')
  })

  it('reloads after local writes only when they touch a record in conflict', async () => {
    const [a] = await conflictOnTwoDevices(device)
    const conflicts = vi.spyOn(a, 'conflicts')
    const renders = { count: 0 }
    const view = await mount(a, <Conflicts renders={renders} />)
    await until('the conflict', () => view.text().startsWith('notes/n1'))
    expect(conflicts).toHaveBeenCalledTimes(1)
    const loaded = renders.count

    await act(() => a.collection<Note>('notes').put('n2', { title: 'unrelated' }))
    expect(conflicts).toHaveBeenCalledTimes(1)
    expect(renders.count).toBe(loaded)

    await a.collection<Note>('notes').put('n1', { title: 'settled by editing' })
    await until('the conflict to go', () => view.text() === 'no conflicts')
    expect(conflicts).toHaveBeenCalledTimes(2)
    expect(conflicts).toHaveBeenLastCalledWith({ collection: 'notes', ids: ['n1'] })
    expect(renders.count).toBe(loaded + 1)
  })

  it('after its first load, reads only the records a remote change names, and keeps them in id order', async () => {
    const [a, b] = await conflictOnTwoDevices(device)
    const conflicts = vi.spyOn(a, 'conflicts')
    const view = await mount(a, <Conflicts />)
    await until('the first conflict', () => view.text().startsWith('notes/n1'))
    expect(conflicts).toHaveBeenCalledTimes(1)
    expect(conflicts).toHaveBeenLastCalledWith()

    // A second conflict, on a record that sorts before the first: both devices edit n0 apart.
    a.disconnect()
    b.disconnect()
    await a.collection<Note>('notes').put('n0', { title: 'A again' })
    await b.collection<Note>('notes').put('n0', { title: 'B again' })
    a.connect()
    b.connect()
    await until('both conflicts', () => view.container.querySelectorAll('li').length === 2)
    const items = [...view.container.querySelectorAll('li')].map((item) => item.textContent?.split(':')[0])
    expect(items).toEqual(['notes/n0', 'notes/n1'])
    // Every call after the first named the records its change touched: no scan of them all.
    for (const call of conflicts.mock.calls.slice(1)) expect(call[0]?.ids?.length).toBeGreaterThan(0)
    expect(await a.conflicts()).toHaveLength(2)
  })
})
