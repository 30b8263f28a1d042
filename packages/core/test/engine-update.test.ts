import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { createHubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import type { JsonObject } from '../src/json.js'
import { MemoryReplicaStore } from '../src/memory-replica-store.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { settle, wireToHub } from './wire-hub.js'

function openReplica(name = 'alice'): Promise<ReplicaEngine> {
  let time = 1_700_000_000_000
  return openReplicaEngine({
    store: new MemoryReplicaStore(),
    space: 'team',
    now: () => time++,
    createReplicaId: () => asReplicaId(name),
    resolvers: { notes: 'manual' },
  })
}

const counter = (current: JsonObject | undefined): JsonObject => ({ n: ((current?.n as number) ?? 0) + 1 })

describe('ReplicaEngine.update', () => {
  it('patches the record as it is when the write is made: updates issued together each see the one before', async () => {
    const replica = await openReplica()
    await replica.put('notes', 'a', { title: 'kept', n: 0 })
    const updates = Array.from({ length: 50 }, () => replica.update('notes', 'a', counter))
    const changes = await Promise.all(updates)
    expect(changes.every((change) => change !== null)).toBe(true)
    expect(await replica.get('notes', 'a')).toEqual({ title: 'kept', n: 50 })
    expect(replica.pending()).toBe(51)
  })

  it('creates a record that is not there, and sees a deleted one as undefined', async () => {
    const replica = await openReplica()
    const seen: (JsonObject | undefined)[] = []
    await replica.update('notes', 'new', (current) => {
      seen.push(current)
      return { title: 'made' }
    })
    expect(await replica.get('notes', 'new')).toEqual({ title: 'made' })
    await replica.delete('notes', 'new')
    await replica.update('notes', 'new', (current) => {
      seen.push(current)
      return undefined
    })
    expect(seen).toEqual([undefined, undefined])
  })

  it('writes nothing when the function returns undefined, and the next write takes the next counter', async () => {
    const replica = await openReplica()
    const first = await replica.put('notes', 'a', { title: 'a' })
    expect(await replica.update('notes', 'a', () => undefined)).toBeNull()
    expect(replica.pending()).toBe(1)
    expect((await replica.record('notes', 'a'))?.versions).toEqual([first])
    const next = await replica.patch('notes', 'a', { title: 'b' })
    expect(next.dot).toEqual([first.dot[0], first.dot[1] + 1])
  })

  it('rejects with what the function throws, and the writes issued with it still commit', async () => {
    const replica = await openReplica()
    const failure = new Error('the app changed its mind')
    const before = replica.put('notes', 'a', { n: 1 })
    const failing = replica.update('notes', 'a', () => {
      throw failure
    })
    const after = replica.update('notes', 'a', counter)
    await expect(failing).rejects.toBe(failure)
    await before
    await after
    expect(await replica.get('notes', 'a')).toEqual({ n: 2 })
    expect(replica.pending()).toBe(2)
  })

  it('refuses a function that returns no JSON object, and an argument that is no function', async () => {
    const replica = await openReplica()
    const refused = { code: 'invalid-argument' }
    await expect(
      replica.update('notes', 'a', () => ({ at: new Date() }) as unknown as JsonObject),
    ).rejects.toMatchObject(refused)
    await expect(replica.update('notes', 'a', () => [] as unknown as JsonObject)).rejects.toMatchObject(
      refused,
    )
    await expect(replica.update('notes', 'a', { n: 1 } as unknown as () => JsonObject)).rejects.toMatchObject(
      refused,
    )
    await expect(replica.update('notes', '', counter)).rejects.toMatchObject(refused)
    expect(await replica.get('notes', 'a')).toBeUndefined()
    expect(replica.pending()).toBe(0)
  })

  it('refuses an async function, whose rejection goes nowhere unhandled', async () => {
    const replica = await openReplica()
    const asyncChange = (async () => {
      throw new Error('no body yet')
    }) as unknown as () => JsonObject
    await expect(replica.update('notes', 'a', asyncChange)).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/returned a promise/),
    })
    // Given time, the function's own rejection would surface as an unhandled one (and fail
    // this run) were it not handled.
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await replica.update('notes', 'a', counter)).not.toBeNull()
  })

  it('shows the versions of an open conflict', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now: () => 1_700_000_000_000 })
    const alice = await openReplica('alice')
    const bob = await openReplica('bob')
    await alice.put('notes', 'a', { title: 'alice' })
    await bob.put('notes', 'a', { title: 'bob' })
    wireToHub(hub, alice)
    wireToHub(hub, bob)
    await settle(hub, [alice, bob])
    let conflict: readonly { value: JsonObject | null; replicaId: string }[] = []
    await alice.update('notes', 'a', (_current, versions) => {
      conflict = versions
      return undefined
    })
    expect(conflict.map((version) => [version.replicaId, version.value])).toEqual([
      ['alice', { title: 'alice' }],
      ['bob', { title: 'bob' }],
    ])
  })
})

describe('ReplicaEngine.update against a remote change that lands between a read and a write', () => {
  /** Two replicas on one note, both holding its first version. */
  async function twoReplicas() {
    const hub = createHubEngine({ store: new MemoryHubStore(), now: () => 1_700_000_000_000 })
    const alice = await openReplica('alice')
    const bob = await openReplica('bob')
    wireToHub(hub, alice)
    wireToHub(hub, bob)
    await alice.put('notes', 'a', { body: 'one' })
    await settle(hub, [alice, bob])
    return { hub, alice, bob }
  }

  it('a read, then a patch, supersedes it unseen (what update is for)', async () => {
    const { hub, alice, bob } = await twoReplicas()
    const shown = await alice.get('notes', 'a')
    await bob.patch('notes', 'a', { body: 'one two' })
    await settle(hub, [alice, bob])
    // Alice's app computed its write from what it showed, before Bob's change.
    await alice.patch('notes', 'a', { body: `${shown?.body as string} three` })
    await settle(hub, [alice, bob])
    expect(await bob.get('notes', 'a')).toEqual({ body: 'one three' })
    expect(await bob.conflicts()).toEqual([])
  })

  it('update sees the remote change when it landed first, so the app can skip its stale write', async () => {
    const { hub, alice, bob } = await twoReplicas()
    const shown = await alice.get('notes', 'a')
    await bob.patch('notes', 'a', { body: 'one two' })
    await settle(hub, [alice, bob])
    const written = await alice.update('notes', 'a', (current) =>
      current?.body === shown?.body ? { body: `${shown?.body as string} three` } : undefined,
    )
    expect(written).toBeNull()
    expect(await alice.get('notes', 'a')).toEqual({ body: 'one two' })
  })

  it('update made before the remote change lands is concurrent with it: a conflict, nothing lost', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now: () => 1_700_000_000_000 })
    const alice = await openReplica('alice')
    const bob = await openReplica('bob')
    // Bob's change reaches Alice only after her update is made.
    const held: string[] = []
    const hubSide = hub.accept({ send: (frame) => held.push(frame), close: () => alice.detach() })
    alice.attach((frame) => void hubSide.receive(frame))
    wireToHub(hub, bob)
    await alice.put('notes', 'a', { body: 'one' })
    await settle(hub, [alice, bob])
    for (const frame of held.splice(0)) await alice.receive(frame)
    await settle(hub, [alice, bob])
    await bob.patch('notes', 'a', { body: 'one two' })
    await settle(hub, [alice, bob])
    expect(held.length).toBeGreaterThan(0)
    const update = alice.update('notes', 'a', (current) => ({ body: `${current?.body as string} three` }))
    const delivered = Promise.all(held.splice(0).map((frame) => alice.receive(frame)))
    await update
    await delivered
    await settle(hub, [alice, bob])
    for (const frame of held.splice(0)) await alice.receive(frame)
    await settle(hub, [alice, bob])
    for (const replica of [alice, bob]) {
      const conflicts = await replica.conflicts()
      const bodies = conflicts.map((conflict) =>
        conflict.versions.map((version) => version.value?.body).sort(),
      )
      expect(bodies).toEqual([['one three', 'one two']])
    }
  })
})

describe('ReplicaEngine.read', () => {
  it('gives the value as get reads it and the open conflict as update sees it, from one read', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now: () => 1_700_000_000_000 })
    const alice = await openReplica('alice')
    const bob = await openReplica('bob')
    expect(await alice.read('notes', 'a')).toEqual({ value: undefined, conflict: [] })
    await alice.put('notes', 'a', { title: 'alice' })
    expect(await alice.read('notes', 'a')).toEqual({ value: { title: 'alice' }, conflict: [] })
    await bob.put('notes', 'a', { title: 'bob' })
    wireToHub(hub, alice)
    wireToHub(hub, bob)
    await settle(hub, [alice, bob])
    const read = await alice.read('notes', 'a')
    expect(read.value).toEqual(await alice.get('notes', 'a'))
    let seen: readonly { value: JsonObject | null; replicaId: string }[] = []
    await alice.update('notes', 'a', (_current, versions) => {
      seen = versions
      return undefined
    })
    expect(read.conflict).toEqual(seen)
    expect(read.conflict.map((version) => version.replicaId)).toEqual(['alice', 'bob'])
    await alice.resolve('notes', 'a', { title: 'both' })
    expect(await alice.read('notes', 'a')).toEqual({ value: { title: 'both' }, conflict: [] })
    await alice.delete('notes', 'a')
    expect(await alice.read('notes', 'a')).toEqual({ value: undefined, conflict: [] })
  })
})
