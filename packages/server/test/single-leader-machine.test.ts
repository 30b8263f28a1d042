import { ChorusError, isChorusError } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { MemoryNodeStorage } from '../src/memory-node-storage.js'
import { asNodeId } from '../src/node-id.js'
import { ShardedMap } from '../src/sharded-map.js'
import { createSingleLeaderConfig } from '../src/single-leader/config.js'
import {
  appendEntries,
  compact,
  EMPTY_LOG,
  epochAt,
  installSnapshot,
  lastLsn,
  readAt,
  truncateAfter,
} from '../src/single-leader/log.js'
import type { LogEntry, SingleLeaderInput, SingleLeaderRecord } from '../src/single-leader/messages.js'
import { stepSingleLeader } from '../src/single-leader/node.js'
import { recoverSingleLeaderState, type SingleLeaderState } from '../src/single-leader/state.js'

const n1 = asNodeId('n1')
const n2 = asNodeId('n2')

function entry(lsn: number, epoch: number, key = 'x', value: number = lsn): LogEntry {
  return { lsn, epoch, write: { key, value, id: `c/${lsn}` } }
}

/** A follower n2 of epoch 2 holding entries 1–3 (epoch 1, 1, 2). */
function follower(fencing: boolean): SingleLeaderState {
  const config = createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], fencing })
  const records: SingleLeaderRecord[] = [
    { type: 'term', epoch: 2, votedFor: null },
    { type: 'entries', entries: [entry(1, 1), entry(2, 1), entry(3, 2)] },
  ]
  return recoverSingleLeaderState(n2, config, records, 0)
}

function appendFrom(
  epoch: number,
  prevLsn: number,
  prevEpoch: number,
  entries: LogEntry[],
): SingleLeaderInput {
  return {
    type: 'message',
    now: 10,
    from: n1,
    message: { type: 'append', epoch, leader: n1, prevLsn, prevEpoch, entries, commitLsn: 0, sentAt: 10 },
  }
}

describe('single-leader node machine', () => {
  it('with fencing, refuses an append from an older epoch and tells the sender the newer one', () => {
    const state = follower(true)
    const { state: next, effects } = stepSingleLeader(state, appendFrom(1, 3, 2, [entry(4, 1)]))
    expect(next.log).toBe(state.log)
    expect(next.stats.staleEpochRefused).toBe(1)
    expect(effects).toEqual([
      { type: 'send', to: n1, message: { type: 'append-ack', epoch: 2, ok: false, lsn: 3, sentAt: 10 } },
    ])
  })

  it('without fencing, takes the same append by position and counts it', () => {
    const { state: next, effects } = stepSingleLeader(follower(false), appendFrom(1, 3, 2, [entry(4, 1)]))
    expect(lastLsn(next.log)).toBe(4)
    expect(next.stats.staleEpochAccepted).toBe(1)
    expect(effects[0]).toMatchObject({ type: 'persist', epoch: null })
  })

  it('persists entries (carrying its epoch for storage fencing) before acknowledging them', () => {
    const { effects } = stepSingleLeader(follower(true), appendFrom(2, 3, 2, [entry(4, 2)]))
    expect(effects.map((effect) => effect.type)).toEqual(['persist', 'send'])
    expect(effects[0]).toMatchObject({ type: 'persist', epoch: 2, records: [{ type: 'entries' }] })
    expect(effects[1]).toMatchObject({ message: { type: 'append-ack', ok: true, lsn: 4 } })
  })

  it('truncates a divergent suffix when the leader’s entry at that LSN has another epoch', () => {
    const { state: next, effects } = stepSingleLeader(
      follower(true),
      appendFrom(3, 2, 1, [entry(3, 3, 'x', 30)]),
    )
    expect(epochAt(next.log, 3)).toBe(3)
    expect(next.stats.entriesTruncated).toBe(1)
    // The newer epoch is persisted first, then the truncation and the leader's entry together.
    expect(effects.filter((effect) => effect.type === 'persist')).toMatchObject([
      { records: [{ type: 'term', epoch: 3 }] },
      { records: [{ type: 'truncate', after: 2 }, { type: 'entries' }] },
    ])
  })

  it('answers where to resume when the previous entry does not match', () => {
    const { effects } = stepSingleLeader(follower(true), appendFrom(3, 3, 3, []))
    expect(effects.at(-1)).toMatchObject({ message: { type: 'append-ack', ok: false, lsn: 2 } })
  })

  it('refuses malformed input with a typed error and leaves the state as it was', () => {
    const state = follower(true)
    const snapshot = JSON.stringify({ ...state, config: null, progress: [...state.progress] })
    const bad: unknown[] = [
      null,
      { type: 'message', now: 1, from: 'n1', message: { type: 'append', epoch: -1 } },
      { type: 'message', now: 1, from: 'n1', message: { type: 'nope' } },
      { type: 'request', now: 1, client: 'c', request: { type: 'write', id: 'r', key: 'k', value: () => 1 } },
      {
        type: 'request',
        now: 1,
        client: 'c',
        request: { type: 'read', id: 'r', key: 'k', consistency: 'eventual' },
      },
      {
        type: 'request',
        now: 1,
        client: 'c',
        request: { type: 'read', id: 'r', key: 'k', consistency: 'replica', minLsn: 3, minEpoch: 'two' },
      },
      {
        type: 'request',
        now: 1,
        client: 'c',
        request: { type: 'write', id: 'r', key: 'k', value: 1, consistency: 'leader' },
      },
      { type: 'tick', now: Number.NaN },
      appendFrom(2, 3, 2, [entry(5, 2)]),
      ...[
        { view: 1, nodes: ['n1', 'n1'], counted: 2 },
        { view: 1, nodes: ['n1', 'n2'], counted: 3 },
        { view: 1, nodes: [], counted: 0 },
        { view: -1, nodes: ['n1'], counted: 1 },
      ].map((chain) => ({
        type: 'message',
        now: 1,
        from: 'n1',
        message: {
          type: 'heartbeat',
          epoch: 2,
          leader: 'n1',
          commitLsn: 0,
          lastLsn: 0,
          lastEpoch: 0,
          sentAt: 1,
          chain,
        },
      })),
      { type: 'message', now: 1, from: 'n3', message: { type: 'chain-ack', epoch: 2, lsn: 4 } },
      {
        type: 'message',
        now: 1,
        from: 'n3',
        message: { type: 'heartbeat-ack', epoch: 2, sentAt: 1, lastLsn: 0, view: 1, unfed: 'yes' },
      },
    ]
    const codes = bad.map((input) => {
      try {
        stepSingleLeader(state, input as SingleLeaderInput)
        return 'accepted'
      } catch (error) {
        return isChorusError(error) ? error.code : 'untyped'
      }
    })
    expect(codes).toEqual([
      'invalid-message',
      'invalid-message',
      'unknown-message',
      'invalid-argument',
      'invalid-message',
      'invalid-message',
      'invalid-message',
      'invalid-message',
      'invalid-message',
      // Chains: a node twice, more counted than there are, none at all, a negative view.
      'invalid-message',
      'invalid-message',
      'invalid-message',
      'invalid-message',
      // A chain-ack without its view; a heartbeat-ack whose `unfed` is not a boolean.
      'invalid-message',
      'invalid-message',
    ])
    expect(JSON.stringify({ ...state, config: null, progress: [...state.progress] })).toBe(snapshot)
  })

  it('rebuilds the same log from its records after a crash', () => {
    const config = createSingleLeaderConfig({ nodes: ['n1'] })
    let state = recoverSingleLeaderState(n1, config, [], 0)
    const storage: SingleLeaderRecord[] = []
    const feed = (input: SingleLeaderInput) => {
      const result = stepSingleLeader(state, input)
      for (const effect of result.effects) if (effect.type === 'persist') storage.push(...effect.records)
      state = result.state
    }
    feed({ type: 'tick', now: 1_000 })
    expect(state.role).toBe('leader')
    for (let i = 0; i < 3; i++) {
      feed({
        type: 'request',
        now: 1_001 + i,
        client: 'c',
        request: { type: 'write', id: `w${i}`, key: 'k', value: i },
      })
    }
    const recovered = recoverSingleLeaderState(n1, config, storage, 5_000)
    expect(recovered.epoch).toBe(state.epoch)
    expect(recovered.log.entries).toEqual(state.log.entries)
    expect(recovered.role).toBe('follower')
  })
})

describe('MemoryNodeStorage fencing', () => {
  it('refuses an append carrying an older epoch than one already stored, storing nothing', async () => {
    const storage = new MemoryNodeStorage<string>()
    expect(await storage.append(['a'], 2)).toEqual({ ok: true })
    expect(await storage.append(['zombie'], 1)).toEqual({ ok: false, reason: 'fenced', epoch: 2 })
    expect(await storage.append(['b'], 2)).toEqual({ ok: true })
    expect(await storage.append(['unfenced'], null)).toEqual({ ok: true })
    expect(await storage.load()).toEqual(['a', 'b', 'unfenced'])
    expect(storage.stats).toMatchObject({ appends: 3, fenced: 1 })
  })

  it('fails appends as a broken disk would, storing nothing', async () => {
    const storage = new MemoryNodeStorage<string>()
    storage.failWrites = true
    expect(await storage.append(['a'], null)).toMatchObject({ ok: false, reason: 'failed' })
    expect(await storage.load()).toEqual([])
  })
})

describe('replication log', () => {
  it('appends in order only, and truncates a suffix', () => {
    const log = appendEntries(EMPTY_LOG, [entry(1, 1), entry(2, 1), entry(3, 2)])
    expect(() => appendEntries(log, [entry(5, 2)])).toThrow(RangeError)
    expect(log.epochs).toEqual([
      [1, 1],
      [2, 3],
    ])
    const cut = truncateAfter(log, 2)
    expect(lastLsn(cut)).toBe(2)
    expect(cut.epochs).toEqual([[1, 1]])
  })

  it('keeps the epoch of every LSN known through compaction, and reads as of an LSN', () => {
    const log = appendEntries(EMPTY_LOG, [entry(1, 1, 'a', 1), entry(2, 1, 'b', 2), entry(3, 2, 'a', 3)])
    const compacted = compact(log, 2)
    expect(compacted.base.lsn).toBe(2)
    expect(epochAt(compacted, 1)).toBe(1)
    expect(epochAt(compacted, 3)).toBe(2)
    expect(readAt(compacted, 'a', 2)).toBe(1)
    expect(readAt(compacted, 'a', 3)).toBe(3)
    expect(readAt(compacted, 'missing', 3)).toBeUndefined()
  })

  it('compacts into a shared map: the log before keeps its data, and a Map base is taken over', () => {
    const snapshot = { lsn: 2, lastEpoch: 1, epochs: [[1, 1] as const], data: new Map([['x', 2]]) }
    const installed = installSnapshot(EMPTY_LOG, snapshot, false)
    const first = compact(appendEntries(installed, [entry(3, 1, 'a', 3), entry(4, 1, 'x', 4)]), 4)
    expect(first.base.data).toBeInstanceOf(ShardedMap)
    expect([...first.base.data].sort()).toEqual([
      ['a', 3],
      ['x', 4],
    ])
    const second = compact(appendEntries(first, [entry(5, 1, 'a', 5)]), 5)
    expect(readAt(second, 'a', 5)).toBe(5)
    // The earlier bases are unchanged: compaction shares structure, it does not write through.
    expect(first.base.data.get('a')).toBe(3)
    expect(snapshot.data.get('x')).toBe(2)
    expect(second.base.data.size).toBe(2)
  })

  it('installs a snapshot, keeping the suffix only when it holds the snapshot’s last entry', () => {
    const log = appendEntries(EMPTY_LOG, [entry(1, 1), entry(2, 1), entry(3, 1)])
    const snapshot = { lsn: 2, lastEpoch: 1, epochs: [[1, 1] as const], data: new Map([['x', 2]]) }
    expect(lastLsn(installSnapshot(log, snapshot, true))).toBe(3)
    expect(lastLsn(installSnapshot(log, { ...snapshot, lastEpoch: 5 }, true))).toBe(2)
  })
})

describe('single-leader config', () => {
  it.each([
    [{ nodes: [] }, 'at least one node'],
    [{ nodes: ['a', 'a'] }, 'names a twice'],
    [{ nodes: ['bad id'] }, 'is invalid'],
    [
      { nodes: ['a', 'b'], replication: { mode: 'semi-sync', acks: 2, timeoutMs: 10 } },
      'between 1 and the follower count',
    ],
    [{ nodes: ['a'], replication: { mode: 'quorum' } }, 'is unknown'],
    [{ nodes: ['a'], leaseMs: 400, electionTimeoutMs: 300 }, 'must be shorter than electionTimeoutMs'],
    [{ nodes: ['a'], heartbeatMs: 0 }, 'must be a positive integer'],
  ])('refuses %j with invalid-argument', (input, message) => {
    let caught: unknown
    try {
      createSingleLeaderConfig(input as Parameters<typeof createSingleLeaderConfig>[0])
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(ChorusError)
    expect((caught as ChorusError).code).toBe('invalid-argument')
    expect((caught as ChorusError).message).toContain(message)
  })

  it('fills defaults: sync replication with fencing and automatic failover', () => {
    const config = createSingleLeaderConfig({ nodes: ['a', 'b', 'c'] })
    expect(config).toMatchObject({ replication: { mode: 'sync' }, fencing: true, autoFailover: true })
  })
})
