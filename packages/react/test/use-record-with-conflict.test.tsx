// @vitest-environment happy-dom
import { useRecordWithConflict } from '@chorus/react'
import { describe, expect, it } from 'vitest'
import { mount, until } from './helpers/dom.js'
import { conflictOnTwoDevices, devicesOnHub, missingNotices, whenReplicas } from './helpers/replicas.js'

interface Note {
  title: string
}

const device = devicesOnHub({ notes: 'manual' })

type Shown = { title: string | null; versions: string[] }

/** Shows note `id` and its conflict, and records what each render showed. */
function NoteAndConflict({ id, shown }: { id: string; shown?: Shown[] }) {
  const read = useRecordWithConflict<Note>('notes', id)
  if (read === undefined) return <p>loading</p>
  const versions = read.conflict.map((version) => version.value?.title ?? '(deleted)').sort()
  shown?.push({ title: read.value?.title ?? null, versions })
  return (
    <p>
      {read.value === undefined ? 'no such note' : read.value.title}
      {versions.length === 0 ? '' : ` [${versions.join(' | ')}]`}
    </p>
  )
}

describe('useRecordWithConflict', () => {
  it('reads the record and its conflict, follows writes, and drops the conflict once it is resolved', async () => {
    const a = await device()
    const b = await device()
    const view = await mount(a, <NoteAndConflict id="n1" />)
    await until('the missing note', () => view.text() === 'no such note')
    await a.collection<Note>('notes').put('n1', { title: 'from A' })
    await until('the note', () => view.text() === 'from A')
    await b.collection<Note>('notes').put('n1', { title: 'from B' })
    a.connect()
    b.connect()
    await until('the conflict', () => view.text().endsWith('[from A | from B]'))
    expect(['from A', 'from B']).toContain(view.text().split(' [')[0])
    await b.collection<Note>('notes').resolve('n1', { title: 'merged' })
    await until('the resolution', () => view.text() === 'merged')
    await a.collection<Note>('notes').delete('n1')
    await until('the deletion', () => view.text() === 'no such note')
  })

  // The same component reading with `useRecord` and `useConflicts` fails this: one render shows
  // B's newest edit as the value beside the conflict as listed before it (`b20` beside
  // `a20 | b19`).
  it('never shows a value beside a conflict it is not one of the versions of, as remote edits stream in', async () => {
    const a = await device()
    const b = await device()
    const notesA = a.collection<Note>('notes')
    const notesB = b.collection<Note>('notes')
    await notesA.put('n1', { title: 'a0' })
    a.connect()
    b.connect()
    await whenReplicas([a, b], async () => (await notesB.get('n1'))?.title === 'a0', 'B to read the note')
    const shown: Shown[] = []
    const view = await mount(a, <NoteAndConflict id="n1" shown={shown} />)
    await until('the note', () => view.text() === 'a0')
    // Edits on both devices, some concurrent: conflicts come and go while A renders.
    for (let round = 1; round <= 20; round++) {
      await Promise.all([notesA.put('n1', { title: `a${round}` }), notesB.put('n1', { title: `b${round}` })])
      if (round % 4 === 0) await notesB.resolve('n1', { title: `r${round}` })
    }
    // B settles whatever conflict is left, once it holds every version.
    await Promise.all([a.synced(), b.synced()])
    await notesB.resolve('n1', { title: 'end' })
    await until('the last resolution', () => view.text() === 'end')
    expect(shown.length).toBeGreaterThan(2)
    for (const render of shown)
      if (render.versions.length > 0) expect(render.versions, JSON.stringify(render)).toContain(render.title)
  })

  it('reads again on reload, when records changed that no change event named', async () => {
    const [a, b] = await conflictOnTwoDevices(device)
    const tab = missingNotices(a)
    const view = await mount(tab.replica, <NoteAndConflict id="n1" />)
    await until('the conflict', () => view.text().endsWith('[from A | from B]'))
    tab.mute(true)
    await b.collection<Note>('notes').resolve('n1', { title: 'merged' })
    await whenReplicas([a, b], async () => (await a.conflicts()).length === 0, 'A to store the resolution')
    expect(view.text()).toMatch(/\[from A \| from B\]$/)
    tab.reload()
    await until('the note read again', () => view.text() === 'merged')
  })
})
