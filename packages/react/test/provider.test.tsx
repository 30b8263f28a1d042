// @vitest-environment happy-dom
import { ChorusError, ErrorCode, type ListOptions, type Replica } from '@chorus/client'
import { MemoryReplicaStore } from '@chorus/core'
import { useCollection, useConflicts, useRecord, useReplica } from '@chorus/react'
import { useEffect } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { act, Boundary, flush, mount, unmountAll, until } from './helpers/dom.js'
import { closeReplicas, memoryReplica } from './helpers/replicas.js'

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
  vi.restoreAllMocks()
})

function ReplicaId() {
  return <p>{useReplica().replicaId.slice(0, 8)}</p>
}

function Count() {
  return <p>{useCollection('notes')?.length ?? 'loading'}</p>
}

function ConflictCount({ name }: { name: string }) {
  return <p>{useConflicts(name)?.length ?? 'loading'}</p>
}

function Title({ id }: { id: string }) {
  const note = useRecord<{ title: string }>('notes', id)
  return <p>{note === undefined ? 'loading' : (note?.title ?? 'none')}</p>
}

/** The ids of the page `options` asks for. */
function Ids({ options }: { options: ListOptions }) {
  const rows = useCollection('notes', options)
  return <p>{rows === undefined ? 'loading' : rows.map((row) => row.id).join('')}</p>
}

/** Closes `replica` in the commit that mounts the components before it. */
function CloseNow({ replica }: { replica: Replica }) {
  useEffect(() => {
    void replica.close()
  }, [replica])
  return null
}

function Paged({ limit }: { limit?: number }) {
  const rows = useCollection('notes', limit === undefined ? {} : { limit })
  return <p>{rows === undefined ? 'loading' : `${rows.length} rows`}</p>
}

describe('ChorusProvider', () => {
  it('hands its replica to the hooks below it', async () => {
    const replica = await memoryReplica()
    const view = await mount(replica, <ReplicaId />)
    expect(view.text()).toBe(replica.replicaId.slice(0, 8))
  })

  it('makes a hook outside it fail with invalid-argument', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const container = document.createElement('div')
    const root = createRoot(container)
    await act(() =>
      root.render(
        <Boundary>
          <Count />
        </Boundary>,
      ),
    )
    expect(container.textContent).toBe(`failed: ${ErrorCode.InvalidArgument}`)
    await act(() => root.unmount())
  })

  it('makes a hook on a closed replica fail with closed, for an error boundary to show', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const replica = await memoryReplica()
    await replica.close()
    const view = await mount(
      replica,
      <Boundary>
        <Count />
      </Boundary>,
    )
    expect(view.text()).toBe(`failed: ${ErrorCode.Closed}`)
  })

  it('makes a hook still loading when the replica closes fail with closed, and one mounted after it too', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const replica = await memoryReplica({ resolvers: { notes: 'manual' } })
    await replica.collection('notes').put('a', { title: 'one' })
    const closed = `failed: ${ErrorCode.Closed}`
    const view = await mount(
      replica,
      <>
        <Boundary>
          <Count />
        </Boundary>
        <Boundary>
          <ConflictCount name="notes" />
        </Boundary>
        <CloseNow replica={replica} />
      </>,
    )
    // Before, the rows stayed `undefined` for good: the live query was stopped unanswered.
    await until('both to fail', () => view.text() === closed + closed)
    const later = await mount(
      replica,
      <Boundary>
        <Count />
      </Boundary>,
    )
    await until('the later one to fail', () => later.text() === closed)
  })

  it('keeps what the hooks show when the replica closes under them, behind a write or beside one', async () => {
    for (const together of [false, true]) {
      const replica = await memoryReplica({ resolvers: { notes: 'manual' } })
      const notes = replica.collection<{ title: string }>('notes')
      await notes.put('a', { title: 'one' })
      const view = await mount(
        replica,
        <Boundary>
          <Title id="a" />
          <Count />
          <ConflictCount name="notes" />
        </Boundary>,
      )
      await until('the hooks to load', () => view.text() === 'one10')
      // The write's change event starts loads that reach a replica closing or closed.
      if (together) await Promise.all([notes.put('a', { title: 'two' }), replica.close()])
      else {
        await notes.put('a', { title: 'two' })
        await replica.close()
      }
      await flush()
      expect(view.text()).not.toContain('failed')
      await view.unmount()
    }
  })

  it('makes a failed load fail the hook with its error, for an error boundary to show', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const store = new MemoryReplicaStore()
    const replica = await memoryReplica({ storage: store })
    const failure = new ChorusError(ErrorCode.StorageFailed, 'the disk is gone')
    vi.spyOn(store, 'listRecordsPage').mockRejectedValue(failure)
    vi.spyOn(store, 'listValuesPage').mockRejectedValue(failure)
    vi.spyOn(store, 'listRecords').mockRejectedValue(failure)
    vi.spyOn(store, 'allRecords').mockRejectedValue(failure)
    const replicaErrors: unknown[] = []
    replica.on('error', (error) => replicaErrors.push(error))
    for (const reader of [<Count key="rows" />, <ConflictCount key="conflicts" name="notes" />]) {
      const view = await mount(replica, <Boundary>{reader}</Boundary>)
      await until('the failure', () => view.text() === `failed: ${ErrorCode.StorageFailed}`)
      await view.unmount()
    }
    // The hook had it: the replica's error event did not.
    expect(replicaErrors).toEqual([])
  })

  it('never answers a refused argument with another component’s read of a valid one', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const replica = await memoryReplica()
    await replica.collection('notes').put('7', { title: 'seven' })
    const view = await mount(
      replica,
      <>
        <Title id="7" />
        <Boundary>
          <Title id={7 as unknown as string} />
        </Boundary>
        <Paged />
        <Boundary>
          <Paged limit={Number.NaN} />
        </Boundary>
      </>,
    )
    // A number id and a NaN limit are refused; the string id and the page without a limit read.
    await until(
      'the reads and the refusals',
      () =>
        [...view.container.querySelectorAll('p')].map((line) => line.textContent).join(' | ') ===
        `seven | failed: ${ErrorCode.InvalidArgument} | 1 rows | failed: ${ErrorCode.InvalidArgument}`,
    )
  })

  it('keys a page by what the client reads from its options, whatever their prototype', async () => {
    const replica = await memoryReplica()
    const notes = replica.collection('notes')
    await Promise.all(['a', 'b', 'c'].map((id) => notes.put(id, { title: id })))
    class Page {
      constructor(readonly limit: number) {}
    }
    class Getter {
      get limit() {
        return 2
      }
    }
    const bare = (limit: number) => Object.assign(Object.create(null) as ListOptions, { limit })
    const view = await mount(
      replica,
      <>
        <Ids options={bare(1)} />
        <Ids options={bare(3)} />
        <Ids options={new Page(1)} />
        <Ids options={new Page(3)} />
        <Ids options={new Getter() as ListOptions} />
      </>,
    )
    // Before, the ones after the first of each kind showed its read: a, a, a, a, a.
    await until('every page', () => view.text() === 'a abc a abc ab'.replaceAll(' ', ''))
    expect([...view.container.querySelectorAll('p')].map((line) => line.textContent)).toEqual([
      'a',
      'abc',
      'a',
      'abc',
      'ab',
    ])
  })

  it('makes useConflicts with a name no collection can have fail with invalid-argument', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const replica = await memoryReplica()
    const view = await mount(
      replica,
      <Boundary>
        <ConflictCount name="bad name!" />
      </Boundary>,
    )
    await until('the refusal', () => view.text() === `failed: ${ErrorCode.InvalidArgument}`)
  })
})
