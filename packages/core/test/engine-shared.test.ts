import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { createHubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { SerialQueue } from '../src/serial-queue.js'

/** Two instances of one replica over one store (two tabs on one database), sharing a lock. */
async function twoInstances(store: MemoryReplicaStore) {
  const lock = new SerialQueue()
  let time = 1_700_000_000_000
  const open = () =>
    openReplicaEngine({
      store,
      space: 'team',
      now: () => time++,
      createReplicaId: () => asReplicaId('tab-replica'),
      exclusive: (work) => lock.run(work),
    })
  const first = await open()
  const second = await open()
  return { first, second, now: () => time++ }
}

describe('instances of one replica sharing a store (tabs)', () => {
  it('interleaved writes from both instances get consecutive counters and all land', async () => {
    const store = new MemoryReplicaStore()
    const { first, second } = await twoInstances(store)
    const writes: Promise<unknown>[] = []
    for (let i = 0; i < 10; i++) {
      writes.push(first.put('notes', `a-${i}`, { i }))
      writes.push(second.put('notes', `b-${i}`, { i }))
    }
    await Promise.all(writes)
    const outbox = await store.readOutbox(0, 100)
    expect(outbox.map((change) => change.dot[1])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    expect((await store.loadMeta())?.counter).toBe(20)
    expect((await first.list('notes')).length).toBe(20)
  })

  it('without the shared lock, the second instance cannot reuse a counter: the store refuses', async () => {
    const store = new MemoryReplicaStore()
    let time = 1_700_000_000_000
    const open = () =>
      openReplicaEngine({ store, space: 'team', now: () => time++, createReplicaId: () => asReplicaId('r') })
    const first = await open()
    const second = await open()
    await first.put('notes', 'a', { n: 1 })
    await expect(second.put('notes', 'b', { n: 2 })).rejects.toThrow(/counter 1 does not follow 1/)
    expect((await store.readOutbox(0, 10)).map((change) => change.id)).toEqual(['a'])
  })

  it('refresh lets the connected instance upload what the other wrote, and a detached one start over from the store', async () => {
    const store = new MemoryReplicaStore()
    const { first, second, now } = await twoInstances(store)
    const hubStore = new MemoryHubStore()
    const hub = createHubEngine({ store: hubStore, now })
    const connect = (engine: ReplicaEngine) => {
      let connection: ReturnType<typeof hub.accept> | null = null
      connection = hub.accept({
        send: (frame) => void engine.receive(frame),
        close: () => engine.detach(),
      })
      engine.attach((frame) => void connection?.receive(frame))
    }
    connect(first)
    await second.put('notes', 'from-second', { n: 1 })
    await first.refresh()
    for (let i = 0; i < 20 && first.pending() > 0; i++) {
      await hub.idle()
      await first.idle()
    }
    expect(first.pending()).toBe(0)
    expect((await hubStore.loadSpace('team' as never)).received['tab-replica']).toBe(1)

    // The second instance was detached all along: refresh rebuilds its view from the store.
    await second.refresh()
    expect(second.pending()).toBe(0)
    expect(second.session().cursor).toBe((await store.loadMeta())?.cursor)
  })
})
