import { isChorusError } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { NodeInput } from '../src/machine.js'
import { NodeRuntime } from '../src/node/node-runtime.js'
import { asNodeId, type NodeId } from '../src/node-id.js'
import { SingleLeaderSim } from '../src/sim/single-leader-sim.js'
import {
  batchSingleLeaderMessages,
  isSingleLeaderAcknowledgement,
  MAX_JOINED_ENTRIES,
  singleLeaderStepFirst,
} from '../src/single-leader/batch.js'
import { createSingleLeaderConfig, type ReplicationMode } from '../src/single-leader/config.js'
import { lastLsn } from '../src/single-leader/log.js'
import type {
  LogEntry,
  SingleLeaderMessage,
  SingleLeaderRecord,
  SingleLeaderReply,
  SingleLeaderRequest,
} from '../src/single-leader/messages.js'
import {
  createSingleLeaderMachine,
  type SingleLeaderMachine,
  stepSingleLeader,
} from '../src/single-leader/node.js'
import { type SingleLeaderState, settleSingleLeader } from '../src/single-leader/state.js'
import { GatedStorage } from './gated-storage.js'

const n1 = asNodeId('n1')
const n2 = asNodeId('n2')

function entry(lsn: number, epoch = 1): LogEntry {
  return { lsn, epoch, write: { key: `k${lsn}`, value: lsn, id: `c/${lsn}` } }
}

function append(prevLsn: number, count: number, commitLsn: number, epoch = 1): SingleLeaderMessage {
  return {
    type: 'append',
    epoch,
    leader: n1,
    prevLsn,
    prevEpoch: prevLsn === 0 ? 0 : epoch,
    entries: Array.from({ length: count }, (_, index) => entry(prevLsn + 1 + index, epoch)),
    commitLsn,
    sentAt: 100 + prevLsn,
  }
}

describe('batchSingleLeaderMessages', () => {
  it('joins appends that continue one another into one, counting its parts', () => {
    const joined = batchSingleLeaderMessages([append(3, 1, 2), append(4, 2, 3), append(6, 1, 3)])
    expect(joined).toEqual([
      {
        type: 'append',
        epoch: 1,
        leader: n1,
        prevLsn: 3,
        prevEpoch: 1,
        entries: [entry(4), entry(5), entry(6), entry(7)],
        commitLsn: 3,
        sentAt: 106,
        parts: 3,
      },
    ])
  })

  it('keeps apart appends that do not continue, probes, other epochs and other messages', () => {
    const heartbeat: SingleLeaderMessage = {
      type: 'heartbeat',
      epoch: 1,
      leader: n1,
      commitLsn: 0,
      lastLsn: 4,
      lastEpoch: 1,
      sentAt: 1,
    }
    const messages = [append(3, 1, 0), append(5, 1, 0), append(6, 0, 0), append(6, 1, 0, 2), heartbeat]
    expect(batchSingleLeaderMessages(messages)).toEqual(messages)
    // A message between two appends keeps them apart: order is kept.
    const split = [append(0, 1, 0), heartbeat, append(1, 1, 0)]
    expect(batchSingleLeaderMessages(split)).toEqual(split)
  })

  it('in chain mode, joins appends of one chain view only, keeping the highest chainLsn; an acknowledgement keeps the latest', () => {
    const inView = (prevLsn: number, view: number, chainLsn: number): SingleLeaderMessage => ({
      ...(append(prevLsn, 1, 0) as Extract<SingleLeaderMessage, { type: 'append' }>),
      view,
      chainLsn,
    })
    const joined = batchSingleLeaderMessages([inView(3, 2, 3), inView(4, 2, 5), inView(5, 3, 1)])
    expect(
      joined.map(
        (message) => message.type === 'append' && [message.entries.length, message.view, message.chainLsn],
      ),
    ).toEqual([
      [2, 2, 5],
      [1, 3, 1],
    ])
    const ack = (lsn: number, chainLsn: number): SingleLeaderMessage => ({
      type: 'append-ack',
      epoch: 1,
      ok: true,
      lsn,
      sentAt: lsn,
      chainLsn,
    })
    // A new view lowered the receiver's chainLsn between the two: the later figure stands.
    expect(batchSingleLeaderMessages([ack(4, 4), ack(5, 0)])).toEqual([
      { type: 'append-ack', epoch: 1, ok: true, lsn: 5, sentAt: 5, chainLsn: 0, parts: 2 },
    ])
  })

  it('starts another append once one holds MAX_JOINED_ENTRIES entries', () => {
    const joined = batchSingleLeaderMessages([
      append(0, MAX_JOINED_ENTRIES - 1, 0),
      append(MAX_JOINED_ENTRIES - 1, 1, 0),
      append(MAX_JOINED_ENTRIES, 1, 0),
    ])
    expect(joined.map((message) => (message.type === 'append' ? message.entries.length : -1))).toEqual([
      MAX_JOINED_ENTRIES,
      1,
    ])
  })

  it('joins successful acknowledgements of one epoch; a refusal stays whole', () => {
    const ack = (ok: boolean, lsn: number, epoch = 1, parts?: number): SingleLeaderMessage => ({
      type: 'append-ack',
      epoch,
      ok,
      lsn,
      sentAt: lsn,
      ...(parts === undefined ? {} : { parts }),
    })
    expect(
      batchSingleLeaderMessages([ack(true, 4), ack(true, 7, 1, 3), ack(false, 2), ack(true, 9, 2)]),
    ).toEqual([
      { type: 'append-ack', epoch: 1, ok: true, lsn: 7, sentAt: 7, parts: 4 },
      ack(false, 2),
      ack(true, 9, 2),
    ])
  })

  it('tells an acknowledgement from other inputs, unvalidated', () => {
    const message = (value: unknown): NodeInput<SingleLeaderMessage, SingleLeaderRequest> =>
      ({ type: 'message', now: 0, from: n2, message: value }) as NodeInput<
        SingleLeaderMessage,
        SingleLeaderRequest
      >
    expect(isSingleLeaderAcknowledgement(message({ type: 'append-ack' }))).toBe(true)
    expect(isSingleLeaderAcknowledgement(message({ type: 'append' }))).toBe(false)
    expect(isSingleLeaderAcknowledgement(message(null))).toBe(false)
    expect(isSingleLeaderAcknowledgement({ type: 'tick', now: 0 })).toBe(false)
  })

  it('has acknowledgements stepped first only where an answer waits for followers', () => {
    const config = (replication: ReplicationMode) =>
      createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], replication })
    expect(singleLeaderStepFirst(config({ mode: 'async' }))).toBeUndefined()
    for (const mode of [
      { mode: 'sync' },
      { mode: 'chain' },
      { mode: 'semi-sync', acks: 1, timeoutMs: 50 },
    ] as const)
      expect(singleLeaderStepFirst(config(mode))).toBe(isSingleLeaderAcknowledgement)
  })
})

/** A follower n2 of a 3-node cluster in epoch 1, holding nothing yet. */
function follower(): SingleLeaderState {
  const machine = createSingleLeaderMachine('n2', createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'] }))
  return machine.recover([{ type: 'term', epoch: 1, votedFor: null }], 0)
}

describe('a joined append on the wire', () => {
  it('is persisted once and acknowledged once, echoing its parts', () => {
    const [joined] = batchSingleLeaderMessages([append(0, 2, 0), append(2, 1, 0)])
    if (joined === undefined) throw new Error('nothing joined')
    const { effects } = stepSingleLeader(follower(), { type: 'message', now: 1, from: n1, message: joined })
    expect(effects.filter((effect) => effect.type === 'persist')).toHaveLength(1)
    const acks = effects.filter((effect) => effect.type === 'send').map((effect) => effect.message)
    expect(acks).toEqual([{ type: 'append-ack', epoch: 1, ok: true, lsn: 3, sentAt: 102, parts: 2 }])
  })

  it('refuses a parts count that is not a positive integer', () => {
    for (const parts of [0, -1, 1.5, '2']) {
      const message = { ...append(0, 1, 0), parts } as unknown as SingleLeaderMessage
      let thrown: unknown
      try {
        stepSingleLeader(follower(), { type: 'message', now: 1, from: n1, message })
      } catch (error) {
        thrown = error
      }
      expect(isChorusError(thrown) && thrown.message.includes('parts')).toBe(true)
    }
  })
})

/** Wraps a machine to see every state it steps to and every append it is given. */
function observed(
  machine: SingleLeaderMachine,
  seen: { state: SingleLeaderState | null; appends: SingleLeaderMessage[] },
): SingleLeaderMachine {
  return {
    ...machine,
    step: (state, input) => {
      if (input.type === 'message') {
        const message = input.message as SingleLeaderMessage
        if (message.type === 'append' && message.entries.length > 0) seen.appends.push(message)
      }
      const result = machine.step(state, input)
      seen.state = result.state
      return result
    },
  }
}

type Runtime = NodeRuntime<
  SingleLeaderState,
  NodeInput<SingleLeaderMessage, SingleLeaderRequest>,
  SingleLeaderMessage,
  SingleLeaderReply,
  SingleLeaderRecord
>
const runtimes: Runtime[] = []

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.stop()))
})

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 20_000; turn++) {
    if (condition()) return
    await new Promise<void>((resolve) => setTimeout(resolve, 1))
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe('semi-sync writes batched by a NodeRuntime', () => {
  it('reach a follower as one early append while the leader still commits them, and are answered only after', async () => {
    const nodes: NodeId[] = ['n1', 'n2', 'n3'].map(asNodeId)
    const config = createSingleLeaderConfig({
      nodes,
      replication: { mode: 'semi-sync', acks: 1, timeoutMs: 60_000 },
      heartbeatMs: 40,
      leaseMs: 1_500,
      electionTimeoutMs: 2_000,
      resendMs: 60_000,
    })
    const seen = nodes.map(() => ({
      state: null as SingleLeaderState | null,
      appends: [] as SingleLeaderMessage[],
    }))
    const disks = nodes.map(() => new GatedStorage<SingleLeaderRecord>(false))
    for (const [index, id] of nodes.entries()) {
      runtimes.push(
        new NodeRuntime({
          id,
          nodes,
          machine: observed(createSingleLeaderMachine(id, config), seen[index] as (typeof seen)[number]),
          storage: disks[index] as GatedStorage<SingleLeaderRecord>,
          tickMs: 10,
          seed: index,
          batchMessages: batchSingleLeaderMessages,
          stepFirst: isSingleLeaderAcknowledgement,
        }),
      )
    }
    const ports = await Promise.all(runtimes.map((runtime) => runtime.start()))
    const peers = new Map(
      nodes.map((id, index) => [id, { host: '127.0.0.1', port: ports[index]?.peerPort ?? 0 }]),
    )
    for (const runtime of runtimes) runtime.transport.setPeers(peers)
    await until(() => seen.some((node) => node.state?.role === 'leader'), 'a leader')
    const leaderIndex = seen.findIndex((node) => node.state?.role === 'leader')
    const leader = seen[leaderIndex] as (typeof seen)[number]
    const leaderDisk = disks[leaderIndex] as GatedStorage<SingleLeaderRecord>
    const httpPort = ports[leaderIndex]?.httpPort ?? 0
    const followerIndex = leaderIndex === 0 ? 1 : 0
    const followerDisk = disks[followerIndex] as GatedStorage<SingleLeaderRecord>
    const followerSeen = seen[followerIndex] as (typeof seen)[number]
    // The leader's no-op is replicated and its commit point known everywhere before we start.
    await until(
      () => (leader.state?.stats.writesAccepted ?? 1) === 0 && (leader.state?.commitLsn ?? 0) >= 1,
      'the no-op',
    )

    let answered = 0
    const write = (id: string, value: number) =>
      fetch(`http://127.0.0.1:${httpPort}/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'write', id, key: id, value }),
      })
        .then((response) => response.json() as Promise<SingleLeaderReply>)
        .then((reply) => {
          answered++
          return reply
        })

    // One write, its commit held on the leader's disk: its entry still reaches the followers.
    leaderDisk.closed = true
    const appendsBefore = followerSeen.appends.length
    const first = write('w0', 0)
    await leaderDisk.waiting()
    await until(() => followerSeen.appends.length > appendsBefore, 'the first early append')
    // Three more arrive during that commit: the next batch.
    const rest = [write('w1', 1), write('w2', 2), write('w3', 3)]
    await until(() => runtimes[leaderIndex]?.stats.openRequests === 4, 'the batch')
    expect(answered).toBe(0)
    const durableBefore = followerDisk.stats.records
    leaderDisk.release()
    // The batch's commit is held too: its three entries reach the follower as one append,
    // which the follower stores, and which tells it no commit point past the first write.
    await leaderDisk.waiting()
    await until(
      () => followerSeen.appends.some((message) => message.type === 'append' && message.entries.length === 3),
      'the joined append',
    )
    const joined = followerSeen.appends.find(
      (message) => message.type === 'append' && message.entries.length === 3,
    )
    if (joined?.type !== 'append') throw new Error('no joined append')
    expect(joined.parts).toBe(3)
    const firstLsn = (joined.entries[0]?.lsn ?? 0) - 1
    expect(joined.commitLsn).toBeLessThanOrEqual(firstLsn)
    await until(() => followerDisk.stats.records > durableBefore, 'the follower to store the batch')
    expect(await first).toMatchObject({ type: 'write-ok', durability: 'replicated' })
    // The follower holds the batch and acknowledged it; the leader has not committed it: no answer.
    await until(
      () => (followerSeen.state?.matchedLsn ?? 0) >= firstLsn + 3,
      'the follower to acknowledge the batch',
    )
    expect(answered).toBe(1)
    leaderDisk.closed = false
    leaderDisk.release()
    const replies = await Promise.all(rest)
    expect(replies.map((reply) => reply.type === 'write-ok' && reply.durability)).toEqual([
      'replicated',
      'replicated',
      'replicated',
    ])
    // Acknowledged per part: nothing is left counted in flight.
    await until(
      () => (leader.state?.progress.get(nodes[followerIndex] as NodeId)?.inFlight ?? -1) === 0,
      'an empty pipe',
    )
  }, 30_000)
})

describe('durableLsn', () => {
  it('caps the commit point of a leader’s early appends until the runtime settles its persists', async () => {
    const sim = new SingleLeaderSim({
      seed: 3,
      config: { replication: { mode: 'semi-sync', acks: 1, timeoutMs: 1_000 } },
    })
    await sim.start()
    const leaderId = await sim.awaitLeader()
    if (leaderId === undefined) throw new Error('no leader elected')
    await sim.run(100)
    let state = sim.host(leaderId).state as SingleLeaderState
    expect(state.durableLsn).toBe(lastLsn(state.log))
    const now = sim.network.now()
    const sends = (request: number) => {
      const result = stepSingleLeader(state, {
        type: 'request',
        now,
        client: `c${request}`,
        request: { type: 'write', id: `w${request}`, key: 'x', value: request },
      })
      state = result.state
      return result.effects.flatMap((effect) =>
        effect.type === 'send' && effect.message.type === 'append'
          ? [{ early: effect.early, message: effect.message }]
          : [],
      )
    }
    // Two writes stepped as a runtime batches them, neither settled: their appends leave early
    // and say nothing is committed past what was on disk before them.
    const durable = state.durableLsn
    const unsettled = [...sends(1), ...sends(2)]
    expect(unsettled.length).toBeGreaterThan(0)
    expect(state.commitLsn).toBeGreaterThan(durable)
    for (const { early, message } of unsettled) {
      expect(early).toBe(true)
      expect(message.commitLsn).toBeLessThanOrEqual(durable)
    }
    // Once settled, the next early append may say the earlier writes are committed.
    state = settleSingleLeader(state)
    const settled = state.durableLsn
    expect(settled).toBe(durable + 2)
    const [after] = sends(3)
    expect(after?.message.commitLsn).toBe(settled)
  })
})
