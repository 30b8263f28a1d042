import type { HlcStamp } from '@chorus/core'
import { seedFromEnv } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { asNodeId } from '../src/node-id.js'
import { createQuorumConfig } from '../src/quorum/config.js'
import { createQuorumMachine } from '../src/quorum/node.js'
import { createHashRing, preferenceList } from '../src/quorum/ring.js'
import { nextDot, type Version } from '../src/quorum/versions.js'
import { QuorumSim } from '../src/sim/quorum-sim.js'
import { runQuorum } from './quorum-workload.js'

const replay = seedFromEnv(process.env, 0)

describe('quorum contexts claim only what a reader saw', () => {
  it('a read that sees a coordinator’s later version and misses its earlier one cannot make the next put drop it', async () => {
    const sim = new QuorumSim({
      seed: 1,
      nodes: ['n1', 'n2', 'n3'],
      config: { replicas: 3, writeQuorum: 2, readQuorum: 2, readRepair: 'blocking' },
      clientTimeoutMs: 2_000,
    })
    await sim.start()
    await sim.run(100)
    const slow = { latencyMs: 300 }
    const fast = { latencyMs: 5 }
    // n1 coordinates both puts; its first one crawls to the other replicas…
    sim.network.setFaults(slow, 'n1', 'n2')
    sim.network.setFaults(slow, 'n1', 'n3')
    const first = sim.client('a').put('n1', 'k', 'a')
    await sim.run(20)
    // …while its second one reaches n3 at once and is acknowledged by n1 and n3.
    sim.network.setFaults(fast, 'n1', 'n3')
    expect(await sim.until(sim.client('b').put('n1', 'k', 'b'))).toMatchObject({ ok: true })
    sim.network.setFaults(slow, 'n1', 'n3')
    // A read through n3 that hears from n3 and n2 before n1.
    const reader = sim.client('c')
    const read = await sim.until(reader.get('n3', 'k'))
    expect(read).toMatchObject({ ok: true })
    // The reader writes back with the context of what it read.
    expect(await sim.until(reader.put('n2', 'k', 'c'))).toMatchObject({ ok: true })
    sim.network.setFaults(fast, 'n1', 'n2')
    sim.network.setFaults(fast, 'n1', 'n3')
    expect(await sim.until(first)).toMatchObject({ ok: true })
    await sim.run(1_000)
    const report = sim.report()
    expect(report.putsAcknowledged).toBe(3)
    expect(report.lostAcknowledgedPuts).toBe(0)
    // 'a' is still there, as a sibling of 'c', unless the reader had seen it.
    const final = await sim.until(sim.client('d').get('n1', 'k'))
    const sawA = read.ok && read.values.includes('a')
    expect(final.ok && [...final.values].sort()).toEqual(sawA ? ['c'] : ['a', 'c'])
  })

  it('replays the seeded runs that lost an acknowledged put (W2 R2, blocking read repair)', async () => {
    for (const seed of replay === 0 ? [11, 35, 42, 55] : [replay]) {
      const run = await runQuorum({
        seed,
        config: { replicas: 3, writeQuorum: 2, readQuorum: 2, readRepair: 'blocking' },
        crashes: true,
        links: { latencyMs: 3, jitterMs: 6, loss: 0.05, duplicate: 0.05, reorder: 0.05 },
      })
      expect(run.report.lostAcknowledgedPuts, `SEED=${seed}`).toBe(0)
    }
  })
})

describe('who coordinates a put', () => {
  it('a node that is not a home replica of the key hands the put to one that is', async () => {
    const sim = new QuorumSim({ seed: 2, config: { replicas: 3, writeQuorum: 2, readQuorum: 2 } })
    await sim.start()
    await sim.run(100)
    const homes = sim.homes('k')
    const outsider = sim.config.nodes.find((node) => !homes.includes(node)) as string
    const put = await sim.until(sim.client('a').put(outsider, 'k', 'v'))
    expect(put).toMatchObject({ ok: true, values: ['v'] })
    const dot = put.ok ? Object.keys(put.context) : []
    expect(dot).toHaveLength(1)
    // The actor is a home replica in its first life.
    expect(homes.map((home) => `${home}_1`)).toContain(dot[0])
    expect(sim.host(outsider).state?.stats).toMatchObject({ putsForwarded: 1, putsCoordinated: 0 })
    expect(sim.stored(outsider, 'k')).toEqual([])
  })

  it('numbers a key’s versions per key, past anything the writer’s context names', () => {
    const n1 = asNodeId('n1')
    const held: Version[] = [
      { dot: [n1, 2], context: { n1: 1 }, stamp: '000000000000010.000000@n1' as HlcStamp, value: 'x' },
    ]
    expect(nextDot([], n1, {})).toEqual([n1, 1])
    expect(nextDot(held, n1, {})).toEqual([n1, 3])
    expect(nextDot(held, n1, { n1: 9, n2: 4 })).toEqual([n1, 10])
    expect(nextDot(held, asNodeId('n2'), {})).toEqual(['n2', 1])
  })
})

describe('quorum machine input', () => {
  const config = createQuorumConfig({ nodes: ['n1', 'n2', 'n3', 'n4'], replicas: 3 })
  const key = 'k'
  const ring = createHashRing(config.nodes, config.vnodes)
  const homes = preferenceList(ring, key, 3)
  const home = homes[0] as string
  const outsider = config.nodes.find((node) => !homes.includes(node)) as string
  const put = { type: 'put', id: 'p1', key, value: 1, context: {}, w: null, sloppy: null }

  it.each([
    ['a coordinate without a request', { type: 'coordinate', op: 'o1', client: 'c' }],
    [
      'a coordinate carrying a get',
      { type: 'coordinate', op: 'o1', client: 'c', request: { type: 'get', id: 'g', key } },
    ],
    [
      'a coordinated with a bad reply',
      { type: 'coordinated', op: 'o1', reply: { type: 'put-ok', id: 'p1' } },
    ],
    [
      'a store with one version instead of a set',
      { type: 'store', op: 'o1', key, version: {}, hintFor: null },
    ],
  ])('refuses %s with invalid-message and leaves the state as it was', (_name, message) => {
    const machine = createQuorumMachine(home, config)
    const state = machine.recover([], 0)
    expect(() => machine.step(state, machine.messageInput(1, asNodeId(outsider), message))).toThrow(
      expect.objectContaining({ code: 'invalid-message' }),
    )
  })

  it('coordinates a handed-over put once, however often the hand-over arrives', () => {
    const machine = createQuorumMachine(home, config)
    let state = machine.recover([], 0)
    const handOver = machine.messageInput(1, asNodeId(outsider), {
      type: 'coordinate',
      op: 'o1',
      client: 'c',
      request: put,
    })
    const first = machine.step(state, handOver)
    state = first.state
    expect(first.effects.filter((effect) => effect.type === 'persist')).toHaveLength(1)
    const again = machine.step(state, handOver)
    expect(again.effects).toEqual([])
    expect(state.stats.putsCoordinated).toBe(1)
  })

  it('keeps a hand-over it refused refused: a copy that arrives once it could coordinate is ignored', () => {
    const machine = createQuorumMachine(home, config)
    let state = machine.recover([], 0)
    const handOver = (now: number) =>
      machine.messageInput(now, asNodeId(outsider), {
        type: 'coordinate',
        op: 'o1',
        client: 'c',
        request: put,
      })
    // Nothing heard from the other home replicas past the failure timeout: too few up for W.
    const refused = machine.step(state, handOver(1_000))
    state = refused.state
    expect(refused.effects).toEqual([
      {
        type: 'send',
        to: outsider,
        message: {
          type: 'coordinated',
          op: 'o1',
          reply: { type: 'rejected', id: 'p1', reason: 'unavailable', maybeApplied: false },
        },
      },
    ])
    // The others are heard again; then the network delivers the hand-over a second time.
    for (const node of homes.filter((id) => id !== home))
      state = machine.step(
        state,
        machine.messageInput(1_001, asNodeId(node), { type: 'ping', sentAt: 1_001 }),
      ).state
    const copy = machine.step(state, handOver(1_002))
    expect(copy.effects).toEqual([])
    expect(copy.state.stats.putsCoordinated).toBe(0)
    // A new hand-over of the same put (another op) is coordinated: the node can.
    const fresh = machine.step(
      copy.state,
      machine.messageInput(1_003, asNodeId(outsider), {
        type: 'coordinate',
        op: 'o2',
        client: 'c',
        request: put,
      }),
    )
    expect(fresh.state.stats.putsCoordinated).toBe(1)
  })

  it('a node that is not home relays the home replica’s answer, and only that replica’s', () => {
    const machine = createQuorumMachine(outsider, config)
    let state = machine.recover([], 0)
    const sent = machine.step(state, machine.requestInput(1, 'c', put))
    state = sent.state
    const forward = sent.effects.find((effect) => effect.type === 'send')
    expect(forward).toMatchObject({ to: homes[0], message: { type: 'coordinate', client: 'c' } })
    const op = forward?.type === 'send' && forward.message.type === 'coordinate' ? forward.message.op : ''
    const reply = { type: 'rejected', id: 'p1', reason: 'timeout', maybeApplied: true }
    const stranger = homes[1] as string
    expect(
      machine.step(state, machine.messageInput(2, asNodeId(stranger), { type: 'coordinated', op, reply }))
        .effects,
    ).toEqual([])
    const relayed = machine.step(
      state,
      machine.messageInput(2, asNodeId(home), { type: 'coordinated', op, reply }),
    )
    expect(relayed.effects).toEqual([{ type: 'reply', client: 'c', reply }])
    expect(relayed.state.pending.size).toBe(0)
  })
})
