// @vitest-environment happy-dom
import type { Replica } from '@chorus/client'
import { asSpaceId } from '@chorus/core'
import { useSyncStatus } from '@chorus/react'
import { afterEach, describe, expect, it } from 'vitest'
import { act, mount, unmountAll, until } from './helpers/dom.js'
import { createInProcessHub } from './helpers/in-process-hub.js'
import { closeReplicas, memoryReplica } from './helpers/replicas.js'

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
})

function Status({ renders }: { renders?: { count: number } }) {
  const { status, pending, lag } = useSyncStatus()
  if (renders !== undefined) renders.count++
  return <p>{`${status} pending=${pending} lag=${lag}`}</p>
}

function Recorder({ seen }: { seen: Set<string> }) {
  const { status, pending } = useSyncStatus()
  seen.add(status)
  return <p>{`${status} pending=${pending}`}</p>
}

describe('useSyncStatus', () => {
  it('counts changes waiting to upload, rendering once per change', async () => {
    const replica: Replica = await memoryReplica()
    const renders = { count: 0 }
    const view = await mount(replica, <Status renders={renders} />)
    expect(view.text()).toBe('offline pending=0 lag=0')
    expect(renders.count).toBe(1)

    await act(() => replica.collection('notes').put('n1', { title: 'Groceries' }))
    expect(view.text()).toBe('offline pending=1 lag=0')
    expect(renders.count).toBe(2)

    // Reading without a change (a re-render from above) hands back the same object: nothing more.
    await act(() => replica.collection('notes').get('n1'))
    expect(renders.count).toBe(2)
  })

  it('shows connecting, then synced once the relay has the changes, and offline after disconnect', async () => {
    const hub = createInProcessHub()
    const replica = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket, autoConnect: false })
    await replica.collection('notes').put('n1', { title: 'Groceries' })
    const seen = new Set<string>()
    const view = await mount(replica, <Recorder seen={seen} />)
    expect(view.text()).toBe('offline pending=1')

    replica.connect()
    await until('synced', () => view.text() === 'synced pending=0')
    expect(seen).toContain('connecting')

    replica.disconnect()
    await until('offline', () => view.text() === 'offline pending=0')
  })

  it('gives the relay’s final refusal once it comes, the space deleted on the relay here', async () => {
    const hub = createInProcessHub()
    const replica = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket, space: 'doomed' })
    replica.on('error', () => undefined)
    const view = await mount(replica, <Refusal />)
    await until('synced', () => view.text() === 'synced refusal=none')
    await act(() => hub.engine.deleteSpace(asSpaceId('doomed')))
    await until('the refusal', () => view.text() === 'offline refusal=space-deleted')
    expect(replica.refusal?.code).toBe('space-deleted')
  })
})

function Refusal() {
  const { status, refusal } = useSyncStatus()
  return <p>{`${status} refusal=${refusal?.code ?? 'none'}`}</p>
}
