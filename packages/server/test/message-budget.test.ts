import type { JsonValue } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import {
  countWithinBudget,
  jsonChars,
  jsonCharsBound,
  MAX_BATCH_CHARS,
  splitWithinBudget,
} from '../src/message-budget.js'
import { asNodeId, type NodeId } from '../src/node-id.js'
import { handleDigests, handleSync } from '../src/quorum/anti-entropy.js'
import { batchQuorumMessages } from '../src/quorum/batch.js'
import { createQuorumConfig } from '../src/quorum/config.js'
import type { QuorumMessage } from '../src/quorum/messages.js'
import { createQuorumMachine } from '../src/quorum/node.js'
import { offerHints } from '../src/quorum/replica.js'
import type { QuorumEffect, QuorumState } from '../src/quorum/state.js'
import { SingleLeaderSim } from '../src/sim/single-leader-sim.js'
import { batchSingleLeaderMessages } from '../src/single-leader/batch.js'
import { createSingleLeaderConfig } from '../src/single-leader/config.js'
import { entriesBetween, entryChars, lastLsn, type ReplicationLog } from '../src/single-leader/log.js'
import type { LogEntry, SingleLeaderMessage } from '../src/single-leader/messages.js'
import { createSingleLeaderMachine } from '../src/single-leader/node.js'
import { sendTo } from '../src/single-leader/replication.js'
import type { SingleLeaderEffect, SingleLeaderState } from '../src/single-leader/state.js'

// A value of a quarter of the budget: four of them with their keys and fields exceed it.
const QUARTER = 'q'.repeat(MAX_BATCH_CHARS / 4)

const n1 = asNodeId('n1')
const n2 = asNodeId('n2')

function bigEntry(lsn: number): LogEntry {
  return { lsn, epoch: 1, write: { key: `k${lsn}`, value: QUARTER, id: `c/${lsn}` } }
}

function sent(effects: readonly QuorumEffect[]): QuorumMessage[] {
  return effects.flatMap((effect) => (effect.type === 'send' ? [effect.message] : []))
}

/** Node n1 of a 3-node N3 W2 R2 quorum cluster. */
function quorumN1() {
  return createQuorumMachine(
    'n1',
    createQuorumConfig({ nodes: ['n1', 'n2', 'n3'], replicas: 3, writeQuorum: 2, readQuorum: 2 }),
  )
}

function charsOf(values: readonly object[]): number {
  return values.reduce((sum, value) => sum + jsonChars(value), 0)
}

describe('message budget', () => {
  it('measures JSON length once per object and counts items within the budget, at least one', () => {
    const item = { a: 'xyz' }
    expect(jsonChars(item)).toBe(JSON.stringify(item).length)
    const items = [bigEntry(1), bigEntry(2), bigEntry(3), bigEntry(4), bigEntry(5)]
    expect(countWithinBudget(items, 0, 100)).toBe(3)
    expect(countWithinBudget(items, 3, 100)).toBe(2)
    expect(countWithinBudget(items, 0, 2)).toBe(2)
    const huge = [{ value: 'h'.repeat(MAX_BATCH_CHARS + 1) }, { value: 'x' }]
    expect(countWithinBudget(huge, 0, 100)).toBe(1)
    expect(splitWithinBudget(items, 100).map((run) => run.length)).toEqual([3, 2])
    expect(splitWithinBudget([], 100)).toEqual([])
  })

  it('bounds an entry or value from above, however its text escapes', () => {
    const values: JsonValue[] = [
      0,
      -1.5e-300,
      Number.MAX_SAFE_INTEGER,
      true,
      null,
      '',
      '"\\\n\u0000\u001f',
      '\u0001'.repeat(1024),
      'x'.repeat(5000),
      '\u0002'.repeat(5000),
      { nested: ['a', 1, null, { deep: '"' }] },
      [],
    ]
    for (const value of values) {
      expect(jsonCharsBound(value)).toBeGreaterThanOrEqual(JSON.stringify(value).length)
      const entry: LogEntry = {
        lsn: 123_456_789,
        epoch: 98_765,
        write: { key: '"k\n', value, id: 'client"/\u0003' },
      }
      expect(entryChars(entry)).toBeGreaterThanOrEqual(JSON.stringify(entry).length)
    }
    const noop: LogEntry = { lsn: Number.MAX_SAFE_INTEGER, epoch: Number.MAX_SAFE_INTEGER, write: null }
    expect(entryChars(noop)).toBeGreaterThanOrEqual(JSON.stringify(noop).length)
  })

  it('single-leader: an append carries no more entries than fit the budget, and joining stops there', () => {
    const log: ReplicationLog = {
      base: { lsn: 0, epoch: 0, data: new Map() },
      entries: Array.from({ length: 10 }, (_, i) => bigEntry(i + 1)),
      epochs: [[1, 1]],
    }
    const first = entriesBetween(log, 1, 10, 64)
    expect(first.map((entry) => entry.lsn)).toEqual([1, 2, 3])
    expect(charsOf(first)).toBeLessThanOrEqual(MAX_BATCH_CHARS)
    expect(entriesBetween(log, 4, 10, 64).map((entry) => entry.lsn)).toEqual([4, 5, 6])
    expect(entriesBetween(log, 10, 10, 64).map((entry) => entry.lsn)).toEqual([10])
    expect(entriesBetween(log, 11, 10, 64)).toEqual([])

    const appends: SingleLeaderMessage[] = log.entries.map((entry) => ({
      type: 'append',
      epoch: 1,
      leader: n1,
      prevLsn: entry.lsn - 1,
      prevEpoch: entry.lsn === 1 ? 0 : 1,
      entries: [entry],
      commitLsn: 0,
      sentAt: 1,
    }))
    const joined = batchSingleLeaderMessages(appends)
    const sizes = joined.map((message) => (message.type === 'append' ? message.entries.length : 0))
    expect(sizes).toEqual([3, 3, 3, 1])
    for (const message of joined) {
      if (message.type !== 'append') throw new Error('expected appends only')
      expect(charsOf(message.entries)).toBeLessThanOrEqual(MAX_BATCH_CHARS)
      expect(message.parts ?? 1).toBe(message.entries.length)
    }
    expect(joined.flatMap((message) => (message.type === 'append' ? message.entries : []))).toEqual(
      log.entries,
    )
  })

  it('quorum: stores of large versions are split over several batches, in order', () => {
    const versions = [{ value: QUARTER, dot: ['n1', 1] }]
    const stores: QuorumMessage[] = Array.from({ length: 7 }, (_, i) => ({
      type: 'store',
      op: `o${i}`,
      key: `k${i}`,
      versions: versions as never,
      hintFor: null,
    }))
    const batches = batchQuorumMessages(stores)
    expect(batches.map((message) => (message.type === 'store-batch' ? message.items.length : 0))).toEqual([
      3, 3, 1,
    ])
    const ops = batches.flatMap((message) =>
      message.type === 'store-batch' ? message.items.map((item) => item.op) : [],
    )
    expect(ops).toEqual(stores.map((message) => (message.type === 'store' ? message.op : '')))
  })

  it('quorum: anti-entropy answers a long want list in several ae-sync messages, want on the first', () => {
    const machine = quorumN1()
    let state = machine.recover([], 0)
    const keys = Array.from({ length: 7 }, (_, i) => `big-${i}`)
    keys.forEach((key, i) => {
      state = machine.step(
        state,
        machine.requestInput(1, `c${i}`, { type: 'put', id: `p${i}`, key, value: QUARTER }),
      ).state
    })
    const out: QuorumEffect[] = []
    handleSync(state, out, n2, { type: 'ae-sync', items: [], want: keys }, 1)
    const messages = sent(out)
    expect(messages.length).toBe(3)
    const answered: string[] = []
    for (const message of messages) {
      if (message.type !== 'ae-sync') throw new Error('expected ae-sync only')
      expect(message.want).toEqual([])
      expect(charsOf(message.items)).toBeLessThanOrEqual(MAX_BATCH_CHARS)
      answered.push(...message.items.map(([key]) => key))
    }
    expect(answered).toEqual(keys)
  })

  it('quorum: asks for many differing keys in several ae-sync messages, each key once', () => {
    const machine = quorumN1()
    const state = machine.recover([], 0)
    // Keys n1 does not hold: it wants every one back. Bounded at six characters a unit, 40,000
    // keys of 40 characters need several messages.
    const keys = Array.from({ length: 40_000 }, (_, i) => `key-${String(i).padStart(36, '0')}`)
    const out: QuorumEffect[] = []
    handleDigests(state, out, n2, {
      type: 'ae-digests',
      leaves: [{ index: 0, keys: keys.map((key) => [key, 1]) }],
    })
    const messages = sent(out)
    expect(messages.length).toBeGreaterThan(1)
    const wanted: string[] = []
    for (const message of messages) {
      if (message.type !== 'ae-sync') throw new Error('expected ae-sync only')
      expect(message.items).toEqual([])
      expect(message.want.reduce((sum, key) => sum + jsonCharsBound(key), 0)).toBeLessThanOrEqual(
        MAX_BATCH_CHARS,
      )
      wanted.push(...message.want)
    }
    expect(wanted).toEqual(keys)
  })

  it('quorum: a handoff carries no more hinted versions than fit the budget; the rest wait', () => {
    const machine = quorumN1()
    const base = machine.recover([], 0)
    const home: NodeId = n2
    const hints = new Map(
      Array.from({ length: 5 }, (_, i) => [
        `h${i}`,
        { id: `h${i}`, home, key: `k${i}`, versions: [{ value: QUARTER }] as never },
      ]),
    )
    const state: QuorumState = { ...base, hints, seenAt: new Map([[home, 1_000]]), lastHandoffAt: 0 }
    const out: QuorumEffect[] = []
    offerHints(state, out, 1_000)
    const messages = sent(out)
    expect(messages.length).toBe(1)
    const handoff = messages[0]
    if (handoff?.type !== 'handoff') throw new Error('expected a handoff')
    expect(handoff.items.map((item) => item.hint)).toEqual(['h0', 'h1', 'h2'])
  })

  it('single-leader: a learner bootstraps from a snapshot too long for one message, sent in chunks', async () => {
    const sim = new SingleLeaderSim({
      seed: 5,
      config: { replication: { mode: 'sync' }, compactEvery: 4 },
      clientTimeoutMs: 5_000,
    })
    await sim.start()
    if ((await sim.awaitLeader()) === undefined) throw new Error('no leader elected')
    const client = sim.client('c1')
    // Six keys of a quarter-budget value each: the compacted data needs two messages.
    for (let i = 1; i <= 12; i++)
      await sim.until(client.write(`k${i % 6}`, `${i}`.padEnd(MAX_BATCH_CHARS / 4, '.')))
    const leaderId = sim.leader() as string
    const leader = sim.host(leaderId).state as SingleLeaderState
    expect(leader.log.base.data.size).toBe(6)
    const out: Parameters<typeof sendTo>[1] = []
    const learnerId = asNodeId('learner')
    const behind = { next: 1, match: 0, lastSentAt: 0, ackedSentAt: 0, inFlight: 0 }
    sendTo({ ...leader, progress: new Map([[learnerId, behind]]) }, out, learnerId, 0)
    const chunks = out.flatMap((effect) =>
      effect.type === 'send' && effect.message.type === 'snapshot' ? [effect.message] : [],
    )
    expect(chunks.length).toBe(2)
    expect(chunks.map((chunk) => [chunk.chunk, chunk.chunks])).toEqual([
      [0, 2],
      [1, 2],
    ])
    for (const chunk of chunks) expect(charsOf(chunk.data)).toBeLessThanOrEqual(MAX_BATCH_CHARS)

    await sim.addLearner('learner')
    await sim.run(2_000)
    const learner = sim.host('learner').state as SingleLeaderState
    expect(learner.stats.snapshotsInstalled).toBeGreaterThanOrEqual(1)
    expect(learner.snapshotChunks).toBeNull()
    expect(lastLsn(learner.log)).toBe(lastLsn((sim.host(leaderId).state as SingleLeaderState).log))
    const read = await sim.until(client.read('k0', { node: 'learner', consistency: 'replica' }))
    expect(read).toMatchObject({ ok: true, value: '12'.padEnd(MAX_BATCH_CHARS / 4, '.') })
  })

  it('single-leader: a follower installs a chunked snapshot once it holds every chunk of one sending', () => {
    const config = createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], replication: { mode: 'sync' } })
    const machine = createSingleLeaderMachine('n2', config)
    const snapshot = (chunk: number, data: [string, string][], sentAt = 10): SingleLeaderMessage => ({
      type: 'snapshot',
      epoch: 1,
      leader: n1,
      lsn: 30,
      lastEpoch: 1,
      epochs: [[1, 1]],
      data,
      commitLsn: 30,
      sentAt,
      chunk,
      chunks: 3,
    })
    const installs = (effects: readonly SingleLeaderEffect[]) =>
      effects.filter((effect) => effect.type === 'persist').length
    const acks = (effects: readonly SingleLeaderEffect[]) =>
      effects.filter((effect) => effect.type === 'send' && effect.message.type === 'append-ack').length
    let state = machine.recover([], 0)
    const step = (message: SingleLeaderMessage) => {
      const result = machine.step(state, machine.messageInput(1, n1, message))
      state = result.state
      return result.effects
    }
    // Out of order, with a duplicate and a chunk of an older sending in between: nothing yet.
    expect(acks(step(snapshot(2, [['c', 'C']])))).toBe(0)
    expect(acks(step(snapshot(0, [['a', 'A']], 5)))).toBe(0)
    expect(acks(step(snapshot(0, [['a', 'A']])))).toBe(0)
    expect(acks(step(snapshot(2, [['c', 'C']])))).toBe(0)
    expect(state.stats.snapshotsInstalled).toBe(0)
    expect(acks(step(snapshot(0, [['a', 'A']])))).toBe(0)
    // The older sending's chunk restarted the gathering: the newer one's chunks all come again.
    expect(acks(step(snapshot(2, [['c', 'C']])))).toBe(0)
    const done = step(snapshot(1, [['b', 'B']]))
    expect(acks(done)).toBe(1)
    expect(installs(done)).toBeGreaterThanOrEqual(1)
    expect(state.stats.snapshotsInstalled).toBe(1)
    expect(state.snapshotChunks).toBeNull()
    expect([...state.log.base.data]).toEqual([
      ['a', 'A'],
      ['b', 'B'],
      ['c', 'C'],
    ])
    expect(state.log.base.lsn).toBe(30)
  })

  it('single-leader: refuses malformed snapshot chunk fields before anything changes', () => {
    const config = createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], replication: { mode: 'sync' } })
    const machine = createSingleLeaderMachine('n2', config)
    const state = machine.recover([], 0)
    const base = {
      type: 'snapshot',
      epoch: 1,
      leader: 'n1',
      lsn: 3,
      lastEpoch: 1,
      epochs: [],
      data: [],
      commitLsn: 3,
      sentAt: 1,
    }
    for (const fields of [
      { chunk: 0 },
      { chunks: 2 },
      { chunk: 2, chunks: 2 },
      { chunk: 0, chunks: 1 },
      { chunk: -1, chunks: 2 },
      { chunk: 0, chunks: 5000 },
      { chunk: '0', chunks: 2 },
    ]) {
      let error: unknown
      try {
        machine.step(state, machine.messageInput(1, n1, { ...base, ...fields }))
      } catch (caught) {
        error = caught
      }
      expect((error as { code?: string } | undefined)?.code, JSON.stringify(fields)).toBe('invalid-message')
    }
  })
})
