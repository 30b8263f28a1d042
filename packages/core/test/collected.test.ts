import { describe, expect, it } from 'vitest'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { decodeMessage, encodeChangesMessage, encodeMessage } from '../src/protocol/codec.js'
import {
  type HubFacts,
  type HubSessionConfig,
  type HubSessionEffect,
  type HubSessionInput,
  initialHubSession,
  stepHubSession,
} from '../src/protocol/hub-session.js'
import {
  type ChangesMessage,
  Feature,
  type HelloMessage,
  type Message,
  PROTOCOL_VERSION,
} from '../src/protocol/messages.js'
import {
  DEFAULT_REPLICA_SESSION,
  initialReplicaSession,
  type ReplicaSessionState,
  stepReplicaSession,
} from '../src/protocol/replica-session.js'
import type { CollectedMark } from '../src/storage.js'
import { change, logEntries } from './log-fixtures.js'

const alice = asReplicaId('alice')
const bob = asReplicaId('bob')
const space = asSpaceId('team')

const entries = (after: number, count: number) => logEntries(bob, after, count)

const config: HubSessionConfig = {
  batchSize: 10,
  window: 100,
  snapshotPage: 10,
  retransmitMs: 1000,
}

/** A space with log positions 1…`head`, its floor 0, and `mark` (changeable) as its mark. */
function space10(head: number, mark: { current: CollectedMark | undefined }): HubFacts {
  return {
    head: () => head,
    floor: () => 0,
    received: () => 0,
    collected: () => mark.current,
  }
}

function hello(have: number, features: HelloMessage['features'] = [Feature.Collect]): HelloMessage {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: alice,
    spaces: [space],
    have: { [space]: have },
    features,
  }
}

function run(facts: HubFacts, inputs: readonly HubSessionInput[], state = initialHubSession(config)) {
  let current = state
  const effects: HubSessionEffect[] = []
  for (const input of inputs) {
    const step = stepHubSession(current, input, facts)
    current = step.state
    effects.push(...step.effects)
  }
  return { state: current, effects }
}

function connect(facts: HubFacts, have: number, features?: HelloMessage['features']) {
  return run(facts, [
    { type: 'message', now: 0, message: hello(have, features) },
    { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
  ])
}

const sent = (effects: readonly HubSessionEffect[]): Message[] =>
  effects.flatMap((effect) => (effect.type === 'send' ? [effect.message] : []))

const mark: CollectedMark = { at: 4, received: { bob: 2 } }

describe('hub session: collected deletions', () => {
  it('streams a replica behind the mark up to it, and tells it with the first batch from there', () => {
    const facts = space10(7, { current: mark })
    const opened = connect(facts, 1)
    expect(opened.effects.at(-1)).toEqual({ type: 'read-log', space, after: 1, limit: 3 })
    const first = run(
      facts,
      [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 3) }],
      opened.state,
    )
    expect(sent(first.effects)).toEqual([expect.objectContaining({ type: 'changes', from: 1, to: 4 })])
    expect(sent(first.effects)[0]).not.toHaveProperty('collected')
    expect(first.effects.at(-1)).toEqual({ type: 'read-log', space, after: 4, limit: 10 })
    const rest = run(
      facts,
      [{ type: 'log-read', now: 3, space, after: 4, entries: entries(4, 3) }],
      first.state,
    )
    expect(sent(rest.effects)).toEqual([
      expect.objectContaining({ type: 'changes', from: 4, to: 7, collected: { bob: 2 } }),
    ])
  })

  it('cuts a read that went past the mark at the mark', () => {
    const facts = space10(7, { current: undefined })
    const opened = connect(facts, 1)
    facts.collected = () => mark
    const { effects } = run(
      facts,
      [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 6) }],
      opened.state,
    )
    expect(sent(effects)).toEqual([expect.objectContaining({ type: 'changes', from: 1, to: 4 })])
  })

  it('tells a replica at the mark with its next batch, however it got there', () => {
    const facts = space10(7, { current: mark })
    const { state } = connect(facts, 4)
    const { effects } = run(
      facts,
      [{ type: 'log-read', now: 2, space, after: 4, entries: entries(4, 3) }],
      state,
    )
    expect(sent(effects)).toEqual([expect.objectContaining({ from: 4, to: 7, collected: { bob: 2 } })])
  })

  it('leaves a replica at a new mark to be told with the next batch', () => {
    const current: { current: CollectedMark | undefined } = { current: undefined }
    const facts = space10(4, current)
    const opened = connect(facts, 4)
    current.current = mark
    const { state, effects } = run(facts, [{ type: 'collected', now: 2, space }], opened.state)
    expect(effects).toEqual([])
    expect(state).toEqual(opened.state)
  })

  it('sends a snapshot to a replica already past a new mark', () => {
    const current: { current: CollectedMark | undefined } = { current: undefined }
    const facts = space10(6, current)
    const opened = connect(facts, 6)
    current.current = mark
    const { state, effects } = run(facts, [{ type: 'collected', now: 2, space }], opened.state)
    expect(effects).toEqual([{ type: 'read-snapshot', space, page: 0, afterKey: null, limit: 10, cursor: 6 }])
    expect(state.streams[space]?.snapshot).toMatchObject({ cursor: 6, page: 0 })
  })

  it('tells again when it sends again from the mark', () => {
    const facts = space10(7, { current: mark })
    const opened = connect(facts, 4)
    const first = run(
      facts,
      [{ type: 'log-read', now: 2, space, after: 4, entries: entries(4, 3) }],
      opened.state,
    )
    expect(sent(first.effects)).toEqual([expect.objectContaining({ from: 4, collected: { bob: 2 } })])
    // No acknowledgement within the retransmission time: back to 4, and the mark again.
    const later = run(
      facts,
      [
        { type: 'tick', now: 5000 },
        { type: 'log-read', now: 5001, space, after: 4, entries: entries(4, 3) },
      ],
      first.state,
    )
    expect(sent(later.effects)).toEqual([expect.objectContaining({ from: 4, collected: { bob: 2 } })])
  })

  it('neither stops nor tells on a session that did not negotiate collect', () => {
    const facts = space10(7, { current: mark })
    const opened = connect(facts, 1, [Feature.Compact])
    expect(opened.effects.at(-1)).toEqual({ type: 'read-log', space, after: 1, limit: 10 })
    const { effects } = run(
      facts,
      [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 6) }],
      opened.state,
    )
    expect(sent(effects)).toEqual([expect.objectContaining({ type: 'changes', from: 1, to: 7 })])
    expect(sent(effects)[0]).not.toHaveProperty('collected')
  })

  it('neither stops nor tells when the mark names more replicas than a receiver reads', () => {
    const received = Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`w${i}`, 1]))
    const facts = space10(7, { current: { at: 4, received } })
    const opened = connect(facts, 1)
    const { effects } = run(
      facts,
      [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 6) }],
      opened.state,
    )
    expect(sent(effects)).toEqual([expect.objectContaining({ type: 'changes', from: 1, to: 7 })])
  })
})

describe('hub session: a replica that says which deletions were collected', () => {
  it('is refused, and the connection closed', () => {
    const facts = space10(4, { current: undefined })
    const opened = connect(facts, 4)
    const { state, effects } = run(
      facts,
      [
        {
          type: 'message',
          now: 2,
          message: {
            type: 'changes',
            space,
            from: 0,
            to: 1,
            batch: [change(alice, 1)],
            collected: { bob: 1 },
          },
        },
      ],
      opened.state,
    )
    expect(effects).toEqual([
      { type: 'close', code: 'invalid-message', message: 'only the hub says which deletions it collected' },
    ])
    expect(state.phase).toBe('closed')
  })
})

describe('replica session: collected deletions', () => {
  function readyReplica(cursor: number): ReplicaSessionState {
    const state = initialReplicaSession(
      { ...DEFAULT_REPLICA_SESSION, replicaId: alice, space },
      {
        cursor,
        acked: 0,
        local: 0,
      },
    )
    let next = stepReplicaSession(state, { type: 'connected', now: 0 }).state
    next = stepReplicaSession(next, {
      type: 'message',
      now: 1,
      message: {
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        replicaId: alice,
        spaces: [space],
        have: { [space]: 0 },
      },
    }).state
    return next
  }

  it('offers collect in its hello', () => {
    const state = initialReplicaSession(
      { ...DEFAULT_REPLICA_SESSION, replicaId: alice, space },
      {
        cursor: 0,
        acked: 0,
        local: 0,
      },
    )
    const { effects } = stepReplicaSession(state, { type: 'connected', now: 0 })
    expect(effects[0]).toMatchObject({
      type: 'send',
      message: { features: expect.arrayContaining([Feature.Collect]) },
    })
  })

  it('applies a batch that carries a mark with the mark', () => {
    const { effects } = stepReplicaSession(readyReplica(4), {
      type: 'message',
      now: 2,
      message: { type: 'changes', space, from: 4, to: 6, batch: [], collected: { bob: 2 } },
    })
    expect(effects).toEqual([{ type: 'apply', batch: [], from: 4, cursor: 6, collected: { bob: 2 } }])
  })
})

describe('codec: changes.collected', () => {
  it('round-trips, and the fast encoder writes what encodeMessage writes', () => {
    const message: ChangesMessage = {
      type: 'changes',
      space,
      from: 12,
      to: 13,
      batch: [change(bob, 3)],
      collected: { alice: 3, bob: 7 },
    }
    expect(decodeMessage(encodeMessage(message))).toEqual({ ok: true, message })
    expect(encodeChangesMessage(message)).toBe(encodeMessage(message))
  })

  it.each([
    ['a counter that is not a whole number', { bob: 1.5 }],
    ['a key that is no replica id', { 'no spaces allowed': 1 }],
    ['an array', [1]],
  ])('refuses %s, naming the field', (_, collected) => {
    const result = decodeMessage(
      JSON.stringify({ type: 'changes', space, from: 0, to: 1, batch: [], collected }),
    )
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.error.code).toBe('invalid-message')
      expect(result.error.message).toContain('changes.collected')
    }
  })

  it('refuses more counters than a version vector may hold', () => {
    const collected = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`r${i}`, 1]))
    const result = decodeMessage(
      JSON.stringify({ type: 'changes', space, from: 0, to: 1, batch: [], collected }),
      {
        maxFrameBytes: 1 << 20,
        maxBatch: 10,
        maxSpaces: 4,
        maxTokenLength: 100,
        maxVectorEntries: 4,
      },
    )
    expect(result).toMatchObject({ ok: false, error: { code: 'invalid-message' } })
  })
})
