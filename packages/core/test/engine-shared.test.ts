import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { createHubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { SerialQueue } from '../src/serial-queue.js'
import type { ReplicaStore } from '../src/storage.js'
import { wireToHub } from './wire-hub.js'

/**
 * A memory store whose writes can be held at a gate: a local write or a remote apply that
 * reaches it has read the records it changes, and waits there until the gate opens.
 */
class GatedStore extends MemoryReplicaStore {
  #gate: Promise<void> | null = null
  #which: 'local' | 'remote' = 'local'
  /** Writes of `which` kind wait from now on; returns the function that lets them go. */
  hold(which: 'local' | 'remote'): () => void {
    let open!: () => void
    this.#gate = new Promise((resolve) => {
      open = resolve
    })
    this.#which = which
    return () => {
      this.#gate = null
      open()
    }
  }
  waiting = 0
  async #pass(kind: 'local' | 'remote'): Promise<void> {
    const gate = this.#gate
    if (gate === null || kind !== this.#which) return
    this.waiting++
    await gate
    this.waiting--
  }
  override async commitLocal(write: Parameters<ReplicaStore['commitLocal']>[0]): Promise<void> {
    await this.#pass('local')
    return super.commitLocal(write)
  }
  override async commitLocalBatch(
    batch: Parameters<NonNullable<ReplicaStore['commitLocalBatch']>>[0],
  ): Promise<void> {
    await this.#pass('local')
    return super.commitLocalBatch(batch)
  }
  override async applyRemote(batch: Parameters<ReplicaStore['applyRemote']>[0]): Promise<void> {
    if (batch.records.length > 0) await this.#pass('remote')
    return super.applyRemote(batch)
  }
}

/** Lets queued work run: a few turns of the event loop. */
async function turns(count = 20): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setTimeout(resolve, 0))
}

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

  /**
   * The connected instance applies a device's write to a record while the other instance
   * writes the same record. Each is a read, then a store of what was read plus its change: if
   * one's store came between the other's read and store, the second store would drop the
   * first's version from the shared store (the device and the hub keep both). The shared lock
   * keeps them apart, whichever starts first.
   */
  for (const first of ['local', 'remote'] as const) {
    it(`a remote apply and another instance's write to the same record, the ${first} one read first: the shared store ends as the device does`, async () => {
      const store = new GatedStore()
      const { first: connected, second: writer, now } = await twoInstances(store)
      const hub = createHubEngine({ store: new MemoryHubStore(), now })
      wireToHub(hub, connected)
      const deviceStore = new MemoryReplicaStore()
      const device = await openReplicaEngine({
        store: deviceStore,
        space: 'team',
        now,
        createReplicaId: () => asReplicaId('device'),
        resolvers: { notes: 'manual' },
      })
      wireToHub(hub, device)
      const settle = async () => {
        for (let i = 0; i < 10; i++) {
          await hub.idle()
          await Promise.all([connected.idle(), device.idle()])
          await connected.refresh()
        }
      }
      await device.put('notes', 'r', { by: 'device', n: 1 })
      await settle()
      expect(await writer.get('notes', 'r')).toEqual({ by: 'device', n: 1 })

      const release = store.hold(first)
      let local: Promise<unknown>
      if (first === 'local') {
        local = writer.put('notes', 'r', { by: 'tab' })
        await turns()
        expect(store.waiting).toBe(1)
        await device.put('notes', 'r', { by: 'device', n: 2 })
        await turns()
      } else {
        await device.put('notes', 'r', { by: 'device', n: 2 })
        await turns()
        expect(store.waiting).toBe(1)
        local = writer.put('notes', 'r', { by: 'tab' })
        await turns()
      }
      release()
      await local
      await settle()
      const dots = async (of: MemoryReplicaStore) =>
        ((await of.getRecord('notes', 'r' as never))?.versions ?? [])
          .map((version) => version.dot.join(':'))
          .sort()
      // The instances' store holds what the device holds.
      expect(await dots(store)).toEqual(await dots(deviceStore))
      if (first === 'local') {
        // The device's second write did not see the tab's: they stand side by side.
        expect(await dots(store)).toEqual(['device:2', 'tab-replica:1'])
      } else {
        // The tab's write came after the device's was stored, and replaced it.
        expect(await dots(store)).toEqual(['tab-replica:1'])
      }
    })
  }
})
