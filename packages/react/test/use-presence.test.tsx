// @vitest-environment happy-dom
import { ErrorCode, type JsonObject } from '@chorus/client'
import { usePresence } from '@chorus/react'
import { useMemo } from 'react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Boundary, mount, unmountAll, until } from './helpers/dom.js'
import { createInProcessHub } from './helpers/in-process-hub.js'
import { closeReplicas, memoryReplica } from './helpers/replicas.js'

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
  vi.restoreAllMocks()
})

/** Shows the others' names; with `name`, is present under it. */
function Here({ name, renders }: { name?: string; renders?: { count: number } }) {
  const state = useMemo<JsonObject | undefined>(() => (name === undefined ? undefined : { name }), [name])
  const peers = usePresence(state)
  if (renders !== undefined) renders.count++
  return <p>{peers.map((peer) => String(peer.state.name)).join(',') || 'alone'}</p>
}

describe('usePresence', () => {
  it('shows the others, sets this tab’s while mounted, and clears it on unmount', async () => {
    const hub = createInProcessHub()
    const alice = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket })
    const bob = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket })
    await Promise.all([alice.synced(), bob.synced()])
    const renders = { count: 0 }
    const bobView = await mount(bob, <Here renders={renders} />)
    expect(bobView.text()).toBe('alone')

    const aliceView = await mount(alice, <Here name="Alice" />)
    await until('bob to see alice', () => bobView.text() === 'Alice')
    expect(aliceView.text()).toBe('alone')
    const rendered = renders.count

    // Unmounting clears alice's presence: bob is alone again.
    await aliceView.unmount()
    await until('alice’s presence to go', () => bobView.text() === 'alone')
    expect(renders.count).toBe(rendered + 1)
    expect(alice.presence).toEqual([])
  })

  it('of two components with a state, the one mounted last decides, and the other again once it unmounts', async () => {
    const hub = createInProcessHub()
    const alice = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket })
    const bob = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket })
    await Promise.all([alice.synced(), bob.synced()])
    const bobView = await mount(bob, <Here />)

    const editor = await mount(alice, <Here name="editing n1" />)
    await until('bob to see the editor', () => bobView.text() === 'editing n1')
    const toast = await mount(alice, <Here name="reading a toast" />)
    await until('bob to see the toast', () => bobView.text() === 'reading a toast')
    await toast.unmount()
    await until('bob to see the editor again', () => bobView.text() === 'editing n1')

    // The one mounted first leaving first changes nothing while the later one stays.
    const dialog = await mount(alice, <Here name="in a dialog" />)
    await until('bob to see the dialog', () => bobView.text() === 'in a dialog')
    await editor.unmount()
    await dialog.render(<Here name="still in the dialog" />)
    await until('bob to see the dialog change', () => bobView.text() === 'still in the dialog')
    await dialog.unmount()
    await until('alice’s presence to go', () => bobView.text() === 'alone')
  })

  it('throws a state the replica refuses to the error boundary, and the others see it gone', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {})
    const hub = createInProcessHub()
    const alice = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket })
    const bob = await memoryReplica({ url: hub.url, WebSocket: hub.WebSocket })
    await Promise.all([alice.synced(), bob.synced()])
    const errors: unknown[] = []
    alice.on('error', (error) => errors.push(error))
    const bobView = await mount(bob, <Here />)
    const aliceView = await mount(
      alice,
      <Boundary>
        <Here name="editing" />
      </Boundary>,
    )
    await until('bob to see alice', () => bobView.text() === 'editing')

    // Longer than a presence state may be: before, it was dropped without a word, and bob
    // went on seeing the state before it.
    await aliceView.render(
      <Boundary>
        <Here name={'x'.repeat(5_000)} />
      </Boundary>,
    )
    await until('the refusal', () => aliceView.text() === `failed: ${ErrorCode.InvalidArgument}`)
    // The boundary unmounted the component, which took its presence with it.
    await until('alice’s presence to go', () => bobView.text() === 'alone')
    expect(errors).toEqual([])
  })
})
