import { describe, expect, it } from 'vitest'
import { countWithinBudget, jsonChars, MAX_BATCH_CHARS, splitWithinBudget } from '../src/message-budget.js'
import { asNodeId, type NodeId } from '../src/node-id.js'
import { handleSync } from '../src/quorum/anti-entropy.js'
import { batchQuorumMessages } from '../src/quorum/batch.js'
import { createQuorumConfig } from '../src/quorum/config.js'
import type { QuorumMessage } from '../src/quorum/messages.js'
import { createQuorumMachine } from '../src/quorum/node.js'
import { offerHints } from '../src/quorum/replica.js'
import type { QuorumEffect, QuorumState } from '../src/quorum/state.js'
import { batchSingleLeaderMessages } from '../src/single-leader/batch.js'
import { entriesBetween, type ReplicationLog } from '../src/single-leader/log.js'
import type { LogEntry, SingleLeaderMessage } from '../src/single-leader/messages.js'

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
    const config = createQuorumConfig({
      nodes: ['n1', 'n2', 'n3'],
      replicas: 3,
      writeQuorum: 2,
      readQuorum: 2,
    })
    const machine = createQuorumMachine('n1', config)
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

  it('quorum: a handoff carries no more hinted versions than fit the budget; the rest wait', () => {
    const config = createQuorumConfig({
      nodes: ['n1', 'n2', 'n3'],
      replicas: 3,
      writeQuorum: 2,
      readQuorum: 2,
    })
    const machine = createQuorumMachine('n1', config)
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
})
