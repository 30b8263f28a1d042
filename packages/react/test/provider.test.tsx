// @vitest-environment happy-dom
import { ChorusError, ErrorCode, isChorusError } from '@chorus/client'
import { MemoryReplicaStore } from '@chorus/core'
import { useCollection, useConflicts, useReplica } from '@chorus/react'
import { Component, type ReactNode } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { act, mount, unmountAll, until } from './helpers/dom.js'
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
