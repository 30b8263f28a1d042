// @vitest-environment happy-dom
import { ChorusError, ErrorCode, isChorusError } from '@chorus/client'
import { MemoryReplicaStore } from '@chorus/core'
import { useCollection, useConflicts, useRecord, useReplica } from '@chorus/react'
import { Component, type ReactNode } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { act, flush, mount, unmountAll, until } from './helpers/dom.js'
import { closeReplicas, memoryReplica } from './helpers/replicas.js'

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
  vi.restoreAllMocks()
})

class Boundary extends Component<{ children: ReactNode }, { error: unknown }> {
  override state = { error: undefined as unknown }
  static getDerivedStateFromError(error: unknown) {
    return { error }
  }
  override render() {
    const { error } = this.state
    if (error === undefined) return this.props.children
    return <p>{isChorusError(error) ? `failed: ${error.code}` : 'failed: other'}</p>
  }
}

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
