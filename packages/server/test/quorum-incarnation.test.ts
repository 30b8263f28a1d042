import type { HlcStamp } from '@chorus/core'
import { seedFromEnv } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { MemoryNodeStorage } from '../src/memory-node-storage.js'
import { asNodeId } from '../src/node-id.js'
import { createQuorumConfig } from '../src/quorum/config.js'
import type { QuorumRecord } from '../src/quorum/messages.js'
import { createQuorumMachine } from '../src/quorum/node.js'
import type { QuorumEffect } from '../src/quorum/state.js'
import { QuorumSim } from '../src/sim/quorum-sim.js'
import { FailingStorage, runQuorum } from './quorum-workload.js'

const replay = seedFromEnv(process.env, 0)
const strict = { replicas: 3, writeQuorum: 2, readQuorum: 2, readRepair: 'blocking' } as const

/** The values of the versions a record list carries. */
function valuesOf(records: readonly QuorumRecord[]): unknown[] {
  return records.flatMap((record) => (record.type === 'version' ? [record.version.value] : []))
}

describe('a coordinator changes identity at every start', () => {
  it('a put whose stores left before its coordinator’s commit failed is never dropped unseen nor its dot reissued', async () => {
    const n1 = new FailingStorage()
    const sim = new QuorumSim({
      seed: 3,
      nodes: ['n1', 'n2', 'n3'],
      config: strict,
      clientTimeoutMs: 500,
      storage: (node) => (node === 'n1' ? n1 : undefined),
    })
    await sim.start()
    await sim.run(100)
    const a = sim.client('a')
    expect(await sim.until(a.put('n1', 'k', 'v1'))).toMatchObject({ ok: true })
    expect(await sim.until(a.put('n1', 'k', 'v2'))).toMatchObject({ ok: true, values: ['v2'] })
    // A replica acknowledged a store sent after the incarnation record: later stores overlap.
    expect(sim.host('n1').state?.incarnation).toMatchObject({ number: 1, actor: 'n1_1', durable: true })

    // n1's commit of the next version fails after its stores have left: the process is gone.
    n1.fails = (records) => valuesOf(records).includes('doomed')
    const doomed = sim.client('b').put('n1', 'k', 'doomed')
    while (sim.host('n1').stats.storageRefusals === 0) await sim.run(1)
    n1.fails = () => false
    sim.crash('n1')
    expect(await sim.until(doomed)).toMatchObject({ ok: false })
    expect(valuesOf(n1.records())).not.toContain('doomed')
    const held = sim.stored('n2', 'k').find((version) => version.value === 'doomed')
    expect(held?.dot).toEqual(['n1_1', 3])

    await sim.restart('n1')
    await sim.run(50)
    expect(sim.host('n1').state?.incarnation).toMatchObject({ number: 2, actor: 'n1_2', durable: false })
    // A blind put through the new life: under one identity it would take n1's dot 3 again.
    const blind = await sim.until(sim.client('c').put('n1', 'k', 'after'))
    expect(blind).toMatchObject({ ok: true })
    expect(n1.records().some((record) => record.type === 'incarnation' && record.number === 2)).toBe(true)
    // Readers and writers with contexts, through every node.
    const d = sim.client('d')
    for (const [i, node] of ['n1', 'n2', 'n3', 'n1'].entries()) {
      expect(await sim.until(d.get(node, 'k'))).toMatchObject({ ok: true })
      expect(await sim.until(d.put('n1', 'k', `d${i}`))).toMatchObject({ ok: true })
    }
    expect(await sim.until(a.put('n1', 'k', 'a-late'))).toMatchObject({ ok: true })
    await sim.run(2_000)

    const report = sim.report()
    expect(report).toMatchObject({ lostAcknowledgedPuts: 0, lostStoredVersions: 0, reissuedDots: 0 })
    expect(report.putsAcknowledged).toBe(8)
    const final = await sim.until(sim.client('e').get('n2', 'k'))
    expect(final.ok && [...final.values].sort()).toEqual(['a-late', 'd3'])
  })

  it('survives seeded runs where commits fail after the stores left, with crashes and lossy links', async () => {
    let failed = 0
    // 18, 28, 39, 101, 135 and 136 reissue a dot whose first version never left its node (the
    // first commit of a life failed); the harness once judged the survivor by the dead one's past.
    for (const seed of replay === 0 ? [1, 2, 3, 4, 5, 6, 18, 28, 39, 101, 135, 136] : [replay]) {
      const run = await runQuorum({
        seed,
        config: strict,
        crashes: true,
        failingCommits: 0.05,
        links: { latencyMs: 3, jitterMs: 6, loss: 0.05, duplicate: 0.05, reorder: 0.05 },
      })
      for (const node of run.sim.config.nodes) failed += run.sim.host(node).stats.storageRefusals
      expect(run.report, `seed ${seed}: SEED=${seed} replays it`).toMatchObject({
        lostAcknowledgedPuts: 0,
        lostStoredVersions: 0,
        reissuedDots: 0,
        staleReads: 0,
      })
    }
    expect(failed).toBeGreaterThan(0)
  })

  it('records the incarnation in the first put’s commit and sends its stores after it', () => {
    const config = createQuorumConfig({ nodes: ['n1', 'n2', 'n3'], ...strict })
    const machine = createQuorumMachine('n1', config)
    // A storage that has seen three lives already.
    let state = machine.recover([{ type: 'incarnation', number: 3 }], 0)
    const put = (id: string, now: number) =>
      machine.requestInput(now, 'c', {
        type: 'put',
        id,
        key: 'k',
        value: id,
        context: {},
        w: null,
        sloppy: null,
      })
    const kinds = (effects: readonly QuorumEffect[]) =>
      effects.map((effect) =>
        effect.type === 'send' ? `send${effect.early === true ? ' early' : ''}` : effect.type,
      )

    const first = machine.step(state, put('p1', 1))
    state = first.state
    expect(kinds(first.effects)).toEqual(['persist', 'send', 'send'])
    const commit = first.effects[0]
    expect(commit?.type === 'persist' && commit.records[0]).toEqual({ type: 'incarnation', number: 4 })
    const store = first.effects[1]
    const op = store?.type === 'send' && store.message.type === 'store' ? store.message.op : ''
    expect(
      store?.type === 'send' && store.message.type === 'store' && store.message.versions[0]?.dot,
    ).toEqual(['n1_4', 1])

    // Until a replica acknowledges a store sent after that commit, stores still wait for it.
    const second = machine.step(state, put('p2', 2))
    state = second.state
    expect(kinds(second.effects)).toEqual(['persist', 'send', 'send'])
    const second0 = second.effects[0]
    expect(second0?.type === 'persist' && second0.records.map((record) => record.type)).toEqual(['version'])
    state = machine.step(state, machine.messageInput(3, asNodeId('n2'), { type: 'stored', op })).state
    expect(state.incarnation).toMatchObject({ number: 4, durable: true })

    // From then on the stores leave ahead of the coordinator's own commit.
    const third = machine.step(state, put('p3', 4))
    expect(kinds(third.effects)).toEqual(['send early', 'send early', 'persist'])
  })

  it('loads a storage written before incarnations: old dots stay readable and are never reissued', async () => {
    const key = 'k'
    const stamp = (ms: number) => `${String(ms).padStart(15, '0')}.000000@n1` as HlcStamp
    const old: QuorumRecord[] = [
      {
        type: 'version',
        key,
        version: { dot: [asNodeId('n1'), 1], context: {}, stamp: stamp(10), value: 'old1' },
      },
      {
        type: 'version',
        key,
        version: { dot: [asNodeId('n1'), 2], context: { n1: 1 }, stamp: stamp(20), value: 'old2' },
      },
    ]
    const disks = new Map<string, MemoryNodeStorage<QuorumRecord>>()
    for (const node of ['n1', 'n2', 'n3']) {
      const disk = new MemoryNodeStorage<QuorumRecord>()
      await disk.append(old, null)
      disks.set(node, disk)
    }
    const sim = new QuorumSim({
      seed: 4,
      nodes: ['n1', 'n2', 'n3'],
      config: strict,
      storage: (node) => disks.get(node),
    })
    await sim.start()
    await sim.run(100)
    expect(sim.host('n1').state?.incarnation).toMatchObject({ number: 1, actor: 'n1_1' })
    const reader = sim.client('r')
    const read = await sim.until(reader.get('n2', key))
    expect(read).toMatchObject({ ok: true, values: ['old2'], context: { n1: 2 } })
    // A blind put is a sibling of the old version, under the new actor.
    const blind = await sim.until(sim.client('w').put('n1', key, 'new'))
    expect(blind).toMatchObject({ ok: true, values: ['old2', 'new'], context: { n1: 2, n1_1: 1 } })
    // A put with the reader's context supersedes what it read, and only that.
    const written = await sim.until(reader.put('n1', key, 'next'))
    expect(written.ok && [...written.values].sort()).toEqual(['new', 'next'])
    await sim.run(1_000)
    expect(sim.report()).toMatchObject({ lostAcknowledgedPuts: 0, lostStoredVersions: 0, reissuedDots: 0 })
  })
})

describe('a checkpoint', () => {
  it('keeps the incarnation and the clock: the next life takes the next number, and no stamp goes back', async () => {
    const config = createQuorumConfig({ nodes: ['n1', 'n2', 'n3'], ...strict, checkpointRecords: 1 })
    const machine = createQuorumMachine(asNodeId('n1'), config)
    // A life (3) whose clock ran ahead of the wall clock, taken from a stamp it received.
    const ahead = { wall: 9_000_000, counter: 4 }
    const before = { ...machine.recover([{ type: 'incarnation', number: 3 }], 1_000), clock: ahead }
    const stamp = `000000000500000.000000@n2` as HlcStamp
    const version = { dot: ['n2_1', 1], context: {}, stamp, value: 'v' } as const
    const { state, effects } = machine.step(before, {
      type: 'message',
      now: 1_000,
      from: asNodeId('n2'),
      message: { type: 'store', op: 'n2.1', key: 'k', versions: [version], hintFor: null },
    } as never)
    const checkpoint = effects.find(
      (effect): effect is Extract<QuorumEffect, { type: 'persist' }> =>
        effect.type === 'persist' && effect.replace === true,
    )
    expect(checkpoint?.records).toEqual([
      { type: 'incarnation', number: 4 },
      {
        type: 'snapshot',
        clock: { wall: state.clock.wall, counter: state.clock.counter },
        store: [['k', [version]]],
        hints: [],
      },
    ])
    expect(state.clock.wall).toBe(ahead.wall)
    expect(state.sinceCheckpoint).toBe(0)
    const after = machine.recover(checkpoint?.records ?? [], 2_000)
    expect(after.incarnation.number).toBe(5)
    expect(after.clock.wall).toBe(ahead.wall)
    expect(after.clock.counter).toBeGreaterThan(state.clock.counter)
    expect(after.store.get('k')).toEqual([version])
  })
})
