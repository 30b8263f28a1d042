import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { wireToHub } from './wire-hub.js'

const space = asSpaceId('team')

function hubOn(store: MemoryHubStore, now: () => number): HubEngine {
  return createHubEngine({ store, now })
}

async function replicaNamed(name: string, now: () => number): Promise<ReplicaEngine> {
  return openReplicaEngine({
    store: new MemoryReplicaStore(),
    space,
    now,
    createReplicaId: () => asReplicaId(name),
    resolvers: { notes: 'manual' },
  })
}

async function settle(hub: HubEngine, replicas: readonly ReplicaEngine[], tick: () => void): Promise<void> {
  for (let round = 0; round < 20; round++) {
    await hub.idle()
    for (const replica of replicas) await replica.idle()
    tick()
    await hub.tick()
    for (const replica of replicas) await replica.tick()
  }
}

/** A virtual clock, and a tick that moves it on 100 ms. */
function virtualClock(): { now: () => number; tick: () => void } {
  let time = 1_700_000_000_000
  return {
    now: () => time,
    tick: () => {
      time += 100
    },
  }
}

/** The dots of a record's versions, as `replica:counter`. */
async function dots(replica: ReplicaEngine, id: string): Promise<string[] | undefined> {
  return (await replica.record('notes', id))?.versions.map(({ dot }) => `${dot[0]}:${dot[1]}`)
}

describe('a replica reading the snapshot of a hub restored from a backup', () => {
  it('keeps what the hub holds of a record whose newer version the hub lost', async () => {
    const { now, tick } = virtualClock()
    const store = new MemoryHubStore({ log: 'log-1' })
    let hub = hubOn(store, now)
    const [alice, bob, carol, dave] = await Promise.all(
      ['alice', 'bob', 'carol', 'dave'].map((name) => replicaNamed(name, now)),
    )
    const everyone = [alice, bob, carol, dave] as ReplicaEngine[]
    for (const replica of everyone) wireToHub(hub, replica as ReplicaEngine)
    await alice?.put('notes', 'n', { by: 'alice' })
    await settle(hub, everyone, tick)
    const backup = store.copy('log-2')

    // Carol replaces alice's version; bob reads that, then goes away.
    await carol?.put('notes', 'n', { by: 'carol' })
    await settle(hub, everyone, tick)
    expect(await dots(bob as ReplicaEngine, 'n')).toEqual(['carol:1'])
    bob?.detach()
    // Dave replaces carol's version; carol reads it, and dave goes away too.
    await dave?.put('notes', 'n', { by: 'dave' })
    await settle(hub, [alice, carol, dave] as ReplicaEngine[], tick)
    expect(await dots(carol as ReplicaEngine, 'n')).toEqual(['dave:1'])
    dave?.detach()
    alice?.detach()
    carol?.detach()

    // The hub comes back from the backup: it holds alice's version alone. Carol tells it how
    // far her changes went (she holds none of them now: dave's replaced hers), so the hub's
    // `received` covers carol:1 without the hub holding it.
    hub = hubOn(backup, now)
    wireToHub(hub, carol as ReplicaEngine)
    await settle(hub, [carol as ReplicaEngine], tick)
    expect((await backup.loadSpace(space)).received).toMatchObject({ alice: 1, carol: 1 })

    // Bob reads the restored log from the start. Carol's version goes from his copy, as the
    // hub no longer has it; what stays is what the hub holds, alice's, not no record at all.
    wireToHub(hub, bob as ReplicaEngine)
    await settle(hub, [carol, bob] as ReplicaEngine[], tick)
    expect(await dots(bob as ReplicaEngine, 'n')).toEqual(['alice:1'])
    expect(await bob?.get('notes', 'n')).toEqual({ by: 'alice' })

    // Dave comes back and sends his version again: every replica ends on it.
    wireToHub(hub, dave as ReplicaEngine)
    wireToHub(hub, alice as ReplicaEngine)
    await settle(hub, everyone, tick)
    for (const replica of everyone) expect(await dots(replica, 'n')).toEqual(['dave:1'])
  })

  it('gives a deletion collected after the backup back to every replica alike, once its writer said how far it went', async () => {
    const { now, tick } = virtualClock()
    const store = new MemoryHubStore({ log: 'log-1' })
    let hub = hubOn(store, now)
    const [alice, bob, carol] = (await Promise.all(
      ['alice', 'bob', 'carol'].map((name) => replicaNamed(name, now)),
    )) as [ReplicaEngine, ReplicaEngine, ReplicaEngine]
    for (const replica of [alice, bob, carol]) wireToHub(hub, replica)
    await alice.put('notes', 'n', { by: 'alice' })
    await settle(hub, [alice, bob, carol], tick)
    const backup = store.copy('log-2')

    await alice.delete('notes', 'n')
    await settle(hub, [alice, bob, carol], tick)
    expect(await dots(bob, 'n')).toEqual(['alice:2'])
    // Bob goes away holding the deletion; the hub collects it and tells the others.
    bob.detach()
    const { head } = await store.loadSpace(space)
    store.compact(space, head)
    const mark = store.collectedMark(space)
    expect(mark).toBeDefined()
    await hub.collected(space, mark as NonNullable<typeof mark>)
    await alice.put('notes', 'other', { by: 'alice' })
    await settle(hub, [alice, carol], tick)
    expect(await carol.record('notes', 'n')).toBeUndefined()
    alice.detach()
    carol.detach()

    // Restored, the hub holds alice's put of n again. Alice sends her changes again up to the
    // last (the deletion is not among them: she dropped it with the mark), then the others
    // read the restored log: carol takes the put back, and bob, whose deletion the hub's
    // counters now cover, drops it for the put the pages carried — as carol holds it.
    hub = hubOn(backup, now)
    wireToHub(hub, alice)
    await settle(hub, [alice], tick)
    expect((await backup.loadSpace(space)).received).toMatchObject({ alice: 3 })
    wireToHub(hub, carol)
    wireToHub(hub, bob)
    await settle(hub, [alice, bob, carol], tick)
    for (const replica of [alice, bob, carol]) expect(await dots(replica, 'n')).toEqual(['alice:1'])
  })
  it('drops a deletion the restored hub collected beside a version it had lost, as a replica reading it afresh does', async () => {
    const { now, tick } = virtualClock()
    const store = new MemoryHubStore({ log: 'log-1' })
    let hub = hubOn(store, now)
    const [alice, bob, carol, dave] = (await Promise.all(
      ['alice', 'bob', 'carol', 'dave'].map((name) => replicaNamed(name, now)),
    )) as [ReplicaEngine, ReplicaEngine, ReplicaEngine, ReplicaEngine]
    for (const replica of [alice, bob, carol]) wireToHub(hub, replica)
    await alice.put('notes', 'other', { by: 'alice' })
    await settle(hub, [alice, bob, carol], tick)
    const backup = store.copy('log-2')

    // Bob deletes n while carol edits it: every replica holds both, side by side.
    await alice.put('notes', 'n', { by: 'alice' })
    await settle(hub, [alice, bob, carol], tick)
    bob.detach()
    carol.detach()
    await bob.delete('notes', 'n')
    await carol.put('notes', 'n', { by: 'carol' })
    wireToHub(hub, bob)
    wireToHub(hub, carol)
    await settle(hub, [alice, bob, carol], tick)
    for (const replica of [alice, bob, carol]) expect(await dots(replica, 'n')).toEqual(['bob:1', 'carol:1'])
    for (const replica of [alice, bob, carol]) replica.detach()

    // The hub comes back from the copy without either. Bob sends his deletion again; carol,
    // whose edit the copy lost too, stays away. Alice reads the restored hub afresh: she
    // keeps carol's edit (its writer has not said how far she went) beside bob's deletion.
    hub = hubOn(backup, now)
    wireToHub(hub, bob)
    await settle(hub, [bob], tick)
    wireToHub(hub, alice)
    await settle(hub, [alice, bob], tick)
    expect(await dots(alice, 'n')).toEqual(['bob:1', 'carol:1'])

    // The hub holds the deletion alone, and collects it. Alice and bob cannot tell from the
    // mark whether the hub held carol's edit beside it; they know it held none of carol's
    // changes, so they read the hub afresh, and keep only carol's edit, as the hub will.
    const { head } = await backup.loadSpace(space)
    backup.compact(space, head)
    const mark = backup.collectedMark(space)
    expect(mark?.received).toEqual({ bob: 1 })
    await hub.collected(space, mark as NonNullable<typeof mark>)
    await settle(hub, [alice, bob], tick)

    // Carol comes back and sends her edit again; dave starts empty.
    wireToHub(hub, carol)
    wireToHub(hub, dave)
    await settle(hub, [alice, bob, carol, dave], tick)
    for (const replica of [alice, bob, carol, dave]) expect(await dots(replica, 'n')).toEqual(['carol:1'])
  })
})
