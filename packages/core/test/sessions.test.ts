import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { ErrorCode } from '../src/errors.js'
import { formatHlc } from '../src/hlc.js'
import { asRecordId, asReplicaId, asSpaceId, type ReplicaId, type SpaceId } from '../src/ids.js'
import { errorMessage } from '../src/protocol/codec.js'
import {
  type AuthResult,
  type HubFacts,
  type HubSessionConfig,
  type HubSessionInput,
  type HubSessionState,
  type HubStep,
  initialHubSession,
  stepHubSession,
} from '../src/protocol/hub-session.js'
import { Feature, type HelloMessage, type Message, PROTOCOL_VERSION } from '../src/protocol/messages.js'
import {
  initialReplicaSession,
  isReplicaSynced,
  type ReplicaSessionConfig,
  type ReplicaSessionInput,
  type ReplicaSessionState,
  type ReplicaStep,
  stepReplicaSession,
} from '../src/protocol/replica-session.js'

/** Fixed so runs repeat; `SEED=… pnpm test` replays the seed a failing property prints. */
const seed = Number(process.env.SEED ?? 20_240_601)

const alice = asReplicaId('alice')
const bob = asReplicaId('bob')
const space = asSpaceId('team:board')
const otherSpace = asSpaceId('alice.notes')

function change(replica: ReplicaId, counter: number): Change {
  return {
    collection: 'notes',
    id: asRecordId(`note-${counter}`),
    dot: [replica, counter],
    context: {},
    hlc: formatHlc({ wall: 1_000 + counter, counter: 0, replica }),
    op: { type: 'put', value: { n: counter } },
  }
}

/** Own changes `from + 1 … to` of `replica`. */
function run(replica: ReplicaId, from: number, to: number): Change[] {
  return Array.from({ length: to - from }, (_, i) => change(replica, from + i + 1))
}

function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value !== 'object' || value === null || seen.has(value)) return value
  seen.add(value)
  Object.freeze(value)
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key], seen)
  return value
}

// ---------------------------------------------------------------------------------------------
// Replica side

const replicaConfig: ReplicaSessionConfig = {
  replicaId: alice,
  space,
  token: 'secret-token',
  batchSize: 2,
  window: 4,
  retransmitMs: 1_000,
}

/** A replica that has applied the hub log up to 3, had its changes acknowledged up to 2, and wrote up to 8. */
/** A replica that offers `sparse`, and a hub's hello that accepts it. */
const sparseConfig: ReplicaSessionConfig = { ...replicaConfig, features: [Feature.Sparse] }
function sparseHub(have: number): HelloMessage {
  return { ...hubHello(have), features: [Feature.Sparse] }
}

function offlineReplica(config: ReplicaSessionConfig = replicaConfig): ReplicaSessionState {
  return initialReplicaSession(config, { cursor: 3, acked: 2, local: 8 })
}

function stepAll(
  state: ReplicaSessionState,
  inputs: readonly ReplicaSessionInput[],
): { state: ReplicaSessionState; effects: ReplicaStep['effects'] } {
  let current = state
  let effects: ReplicaStep['effects'] = []
  for (const input of inputs) {
    const step = stepReplicaSession(current, input)
    current = step.state
    effects = step.effects
  }
  return { state: current, effects }
}

function hubHello(have: number, at = space): HelloMessage {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: asReplicaId('hub'),
    spaces: [at],
    have: { [at]: have },
  }
}

/** Connected, greeted by the hub with `have`, and the first outbox read answered. */
function readyReplica(): ReplicaSessionState {
  return stepAll(offlineReplica(), [
    { type: 'connected', now: 0 },
    { type: 'message', now: 10, message: hubHello(5) },
  ]).state
}

describe('replica session: handshake', () => {
  it('sends hello with its cursor as have once connected', () => {
    const { state, effects } = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 })
    expect(state.phase).toBe('connecting')
    expect(effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          replicaId: alice,
          token: 'secret-token',
          spaces: [space],
          have: { [space]: 3 },
          heads: { [space]: 8 },
        },
      },
    ])
  })

  it('leaves the token out of hello when it has none', () => {
    const { token: _token, ...withoutToken } = replicaConfig
    const { effects } = stepReplicaSession(offlineReplica(withoutToken), { type: 'connected', now: 0 })
    const sent = effects[0]
    expect(sent?.type === 'send' && sent.message.type === 'hello' && 'token' in sent.message).toBe(false)
  })

  it('drops what the hub already stored and resumes sending right after it', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const { state, effects } = stepReplicaSession(connected, {
      type: 'message',
      now: 10,
      message: hubHello(5),
    })
    expect(effects).toEqual([
      { type: 'drop-outbox', upTo: 5 },
      { type: 'read-outbox', after: 5, limit: 2 },
    ])
    expect(state).toMatchObject({ phase: 'ready', acked: 5, sent: 5, reading: true })
  })

  it('never believes the hub holds more than it wrote', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const { state, effects } = stepReplicaSession(connected, {
      type: 'message',
      now: 10,
      message: hubHello(50),
    })
    expect(effects).toEqual([{ type: 'drop-outbox', upTo: 8 }])
    expect(state.acked).toBe(8)
  })

  it('sends again from the records what a hub that has less lost, as sparse batches, then the outbox', () => {
    // Acknowledged up to 2, but the hub (restored from a backup) holds only 1: counter 2 left
    // the outbox when it was acknowledged, so what is left of it comes from the records.
    const connected = stepReplicaSession(offlineReplica(sparseConfig), { type: 'connected', now: 0 }).state
    const answered = stepReplicaSession(connected, { type: 'message', now: 10, message: sparseHub(1) })
    expect(answered.effects).toEqual([{ type: 'read-lost', after: 1, upTo: 2, limit: 2 }])
    expect(answered.state).toMatchObject({ acked: 1, sent: 1, lostUpTo: 2 })

    // The records no longer hold change 2 (a later write replaced it): an empty sparse batch.
    const lostRead = stepReplicaSession(answered.state, {
      type: 'outbox-read',
      now: 11,
      after: 1,
      changes: [],
      to: 2,
    })
    expect(lostRead.effects).toEqual([
      { type: 'send', message: { type: 'changes', space, from: 1, to: 2, batch: [], sparse: true } },
      { type: 'read-outbox', after: 2, limit: 2 },
    ])
    expect(lostRead.state.sent).toBe(2)

    // The hub's ack of the sparse batch moves `acked` past the loss; a restart's `acked`
    // (from the outbox) is then what the hub holds again.
    const acked = stepReplicaSession(lostRead.state, {
      type: 'message',
      now: 12,
      message: { type: 'ack', space, upTo: 2 },
    })
    expect(acked.state.acked).toBe(2)
  })

  it('reads lost changes in batches within the window, each covering up to its last change', () => {
    const state = initialReplicaSession(sparseConfig, { cursor: 0, acked: 10, local: 10 })
    const connected = stepReplicaSession(state, { type: 'connected', now: 0 }).state
    const answered = stepReplicaSession(connected, { type: 'message', now: 1, message: sparseHub(0) })
    expect(answered.effects).toEqual([{ type: 'read-lost', after: 0, upTo: 10, limit: 2 }])
    const first = stepReplicaSession(answered.state, {
      type: 'outbox-read',
      now: 2,
      after: 0,
      changes: [change(alice, 3), change(alice, 7)],
      to: 7,
    })
    expect(first.effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'changes',
          space,
          from: 0,
          to: 7,
          batch: [change(alice, 3), change(alice, 7)],
          sparse: true,
        },
      },
    ])
    // 7 counters sent of a window of 4: nothing more until the hub acknowledges.
    expect(first.state).toMatchObject({ sent: 7, reading: false })
    const acked = stepReplicaSession(first.state, {
      type: 'message',
      now: 3,
      message: { type: 'ack', space, upTo: 7 },
    })
    expect(acked.effects).toEqual([
      { type: 'drop-outbox', upTo: 7 },
      { type: 'read-lost', after: 7, upTo: 10, limit: 2 },
    ])
  })

  it('stops with unsupported-protocol when a hub that lost acknowledged changes cannot take them back', () => {
    // Without `sparse` the hub would refuse every batch after the gap, for good: say so once.
    const connected = stepReplicaSession(offlineReplica(sparseConfig), { type: 'connected', now: 0 }).state
    const { state, effects } = stepReplicaSession(connected, {
      type: 'message',
      now: 10,
      message: hubHello(1),
    })
    expect(effects).toMatchObject([{ type: 'fail', code: ErrorCode.UnsupportedProtocol }])
    expect(state.phase).toBe('offline')
    expect(state.fatal?.message).toMatch(/lost own changes 2…2/)
  })

  it('reads a space named like an Object.prototype member as have 0 when the hub omits it', () => {
    const odd = asSpaceId('constructor')
    const state = initialReplicaSession({ ...sparseConfig, space: odd }, { cursor: 0, acked: 2, local: 3 })
    const connected = stepReplicaSession(state, { type: 'connected', now: 0 }).state
    const hello: Message = {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId: bob,
      spaces: [odd],
      have: {},
      features: [Feature.Sparse],
    }
    const { state: next, effects } = stepReplicaSession(connected, {
      type: 'message',
      now: 1,
      message: hello,
    })
    expect(effects).toEqual([{ type: 'read-lost', after: 0, upTo: 2, limit: 2 }])
    expect(next.acked).toBe(0)
  })

  it('says hello again when the hub answers hello-required', () => {
    const { state, effects } = stepReplicaSession(readyReplica(), {
      type: 'message',
      now: 20,
      message: { type: 'error', code: ErrorCode.HelloRequired, message: 'send hello first' },
    })
    expect(effects).toHaveLength(1)
    expect(effects[0]).toMatchObject({ type: 'send', message: { type: 'hello', have: { [space]: 3 } } })
    expect(state.phase).toBe('connecting')
  })

  it('repeats an unanswered hello after retransmitMs', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    expect(stepReplicaSession(connected, { type: 'tick', now: 999 }).effects).toEqual([])
    const { effects } = stepReplicaSession(connected, { type: 'tick', now: 1_000 })
    expect(effects).toMatchObject([{ type: 'send', message: { type: 'hello' } }])
  })

  it.each([
    ErrorCode.Unauthenticated,
    ErrorCode.Forbidden,
    ErrorCode.UnsupportedProtocol,
    ErrorCode.ReplicaMismatch,
  ])('gives up for good on %s, and stays silent on the next connection', (code) => {
    const { state, effects } = stepReplicaSession(readyReplica(), {
      type: 'message',
      now: 20,
      message: { type: 'error', code, message: 'no' },
    })
    expect(effects).toEqual([{ type: 'fail', code, message: 'no' }])
    expect(state.fatal).toEqual({ code, message: 'no' })
    expect(state.phase).toBe('offline')
    const again = stepReplicaSession(state, { type: 'connected', now: 30 })
    expect(again.effects).toEqual([])
    expect(again.state.phase).toBe('offline')
  })

  it('with renewToken, ends only the connection on unauthenticated, and the next one presents its new token', () => {
    const renewing = stepAll(offlineReplica({ ...replicaConfig, renewToken: true }), [
      { type: 'connected', now: 0 },
      { type: 'message', now: 10, message: hubHello(5) },
    ]).state
    const refused = stepReplicaSession(renewing, {
      type: 'message',
      now: 20,
      message: { type: 'error', code: ErrorCode.Unauthenticated, message: 'the token has expired' },
    })
    expect(refused.effects).toEqual([{ type: 'token-refused', message: 'the token has expired' }])
    expect(refused.state.fatal).toBeNull()
    expect(refused.state.phase).toBe('offline')
    // Nothing more goes out on the refused connection, not even on a tick.
    expect(stepReplicaSession(refused.state, { type: 'tick', now: 5_000 }).effects).toEqual([])
    const again = stepAll(refused.state, [
      { type: 'disconnected', now: 30 },
      { type: 'connected', now: 40, token: 'renewed-token' },
    ])
    expect(again.effects[0]).toMatchObject({
      type: 'send',
      message: { type: 'hello', token: 'renewed-token', have: { [space]: 3 } },
    })
    // Forbidden is still final: another token is no answer to a space it may not use.
    const forbidden = stepReplicaSession(renewing, {
      type: 'message',
      now: 20,
      message: { type: 'error', code: ErrorCode.Forbidden, message: 'no' },
    })
    expect(forbidden.state.fatal).toEqual({ code: ErrorCode.Forbidden, message: 'no' })
  })

  it("presents the token a connection brings instead of the config's", () => {
    const { effects } = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0, token: 'fresh' })
    expect(effects[0]).toMatchObject({ type: 'send', message: { type: 'hello', token: 'fresh' } })
  })

  it('asks the runtime to store the frame limit the hub names, once per new value', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const named = stepReplicaSession(connected, {
      type: 'message',
      now: 10,
      message: { ...hubHello(2), maxFrame: 65_536 },
    })
    expect(named.effects).toContainEqual({ type: 'set-max-frame', maxFrame: 65_536 })
    const again = stepReplicaSession(named.state, {
      type: 'message',
      now: 11,
      message: { type: 'error', code: ErrorCode.FrameTooLarge, message: 'too long', maxFrame: 65_536 },
    })
    expect(again.effects).toEqual([])
    const smaller = stepReplicaSession(again.state, {
      type: 'message',
      now: 12,
      message: { type: 'error', code: ErrorCode.FrameTooLarge, message: 'too long', maxFrame: 16_384 },
    })
    expect(smaller.effects).toEqual([{ type: 'set-max-frame', maxFrame: 16_384 }])
    expect(smaller.state.maxFrame).toBe(16_384)
    // A replica opened over a store that kept it starts from it.
    const reopened = initialReplicaSession(replicaConfig, { cursor: 3, acked: 2, local: 8, maxFrame: 16_384 })
    expect(reopened.maxFrame).toBe(16_384)
  })

  it('uploads nothing in a space the hub lets it only read, and says its own changes stay', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const answer: Message = { ...hubHello(2), readOnly: [space] }
    const { state, effects } = stepReplicaSession(connected, { type: 'message', now: 10, message: answer })
    expect(state).toMatchObject({ phase: 'ready', readOnly: true, sent: 2, reading: false })
    expect(effects).toEqual([
      {
        type: 'read-only',
        message: `this replica may only read space ${space}: its 6 own changes not uploaded stay here, and new writes are refused`,
      },
    ])
    // Still nothing after a retransmit period; and changes from the others are applied.
    const tick = stepReplicaSession(state, { type: 'tick', now: 10_000 }).effects
    expect(tick.filter((effect) => effect.type !== 'send' || effect.message.type !== 'ack')).toEqual([])
    const batch: Message = { type: 'changes', space, from: 3, to: 4, batch: [change(bob, 1)] }
    expect(stepReplicaSession(state, { type: 'message', now: 11, message: batch }).effects).toMatchObject([
      { type: 'apply', cursor: 4 },
    ])
    // Access given back: the next hello answer says nothing, and uploading resumes.
    const reconnected = stepAll(state, [
      { type: 'disconnected', now: 20 },
      { type: 'connected', now: 21 },
    ]).state
    const resumed = stepReplicaSession(reconnected, { type: 'message', now: 30, message: hubHello(2) })
    expect(resumed.state.readOnly).toBe(false)
    expect(resumed.effects).toContainEqual({ type: 'read-outbox', after: 2, limit: replicaConfig.batchSize })
  })

  it('takes a forbidden naming its space (a hub whose hello does not say) as read-only, not the end', () => {
    const ready = readyReplica()
    const { state, effects } = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: {
        type: 'error',
        code: ErrorCode.Forbidden,
        message: `read-only access to space ${space}`,
        space,
      },
    })
    expect(state).toMatchObject({ phase: 'ready', readOnly: true, fatal: null, sent: state.acked })
    expect(effects).toMatchObject([{ type: 'read-only' }])
    const again = stepReplicaSession(state, {
      type: 'message',
      now: 21,
      message: { type: 'error', code: ErrorCode.Forbidden, message: 'again', space },
    })
    expect(again.effects).toEqual([])
  })

  it('reports a relay whose storage failed, and goes on (its changes stay unacknowledged and go again)', () => {
    const ready = readyReplica()
    const { state, effects } = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'error', code: ErrorCode.StorageFailed, message: 'the disk is full', space },
    })
    expect(effects).toEqual([{ type: 'hub-storage-failed', message: 'the disk is full' }])
    expect(state).toBe(ready)
  })

  it('ignores a passing error such as rate-limited while nothing of its own is unacknowledged', () => {
    const ready = readyReplica()
    const { state, effects } = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'error', code: ErrorCode.RateLimited, message: 'slow down' },
    })
    expect(effects).toEqual([])
    expect(state).toBe(ready)
  })
})

describe('replica session: sending own changes', () => {
  it('sends what the outbox returns as a numbered batch, and reads on while the window allows', () => {
    const { state, effects } = stepReplicaSession(readyReplica(), {
      type: 'outbox-read',
      now: 11,
      after: 5,
      changes: run(alice, 5, 7),
    })
    expect(effects).toEqual([
      { type: 'send', message: { type: 'changes', space, from: 5, to: 7, batch: run(alice, 5, 7) } },
      { type: 'read-outbox', after: 7, limit: 2 },
    ])
    expect(state.sent).toBe(7)
  })

  it('stops reading when the window of unacknowledged changes is full', () => {
    const state = stepAll(readyReplica(), [
      { type: 'outbox-read', now: 11, after: 5, changes: run(alice, 5, 7) },
      { type: 'local-write', now: 12, counter: 12 },
      { type: 'outbox-read', now: 13, after: 7, changes: run(alice, 7, 9) },
    ])
    expect(state.state.sent).toBe(9)
    expect(state.effects).toEqual([
      { type: 'send', message: { type: 'changes', space, from: 7, to: 9, batch: run(alice, 7, 9) } },
    ])
    const acked = stepReplicaSession(state.state, {
      type: 'message',
      now: 14,
      message: { type: 'ack', space, upTo: 7 },
    })
    expect(acked.effects).toEqual([
      { type: 'drop-outbox', upTo: 7 },
      { type: 'read-outbox', after: 9, limit: 2 },
    ])
  })

  it('ignores an outbox read that no longer continues what was sent', () => {
    const { state, effects } = stepReplicaSession(readyReplica(), {
      type: 'outbox-read',
      now: 11,
      after: 3,
      changes: run(alice, 3, 5),
    })
    expect(effects).toEqual([{ type: 'read-outbox', after: 5, limit: 2 }])
    expect(state.sent).toBe(5)
  })

  it('reads the outbox after a local write only when online', () => {
    const offline = stepReplicaSession(offlineReplica(), { type: 'local-write', now: 1, counter: 9 })
    expect(offline.effects).toEqual([])
    expect(offline.state.local).toBe(9)
    const sentAll = stepReplicaSession(readyReplica(), {
      type: 'outbox-read',
      now: 11,
      after: 5,
      changes: run(alice, 5, 7),
    }).state
    const idle = stepReplicaSession(sentAll, {
      type: 'outbox-read',
      now: 12,
      after: 7,
      changes: run(alice, 7, 8),
    })
    expect(idle.effects).toHaveLength(1)
    const online = stepReplicaSession(idle.state, { type: 'local-write', now: 13, counter: 9 })
    expect(online.effects).toEqual([{ type: 'read-outbox', after: 8, limit: 1 }])
  })

  it('goes back to the last acknowledged change when the hub stays silent (go-back-N)', () => {
    const sent = stepAll(readyReplica(), [
      { type: 'outbox-read', now: 11, after: 5, changes: run(alice, 5, 7) },
      { type: 'outbox-read', now: 12, after: 7, changes: run(alice, 7, 8) },
    ]).state
    expect(sent).toMatchObject({ sent: 8, acked: 5, reading: false, lastProgressAt: 11 })
    expect(stepReplicaSession(sent, { type: 'tick', now: 1_010 }).effects).toEqual([])
    const { state, effects } = stepReplicaSession(sent, { type: 'tick', now: 1_011 })
    expect(effects).toEqual([
      { type: 'send', message: { type: 'ack', space, upTo: 3 } },
      { type: 'read-outbox', after: 5, limit: 2 },
    ])
    expect(state.sent).toBe(5)
  })

  it('sends again from its last acknowledged change at the next tick after the hub dropped frames', () => {
    const sent = stepAll(readyReplica(), [
      { type: 'outbox-read', now: 11, after: 5, changes: run(alice, 5, 7) },
      { type: 'outbox-read', now: 12, after: 7, changes: run(alice, 7, 8) },
    ]).state
    // The hub refused 8 for going too fast; the ack of 6 and 7, accepted before it, follows.
    const dropped = stepAll(sent, [
      {
        type: 'message',
        now: 13,
        message: { type: 'error', code: ErrorCode.RateLimited, message: 'slow down' },
      },
      { type: 'message', now: 14, message: { type: 'ack', space, upTo: 7 } },
    ]).state
    expect(dropped).toMatchObject({ sent: 8, acked: 7, dropped: true, lastProgressAt: 14 })
    // Not a whole retransmitMs later: the next tick.
    const { state, effects } = stepReplicaSession(dropped, { type: 'tick', now: 15 })
    expect(effects).toEqual([{ type: 'read-outbox', after: 7, limit: 2 }])
    expect(state).toMatchObject({ sent: 7, dropped: false, lastProgressAt: 15 })
    // Once only: the tick after is an ordinary one.
    const sending = stepReplicaSession(state, {
      type: 'outbox-read',
      now: 16,
      after: 7,
      changes: run(alice, 7, 8),
    })
    expect(stepReplicaSession(sending.state, { type: 'tick', now: 17 }).effects).toEqual([])
  })

  it('resumes sending on the next retransmission tick after a failed outbox read', () => {
    const failed = stepReplicaSession(readyReplica(), { type: 'outbox-failed', now: 11 })
    expect(failed.effects).toEqual([])
    expect(failed.state.reading).toBe(false)
    const { effects } = stepReplicaSession(failed.state, { type: 'tick', now: 1_010 })
    expect(effects).toEqual([
      { type: 'send', message: { type: 'ack', space, upTo: 3 } },
      { type: 'read-outbox', after: 5, limit: 2 },
    ])
  })

  it('acknowledgements drop the outbox and never move backwards', () => {
    const ready = readyReplica()
    const forward = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'ack', space, upTo: 6 },
    })
    expect(forward.effects[0]).toEqual({ type: 'drop-outbox', upTo: 6 })
    expect(forward.state.acked).toBe(6)
    const stale = stepReplicaSession(forward.state, {
      type: 'message',
      now: 21,
      message: { type: 'ack', space, upTo: 4 },
    })
    expect(stale.effects).toEqual([])
    expect(stale.state.acked).toBe(6)
    const elsewhere = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'ack', space: otherSpace, upTo: 8 },
    })
    expect(elsewhere.effects).toEqual([])
  })

  it('forgets unacknowledged sends on disconnect, so they are sent again next time', () => {
    const sent = stepReplicaSession(readyReplica(), {
      type: 'outbox-read',
      now: 11,
      after: 5,
      changes: run(alice, 5, 7),
    }).state
    const { state, effects } = stepReplicaSession(sent, { type: 'disconnected', now: 12 })
    expect(effects).toEqual([])
    expect(state).toMatchObject({ phase: 'offline', sent: 5, acked: 5, reading: false })
  })
})

describe('replica session: receiving the hub stream', () => {
  it('applies a batch that continues its position and acknowledges once it is applied', () => {
    const ready = readyReplica()
    const batch = run(bob, 0, 2)
    const taken = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'changes', space, from: 2, to: 6, batch },
    })
    expect(taken.effects).toEqual([{ type: 'apply', batch, from: 2, cursor: 6 }])
    expect(taken.state).toMatchObject({ cursor: 3, applyingTo: 6 })
    expect(isReplicaSynced(taken.state)).toBe(false)
    const applied = stepReplicaSession(taken.state, { type: 'applied', now: 21, cursor: 6 })
    expect(applied.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 6 } }])
    expect(applied.state.cursor).toBe(6)
  })

  it('acknowledges a re-sent batch once applied even though its position did not move', () => {
    const applied = stepReplicaSession(readyReplica(), { type: 'applied', now: 20, cursor: 3 })
    expect(applied.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 3 } }])
    expect(applied.state.cursor).toBe(3)
    expect(stepReplicaSession(readyReplica(), { type: 'applied', now: 20, cursor: null }).effects).toEqual([])
  })

  it('answers a gap with an ack of its real position and applies nothing', () => {
    const ready = readyReplica()
    const { state, effects } = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'changes', space, from: 4, to: 9, batch: run(bob, 0, 1) },
    })
    expect(effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 3 } }])
    expect(state).toMatchObject({ cursor: 3, applyingTo: 3 })
  })

  it('answers a duplicate with an ack, including one that is still being applied', () => {
    const ready = readyReplica()
    const duplicate = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'changes', space, from: 1, to: 3, batch: [] },
    })
    expect(duplicate.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 3 } }])
    const pending = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'changes', space, from: 3, to: 6, batch: [] },
    })
    const repeat = stepReplicaSession(pending.state, {
      type: 'message',
      now: 21,
      message: { type: 'changes', space, from: 3, to: 6, batch: [] },
    })
    expect(repeat.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 3 } }])
  })

  it('takes a retransmission again after an apply failed', () => {
    const message: Message = { type: 'changes', space, from: 3, to: 6, batch: run(bob, 0, 3) }
    const pending = stepReplicaSession(readyReplica(), { type: 'message', now: 20, message }).state
    const failed = stepReplicaSession(pending, { type: 'apply-failed', now: 21 }).state
    expect(failed.applyingTo).toBe(3)
    expect(stepReplicaSession(failed, { type: 'message', now: 22, message }).effects).toEqual([
      { type: 'apply', batch: message.batch, from: 3, cursor: 6 },
    ])
  })

  it('ignores changes for another space', () => {
    const ready = readyReplica()
    const { state, effects } = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'changes', space: otherSpace, from: 3, to: 6, batch: [] },
    })
    expect(effects).toEqual([])
    expect(state).toBe(ready)
  })

  it('applies snapshot pages in order and moves its position only after the last', () => {
    const ready = readyReplica()
    const page = (n: number, last: boolean): Message => ({
      type: 'snapshot',
      space,
      cursor: 40,
      page: n,
      last,
      batch: [change(bob, n + 1)],
    })
    const first = stepReplicaSession(ready, { type: 'message', now: 20, message: page(0, false) })
    expect(first.effects).toEqual([
      {
        type: 'apply',
        batch: [change(bob, 1)],
        from: null,
        cursor: null,
        snapshot: { cursor: 40, page: 0, last: false },
      },
    ])
    const skipped = stepReplicaSession(first.state, { type: 'message', now: 21, message: page(2, true) })
    expect(skipped.effects).toEqual([])
    const last = stepReplicaSession(first.state, { type: 'message', now: 21, message: page(1, true) })
    expect(last.effects).toEqual([
      {
        type: 'apply',
        batch: [change(bob, 2)],
        from: null,
        cursor: 40,
        snapshot: { cursor: 40, page: 1, last: true },
      },
    ])
    expect(last.state).toMatchObject({ applyingTo: 40, snapshot: null })
    const done = stepReplicaSession(last.state, { type: 'applied', now: 22, cursor: 40 })
    expect(done.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 40 } }])
  })

  it("hands the runtime the counters a snapshot's first page names, with that page", () => {
    const received = { [alice]: 3, [bob]: 9 }
    const message: Message = {
      type: 'snapshot',
      space,
      cursor: 40,
      page: 0,
      last: false,
      batch: [],
      received,
    }
    const { effects } = stepReplicaSession(readyReplica(), { type: 'message', now: 20, message })
    expect(effects).toEqual([
      {
        type: 'apply',
        batch: [],
        from: null,
        cursor: null,
        snapshot: { cursor: 40, page: 0, last: false, received },
      },
    ])
  })

  it('is synced once everything written is acknowledged and the hub head it reported is applied', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const hello: Message = { ...hubHello(5), heads: { [space]: 9 } }
    const ready = stepReplicaSession(connected, { type: 'message', now: 10, message: hello }).state
    expect(isReplicaSynced(ready)).toBe(false)
    const acked = stepReplicaSession(ready, {
      type: 'message',
      now: 20,
      message: { type: 'ack', space, upTo: 8 },
    })
    expect(isReplicaSynced(acked.state)).toBe(false)
    const taken = stepReplicaSession(acked.state, {
      type: 'message',
      now: 21,
      message: { type: 'changes', space, from: 3, to: 9, batch: run(bob, 0, 2) },
    })
    expect(isReplicaSynced(taken.state)).toBe(false)
    const applied = stepReplicaSession(taken.state, { type: 'applied', now: 22, cursor: 9 })
    expect(isReplicaSynced(applied.state)).toBe(true)
    const behind = stepReplicaSession(applied.state, {
      type: 'message',
      now: 23,
      message: { type: 'changes', space, from: 12, to: 14, batch: [], head: 14 },
    })
    expect(isReplicaSynced(behind.state)).toBe(false)
  })
})

// ---------------------------------------------------------------------------------------------
// Hub side

interface FactsData {
  head: Record<string, number>
  floor: Record<string, number>
  received: Record<string, Record<string, number>>
}

function factsOf(data: FactsData): HubFacts {
  const read = (map: Record<string, number> | undefined, key: string): number =>
    map !== undefined && Object.hasOwn(map, key) ? (map[key] as number) : 0
  return {
    head: (at) => read(data.head, at),
    floor: (at) => read(data.floor, at),
    received: (at, replica) =>
      read(Object.hasOwn(data.received, at) ? data.received[at] : undefined, replica),
  }
}

const hubConfig = { batchSize: 3, window: 5, snapshotPage: 2, retransmitMs: 1_000 }

function replicaHello(have: number, spaces: readonly SpaceId[] = [space]): HelloMessage {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: alice,
    token: 'tok',
    spaces,
    have: Object.fromEntries(spaces.map((name) => [name, have])),
  }
}

const writeAccess: AuthResult = { ok: true, access: () => 'write' }
const readAccess: AuthResult = { ok: true, access: () => 'read' }

function hubSteps(
  facts: HubFacts,
  inputs: readonly HubSessionInput[],
  state: HubSessionState = initialHubSession(hubConfig),
): HubStep {
  let current: HubStep = { state, effects: [] }
  for (const input of inputs) current = stepHubSession(current.state, input, facts)
  return current
}

/** The hub holds log positions 1…10 of the space and alice's changes up to 4; alice has applied up to 7. */
function standardFacts(): FactsData {
  return { head: { [space]: 10 }, floor: { [space]: 0 }, received: { [space]: { alice: 4 } } }
}

/** {@link readyHub} for a replica that offered `sparse`. */
function sparseReadyHub(facts: HubFacts): HubSessionState {
  return hubSteps(facts, [
    { type: 'message', now: 0, message: { ...replicaHello(7), features: [Feature.Sparse] } },
    { type: 'authenticated', now: 1, result: writeAccess },
  ]).state
}

function readyHub(facts: HubFacts, access: AuthResult = writeAccess, have = 7): HubSessionState {
  return hubSteps(facts, [
    { type: 'message', now: 0, message: replicaHello(have) },
    { type: 'authenticated', now: 1, result: access },
  ]).state
}

describe('hub session: a log named anew (a relay restored from a backup)', () => {
  const named = (log: string): HubFacts => ({ ...factsOf(standardFacts()), log: () => log })
  function answer(facts: HubFacts, theirs: string | undefined): HubStep {
    const hello = replicaHello(7)
    return hubSteps(facts, [
      {
        type: 'message',
        now: 0,
        message: theirs === undefined ? hello : { ...hello, logs: { [space]: theirs } },
      },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
  }

  it('names its log in its hello, and resumes a replica whose position is in that log', () => {
    const { state, effects } = answer(named('log-2'), 'log-2')
    expect(effects[0]).toMatchObject({ type: 'send', message: { type: 'hello', logs: { [space]: 'log-2' } } })
    expect(state.streams[space]).toMatchObject({ sent: 7, acked: 7, snapshot: null })
  })

  it('reads a replica whose position is in another log its log from the start: a snapshot', () => {
    const { state } = answer(named('log-2'), 'log-1')
    expect(state.streams[space]).toMatchObject({ acked: 0, snapshot: { cursor: 10, page: 0 } })
  })

  it('starts a stream over with a snapshot when the replica acknowledges 0 after more', () => {
    // The replica answered a hello naming another log (its older hello reached us first and
    // was taken by position): it started over at 0, which its acks now say.
    const facts = named('log-2')
    const resumed = answer(facts, 'log-2')
    const { state } = stepHubSession(
      resumed.state,
      { type: 'message', now: 5, message: { type: 'ack', space, upTo: 0 } },
      facts,
    )
    expect(state.streams[space]).toMatchObject({ acked: 0, snapshot: { cursor: 10 } })
  })

  it('resumes a replica that names no log, and names none itself when its store does not', () => {
    expect(answer(named('log-2'), undefined).state.streams[space]).toMatchObject({ sent: 7, snapshot: null })
    const unnamed = answer(factsOf(standardFacts()), 'log-1')
    expect(unnamed.state.streams[space]).toMatchObject({ sent: 7, snapshot: null })
    expect(unnamed.effects[0]).toMatchObject({ type: 'send', message: { type: 'hello' } })
    expect((unnamed.effects[0] as { message: HelloMessage }).message.logs).toBeUndefined()
  })
})

describe('replica session: frames before the hub’s hello', () => {
  it('leaves changes and snapshot pages that overtake the hub’s hello to be sent again', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const page: Message = { type: 'snapshot', space, cursor: 12, page: 0, last: true, batch: [] }
    const early = stepReplicaSession(connected, { type: 'message', now: 1, message: page })
    expect(early.effects).toEqual([])
    expect(early.state).toBe(connected)
    const batch: Message = { type: 'changes', space, from: 3, to: 5, batch: [change(bob, 1), change(bob, 2)] }
    expect(stepReplicaSession(connected, { type: 'message', now: 1, message: batch }).effects).toEqual([])
  })
})

describe('replica session: the hub names its log', () => {
  const named = (log: string, head = 12): HelloMessage => ({
    ...hubHello(2),
    heads: { [space]: head },
    logs: { [space]: log },
  })
  it('stores the name the first time, without touching its cursor, and names it in later hellos', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    const { state, effects } = stepReplicaSession(connected, {
      type: 'message',
      now: 1,
      message: named('log-1'),
    })
    expect(effects[0]).toEqual({ type: 'set-log', log: 'log-1', reset: false })
    expect(state).toMatchObject({ log: 'log-1', cursor: 3, hubHead: 12 })
    const again = stepReplicaSession(stepReplicaSession(state, { type: 'disconnected', now: 2 }).state, {
      type: 'connected',
      now: 3,
    })
    expect(again.effects[0]).toMatchObject({
      type: 'send',
      message: { type: 'hello', logs: { [space]: 'log-1' } },
    })
    // The same name again: nothing to store.
    const same = stepReplicaSession(again.state, { type: 'message', now: 4, message: named('log-1') })
    expect(same.effects.some((effect) => effect.type === 'set-log')).toBe(false)
  })

  it('starts over at position 0 of a log named otherwise, its head the new one', () => {
    const state = initialReplicaSession(replicaConfig, { cursor: 30, acked: 2, local: 2, log: 'log-1' })
    const connected = stepReplicaSession(state, { type: 'connected', now: 0 }).state
    const { state: next, effects } = stepReplicaSession(connected, {
      type: 'message',
      now: 1,
      message: named('log-2', 12),
    })
    expect(effects[0]).toEqual({ type: 'set-log', log: 'log-2', reset: true })
    expect(next).toMatchObject({ log: 'log-2', cursor: 0, applyingTo: 0, hubHead: 12 })
    // The hub's snapshot then takes it to the new log's head.
    const page: Message = { type: 'snapshot', space, cursor: 12, page: 0, last: true, batch: [] }
    const snapshot = stepReplicaSession(next, { type: 'message', now: 2, message: page })
    expect(snapshot.effects).toEqual([
      { type: 'apply', batch: [], from: null, cursor: 12, snapshot: { cursor: 12, page: 0, last: true } },
    ])
  })
})

describe('the hub names the frames it reads', () => {
  it('a hub with `maxFrame` in its config names it in its hello', () => {
    const facts = factsOf(standardFacts())
    const { effects } = hubSteps(
      facts,
      [
        { type: 'message', now: 0, message: replicaHello(7) },
        { type: 'authenticated', now: 1, result: writeAccess },
      ],
      initialHubSession({ ...hubConfig, maxFrame: 65_536 }),
    )
    expect(effects[0]).toMatchObject({ type: 'send', message: { type: 'hello', maxFrame: 65_536 } })
    // Without it, none is named (a replica then goes by its own limit).
    const plain = hubSteps(facts, [
      { type: 'message', now: 0, message: replicaHello(7) },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
    expect(plain.effects[0]).toMatchObject({ type: 'send', message: { type: 'hello' } })
    expect('maxFrame' in ((plain.effects[0] as { message: object }).message ?? {})).toBe(false)
  })

  it('a replica keeps what the hub named across reconnects, and learns it from a refusal too', () => {
    const connected = stepReplicaSession(offlineReplica(), { type: 'connected', now: 0 }).state
    expect(connected.maxFrame).toBeNull()
    const greeted = stepReplicaSession(connected, {
      type: 'message',
      now: 1,
      message: { ...hubHello(2), maxFrame: 65_536 },
    }).state
    expect(greeted.maxFrame).toBe(65_536)
    const back = stepAll(greeted, [
      { type: 'disconnected', now: 2 },
      { type: 'connected', now: 3 },
    ]).state
    expect(back.maxFrame).toBe(65_536)
    // A refusal of a frame sent before the hub's hello names it as well, and what was sent
    // goes again, sized to it, from the last acknowledged change at the next tick.
    const sent = { ...connected, sent: 6 }
    const refused = stepReplicaSession(sent, {
      type: 'message',
      now: 2,
      message: {
        ...errorMessage(ErrorCode.FrameTooLarge, 'frames are limited to 2048 bytes'),
        maxFrame: 2_048,
      },
    }).state
    expect(refused).toMatchObject({ maxFrame: 2_048, dropped: true })
    // A refusal naming nothing changes nothing.
    const unnamed = stepReplicaSession(sent, {
      type: 'message',
      now: 2,
      message: errorMessage(ErrorCode.FrameTooLarge, 'too long'),
    })
    expect(unnamed.state).toBe(sent)
  })

  it('stops for good when the runtime says what comes next can never be sent', () => {
    const { state, effects } = stepReplicaSession(readyReplica(), {
      type: 'fail',
      now: 20,
      code: ErrorCode.FrameTooLarge,
      message: 'the put of big is 200000 bytes',
    })
    expect(effects).toEqual([
      { type: 'fail', code: ErrorCode.FrameTooLarge, message: 'the put of big is 200000 bytes' },
    ])
    expect(state).toMatchObject({ phase: 'offline', fatal: { code: ErrorCode.FrameTooLarge } })
  })
})

describe('hub session: handshake', () => {
  it('answers anything before hello with hello-required and keeps waiting', () => {
    const facts = factsOf(standardFacts())
    const initial = initialHubSession(hubConfig)
    const { state, effects } = stepHubSession(
      initial,
      {
        type: 'message',
        now: 0,
        message: { type: 'changes', space, from: 4, to: 5, batch: run(alice, 4, 5) },
      },
      facts,
    )
    expect(effects).toEqual([
      {
        type: 'send',
        message: { type: 'error', code: ErrorCode.HelloRequired, message: 'send hello before anything else' },
      },
    ])
    expect(state).toBe(initial)
    const error = stepHubSession(
      initial,
      { type: 'message', now: 0, message: { type: 'error', code: ErrorCode.Internal, message: 'x' } },
      facts,
    )
    expect(error.effects).toEqual([])
  })

  it('asks the runtime to authenticate a hello', () => {
    const { state, effects } = stepHubSession(
      initialHubSession(hubConfig),
      { type: 'message', now: 0, message: replicaHello(7) },
      factsOf(standardFacts()),
    )
    expect(effects).toEqual([{ type: 'authenticate', token: 'tok', replicaId: alice, spaces: [space] }])
    expect(state).toMatchObject({ phase: 'authenticating', replicaId: alice })
  })

  it('refuses another protocol version and closes', () => {
    const { state, effects } = stepHubSession(
      initialHubSession(hubConfig),
      { type: 'message', now: 0, message: { ...replicaHello(7), protocol: PROTOCOL_VERSION + 1 } },
      factsOf(standardFacts()),
    )
    expect(effects).toMatchObject([{ type: 'close', code: ErrorCode.UnsupportedProtocol }])
    expect(state.phase).toBe('closed')
  })

  it('once authenticated, says what it stored of the replica and streams the log from its position', () => {
    const facts = factsOf(standardFacts())
    const { effects } = hubSteps(facts, [
      { type: 'message', now: 0, message: replicaHello(7) },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
    expect(effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          replicaId: alice,
          spaces: [space],
          have: { [space]: 4 },
          heads: { [space]: 10 },
        },
      },
      { type: 'read-log', space, after: 7, limit: 3 },
    ])
  })

  it.each([
    ['a new replica', 0],
    ['a replica behind the compacted floor', 2],
    ['a replica ahead of the log (the hub lost data)', 11],
  ])('streams a snapshot to %s', (_, have) => {
    const data = standardFacts()
    data.floor[space] = 3
    const { effects } = hubSteps(factsOf(data), [
      { type: 'message', now: 0, message: replicaHello(have) },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
    expect(effects[1]).toEqual({
      type: 'read-snapshot',
      space,
      page: 0,
      afterKey: null,
      limit: 2,
      cursor: 10,
    })
  })

  it('sends nothing more to a replica that is up to date', () => {
    const { effects } = hubSteps(factsOf(standardFacts()), [
      { type: 'message', now: 0, message: replicaHello(10) },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
    expect(effects).toHaveLength(1)
  })

  it('closes with the authentication failure', () => {
    const { state, effects } = hubSteps(factsOf(standardFacts()), [
      { type: 'message', now: 0, message: replicaHello(7) },
      {
        type: 'authenticated',
        now: 1,
        result: { ok: false, code: ErrorCode.Unauthenticated, message: 'expired token' },
      },
    ])
    expect(effects).toEqual([{ type: 'close', code: ErrorCode.Unauthenticated, message: 'expired token' }])
    expect(state.phase).toBe('closed')
  })

  it('closes with forbidden when a named space is not allowed', () => {
    const { effects } = hubSteps(factsOf(standardFacts()), [
      { type: 'message', now: 0, message: replicaHello(7, [space, otherSpace]) },
      {
        type: 'authenticated',
        now: 1,
        result: { ok: true, access: (name) => (name === space ? 'write' : null) },
      },
    ])
    expect(effects).toEqual([
      { type: 'close', code: ErrorCode.Forbidden, message: `no access to space ${otherSpace}` },
    ])
  })

  it('refuses a second hello that changes the replica id', () => {
    const facts = factsOf(standardFacts())
    const { state, effects } = stepHubSession(
      readyHub(facts),
      { type: 'message', now: 5, message: { ...replicaHello(7), replicaId: bob } },
      facts,
    )
    expect(effects).toMatchObject([{ type: 'close', code: ErrorCode.ReplicaMismatch }])
    expect(state.phase).toBe('closed')
  })

  it('ignores every input once closed', () => {
    const facts = factsOf(standardFacts())
    const closed = stepHubSession(readyHub(facts), { type: 'closed' }, facts).state
    expect(closed.phase).toBe('closed')
    const { state, effects } = stepHubSession(
      closed,
      { type: 'message', now: 9, message: replicaHello(7) },
      facts,
    )
    expect(effects).toEqual([])
    expect(state).toBe(closed)
  })

  it('keeps a space named like an Object.prototype member apart from unnamed ones', () => {
    const odd = asSpaceId('constructor')
    const facts = factsOf({ head: {}, floor: {}, received: {} })
    const ready = hubSteps(facts, [
      { type: 'message', now: 0, message: replicaHello(0, [odd]) },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
    expect(ready.effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          replicaId: alice,
          spaces: [odd],
          have: { [odd]: 0 },
          heads: { [odd]: 0 },
        },
      },
    ])
    const stranger = asSpaceId('toString')
    const { effects } = stepHubSession(
      ready.state,
      { type: 'message', now: 2, message: { type: 'ack', space: stranger, upTo: 1 } },
      facts,
    )
    expect(effects).toMatchObject([
      { type: 'send', message: { type: 'error', code: ErrorCode.UnknownSpace, space: stranger } },
    ])
  })
})

describe('hub session: a token that expires', () => {
  const expiring: AuthResult = { ok: true, access: () => 'write', expiresAt: 100 }
  const expiredClose = {
    type: 'close',
    code: ErrorCode.Unauthenticated,
    message:
      'the token has expired: connect again with a new one (a client with a fixed token must be created again with it; one with a token function gets it at its next attempt)',
  }

  it('serves the connection until the expiry, then closes it at the first input from then on', () => {
    const facts = factsOf(standardFacts())
    const ready = readyHub(facts, expiring)
    expect(ready.phase).toBe('ready')
    expect(ready.expiresAt).toBe(100)
    const before = stepHubSession(ready, { type: 'tick', now: 99 }, facts)
    expect(before.state.phase).toBe('ready')
    expect(before.effects).not.toContainEqual(expect.objectContaining({ type: 'close' }))
    const tick = stepHubSession(ready, { type: 'tick', now: 100 }, facts)
    expect(tick.effects).toEqual([expiredClose])
    expect(tick.state.phase).toBe('closed')
  })

  it('takes no changes, and acknowledges none, once the token has expired', () => {
    const facts = factsOf(standardFacts())
    const ready = readyHub(facts, expiring)
    const upload = stepHubSession(
      ready,
      {
        type: 'message',
        now: 150,
        message: { type: 'changes', space, from: 4, to: 6, batch: run(alice, 4, 6) },
      },
      facts,
    )
    expect(upload.effects).toEqual([expiredClose])
    const stored = stepHubSession(ready, { type: 'stored', now: 150, space, ok: true }, facts)
    expect(stored.effects).toEqual([expiredClose])
  })

  it('refuses a hello whose token expires before it is authenticated', () => {
    const { state, effects } = hubSteps(factsOf(standardFacts()), [
      { type: 'message', now: 0, message: replicaHello(7) },
      { type: 'authenticated', now: 100, result: expiring },
    ])
    expect(effects).toEqual([expiredClose])
    expect(state.phase).toBe('closed')
  })

  it('never closes a session whose token has no expiry', () => {
    const facts = factsOf(standardFacts())
    const { state, effects } = stepHubSession(readyHub(facts), { type: 'tick', now: 10 ** 15 }, facts)
    expect(state.phase).toBe('ready')
    expect(effects).not.toContainEqual(expect.objectContaining({ type: 'close' }))
  })
})

describe('hub session: receiving a replica’s changes', () => {
  it('stores the continuation of what it holds and acknowledges only once stored', () => {
    const data = standardFacts()
    const facts = factsOf(data)
    const batch = run(alice, 4, 6)
    const taken = stepHubSession(
      readyHub(facts),
      { type: 'message', now: 5, message: { type: 'changes', space, from: 4, to: 6, batch } },
      facts,
    )
    expect(taken.effects).toEqual([{ type: 'store', space, replicaId: alice, changes: batch }])
    expect(taken.state.streams[space]?.accepting).toBe(6)
    ;(data.received[space] as Record<string, number>).alice = 6
    const stored = stepHubSession(taken.state, { type: 'stored', now: 6, space, ok: true }, facts)
    expect(stored.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 6 } }])
  })

  it('stores only the new part of a batch that overlaps what it holds', () => {
    const facts = factsOf(standardFacts())
    const { effects } = stepHubSession(
      readyHub(facts),
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 2, to: 6, batch: run(alice, 2, 6) },
      },
      facts,
    )
    expect(effects).toEqual([{ type: 'store', space, replicaId: alice, changes: run(alice, 4, 6) }])
  })

  it('answers a gap or a duplicate with an ack of what it holds and stores nothing', () => {
    const facts = factsOf(standardFacts())
    const ready = readyHub(facts)
    for (const [from, to] of [
      [5, 7],
      [2, 4],
    ] as const) {
      const { state, effects } = stepHubSession(
        ready,
        {
          type: 'message',
          now: 5,
          message: { type: 'changes', space, from, to, batch: run(alice, from, to) },
        },
        facts,
      )
      expect(effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 4 } }])
      expect(state).toBe(ready)
    }
  })

  it('continues from what the store holds when another hub stored more of the replica than this session took in', () => {
    const data = standardFacts()
    const facts = factsOf(data)
    const ready = readyHub(facts)
    // The replica's changes 5…7 were stored through another hub sharing the store (its
    // previous connection went there), and it was acknowledged up to 7 by it.
    ;(data.received[space] as Record<string, number>).alice = 7
    const { effects } = stepHubSession(
      ready,
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 7, to: 9, batch: run(alice, 7, 9) },
      },
      facts,
    )
    expect(effects).toEqual([{ type: 'store', space, replicaId: alice, changes: run(alice, 7, 9) }])
    // A batch past a real gap is answered with that position, which the session now takes from.
    const gap = stepHubSession(
      ready,
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 8, to: 9, batch: run(alice, 8, 9) },
      },
      facts,
    )
    expect(gap.effects).toEqual([{ type: 'send', message: { type: 'ack', space, upTo: 7 } }])
    expect(gap.state.streams[space]?.accepting).toBe(7)
  })

  it('says a failed append failed, and takes a retransmission again', () => {
    const facts = factsOf(standardFacts())
    const message: Message = { type: 'changes', space, from: 4, to: 6, batch: run(alice, 4, 6) }
    const taken = stepHubSession(readyHub(facts), { type: 'message', now: 5, message }, facts)
    const failed = stepHubSession(taken.state, { type: 'stored', now: 6, space, ok: false }, facts)
    expect(failed.effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'error',
          code: ErrorCode.StorageFailed,
          space,
          message: 'the relay’s storage failed to store them; send them again',
        },
      },
      { type: 'send', message: { type: 'ack', space, upTo: 4 } },
    ])
    expect(stepHubSession(failed.state, { type: 'message', now: 7, message }, facts).effects).toEqual([
      { type: 'store', space, replicaId: alice, changes: run(alice, 4, 6) },
    ])
  })

  it.each([
    ['a change of another replica', [change(alice, 5), change(bob, 6)]],
    ['counters out of order', [change(alice, 6), change(alice, 5)]],
    ['a counter skipped', [change(alice, 5), change(alice, 7)]],
  ])('closes with replica-mismatch on a batch with %s', (_, batch) => {
    const facts = factsOf(standardFacts())
    const { state, effects } = stepHubSession(
      readyHub(facts),
      { type: 'message', now: 5, message: { type: 'changes', space, from: 4, to: 6, batch } },
      facts,
    )
    expect(effects).toHaveLength(1)
    expect(effects[0]).toMatchObject({ type: 'close', code: ErrorCode.ReplicaMismatch })
    expect(state.phase).toBe('closed')
  })

  it('stores a sparse batch with `through`, so the counters it lacks count as received', () => {
    const facts = factsOf(standardFacts())
    const batch = [change(alice, 3), change(alice, 6), change(alice, 9)]
    const taken = stepHubSession(
      sparseReadyHub(facts),
      { type: 'message', now: 5, message: { type: 'changes', space, from: 2, to: 10, batch, sparse: true } },
      facts,
    )
    // Counter 3 is held already (received 4): only 6 and 9 are new.
    expect(taken.effects).toEqual([
      { type: 'store', space, replicaId: alice, changes: [change(alice, 6), change(alice, 9)], through: 10 },
    ])
    expect(taken.state.streams[space]?.accepting).toBe(10)
    const empty = stepHubSession(
      sparseReadyHub(facts),
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 4, to: 8, batch: [], sparse: true },
      },
      facts,
    )
    expect(empty.effects).toEqual([{ type: 'store', space, replicaId: alice, changes: [], through: 8 }])
  })

  it.each([
    ['a change of another replica', [change(alice, 5), change(bob, 6)]],
    ['counters out of order', [change(alice, 7), change(alice, 5)]],
    ['a counter repeated', [change(alice, 5), change(alice, 5)]],
    ['a counter past to', [change(alice, 5), change(alice, 9)]],
    ['a counter at from', [change(alice, 4), change(alice, 5)]],
  ])('closes with replica-mismatch on a sparse batch with %s', (_, batch) => {
    const facts = factsOf(standardFacts())
    const { state, effects } = stepHubSession(
      sparseReadyHub(facts),
      { type: 'message', now: 5, message: { type: 'changes', space, from: 4, to: 8, batch, sparse: true } },
      facts,
    )
    expect(effects).toMatchObject([{ type: 'close', code: ErrorCode.ReplicaMismatch }])
    expect(state.phase).toBe('closed')
  })

  it('closes with invalid-message on a sparse batch from a replica that did not offer sparse', () => {
    const facts = factsOf(standardFacts())
    const { effects } = stepHubSession(
      readyHub(facts),
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 4, to: 8, batch: [], sparse: true },
      },
      facts,
    )
    expect(effects).toMatchObject([{ type: 'close', code: ErrorCode.InvalidMessage }])
  })

  it('closes with invalid-message when a batch does not fill from+1…to', () => {
    const facts = factsOf(standardFacts())
    const { effects } = stepHubSession(
      readyHub(facts),
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 4, to: 7, batch: run(alice, 4, 6) },
      },
      facts,
    )
    expect(effects).toMatchObject([{ type: 'close', code: ErrorCode.InvalidMessage }])
  })

  it('names in its hello answer the spaces a connection may only read', () => {
    const facts = factsOf(standardFacts())
    const answer = (result: AuthResult) =>
      hubSteps(facts, [
        { type: 'message', now: 0, message: replicaHello(7, [space, otherSpace]) },
        { type: 'authenticated', now: 1, result },
      ]).effects.find((effect) => effect.type === 'send' && effect.message.type === 'hello')
    const mixed: AuthResult = { ok: true, access: (at) => (at === otherSpace ? 'read' : 'write') }
    expect(answer(mixed)).toMatchObject({ message: { readOnly: [otherSpace] } })
    expect(answer(writeAccess)).not.toHaveProperty('message.readOnly')
  })

  it('refuses changes from a read-only connection and stores nothing', () => {
    const facts = factsOf(standardFacts())
    const ready = readyHub(facts, readAccess)
    const { state, effects } = stepHubSession(
      ready,
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space, from: 4, to: 5, batch: run(alice, 4, 5) },
      },
      facts,
    )
    expect(effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'error',
          code: ErrorCode.Forbidden,
          message: `read-only access to space ${space}`,
          space,
        },
      },
    ])
    expect(state).toBe(ready)
  })

  it('refuses changes for a space the hello did not name', () => {
    const facts = factsOf(standardFacts())
    const { effects } = stepHubSession(
      readyHub(facts),
      {
        type: 'message',
        now: 5,
        message: { type: 'changes', space: otherSpace, from: 0, to: 1, batch: run(alice, 0, 1) },
      },
      facts,
    )
    expect(effects).toMatchObject([
      { type: 'send', message: { type: 'error', code: ErrorCode.UnknownSpace } },
    ])
  })
})

describe('hub session: streaming the log to the replica', () => {
  const entries = (from: number, to: number, replica: (seq: number) => ReplicaId) =>
    Array.from({ length: to - from }, (_, i) => ({
      seq: from + i + 1,
      change: change(replica(from + i + 1), from + i + 1),
    }))

  it('sends log entries minus the replica’s own, and reads on within the window', () => {
    const facts = factsOf({ ...standardFacts(), head: { [space]: 20 } })
    const ready = readyHub(facts)
    const read = entries(7, 10, (seq) => (seq === 8 ? alice : bob))
    const { state, effects } = stepHubSession(
      ready,
      { type: 'log-read', now: 5, space, after: 7, entries: read },
      facts,
    )
    expect(effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'changes',
          space,
          from: 7,
          to: 10,
          batch: [read[1]?.change, read[2]?.change],
          head: 20,
        },
      },
      { type: 'read-log', space, after: 10, limit: 2 },
    ])
    expect(state.streams[space]).toMatchObject({ sent: 10, acked: 7, reading: true })
  })

  it('resumes after an ack and goes back to the last ack when the replica stays silent', () => {
    const facts = factsOf({ ...standardFacts(), head: { [space]: 20 } })
    const sent = hubSteps(
      facts,
      [
        { type: 'log-read', now: 5, space, after: 7, entries: entries(7, 10, () => bob) },
        { type: 'log-read', now: 6, space, after: 10, entries: entries(10, 12, () => bob) },
      ],
      readyHub(facts),
    )
    expect(sent.effects).toEqual([
      {
        type: 'send',
        message: {
          type: 'changes',
          space,
          from: 10,
          to: 12,
          batch: entries(10, 12, () => bob).map((e) => e.change),
          head: 20,
        },
      },
    ])
    expect(stepHubSession(sent.state, { type: 'tick', now: 1_004 }, facts).effects).toEqual([])
    const retry = stepHubSession(sent.state, { type: 'tick', now: 1_005 }, facts)
    expect(retry.effects).toEqual([{ type: 'read-log', space, after: 7, limit: 3 }])
    const acked = stepHubSession(
      sent.state,
      { type: 'message', now: 7, message: { type: 'ack', space, upTo: 12 } },
      facts,
    )
    expect(acked.effects).toEqual([{ type: 'read-log', space, after: 12, limit: 3 }])
    expect(acked.state.streams[space]).toMatchObject({ acked: 12, sent: 12 })
  })

  /** A session with a 1,000-byte `sendBuffer`, after the hello of a replica at `have`. */
  const boundedHub = (facts: HubFacts, have: number) =>
    hubSteps(
      facts,
      [
        { type: 'message', now: 0, message: replicaHello(have) },
        { type: 'authenticated', now: 1, result: writeAccess },
      ],
      initialHubSession({ ...hubConfig, sendBuffer: 1_000 }),
    )

  it('reads nothing more while the transport holds sendBuffer bytes, and goes on when it is writable', () => {
    let backlog = 0
    const facts: HubFacts = { ...factsOf(standardFacts()), backlog: () => backlog }
    const ready = boundedHub(facts, 0).state
    // The first page went out and filled the transport: the next is not read.
    backlog = 1_000
    const first = stepHubSession(
      ready,
      { type: 'snapshot-read', now: 5, space, page: 0, changes: [change(bob, 1)], nextKey: 'k1' },
      facts,
    )
    expect(first.effects).toEqual([
      {
        type: 'send',
        message: { type: 'snapshot', space, cursor: 10, page: 0, last: false, batch: [change(bob, 1)] },
      },
    ])
    expect(first.state.streams[space]).toMatchObject({ reading: false })
    // Nor on a tick, nor when told of new entries, while it stays full.
    expect(stepHubSession(first.state, { type: 'tick', now: 6 }, facts).effects).toEqual([])
    expect(stepHubSession(first.state, { type: 'head-advanced', now: 6, space }, facts).effects).toEqual([])
    backlog = 999
    const resumed = stepHubSession(first.state, { type: 'writable', now: 7 }, facts)
    expect(resumed.effects).toEqual([
      { type: 'read-snapshot', space, page: 1, afterKey: 'k1', limit: 2, cursor: 10 },
    ])
  })

  it('holds the log stream too while the transport is full', () => {
    let backlog = 5_000
    const facts: HubFacts = {
      ...factsOf({ ...standardFacts(), head: { [space]: 20 } }),
      backlog: () => backlog,
    }
    const ready = boundedHub(facts, 7)
    expect(ready.effects.filter((effect) => effect.type === 'read-log')).toEqual([])
    backlog = 0
    expect(stepHubSession(ready.state, { type: 'writable', now: 2 }, facts).effects).toEqual([
      { type: 'read-log', space, after: 7, limit: 3 },
    ])
  })

  it('streams a snapshot page by page, then continues from its cursor', () => {
    const facts = factsOf(standardFacts())
    const ready = readyHub(facts, writeAccess, 0)
    const first = stepHubSession(
      ready,
      { type: 'snapshot-read', now: 5, space, page: 0, changes: [change(bob, 1)], nextKey: 'k1' },
      facts,
    )
    expect(first.effects).toEqual([
      {
        type: 'send',
        message: { type: 'snapshot', space, cursor: 10, page: 0, last: false, batch: [change(bob, 1)] },
      },
      { type: 'read-snapshot', space, page: 1, afterKey: 'k1', limit: 2, cursor: 10 },
    ])
    const last = stepHubSession(
      first.state,
      { type: 'snapshot-read', now: 6, space, page: 1, changes: [change(bob, 2)], nextKey: null },
      facts,
    )
    expect(last.effects).toEqual([
      {
        type: 'send',
        message: { type: 'snapshot', space, cursor: 10, page: 1, last: true, batch: [change(bob, 2)] },
      },
    ])
    expect(last.state.streams[space]).toMatchObject({ sent: 10, snapshot: null })
  })

  it('does not send a snapshot again while its pages still wait in the transport; once written out, after retransmitMs', () => {
    let backlog = 0
    const facts: HubFacts = { ...factsOf(standardFacts()), backlog: () => backlog }
    const ready = readyHub(facts, writeAccess, 0)
    const first = stepHubSession(
      ready,
      { type: 'snapshot-read', now: 5, space, page: 0, changes: [change(bob, 1)], nextKey: 'k1' },
      facts,
    )
    const last = stepHubSession(
      first.state,
      { type: 'snapshot-read', now: 6, space, page: 1, changes: [change(bob, 2)], nextKey: null },
      facts,
    )
    // A slow reader: the pages are still in the transport long after retransmitMs.
    backlog = 50_000
    let state = last.state
    for (const now of [1_100, 2_200, 3_300]) {
      const ticked = stepHubSession(state, { type: 'tick', now }, facts)
      expect(ticked.effects).toEqual([])
      state = ticked.state
    }
    // Written out at last: no answer within retransmitMs from then, and the snapshot starts over.
    backlog = 0
    expect(stepHubSession(state, { type: 'tick', now: 4_000 }, facts).effects).toEqual([])
    const again = stepHubSession(state, { type: 'tick', now: 4_400 }, facts)
    expect(again.effects).toEqual([
      { type: 'read-snapshot', space, page: 0, afterKey: null, limit: 2, cursor: 10 },
    ])
  })

  it("names on the first page only the counters the hub had at the snapshot's start", () => {
    const data = standardFacts()
    const facts: HubFacts = {
      ...factsOf(data),
      receivedAll: (at) => ({ ...(data.received[at] ?? {}) }),
    }
    const ready = readyHub(facts, writeAccess, 0)
    // Appends land while the first page is read: the snapshot still names what it began at.
    data.head[space] = 12
    data.received[space] = { alice: 4, bob: 2 }
    const first = stepHubSession(
      ready,
      { type: 'snapshot-read', now: 5, space, page: 0, changes: [change(bob, 1)], nextKey: 'k1' },
      facts,
    )
    expect(first.effects[0]).toEqual({
      type: 'send',
      message: {
        type: 'snapshot',
        space,
        cursor: 10,
        page: 0,
        last: false,
        batch: [change(bob, 1)],
        received: { alice: 4 },
      },
    })
    const last = stepHubSession(
      first.state,
      { type: 'snapshot-read', now: 6, space, page: 1, changes: [change(bob, 2)], nextKey: null },
      facts,
    )
    expect(last.effects[0]).toMatchObject({ message: { page: 1, last: true } })
    expect(last.effects[0]).not.toHaveProperty('message.received')
    // A snapshot started over (the replica acknowledged none of it) takes the counters anew.
    const restarted = stepHubSession(last.state, { type: 'tick', now: 6 + hubConfig.retransmitMs }, facts)
    expect(restarted.state.streams[space]?.snapshot).toMatchObject({
      cursor: 12,
      received: { alice: 4, bob: 2 },
    })
  })

  it("fits the counters into the first page's bytes", () => {
    const data = standardFacts()
    const received = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`replica-${i}`, 1_000 + i]))
    const facts: HubFacts = { ...factsOf(data), receivedAll: () => received }
    const frameBytes = JSON.stringify(received).length + 400
    const config = { ...hubConfig, snapshotPage: 4, frameBytes }
    const ready = hubSteps(
      facts,
      [
        { type: 'message', now: 0, message: replicaHello(0) },
        { type: 'authenticated', now: 1, result: writeAccess },
      ],
      initialHubSession(config),
    ).state
    const changes = [1, 2, 3, 4].map((counter) => change(bob, counter))
    const page = (n: number) =>
      stepHubSession(ready, { type: 'snapshot-read', now: 5, space, page: n, changes, nextKey: null }, facts)
    const sent = (step: HubStep) =>
      (step.effects[0] as unknown as { message: { batch: unknown[] } }).message.batch.length
    // Without the counters, the same read fills a page of 400 bytes more.
    const withCounters = sent(page(0))
    const withoutThem = stepHubSession(
      hubSteps(
        factsOf(data),
        [
          { type: 'message', now: 0, message: replicaHello(0) },
          { type: 'authenticated', now: 1, result: writeAccess },
        ],
        initialHubSession({ ...config, frameBytes: 400 }),
      ).state,
      { type: 'snapshot-read', now: 5, space, page: 0, changes, nextKey: null },
      factsOf(data),
    )
    expect(withCounters).toBe(sent(withoutThem))
    expect(withCounters).toBeLessThan(changes.length)
  })

  it('switches a replica to a snapshot when the log it needs was compacted', () => {
    const facts = factsOf(standardFacts())
    const { state, effects } = stepHubSession(
      readyHub(facts),
      { type: 'log-compacted', now: 5, space },
      facts,
    )
    expect(effects).toEqual([{ type: 'read-snapshot', space, page: 0, afterKey: null, limit: 2, cursor: 10 }])
    expect(state.streams[space]).toMatchObject({ sent: 0, acked: 0, reading: true })
  })
})

// ---------------------------------------------------------------------------------------------
// Purity

const codes = [ErrorCode.HelloRequired, ErrorCode.Unauthenticated, ErrorCode.RateLimited, ErrorCode.Internal]
const small = fc.integer({ min: 0, max: 12 })
const spaceArb = fc.constantFrom(space, otherSpace)

const replicaInputArb: fc.Arbitrary<ReplicaSessionInput> = fc.oneof(
  fc.record({ type: fc.constant('connected' as const), now: small }),
  fc.record({ type: fc.constant('disconnected' as const), now: small }),
  fc.record({ type: fc.constant('tick' as const), now: fc.integer({ min: 0, max: 5_000 }) }),
  fc.record({ type: fc.constant('local-write' as const), now: small, counter: small }),
  fc
    .record({ now: small, after: small, count: fc.integer({ min: 0, max: 3 }) })
    .map(({ now, after, count }) => ({
      type: 'outbox-read' as const,
      now,
      after,
      changes: run(alice, after, after + count),
    })),
  fc.record({ type: fc.constant('applied' as const), now: small, cursor: fc.option(small, { nil: null }) }),
  fc.record({ type: fc.constant('apply-failed' as const), now: small }),
  fc.record({ type: fc.constant('outbox-failed' as const), now: small }),
  fc
    .record({ now: small, have: small })
    .map(({ now, have }) => ({ type: 'message' as const, now, message: hubHello(have) })),
  fc.record({ now: small, at: spaceArb, upTo: small }).map(({ now, at, upTo }) => ({
    type: 'message' as const,
    now,
    message: { type: 'ack' as const, space: at, upTo },
  })),
  fc.record({ now: small, at: spaceArb, from: small, to: small }).map(({ now, at, from, to }) => ({
    type: 'message' as const,
    now,
    message: { type: 'changes' as const, space: at, from, to, batch: [] },
  })),
  fc
    .record({ now: small, page: fc.integer({ min: 0, max: 2 }), last: fc.boolean() })
    .map(({ now, page, last }) => ({
      type: 'message' as const,
      now,
      message: { type: 'snapshot' as const, space, cursor: 9, page, last, batch: [] },
    })),
  fc.record({ now: small, code: fc.constantFrom(...codes) }).map(({ now, code }) => ({
    type: 'message' as const,
    now,
    message: { type: 'error' as const, code, message: 'e' },
  })),
)

const hubInputArb: fc.Arbitrary<HubSessionInput> = fc.oneof(
  fc
    .record({ now: small, have: small })
    .map(({ now, have }) => ({ type: 'message' as const, now, message: replicaHello(have) })),
  fc
    .record({
      now: small,
      result: fc.constantFrom<AuthResult>(
        writeAccess,
        readAccess,
        { ...writeAccess, expiresAt: 6 },
        {
          ok: false,
          code: ErrorCode.Unauthenticated,
          message: 'no',
        },
      ),
    })
    .map(({ now, result }) => ({ type: 'authenticated' as const, now, result })),
  fc
    .record({ now: small, from: small, count: fc.integer({ min: 0, max: 3 }), honest: fc.boolean() })
    .map(({ now, from, count, honest }) => ({
      type: 'message' as const,
      now,
      message: {
        type: 'changes' as const,
        space,
        from,
        to: from + count,
        batch: run(honest ? alice : bob, from, from + count),
      },
    })),
  fc.record({ now: small, at: spaceArb, upTo: small }).map(({ now, at, upTo }) => ({
    type: 'message' as const,
    now,
    message: { type: 'ack' as const, space: at, upTo },
  })),
  fc.record({ type: fc.constant('stored' as const), now: small, space: spaceArb, ok: fc.boolean() }),
  fc
    .record({ now: small, after: small, count: fc.integer({ min: 0, max: 3 }) })
    .map(({ now, after, count }) => ({
      type: 'log-read' as const,
      now,
      space,
      after,
      entries: Array.from({ length: count }, (_, i) => ({
        seq: after + i + 1,
        change: change(i % 2 === 0 ? bob : alice, after + i + 1),
      })),
    })),
  fc
    .record({ now: small, page: fc.integer({ min: 0, max: 2 }), last: fc.boolean() })
    .map(({ now, page, last }) => ({
      type: 'snapshot-read' as const,
      now,
      space,
      page,
      changes: [change(bob, 1)],
      nextKey: last ? null : `k${page}`,
    })),
  fc.record({ type: fc.constant('head-advanced' as const), now: small, space: spaceArb }),
  fc.record({ type: fc.constant('read-failed' as const), now: small, space: spaceArb }),
  fc.record({ type: fc.constant('log-compacted' as const), now: small, space: spaceArb }),
  fc.record({ type: fc.constant('tick' as const), now: fc.integer({ min: 0, max: 5_000 }) }),
  fc.record({ type: fc.constant('writable' as const), now: small }),
)

describe('session machines are pure', () => {
  it('the replica step gives the same result twice and never mutates its input', () => {
    fc.assert(
      fc.property(fc.array(replicaInputArb, { maxLength: 30 }), (inputs) => {
        let state = offlineReplica()
        for (const input of inputs) {
          const frozen = deepFreeze(structuredClone(state))
          const snapshot = structuredClone(frozen)
          const once = stepReplicaSession(frozen, deepFreeze(input))
          const twice = stepReplicaSession(frozen, input)
          expect(twice).toEqual(once)
          expect(frozen).toEqual(snapshot)
          state = once.state
        }
      }),
      { seed, numRuns: 200 },
    )
  })

  it('the hub step gives the same result twice and never mutates its input', () => {
    const facts = factsOf({
      head: { [space]: 10 },
      floor: { [space]: 2 },
      received: { [space]: { alice: 4 } },
    })
    fc.assert(
      fc.property(fc.array(hubInputArb, { maxLength: 30 }), (inputs) => {
        let state = initialHubSession(hubConfig)
        for (const input of inputs) {
          const frozen = deepFreeze(structuredClone(state))
          const snapshot = structuredClone(frozen)
          const once = stepHubSession(frozen, deepFreeze(input), facts)
          const twice = stepHubSession(frozen, input, facts)
          expect(twice).toEqual(once)
          expect(frozen).toEqual(snapshot)
          for (const stream of Object.values(once.state.streams))
            expect(stream.acked).toBeLessThanOrEqual(stream.sent)
          state = once.state
        }
      }),
      { seed, numRuns: 200 },
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Asking where the hub's log ends (`ping`)

describe('replica session: asking the hub where its log ends', () => {
  const pingConfig: ReplicaSessionConfig = { ...replicaConfig, features: [Feature.Ping] }
  const pingHub = (head: number): HelloMessage => ({
    ...hubHello(2),
    heads: { [space]: head },
    features: [Feature.Ping],
  })
  /** Greeted by a hub that speaks `ping`, its head 3: caught up, everything own acknowledged. */
  const synced = (): ReplicaSessionState =>
    stepAll(initialReplicaSession(pingConfig, { cursor: 3, acked: 2, local: 2 }), [
      { type: 'connected', now: 0 },
      { type: 'message', now: 10, message: pingHub(3) },
    ]).state
  /** `state` given the hub's pong `id` naming `head`, at `now`. */
  const pong = (state: ReplicaSessionState, id: number, head: number, now: number) =>
    stepReplicaSession(state, { type: 'message', now, message: { type: 'pong', space, id, head } })
  const pings = (effects: ReplicaStep['effects']) =>
    effects.flatMap((effect) =>
      effect.type === 'send' && effect.message.type === 'ping' ? [effect.message] : [],
    )

  it('pings once ready, and is synced again only once it has applied the head the pong names', () => {
    const ready = synced()
    expect(isReplicaSynced(ready)).toBe(true)
    const asked = stepReplicaSession(ready, { type: 'ping', now: 20 })
    expect(pings(asked.effects)).toEqual([{ type: 'ping', space, id: 1 }])
    expect(asked.state).toMatchObject({ syncAsked: 1, syncAnswered: 0 })
    const answered = pong(asked.state, 1, 5, 30).state
    expect(answered).toMatchObject({ syncAnswered: 1, hubHead: 5 })
    expect(isReplicaSynced(answered)).toBe(false)
    const applied = stepAll(answered, [
      {
        type: 'message',
        now: 31,
        message: { type: 'changes', space, from: 3, to: 5, batch: run(bob, 0, 2) },
      },
      { type: 'applied', now: 32, cursor: 5 },
    ]).state
    expect(isReplicaSynced(applied)).toBe(true)
  })

  it('asks while connecting go out as one ping after the hub’s hello', () => {
    const connecting = stepReplicaSession(
      initialReplicaSession(pingConfig, { cursor: 3, acked: 2, local: 2 }),
      {
        type: 'connected',
        now: 0,
      },
    ).state
    const asked = stepAll(connecting, [
      { type: 'ping', now: 1 },
      { type: 'ping', now: 2 },
    ])
    expect(pings(asked.effects)).toEqual([])
    const greeted = stepReplicaSession(asked.state, { type: 'message', now: 10, message: pingHub(3) })
    expect(pings(greeted.effects)).toEqual([{ type: 'ping', space, id: 1 }])
    const answered = pong(greeted.state, 1, 3, 20).state
    expect(answered).toMatchObject({ syncAsked: 2, syncAnswered: 2, pingAt: null })
  })

  it('awaits one ping at a time: asks made meanwhile go out in the next', () => {
    const first = stepAll(synced(), [
      { type: 'ping', now: 20 },
      { type: 'ping', now: 21 },
    ])
    expect(pings(first.effects)).toEqual([])
    expect(first.state).toMatchObject({ pingId: 1, pingCovers: 1, syncAsked: 2 })
    const next = pong(first.state, 1, 3, 30)
    expect(next.state.syncAnswered).toBe(1)
    expect(pings(next.effects)).toEqual([{ type: 'ping', space, id: 2 }])
  })

  it('asks again under a new id after retransmitMs unanswered, and ignores the late pong of the first', () => {
    const asked = stepReplicaSession(synced(), { type: 'ping', now: 20 }).state
    const early = stepReplicaSession(asked, { type: 'tick', now: 20 + replicaConfig.retransmitMs - 1 })
    expect(pings(early.effects)).toEqual([])
    const again = stepReplicaSession(early.state, { type: 'tick', now: 20 + replicaConfig.retransmitMs })
    expect(pings(again.effects)).toEqual([{ type: 'ping', space, id: 2 }])
    const late = pong(again.state, 1, 40, 1_100).state
    expect(late).toMatchObject({ syncAnswered: 0, hubHead: 3 })
  })

  it('ignores a pong of a ping sent on an earlier connection, and asks again on the new one', () => {
    const asked = stepReplicaSession(synced(), { type: 'ping', now: 20 }).state
    const reconnected = stepAll(asked, [
      { type: 'disconnected', now: 30 },
      { type: 'connected', now: 40 },
    ]).state
    const stale = pong(reconnected, 1, 40, 41).state
    expect(stale).toMatchObject({ syncAnswered: 0, hubHead: 3 })
    const greeted = stepReplicaSession(stale, { type: 'message', now: 50, message: pingHub(4) })
    expect(pings(greeted.effects)).toEqual([{ type: 'ping', space, id: 2 }])
  })

  it('counts asks as answered by a hub that does not speak ping (it says no more than it reported)', () => {
    const old = stepAll(initialReplicaSession(pingConfig, { cursor: 3, acked: 2, local: 2 }), [
      { type: 'connected', now: 0 },
      { type: 'ping', now: 1 },
      { type: 'message', now: 10, message: { ...hubHello(2), heads: { [space]: 3 } } },
    ])
    expect(pings(old.effects)).toEqual([])
    expect(old.state).toMatchObject({ ping: false, syncAsked: 1, syncAnswered: 1 })
    const later = stepReplicaSession(old.state, { type: 'ping', now: 20 })
    expect(pings(later.effects)).toEqual([])
    expect(later.state.syncAnswered).toBe(2)
  })
})

describe('hub session: ping', () => {
  const pingHello = (): HelloMessage => ({ ...replicaHello(10), features: [Feature.Ping] })
  const ready = (facts: HubFacts, hello: HelloMessage) =>
    hubSteps(facts, [
      { type: 'message', now: 0, message: hello },
      { type: 'authenticated', now: 1, result: writeAccess },
    ]).state

  it('asks the runtime to answer a ping (with the head it keeps, or the stored one)', () => {
    const facts = factsOf(standardFacts())
    const state = ready(facts, pingHello())
    const { effects } = stepHubSession(
      state,
      { type: 'message', now: 5, message: { type: 'ping', space, id: 7 } },
      facts,
    )
    expect(effects).toEqual([{ type: 'pong', space, id: 7 }])
  })

  it('offers ping in its hello answer to a replica that offers it', () => {
    const { effects } = hubSteps(factsOf(standardFacts()), [
      { type: 'message', now: 0, message: pingHello() },
      { type: 'authenticated', now: 1, result: writeAccess },
    ])
    expect(effects[0]).toMatchObject({ type: 'send', message: { type: 'hello', features: [Feature.Ping] } })
  })

  it.each<[string, HelloMessage, Message, ErrorCode]>([
    [
      'a session that did not negotiate ping',
      replicaHello(10),
      { type: 'ping', space, id: 1 },
      ErrorCode.InvalidMessage,
    ],
    [
      'a space the hello did not name',
      { ...replicaHello(10), features: [Feature.Ping] },
      { type: 'ping', space: otherSpace, id: 1 },
      ErrorCode.UnknownSpace,
    ],
    [
      'a pong from a replica',
      { ...replicaHello(10), features: [Feature.Ping] },
      { type: 'pong', space, id: 1, head: 3 },
      ErrorCode.InvalidMessage,
    ],
  ])('answers a ping or pong on %s with an error, and goes on', (_, hello, message, code) => {
    const facts = factsOf(standardFacts())
    const state = ready(facts, hello)
    const { state: after, effects } = stepHubSession(state, { type: 'message', now: 5, message }, facts)
    expect(effects).toMatchObject([{ type: 'send', message: { type: 'error', code } }])
    expect(after.phase).toBe('ready')
  })
})

describe('the resend feature: nothing again for silence, only when asked', () => {
  const entries = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => ({ seq: from + i + 1, change: change(bob, from + i + 1) }))
  const reliable = { ...hubConfig, reliable: true }
  /** A hub on a reliable transport after the hello of a replica at `have`, offering `features`. */
  const greeted = (
    facts: HubFacts,
    have: number,
    features: readonly Feature[],
    config: HubSessionConfig = reliable,
  ) =>
    hubSteps(
      facts,
      [
        { type: 'message', now: 0, message: { ...replicaHello(have), features } },
        { type: 'authenticated', now: 1, result: writeAccess },
      ],
      initialHubSession(config),
    )

  it('is answered only by a hub on a reliable transport', () => {
    const facts = factsOf(standardFacts())
    const answer = (config: HubSessionConfig) =>
      greeted(facts, 7, [Feature.Ping, Feature.Resend], config).effects.find(
        (effect) => effect.type === 'send' && effect.message.type === 'hello',
      )
    expect(answer(reliable)).toMatchObject({ message: { features: [Feature.Ping, Feature.Resend] } })
    expect(answer(hubConfig)).toMatchObject({ message: { features: [Feature.Ping] } })
  })

  it('hub: sends nothing again for silence, and again from where the replica asks', () => {
    const facts = factsOf({ ...standardFacts(), head: { [space]: 20 } })
    const sent = hubSteps(
      facts,
      [
        { type: 'log-read', now: 5, space, after: 7, entries: entries(7, 10) },
        { type: 'log-read', now: 6, space, after: 10, entries: entries(10, 12) },
      ],
      greeted(facts, 7, [Feature.Resend]).state,
    )
    // Without the feature this tick goes back to 7 (see above); here the frames are on their way.
    expect(stepHubSession(sent.state, { type: 'tick', now: 60_000 }, facts).effects).toEqual([])
    // The replica stored 8 and could not take what followed: from its position, at once.
    const asked = stepHubSession(
      sent.state,
      { type: 'message', now: 7, message: { type: 'ack', space, upTo: 8, resend: true } },
      facts,
    )
    expect(asked.effects).toEqual([{ type: 'read-log', space, after: 8, limit: 3 }])
    expect(asked.state.streams[space]).toMatchObject({ acked: 8, sent: 8 })
  })

  it('hub: starts a snapshot over from its first page when the replica asks from inside it', () => {
    const facts = factsOf(standardFacts())
    const ready = greeted(facts, 0, [Feature.Resend]).state
    const first = stepHubSession(
      ready,
      { type: 'snapshot-read', now: 5, space, page: 0, changes: [change(bob, 1)], nextKey: 'k1' },
      facts,
    )
    expect(first.state.streams[space]?.snapshot).toMatchObject({ page: 1 })
    const asked = stepHubSession(
      first.state,
      { type: 'message', now: 6, message: { type: 'ack', space, upTo: 0, resend: true } },
      facts,
    )
    expect(asked.effects).toEqual([
      { type: 'read-snapshot', space, page: 0, afterKey: null, limit: 2, cursor: 10 },
    ])
  })

  it('hub: does not take a page read for the snapshot before it started over at a later position', () => {
    const data = standardFacts()
    const facts = factsOf(data)
    const ready = greeted(facts, 0, [Feature.Resend]).state
    // Page 0 of the snapshot at 10 is being read when the replica asks; meanwhile the log grew.
    data.head[space] = 12
    const asked = stepHubSession(
      ready,
      { type: 'message', now: 5, message: { type: 'ack', space, upTo: 0, resend: true } },
      facts,
    )
    expect(asked.effects).toEqual([
      { type: 'read-snapshot', space, page: 0, afterKey: null, limit: 2, cursor: 12 },
    ])
    // The first read's page, read before position 12 existed, is not sent as the new one's.
    const stale = stepHubSession(
      asked.state,
      { type: 'snapshot-read', now: 6, space, page: 0, cursor: 10, changes: [change(bob, 1)], nextKey: null },
      facts,
    )
    expect(stale.effects.filter((effect) => effect.type === 'send')).toEqual([])
    const fresh = stepHubSession(
      stale.state,
      { type: 'snapshot-read', now: 7, space, page: 0, cursor: 12, changes: [change(bob, 2)], nextKey: null },
      facts,
    )
    expect(fresh.effects[0]).toMatchObject({
      type: 'send',
      message: { type: 'snapshot', cursor: 12, last: true },
    })
  })

  it('hub: takes resend from a replica that did not negotiate it as a plain ack', () => {
    const facts = factsOf({ ...standardFacts(), head: { [space]: 20 } })
    const sent = hubSteps(
      facts,
      [{ type: 'log-read', now: 5, space, after: 7, entries: entries(7, 10) }],
      greeted(facts, 7, []).state,
    )
    const acked = stepHubSession(
      sent.state,
      { type: 'message', now: 6, message: { type: 'ack', space, upTo: 8, resend: true } },
      facts,
    )
    expect(acked.state.streams[space]).toMatchObject({ acked: 8, sent: 10 })
  })

  /** A replica that offered `resend` (or not), greeted by a hub that answered the same. */
  const resendReplica = (negotiated: boolean) =>
    stepAll(offlineReplica({ ...replicaConfig, features: negotiated ? [Feature.Resend] : [] }), [
      { type: 'connected', now: 0 },
      { type: 'message', now: 10, message: { ...hubHello(5), features: negotiated ? [Feature.Resend] : [] } },
      { type: 'outbox-read', now: 11, after: 5, changes: run(alice, 5, 7) },
      { type: 'outbox-read', now: 12, after: 7, changes: run(alice, 7, 8) },
    ]).state

  it('replica: sends nothing again for silence', () => {
    const sent = resendReplica(true)
    expect(sent).toMatchObject({ resend: true, sent: 8, acked: 5 })
    const { state, effects } = stepReplicaSession(sent, { type: 'tick', now: 60_000 })
    expect(effects).toEqual([])
    expect(state.sent).toBe(8)
  })

  it('replica: asks again each retransmit period until something the hub sends is stored, not at every failure', () => {
    const batch = (from: number): Message => ({
      type: 'changes',
      space,
      from,
      to: from + 3,
      batch: run(bob, from, from + 3),
    })
    const ask = { type: 'send', message: { type: 'ack', space, upTo: 3, resend: true } }
    const first = stepAll(resendReplica(true), [
      { type: 'message', now: 20, message: batch(3) },
      { type: 'apply-failed', now: 21 },
    ])
    expect(first.effects).toEqual([ask])
    // The hub sent again at once; the storage fails again: no second ask within the period.
    const second = stepAll(first.state, [
      { type: 'message', now: 30, message: batch(3) },
      { type: 'apply-failed', now: 31 },
    ])
    expect(second.effects).toEqual([])
    // Nothing stored a period after the ask (it was dropped, or the storage still fails): again.
    const retried = stepReplicaSession(second.state, { type: 'tick', now: 21 + replicaConfig.retransmitMs })
    expect(retried.effects).toEqual([ask])
    // Stored at last: no more asks.
    const stored = stepAll(retried.state, [
      { type: 'message', now: 1_100, message: batch(3) },
      { type: 'applied', now: 1_101, cursor: 6 },
    ]).state
    expect(stored.asked).toBeNull()
    expect(
      stepReplicaSession(stored, { type: 'tick', now: 1_101 + 5 * replicaConfig.retransmitMs }).effects,
    ).toEqual([])
  })

  it('replica: asks the hub to send again from its position when an apply failed', () => {
    const message: Message = { type: 'changes', space, from: 3, to: 6, batch: run(bob, 0, 3) }
    for (const negotiated of [true, false]) {
      const pending = stepReplicaSession(resendReplica(negotiated), {
        type: 'message',
        now: 20,
        message,
      }).state
      const failed = stepReplicaSession(pending, { type: 'apply-failed', now: 21 })
      expect(failed.effects).toEqual(
        negotiated ? [{ type: 'send', message: { type: 'ack', space, upTo: 3, resend: true } }] : [],
      )
      expect(failed.state.applyingTo).toBe(3)
    }
  })

  it('replica: sends its own again a retransmit period after the hub could not store them', () => {
    const sent = resendReplica(true)
    const refused = stepReplicaSession(sent, {
      type: 'message',
      now: 100,
      message: { type: 'error', code: ErrorCode.StorageFailed, message: 'the disk is full' },
    })
    expect(
      stepReplicaSession(refused.state, { type: 'tick', now: 100 + replicaConfig.retransmitMs - 1 }).effects,
    ).toEqual([])
    const again = stepReplicaSession(refused.state, { type: 'tick', now: 100 + replicaConfig.retransmitMs })
    expect(again.effects).toEqual([
      { type: 'send', message: { type: 'ack', space, upTo: 3 } },
      { type: 'read-outbox', after: 5, limit: 2 },
    ])
    expect(again.state).toMatchObject({ sent: 5, refused: { at: 100, sent: 8 } })
  })

  it('replica: after rate-limited with nothing of its own unacknowledged, says its position again', () => {
    // Downloading only: the frames the limiter dropped were its acks, which the hub waits for.
    const reader = stepAll(offlineReplica({ ...replicaConfig, features: [Feature.Resend] }), [
      { type: 'connected', now: 0 },
      { type: 'message', now: 10, message: { ...hubHello(8), features: [Feature.Resend] } },
      { type: 'outbox-read', now: 11, after: 8, changes: [] },
    ]).state
    expect(reader).toMatchObject({ sent: 8, acked: 8, cursor: 3 })
    const limited = stepReplicaSession(reader, {
      type: 'message',
      now: 100,
      message: { type: 'error', code: ErrorCode.RateLimited, message: 'too many frames' },
    })
    // Not at the next tick (an ack more would take a token the limiter may lack), but a
    // retransmit period later, and each period after that.
    const ack = { type: 'send', message: { type: 'ack', space, upTo: 3 } }
    const next = stepReplicaSession(limited.state, { type: 'tick', now: 150 })
    expect(next.effects).toEqual([])
    const later = stepReplicaSession(next.state, { type: 'tick', now: 150 + replicaConfig.retransmitMs })
    expect(later.effects).toEqual([ack])
    const again = stepReplicaSession(later.state, { type: 'tick', now: 150 + 2 * replicaConfig.retransmitMs })
    expect(again.effects).toEqual([ack])
  })

  it('replica: after rate-limited, sends again at the next tick, and again while the hub takes nothing', () => {
    const sent = resendReplica(true)
    const dropped = stepReplicaSession(sent, {
      type: 'message',
      now: 100,
      message: { type: 'error', code: ErrorCode.RateLimited, message: 'too many frames' },
    })
    const next = stepReplicaSession(dropped.state, { type: 'tick', now: 150 })
    expect(next.effects).toEqual([{ type: 'read-outbox', after: 5, limit: 2 }])
    const read = stepAll(next.state, [
      { type: 'outbox-read', now: 151, after: 5, changes: run(alice, 5, 7) },
      { type: 'outbox-read', now: 152, after: 7, changes: run(alice, 7, 8) },
    ]).state
    // Those were dropped too, and the limiter said nothing more: a retransmit period later, again.
    // (The first of them went out at 151, from nothing unacknowledged: progress.)
    const quiet = stepReplicaSession(read, { type: 'tick', now: 151 + replicaConfig.retransmitMs - 1 })
    expect(quiet.effects).toEqual([])
    const again = stepReplicaSession(read, { type: 'tick', now: 151 + replicaConfig.retransmitMs })
    expect(again.effects).toEqual([
      { type: 'send', message: { type: 'ack', space, upTo: 3 } },
      { type: 'read-outbox', after: 5, limit: 2 },
    ])
    // The hub acknowledges everything sent: the refusal is over, and silence sends nothing again.
    const acked = stepReplicaSession(read, {
      type: 'message',
      now: 200,
      message: { type: 'ack', space, upTo: 8 },
    })
    expect(acked.state.refused).toBeNull()
    expect(stepReplicaSession(acked.state, { type: 'tick', now: 60_000 }).effects).toEqual([])
  })
})
