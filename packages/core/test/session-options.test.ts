import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { formatHlc } from '../src/hlc.js'
import { asRecordId, asReplicaId, asSpaceId } from '../src/ids.js'
import { PROTOCOL_VERSION } from '../src/protocol/messages.js'
import {
  initialReplicaSession,
  type ReplicaSessionConfig,
  type ReplicaSessionEffect,
  type ReplicaSessionInput,
  type ReplicaSessionState,
  stepReplicaSession,
} from '../src/protocol/replica-session.js'

const space = asSpaceId('team')
const alice = asReplicaId('alice')
const bob = asReplicaId('bob')

const base: ReplicaSessionConfig = { replicaId: alice, space, batchSize: 2, window: 4, retransmitMs: 1000 }

function change(counter: number): Change {
  return {
    collection: 'notes',
    id: asRecordId(`n${counter}`),
    dot: [alice, counter],
    context: {},
    hlc: formatHlc({ wall: 1_700_000_000_000, counter, replica: alice }),
    op: { type: 'put', value: { n: counter } },
  }
}

function run(state: ReplicaSessionState, inputs: readonly ReplicaSessionInput[]) {
  let current = state
  const effects = []
  for (const input of inputs) {
    const step = stepReplicaSession(current, input)
    current = step.state
    effects.push(...step.effects)
  }
  return { state: current, effects }
}

const hubHello = (have: number): ReplicaSessionInput => ({
  type: 'message',
  now: 10,
  message: {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: bob,
    spaces: [space],
    have: { [space]: have },
  },
})

describe('replica session: coalesced acks (ackIntervalMs, ackEvery)', () => {
  const config = { ...base, ackIntervalMs: 50, ackEvery: 10 }
  const ready = () =>
    run(initialReplicaSession(config, { cursor: 0, acked: 0, local: 0 }), [
      { type: 'connected', now: 0 },
      hubHello(0),
    ]).state
  const applied = (now: number, cursor: number): ReplicaSessionInput => ({ type: 'applied', now, cursor })
  const acks = (effects: readonly ReplicaSessionEffect[]) =>
    effects.filter((effect) => effect.type === 'send' && effect.message.type === 'ack')

  it('acknowledges the first apply at once, then at most once per interval', () => {
    const { effects, state } = run(ready(), [applied(20, 1), applied(30, 2), applied(40, 3)])
    expect(acks(effects)).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 1 } }])
    expect(state.ackSent).toBe(1)
    const later = stepReplicaSession(state, applied(71, 4))
    expect(acks(later.effects)).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 4 } }])
  })

  it('acknowledges at once when ackEvery positions are owed', () => {
    const { effects } = run(ready(), [applied(20, 1), applied(21, 11)])
    expect(acks(effects).map((effect) => (effect as { message: { upTo: number } }).message.upTo)).toEqual([
      1, 11,
    ])
  })

  it('sends an owed ack on the next tick', () => {
    const { state } = run(ready(), [applied(20, 1), applied(30, 2)])
    const ticked = stepReplicaSession(state, { type: 'tick', now: 40 })
    expect(acks(ticked.effects)).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 2 } }])
    expect(stepReplicaSession(ticked.state, { type: 'tick', now: 45 }).effects).toEqual([])
  })

  it('without the options, acknowledges every apply (the protocol default)', () => {
    const plain = run(initialReplicaSession(base, { cursor: 0, acked: 0, local: 0 }), [
      { type: 'connected', now: 0 },
      hubHello(0),
      applied(20, 1),
      applied(21, 2),
    ])
    expect(acks(plain.effects)).toHaveLength(2)
  })
})

describe('replica session: pipelining own changes behind hello', () => {
  const config = { ...base, pipeline: true }
  const offline = () => initialReplicaSession(config, { cursor: 3, acked: 2, local: 8 })

  it('asks for the outbox right after sending hello, from what the hub holds durably', () => {
    const { state, effects } = stepReplicaSession(offline(), { type: 'connected', now: 0 })
    expect(effects.map((effect) => effect.type)).toEqual(['send', 'read-outbox'])
    expect(effects[1]).toEqual({ type: 'read-outbox', after: 2, limit: 2 })
    expect(state).toMatchObject({ phase: 'connecting', reading: true })
    const read = stepReplicaSession(state, {
      type: 'outbox-read',
      now: 1,
      after: 2,
      changes: [change(3), change(4)],
    })
    expect(read.effects[0]).toMatchObject({ type: 'send', message: { type: 'changes', from: 2, to: 4 } })
    expect(read.state.sent).toBe(4)
  })

  it('does not resend pipelined changes when the hub answers hello', () => {
    const sent = run(offline(), [
      { type: 'connected', now: 0 },
      { type: 'outbox-read', now: 1, after: 2, changes: [change(3), change(4)] },
    ]).state
    const { state, effects } = stepReplicaSession(sent, hubHello(2))
    expect(state).toMatchObject({ phase: 'ready', acked: 2, sent: 4 })
    // Still reading the next batch it asked for while connecting: nothing is asked twice.
    expect(effects.filter((effect) => effect.type === 'read-outbox')).toEqual([])
  })

  it('takes the hub being ahead of what was pipelined', () => {
    const sent = run(offline(), [
      { type: 'connected', now: 0 },
      { type: 'outbox-read', now: 1, after: 2, changes: [change(3), change(4)] },
    ]).state
    const { state, effects } = stepReplicaSession(sent, hubHello(6))
    expect(state).toMatchObject({ acked: 6, sent: 6 })
    expect(effects[0]).toEqual({ type: 'drop-outbox', upTo: 6 })
  })
})
