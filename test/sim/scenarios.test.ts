import type { SpaceId } from '@chorus/core'
import { createSimCluster, type SimCluster } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { runPartitionStory } from '../../scripts/partition-story.js'

describe('the partition story (pnpm demo)', () => {
  it('lww: every replica reads the latest write, whole', async () => {
    const outcome = await runPartitionStory('lww')
    expect(outcome.problems).toEqual([])
    expect(outcome.converged).toBe(true)
    for (const value of Object.values(outcome.values)) {
      expect(value).toEqual({ title: 'Groceries', body: 'milk', done: true })
    }
    expect(Object.values(outcome.conflictsBeforeSettling)).toEqual([0, 0, 0])
  })

  it('merge: every replica keeps each field from its latest writer', async () => {
    const outcome = await runPartitionStory('merge')
    expect(outcome.converged).toBe(true)
    for (const value of Object.values(outcome.values)) {
      expect(value).toEqual({ title: 'Groceries for Sunday', body: 'milk, eggs', done: true })
    }
  })

  it('manual: every replica shows the conflict, and one choice settles it everywhere', async () => {
    const outcome = await runPartitionStory('manual')
    expect(outcome.converged).toBe(true)
    expect(outcome.conflictsBeforeSettling).toEqual({ alice: 1, bob: 1, carol: 1 })
    expect(outcome.conflictsAtEnd).toEqual({ alice: 0, bob: 0, carol: 0 })
    for (const value of Object.values(outcome.values)) {
      expect(value).toEqual({ title: 'Groceries for Sunday', body: 'milk, bread', done: false })
    }
  })
})

describe('recovery', () => {
  it('a wiped replica comes back under a new id and has everything it had synced', async () => {
    const cluster = await createSimCluster({ seed: 11, replicas: 3, resolvers: { notes: 'manual' } })
    for (let i = 0; i < 5; i++) await cluster.write('r1', 'notes', `n${i}`, { type: 'put', value: { i } })
    expect(await cluster.settle()).toBe(true)
    const before = cluster.engine('r1')?.replicaId
    expect(cluster.acked.get('r1')).toBe(5)

    await cluster.wipe('r1')
    expect(await cluster.settle()).toBe(true)
    const after = cluster.engine('r1')
    expect(after?.replicaId).not.toBe(before)
    expect((await after?.list('notes'))?.map((row) => row.value)).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })))
    expect((await cluster.check()).problems).toEqual([])
  })

  it('a replica behind the compacted log bootstraps from a snapshot of current state, not history', async () => {
    const cluster = await createSimCluster({ seed: 12, replicas: 2, resolvers: { notes: 'lww' } })
    const space = cluster.space as SpaceId
    let snapshotChanges = 0
    let snapshotFrames = 0
    cluster.net.onTrace = (event) => {
      if (event.type !== 'deliver' || event.to !== 'r2') return
      const frame = JSON.parse(event.message.frame) as { type: string; batch?: unknown[] }
      if (frame.type === 'snapshot') {
        snapshotFrames += 1
        snapshotChanges += frame.batch?.length ?? 0
      }
    }
    await cluster.write('r2', 'notes', 'mine', { type: 'put', value: { by: 'r2' } })
    expect(await cluster.settle()).toBe(true)
    cluster.crash('r2')
    // 10 records rewritten 6 times each: 60 changes of history, 10 current versions.
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 10; i++)
        await cluster.write('r1', 'notes', `n${i}`, { type: 'put', value: { round } })
    }
    await cluster.run(5000)
    const { head } = await cluster.hubStore.loadSpace(space)
    cluster.hubStore.truncateLog(space, head)
    expect(await cluster.settle()).toBe(true)
    expect(snapshotFrames).toBeGreaterThan(0)
    expect(snapshotChanges).toBe(11)
    const rows = await cluster.engine('r2')?.list('notes')
    expect(rows).toHaveLength(11)
    expect(rows?.filter((row) => row.value.round === 5)).toHaveLength(10)
    expect((await cluster.check()).problems).toEqual([])
  })
})

describe('over WebSocket-like connections', () => {
  it('a new replica whose connection breaks part way through a snapshot resumes it instead of starting over', async () => {
    // Pages of one record, and a slow link: the snapshot takes about a second to arrive.
    const cluster = await createSimCluster({
      seed: 21,
      replicas: 2,
      resolvers: { notes: 'lww' },
      reliable: true,
      snapshotPage: 1,
      faults: { latencyMs: 5, bytesPerMs: 2 },
    })
    const notes = 12
    for (let i = 0; i < notes; i++) await cluster.write('r1', 'notes', `n${i}`, { type: 'put', value: { i } })
    expect(await cluster.settle()).toBe(true)
    const records: string[] = []
    const hellos: { resume?: unknown }[] = []
    // As the cluster does: once a frame of a connection goes missing, the connection is broken
    // and nothing more of it counts, though the network still delivers what was behind it.
    const connOf = new Map<number, number>()
    const broken = new Set<number>()
    cluster.net.onTrace = (event) => {
      if (event.type === 'send') connOf.set(event.id, event.message.conn)
      if (event.type === 'blocked' || event.type === 'lost') broken.add(connOf.get(event.id) ?? -1)
      if (event.type !== 'deliver' || broken.has(event.message.conn)) return
      const frame = JSON.parse(event.message.frame) as {
        type: string
        batch?: unknown[][]
        resume?: unknown
      }
      if (event.to === 'r2' && frame.type === 'snapshot')
        for (const row of frame.batch ?? []) records.push(String(row[1]))
      if (event.from === 'r2' && frame.type === 'hello') hellos.push(frame)
    }
    await cluster.wipe('r2')
    // Cut the connection once a few of the pages have arrived; it breaks at the next frame.
    await cluster.run(50)
    while (records.length < 4) await cluster.run(20)
    cluster.net.cut('hub', 'r2')
    await cluster.run(400)
    expect(records.length).toBeLessThan(notes)
    cluster.net.heal()
    expect(await cluster.settle()).toBe(true)

    // The hello after the break named the snapshot and how far it had come…
    expect(hellos.length).toBeGreaterThanOrEqual(2)
    expect(hellos[0]?.resume).toBeUndefined()
    expect(hellos.at(-1)?.resume).toMatchObject({ [cluster.space]: { after: expect.any(String) } })
    // …and the hub sent the rest: each record once, but the one the break fell on.
    expect(new Set(records).size).toBe(notes)
    expect(records.length).toBeLessThanOrEqual(notes + 1)
    const values = (await cluster.engine('r2')?.list('notes'))?.map((row) => row.value)
    expect(values).toHaveLength(notes)
    expect((await cluster.check()).problems).toEqual([])
  })
})

describe('a hub that stops reading for a connection with too much on its way', () => {
  it('keeps about sendBuffer on a slow link, not the whole snapshot, and the replica still gets everything', async () => {
    const sendBuffer = 1_500
    const cluster = await createSimCluster({
      seed: 22,
      replicas: 2,
      resolvers: { notes: 'lww' },
      reliable: true,
      snapshotPage: 2,
      sendBuffer,
      faults: { latencyMs: 5, bytesPerMs: 1 },
    })
    const notes = 80
    for (let i = 0; i < notes; i++) await cluster.write('r1', 'notes', `n${i}`, { type: 'put', value: { i } })
    expect(await cluster.settle()).toBe(true)
    // What the hub has sent r2 that has not arrived, in bytes, and the most it ever was.
    let onTheWay = 0
    let most = 0
    let longest = 0
    const sizes = new Map<number, number>()
    cluster.net.onTrace = (event) => {
      if (event.type === 'send' && event.from === 'hub' && event.to === 'r2') {
        sizes.set(event.id, event.message.frame.length)
        onTheWay += event.message.frame.length
        longest = Math.max(longest, event.message.frame.length)
        most = Math.max(most, onTheWay)
      }
      if ((event.type === 'deliver' || event.type === 'blocked') && sizes.has(event.id)) {
        onTheWay -= sizes.get(event.id) ?? 0
        sizes.delete(event.id)
      }
    }
    await cluster.wipe('r2')
    expect(await cluster.settle()).toBe(true)
    // The snapshot (forty pages of about 210 bytes) went a few pages at a time: the hub checks
    // its backlog before it reads a page, and one read may be under way as another page goes.
    expect(longest).toBeGreaterThan(0)
    expect(most).toBeLessThan(sendBuffer + 2 * longest)
    expect((await cluster.engine('r2')?.list('notes'))?.length).toBe(notes)
    expect((await cluster.check()).problems).toEqual([])
  })
})

describe('a replica forgotten past the horizon', () => {
  it('drops the records deleted while it was away once it bootstraps, and keeps its offline edit', async () => {
    const cluster = await createSimCluster({ seed: 14, replicas: 3, resolvers: { notes: 'lww' } })
    const space = cluster.space as SpaceId
    for (const id of ['a', 'b', 'c']) await cluster.write('r1', 'notes', id, { type: 'put', value: { id } })
    for (const id of ['mine', 'kept']) await cluster.write('r3', 'notes', id, { type: 'put', value: { id } })
    expect(await cluster.settle()).toBe(true)

    // r3 edits a record offline and goes away; meanwhile r1 deletes records of both writers.
    cluster.net.partition([['r3'], ['hub', 'r1', 'r2']])
    await cluster.write('r3', 'notes', 'kept', { type: 'put', value: { id: 'kept', offline: true } })
    cluster.crash('r3')
    for (const id of ['a', 'mine']) await cluster.write('r1', 'notes', id, { type: 'delete' })
    await cluster.write('r2', 'notes', 'b', { type: 'put', value: { id: 'b', by: 'r2' } })
    await cluster.run(5000)

    // Past the horizon: the hub forgets r3, compacts its log and collects both deletions.
    const { head } = await cluster.hubStore.loadSpace(space)
    expect(cluster.compactHub(head)).toBe(2)
    expect(await cluster.settle()).toBe(true)

    for (const name of ['r1', 'r2', 'r3']) {
      const rows = await cluster.engine(name)?.list('notes')
      expect(rows?.map((row) => row.id)).toEqual(['b', 'c', 'kept'])
      expect(rows?.find((row) => row.id === 'kept')?.value).toEqual({ id: 'kept', offline: true })
    }
    // Gone from r3's store, not only from its lists: its versions were superseded at the hub.
    for (const id of ['a', 'mine']) expect(await cluster.engine('r3')?.record('notes', id)).toBeUndefined()
    expect((await cluster.check()).problems).toEqual([])
  })
})

describe('a deletion the hub collected, and a write that never saw it', () => {
  /** Every replica holds note `id` as the one version `dot`, and sees no conflict; the checks pass. */
  async function expectAlone(cluster: SimCluster, id: string, dot: readonly [string, number]): Promise<void> {
    for (const name of ['r1', 'r2', 'r3']) {
      const record = await cluster.engine(name)?.record('notes', id)
      expect(record?.versions.map((version) => version.dot)).toEqual([dot])
      expect(await cluster.engine(name)?.conflicts()).toEqual([])
    }
    expect((await cluster.check()).problems).toEqual([])
  }

  for (const resolver of ['manual', 'lww'] as const) {
    it(`is gone from every replica, and the write stands alone everywhere (${resolver})`, async () => {
      const cluster = await createSimCluster({ seed: 15, replicas: 3, resolvers: { notes: resolver } })
      const space = cluster.space as SpaceId
      for (const id of ['a', 'c']) await cluster.write('r1', 'notes', id, { type: 'put', value: { id } })
      expect(await cluster.settle()).toBe(true)

      // r3 edits `a` offline and goes away past the horizon; meanwhile r1 deletes `a`, and the
      // hub, which forgets r3, collects the deletion: r1 and r2 are told with the next change
      // they get, and drop it too.
      cluster.net.partition([['r3'], ['hub', 'r1', 'r2']])
      await cluster.write('r3', 'notes', 'a', { type: 'put', value: { id: 'a', offline: true } })
      cluster.crash('r3')
      await cluster.write('r1', 'notes', 'a', { type: 'delete' })
      await cluster.run(5000)
      const { head } = await cluster.hubStore.loadSpace(space)
      expect(cluster.compactHub(head)).toBe(1)
      await cluster.write('r2', 'notes', 'c', { type: 'put', value: { id: 'c', again: true } })
      await cluster.run(5000)
      for (const name of ['r1', 'r2'])
        expect(await cluster.engine(name)?.record('notes', 'a')).toBeUndefined()

      // r3 comes back: its edit is taken alone by the hub, and so by r1 and r2.
      expect(await cluster.settle()).toBe(true)
      await expectAlone(cluster, 'a', ['r3', 1])
    })
  }

  it('a replica that reads a snapshot over a collected deletion drops it from beside the write the hub took', async () => {
    const cluster = await createSimCluster({ seed: 17, replicas: 3, resolvers: { notes: 'manual' } })
    const space = cluster.space as SpaceId
    await cluster.write('r1', 'notes', 'a', { type: 'put', value: { id: 'a' } })
    expect(await cluster.settle()).toBe(true)
    // r3 goes away; r2 deletes `a`, r1 sees it and stops; r3 edits `a` offline.
    cluster.net.partition([['r3'], ['hub', 'r1', 'r2']])
    await cluster.write('r2', 'notes', 'a', { type: 'delete' })
    await cluster.run(3000)
    expect((await cluster.engine('r1')?.record('notes', 'a'))?.versions.map((v) => v.op.type)).toEqual([
      'delete',
    ])
    cluster.crash('r1')
    await cluster.write('r2', 'notes', 'b', { type: 'put', value: { id: 'b' } })
    await cluster.write('r3', 'notes', 'a', { type: 'put', value: { id: 'a', offline: true } })
    await cluster.run(3000)
    // The hub collects the deletion, forgetting r1 and r3, which are behind its new floor.
    const { head } = await cluster.hubStore.loadSpace(space)
    expect(cluster.compactHub(head)).toBe(1)
    // r3's edit reaches the hub first; then r1 comes back and reads a snapshot that carries it.
    cluster.net.heal()
    await cluster.run(3000)
    await cluster.restart('r1')
    expect(await cluster.settle()).toBe(true)
    await expectAlone(cluster, 'a', ['r3', 1])
  })

  it('a replica unsure whether its own write outlived a collected deletion reads a snapshot, and agrees', async () => {
    const cluster = await createSimCluster({ seed: 18, replicas: 3, resolvers: { notes: 'manual' } })
    const space = cluster.space as SpaceId
    await cluster.write('r1', 'notes', 'a', { type: 'put', value: { id: 'a' } })
    expect(await cluster.settle()).toBe(true)
    // r1 deletes `a` while r2 is away; r2 edits it offline, comes back and gets the deletion,
    // but its edit cannot reach the hub (its disk is full) before the hub collects the deletion.
    cluster.net.partition([['r2'], ['hub', 'r1', 'r3']])
    await cluster.write('r1', 'notes', 'a', { type: 'delete' })
    await cluster.write('r2', 'notes', 'a', { type: 'put', value: { id: 'a', offline: true } })
    await cluster.run(3000)
    cluster.hubStore.failWrites = true
    cluster.net.heal()
    await cluster.run(3000)
    expect((await cluster.engine('r2')?.record('notes', 'a'))?.versions).toHaveLength(2)
    const { head } = await cluster.hubStore.loadSpace(space)
    expect(cluster.compactHub(head)).toBe(1)
    cluster.hubStore.failWrites = false
    await cluster.write('r3', 'notes', 'b', { type: 'put', value: { id: 'b' } })
    expect(await cluster.settle()).toBe(true)
    await expectAlone(cluster, 'a', ['r2', 1])
  })

  it('a new replica that reuses a collected id is taken alone by the replicas that saw the deletion', async () => {
    const cluster = await createSimCluster({ seed: 16, replicas: 3, resolvers: { settings: 'manual' } })
    const space = cluster.space as SpaceId
    await cluster.write('r1', 'settings', 'theme', { type: 'put', value: { dark: true } })
    expect(await cluster.settle()).toBe(true)
    await cluster.write('r2', 'settings', 'theme', { type: 'delete' })
    expect(await cluster.settle()).toBe(true)
    // Every replica has seen the deletion: the hub collects it and tells them.
    const { head } = await cluster.hubStore.loadSpace(space)
    expect(cluster.compactHub(head)).toBe(1)
    expect(await cluster.settle()).toBe(true)
    // r3 starts over (a new device): it never saw the deletion, and sets the id again.
    await cluster.wipe('r3')
    expect(await cluster.settle()).toBe(true)
    await cluster.write('r3', 'settings', 'theme', { type: 'put', value: { dark: false } })
    expect(await cluster.settle()).toBe(true)
    for (const name of ['r1', 'r2', 'r3']) {
      expect(await cluster.engine(name)?.conflicts()).toEqual([])
      expect(await cluster.engine(name)?.get('settings', 'theme')).toEqual({ dark: false })
    }
    expect((await cluster.check()).problems).toEqual([])
  })
})

describe('clock skew', () => {
  it('a replica ten minutes ahead cannot drag the others further than the drift limit', async () => {
    const maxDriftMs = 60_000
    const cluster = await createSimCluster({
      seed: 13,
      replicas: 3,
      resolvers: { notes: 'lww' },
      skewsMs: { r1: 600_000, r2: 0, r3: -600_000 },
      maxDriftMs,
    })
    await cluster.write('r1', 'notes', 'a', { type: 'put', value: { from: 'the future' } })
    expect(await cluster.settle()).toBe(true)
    for (const [name, skew] of [
      ['r2', 0],
      ['r3', -600_000],
    ] as const) {
      const meta = await cluster.store(name).loadMeta()
      const localNow = cluster.net.now() + skew
      expect(meta?.clock.wall).toBeLessThanOrEqual(localNow + maxDriftMs)
      expect(meta?.clock.wall).toBeGreaterThanOrEqual(localNow)
    }
    // Causality still wins over clocks: a write that saw the future write replaces it.
    await cluster.write('r3', 'notes', 'a', { type: 'put', value: { from: 'the past, later' } })
    expect(await cluster.settle()).toBe(true)
    for (const name of cluster.names()) {
      expect(await cluster.read(name, 'notes', 'a')).toEqual({ from: 'the past, later' })
    }
    expect((await cluster.check()).problems).toEqual([])
  })
})
