import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import type { ChorusError } from '../src/errors.js'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import type { ReplicaStore } from '../src/storage.js'
import { wireToHub } from './wire-hub.js'

const space = asSpaceId('team')

/** A memory store whose next remote apply that removes records fails, once per `failRemovals()`. */
class FlakyStore extends MemoryReplicaStore {
  #fail = false
  failRemovals(): void {
    this.#fail = true
  }
  override async applyRemote(batch: Parameters<ReplicaStore['applyRemote']>[0]): Promise<void> {
    if (this.#fail && batch.records.some((record) => record.state.versions.length === 0)) {
      this.#fail = false
      throw new Error('the disk is full')
    }
    return super.applyRemote(batch)
  }
}

interface Setup {
  readonly hub: HubEngine
  readonly hubStore: MemoryHubStore
  readonly advance: (ms: number) => void
  readonly replica: (
    name: string,
    store?: ReplicaStore,
    errors?: ChorusError[],
    onHubFrame?: (frame: string) => void,
  ) => Promise<ReplicaEngine>
}

function setup(): Setup {
  let time = 1_700_000_000_000
  const now = () => time
  const hubStore = new MemoryHubStore()
  const hub = createHubEngine({ store: hubStore, now })
  return {
    hub,
    hubStore,
    advance: (ms) => (time += ms),
    async replica(name, store = new MemoryReplicaStore(), errors = [], onHubFrame = () => {}) {
      const replica = await openReplicaEngine({
        store,
        space,
        now,
        createReplicaId: () => asReplicaId(name),
        resolvers: { notes: 'manual' },
        onError: (error) => errors.push(error),
      })
      wireToHub(hub, replica, onHubFrame)
      return replica
    },
  }
}

async function settle(s: Setup, replicas: readonly ReplicaEngine[], rounds = 30): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await s.hub.idle()
    for (const replica of replicas) await replica.idle()
    s.advance(100)
    await s.hub.tick()
    for (const replica of replicas) await replica.tick()
  }
}

/** Compacts the hub's whole log, as a relay does once every replica acknowledged it, and tells the hub. */
async function compact(s: Setup): Promise<number> {
  const { head } = await s.hubStore.loadSpace(space)
  const dropped = s.hubStore.compact(space, head)
  const mark = s.hubStore.collectedMark(space)
  if (mark !== undefined) await s.hub.collected(space, mark)
  return dropped.size
}

describe('a replica told of collected deletions', () => {
  it('removes the records whose every version is a collected deletion, and nothing else', async () => {
    const s = setup()
    const frames: string[] = []
    const alice = await s.replica('alice', undefined, undefined, (frame) => frames.push(frame))
    const bob = await s.replica('bob')
    for (const id of ['gone', 'kept', 'conflict']) await alice.put('notes', id, { id })
    await settle(s, [alice, bob])
    await alice.delete('notes', 'gone')
    // A deletion beside a concurrent edit is a conflict, not a deleted record: it stays.
    bob.detach()
    await alice.delete('notes', 'conflict')
    await bob.put('notes', 'conflict', { id: 'conflict', by: 'bob' })
    wireToHub(s.hub, bob)
    await settle(s, [alice, bob])
    expect((await bob.record('notes', 'gone'))?.versions.map((version) => version.op.type)).toEqual([
      'delete',
    ])
    const snapshots = () => frames.filter((frame) => frame.startsWith('{"type":"snapshot"')).length
    const before = snapshots()

    expect(await compact(s)).toBe(1)
    // The replicas hear of it with the next change the hub streams them.
    await bob.put('notes', 'next', { id: 'next' })
    await settle(s, [alice, bob])
    for (const replica of [alice, bob]) {
      expect(await replica.record('notes', 'gone')).toBeUndefined()
      expect(await replica.get('notes', 'kept')).toEqual({ id: 'kept' })
      expect((await replica.record('notes', 'conflict'))?.versions).toHaveLength(2)
    }
    // Alice's own deletion of the conflicted record is covered by the mark, bob's edit beside
    // it is not; but she read bob's edit from the hub, so the hub held it: she reads no snapshot.
    expect(snapshots()).toBe(before)
  })

  it('applies nothing past the mark until the removal went through', async () => {
    const s = setup()
    const errors: ChorusError[] = []
    const store = new FlakyStore()
    const alice = await s.replica('alice')
    const bob = await s.replica('bob', store, errors)
    await alice.put('notes', 'gone', { id: 'gone' })
    await settle(s, [alice, bob])
    await alice.delete('notes', 'gone')
    await settle(s, [alice, bob])

    store.failRemovals()
    expect(await compact(s)).toBe(1)
    const { cursor } = bob.session()
    await alice.put('notes', 'after', { id: 'after' })
    await s.hub.idle()
    await bob.idle()
    expect(errors.map((error) => error.message).join()).toMatch(
      /removing the deletions the hub collected failed/,
    )
    expect(await bob.record('notes', 'gone')).toBeDefined()
    // The change after the mark waits for the removal: the hub sends it again later.
    expect(bob.session().cursor).toBe(cursor)
    expect(await bob.get('notes', 'after')).toBeUndefined()
    await settle(s, [alice, bob], 60)
    expect(await bob.record('notes', 'gone')).toBeUndefined()
    expect(await bob.get('notes', 'after')).toEqual({ id: 'after' })
  })
})
