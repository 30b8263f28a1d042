import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { asRecordId, asReplicaId, asSpaceId, type ReplicaId } from '../src/ids.js'
import { framesToArray, NO_FRAMES_IN_FLIGHT } from '../src/protocol/frames-in-flight.js'
import {
  type HubFacts,
  type HubSessionConfig,
  type HubSessionInput,
  type HubSessionState,
  type HubStream,
  initialHubSession,
  MIN_REPLICA_READ_FRAME,
  stepHubSession,
} from '../src/protocol/hub-session.js'
import { Feature, type HelloMessage, PROTOCOL_VERSION } from '../src/protocol/messages.js'
import {
  DEFAULT_REPLICA_SESSION,
  initialReplicaSession,
  stepReplicaSession,
} from '../src/protocol/replica-session.js'
import { change, logEntries } from './log-fixtures.js'

const alice = asReplicaId('alice')
const bob = asReplicaId('bob')
const space = asSpaceId('team')

/** A space with log positions 1…head; every change "costs" 100 bytes. */
function facts(head: number, size?: (change: Change) => number): HubFacts {
  return {
    head: () => head,
    floor: () => 0,
    received: () => 0,
    ...(size === undefined ? {} : { size }),
  }
}

const config: HubSessionConfig = {
  batchSize: 3,
  window: 100,
  windowBytes: 500,
  snapshotPage: 2,
  retransmitMs: 1000,
}

function hello(features?: HelloMessage['features']): HelloMessage {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: alice,
    spaces: [space],
    have: { [space]: 1 },
    ...(features === undefined ? {} : { features }),
  }
}

function run(hubFacts: HubFacts, inputs: readonly HubSessionInput[], state = initialHubSession(config)) {
  let current: { state: HubSessionState; effects: ReturnType<typeof stepHubSession>['effects'] } = {
    state,
    effects: [],
  }
  const effects = []
  for (const input of inputs) {
    current = stepHubSession(current.state, input, hubFacts)
    effects.push(...current.effects)
  }
  return { state: current.state, effects, last: current.effects }
}

function ready(hubFacts: HubFacts, features?: HelloMessage['features']) {
  return run(hubFacts, [
    { type: 'message', now: 0, message: hello(features) },
    { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
  ])
}

const entries = (after: number, count: number) => logEntries(bob, after, count)

describe('hub session: features', () => {
  it('answers a hello that offers compact with compact, and keeps it for the session', () => {
    const { state, effects } = ready(facts(1), [Feature.Compact])
    expect(effects[1]).toMatchObject({
      type: 'send',
      message: { type: 'hello', features: [Feature.Compact] },
    })
    expect(state.features).toEqual([Feature.Compact])
  })

  it('offers nothing to a peer that offered nothing, as protocol 1 always did', () => {
    const { state, effects } = ready(facts(1))
    expect(effects[1]).toMatchObject({ type: 'send', message: { type: 'hello' } })
    expect(effects[1]?.type === 'send' && 'features' in effects[1].message).toBe(false)
    expect(state.features).toEqual([])
  })

  it('renegotiates on a later hello of the same replica', () => {
    const { state } = ready(facts(1), [Feature.Compact])
    const again = stepHubSession(state, { type: 'message', now: 2, message: hello() }, facts(1))
    expect(again.state.features).toEqual([])
  })

  it('is offered by a replica with the engine defaults', () => {
    const replica = initialReplicaSession(
      { ...DEFAULT_REPLICA_SESSION, replicaId: alice, space },
      { cursor: 0, acked: 0, local: 0 },
    )
    const { effects } = stepReplicaSession(replica, { type: 'connected', now: 0 })
    expect(effects[0]).toMatchObject({
      type: 'send',
      message: {
        type: 'hello',
        features: [
          Feature.Compact,
          Feature.Sparse,
          Feature.Collect,
          Feature.Presence,
          Feature.Ping,
          Feature.Resume,
        ],
      },
    })
  })
})

describe('hub session: byte window', () => {
  const costly = facts(100, () => 100)

  it('stops reading once the estimated bytes in flight reach windowBytes', () => {
    const start = ready(costly)
    expect(start.last.at(-1)).toEqual({ type: 'read-log', space, after: 1, limit: 3 })
    const { state, effects } = run(
      costly,
      [
        { type: 'log-read', now: 2, space, after: 1, entries: entries(1, 3) },
        { type: 'log-read', now: 3, space, after: 4, entries: entries(4, 3) },
      ],
      start.state,
    )
    expect(effects.filter((effect) => effect.type === 'read-log')).toEqual([
      { type: 'read-log', space, after: 4, limit: 3 },
    ])
    expect(state.streams[space]).toMatchObject({ sent: 7, bytesInFlight: 600, reading: false })
    expect(framesToArray(state.streams[space]?.inFlight ?? NO_FRAMES_IN_FLIGHT)).toEqual([
      [4, 300],
      [7, 300],
    ])
  })

  it('releases what an ack covers and reads on', () => {
    const start = ready(costly)
    const { state, last } = run(
      costly,
      [
        { type: 'log-read', now: 2, space, after: 1, entries: entries(1, 3) },
        { type: 'log-read', now: 3, space, after: 4, entries: entries(4, 3) },
        { type: 'message', now: 4, message: { type: 'ack', space, upTo: 4 } },
      ],
      start.state,
    )
    expect(last).toEqual([{ type: 'read-log', space, after: 7, limit: 3 }])
    expect(state.streams[space]).toMatchObject({ acked: 4, bytesInFlight: 300 })
    expect(framesToArray(state.streams[space]?.inFlight ?? NO_FRAMES_IN_FLIGHT)).toEqual([[7, 300]])
  })

  it('does not count the receiver’s own changes, which are not sent', () => {
    const own = (after: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ seq: after + i + 1, change: change(alice, after + i + 1) }))
    const { state, effects } = run(
      costly,
      [
        { type: 'log-read', now: 2, space, after: 1, entries: own(1, 3) },
        { type: 'log-read', now: 3, space, after: 4, entries: own(4, 3) },
      ],
      ready(costly).state,
    )
    expect(state.streams[space]).toMatchObject({ sent: 7, bytesInFlight: 0 })
    expect(effects.at(-1)).toEqual({ type: 'read-log', space, after: 7, limit: 3 })
  })

  it('forgets what was in flight when it goes back to the last ack', () => {
    const { state } = run(
      costly,
      [
        { type: 'log-read', now: 2, space, after: 1, entries: entries(1, 3) },
        { type: 'log-read', now: 3, space, after: 4, entries: entries(4, 3) },
        { type: 'tick', now: 5000 },
      ],
      ready(costly).state,
    )
    expect(state.streams[space]).toMatchObject({ sent: 1, acked: 1, bytesInFlight: 0 })
    expect(state.streams[space]?.inFlight).toBe(NO_FRAMES_IN_FLIGHT)
  })

  it('counts positions only when the runtime gives no sizes', () => {
    const sizeless = facts(100)
    const { effects } = run(
      sizeless,
      [
        { type: 'log-read', now: 2, space, after: 1, entries: entries(1, 3) },
        { type: 'log-read', now: 3, space, after: 4, entries: entries(4, 3) },
      ],
      ready(sizeless).state,
    )
    expect(effects.at(-1)).toEqual({ type: 'read-log', space, after: 7, limit: 3 })
  })
})

describe('hub session: frame bytes', () => {
  const bounded: HubSessionConfig = { ...config, batchSize: 10, windowBytes: 10_000, frameBytes: 250 }
  const costly = facts(100, () => 100)
  /** A space whose log was compacted: a new replica is sent a snapshot. */
  const floorFacts: HubFacts = { ...facts(100, () => 100), floor: () => 50 }

  /** A session that has said hello with nothing and starts a snapshot of pages of 10 records. */
  function openSnapshot(overrides: Partial<HubSessionConfig> = {}) {
    return run(
      floorFacts,
      [
        { type: 'message', now: 0, message: { ...hello(), have: { [space]: 0 } } },
        { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
      ],
      initialHubSession({ ...bounded, snapshotPage: 10, ...overrides }),
    )
  }

  function changesSent(effects: ReturnType<typeof run>['effects']) {
    return effects.flatMap((effect) =>
      effect.type === 'send' && effect.message.type === 'changes' ? [effect.message] : [],
    )
  }

  it('cuts a read into frames of at most frameBytes, reading the rest again', () => {
    const start = ready(costly)
    const state = run(costly, [], initialHubSession(bounded)).state
    const opened = run(
      costly,
      [
        { type: 'message', now: 0, message: hello() },
        { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
      ],
      state,
    )
    expect(start.last.at(-1)).toMatchObject({ type: 'read-log' })
    const { effects, state: after } = run(
      costly,
      [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 5) }],
      opened.state,
    )
    const frames = changesSent(effects)
    expect(frames.map((frame) => [frame.from, frame.to, frame.batch.length])).toEqual([[1, 3, 2]])
    expect(after.streams[space]).toMatchObject({ sent: 3, bytesInFlight: 200 })
    expect(effects.at(-1)).toEqual({ type: 'read-log', space, after: 3, limit: 10 })
  })

  it('sizes its frames to a quarter of the frame a replica’s hello asks for, down to a floor', () => {
    // Changes of 6 KiB each, and the hub's own frames of 256 KiB.
    const large = facts(200, () => 6 * 1024)
    const own: HubSessionConfig = {
      ...config,
      batchSize: 100,
      windowBytes: 10_000_000,
      frameBytes: 256 * 1024,
    }
    const framed = (maxFrame?: number) => {
      const opened = run(
        large,
        [
          {
            type: 'message',
            now: 0,
            message: { ...hello(), ...(maxFrame === undefined ? {} : { maxFrame }) },
          },
          { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
        ],
        initialHubSession(own),
      )
      const { effects } = run(
        large,
        [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 100) }],
        opened.state,
      )
      return changesSent(effects)[0]?.batch.length
    }
    expect(framed()).toBe(42)
    expect(framed(512 * 1024)).toBe(21)
    expect(framed(128 * 1024)).toBe(5)
    // Asked for 16 KiB: frames of a quarter of 64 KiB, the floor, not of 4 KiB.
    expect(framed(MIN_REPLICA_READ_FRAME / 4)).toBe(2)
  })

  it('sends a change larger than frameBytes alone, and never an empty cut', () => {
    const huge = facts(100, (c) => (c.dot[1] === 2 ? 1_000 : 100))
    const opened = run(
      huge,
      [
        { type: 'message', now: 0, message: hello() },
        { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
      ],
      initialHubSession(bounded),
    )
    const first = run(
      huge,
      [{ type: 'log-read', now: 2, space, after: 1, entries: entries(1, 3) }],
      opened.state,
    )
    expect(changesSent(first.effects).map((frame) => [frame.from, frame.to])).toEqual([[1, 2]])
    const second = run(
      huge,
      [{ type: 'log-read', now: 3, space, after: 2, entries: entries(2, 3) }],
      first.state,
    )
    expect(changesSent(second.effects).map((frame) => [frame.from, frame.to, frame.batch.length])).toEqual([
      [2, 4, 2],
    ])
  })

  it('cuts a snapshot page at a record boundary within frameBytes, and goes on after it', () => {
    // Each version is reckoned at about 186 characters: r1's two fit, a third does not.
    const opened = openSnapshot({ frameBytes: 450 })
    const read = opened.last.at(-1)
    expect(read).toMatchObject({ type: 'read-snapshot', page: 0, afterKey: null })
    // Record r1 has two versions (siblings): they stay on one page.
    const versions: Change[] = [
      change(bob, 1),
      { ...change(alice, 9), id: asRecordId('r1') },
      change(bob, 2),
      change(bob, 3),
    ]
    const page = run(
      floorFacts,
      [{ type: 'snapshot-read', now: 2, space, page: 0, changes: versions, nextKey: 'notes\u0000r9' }],
      opened.state,
    )
    const sent = page.effects.flatMap((effect) =>
      effect.type === 'send' && effect.message.type === 'snapshot' ? [effect.message] : [],
    )
    expect(sent.map((message) => [message.page, message.last, message.batch.length])).toEqual([[0, false, 2]])
    expect(page.last.at(-1)).toEqual({
      type: 'read-snapshot',
      space,
      page: 1,
      afterKey: 'notes\u0000r1',
      limit: 10,
      cursor: 100,
    })
  })

  it('cuts a record between its versions when they alone pass frameBytes, sending each once', () => {
    const carol = asReplicaId('carol')
    // Record r1 has three versions of about 186 characters each; a 250-byte frame holds one.
    const r1 = (replica: ReplicaId, counter: number): Change => ({
      ...change(replica, counter),
      id: asRecordId('r1'),
    })
    const whole = [r1(bob, 1), r1(alice, 9), r1(carol, 4), change(bob, 2)]

    /** Streams a snapshot whose page `page` reads `stored(page)`: each page's afterKey and dots. */
    function pages(stored: (page: number) => Change[]) {
      const opened = openSnapshot()
      const sent: (readonly [string | null, boolean, string[]])[] = []
      let state = opened.state
      let read = opened.last.at(-1)
      for (let page = 0; read?.type === 'read-snapshot' && page < 10; page++) {
        const afterKey = read.afterKey
        // The store reads the records after afterKey.
        const after = stored(page).filter((c) => afterKey === null || `notes\u0000${c.id}` > afterKey)
        const step = run(
          floorFacts,
          [{ type: 'snapshot-read', now: 2 + page, space, page, changes: after, nextKey: null }],
          state,
        )
        for (const effect of step.effects) {
          if (effect.type === 'send' && effect.message.type === 'snapshot') {
            const { last, batch } = effect.message
            sent.push([afterKey, last, batch.map((c) => c.dot.join(':'))])
          }
        }
        state = step.state
        read = step.last.at(-1)
      }
      return sent
    }

    // Cut twice inside r1 (read again from the same key), then at its end.
    expect(pages(() => whole)).toEqual([
      [null, false, ['bob:1']],
      [null, false, ['alice:9']],
      [null, false, ['carol:4']],
      ['notes\u0000r1', true, ['bob:2']],
    ])
    // Carol's version is superseded between the second read and the third: what is left of
    // the record is sent, and nothing twice.
    const later = whole.filter((c) => c.dot[0] !== carol)
    expect(pages((page) => (page < 2 ? whole : later))).toEqual([
      [null, false, ['bob:1']],
      [null, false, ['alice:9']],
      [null, true, ['bob:2']],
    ])
  })

  it('sizes snapshot pages by their text with escapes: control characters take six', () => {
    const opened = openSnapshot({ frameBytes: 4_000 })
    // Ten records of 300 control characters: 300 counted, 1,800 as JSON.
    const escaped = Array.from({ length: 10 }, (_, i) => ({
      ...change(bob, i + 1),
      op: { type: 'put' as const, value: { text: '\u0001'.repeat(300) } },
    }))
    const page = run(
      floorFacts,
      [{ type: 'snapshot-read', now: 2, space, page: 0, changes: escaped, nextKey: null }],
      opened.state,
    )
    const sent = page.effects.flatMap((effect) =>
      effect.type === 'send' && effect.message.type === 'snapshot' ? [effect.message] : [],
    )
    expect(sent).toHaveLength(1)
    const batch = sent[0]?.batch ?? []
    // Counting characters alone would have sent all ten, 19 KB of JSON in a 4 KB frame.
    expect(batch.length).toBe(2)
    expect(JSON.stringify(batch).length).toBeLessThanOrEqual(4_000)
  })
})

describe('hub session: resuming a snapshot', () => {
  const after = 'notes\u0000n-17'
  /** Log positions 1…50 of log `log-1`, compacted up to `floor`. */
  const logFacts = (floor = 10): HubFacts => ({
    head: () => 50,
    floor: () => floor,
    received: () => 0,
    log: () => 'log-1',
  })
  const resuming = (
    resume: HelloMessage['resume'],
    options: { features?: HelloMessage['features']; have?: number; log?: string; floor?: number } = {},
  ) =>
    run(logFacts(options.floor), [
      {
        type: 'message',
        now: 0,
        message: {
          ...hello(options.features ?? [Feature.Resume]),
          have: { [space]: options.have ?? 0 },
          logs: { [space]: options.log ?? 'log-1' },
          ...(resume === undefined ? {} : { resume }),
        },
      },
      { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
    ])
  const reads = (effects: ReturnType<typeof run>['effects']) =>
    effects.filter((effect) => effect.type === 'read-snapshot')

  it('sends the rest of the snapshot a replica names, from the record after the one it reached', () => {
    const { state, effects } = resuming({ [space]: { cursor: 30, after } })
    expect(reads(effects)).toEqual([
      { type: 'read-snapshot', space, page: 0, afterKey: after, limit: 2, cursor: 30 },
    ])
    expect(state.streams[space]?.snapshot).toEqual({ cursor: 30, page: 0, afterKey: after, split: null })
  })

  it('goes on from the snapshot’s position once its last page is sent, without received', () => {
    const { state, effects } = resuming({ [space]: { cursor: 30, after } })
    const page = stepHubSession(
      state,
      { type: 'snapshot-read', now: 2, space, page: 0, cursor: 30, changes: [change(bob, 4)], nextKey: null },
      logFacts(),
    )
    const sent = page.effects.find((effect) => effect.type === 'send')
    expect(sent).toMatchObject({ message: { type: 'snapshot', cursor: 30, page: 0, last: true } })
    expect(sent?.type === 'send' && 'received' in sent.message).toBe(false)
    expect(page.state.streams[space]).toMatchObject({ snapshot: null, sent: 30 })
    expect(page.effects.at(-1)).toMatchObject({ type: 'read-log', after: 30 })
    expect(reads(effects)).toHaveLength(1)
  })

  it('sends a new snapshot when it cannot resume that one', () => {
    const fresh = { type: 'read-snapshot', space, page: 0, afterKey: null, limit: 2, cursor: 50 }
    const resume = { [space]: { cursor: 30, after } }
    // Without the feature; in another log; from a position the log no longer holds, or past
    // its head; for a replica already past the snapshot's position.
    expect(reads(resuming(resume, { features: [] }).effects)).toEqual([fresh])
    expect(reads(resuming(resume, { log: 'log-0' }).effects)).toEqual([fresh])
    expect(reads(resuming(resume, { floor: 31 }).effects)).toEqual([fresh])
    expect(reads(resuming({ [space]: { cursor: 51, after } }).effects)).toEqual([fresh])
    expect(reads(resuming(resume, { have: 30 }).effects)).toEqual([])
    // Its position at the floor is still in the log.
    expect(reads(resuming(resume, { floor: 30 }).effects)).toEqual([
      { ...fresh, afterKey: after, cursor: 30 },
    ])
  })
})

describe('hub session: resuming a snapshot a replica could not store', () => {
  const after = 'notes\u0000n-17'
  const hubFacts: HubFacts = { head: () => 50, floor: () => 10, received: () => 0, log: () => 'log-1' }
  const inSnapshot = (features: HelloMessage['features']) =>
    run(
      hubFacts,
      [
        { type: 'message', now: 0, message: { ...hello(features), have: { [space]: 0 } } },
        { type: 'authenticated', now: 1, result: { ok: true, access: () => 'write' } },
      ],
      initialHubSession({ ...config, reliable: true }),
    )
  const ask = (state: HubSessionState, resume?: { cursor: number; after: string }) =>
    stepHubSession(
      { ...state, streams: { [space]: { ...(state.streams[space] as HubStream), reading: false } } },
      {
        type: 'message',
        now: 5,
        message: { type: 'ack', space, upTo: 0, resend: true, ...(resume === undefined ? {} : { resume }) },
      },
      hubFacts,
    ).effects.filter((effect) => effect.type === 'read-snapshot')

  it('sends the rest of it from where the replica’s ask says it got to', () => {
    const { state } = inSnapshot([Feature.Resend, Feature.Resume])
    expect(ask(state, { cursor: 30, after })).toEqual([
      { type: 'read-snapshot', space, page: 0, afterKey: after, limit: 2, cursor: 30 },
    ])
  })

  it('starts it over without the feature, or without a point to go on from', () => {
    const fresh = [{ type: 'read-snapshot', space, page: 0, afterKey: null, limit: 2, cursor: 50 }]
    expect(ask(inSnapshot([Feature.Resend]).state, { cursor: 30, after })).toEqual(fresh)
    expect(ask(inSnapshot([Feature.Resend, Feature.Resume]).state)).toEqual(fresh)
    expect(ask(inSnapshot([Feature.Resend, Feature.Resume]).state, { cursor: 5, after })).toEqual(fresh)
  })
})

describe('replica session: asking to resume a snapshot', () => {
  const resume = { cursor: 30, after: 'notes\u0000n-17' }
  const connected = (log: string | null, features: readonly Feature[] = DEFAULT_REPLICA_SESSION.features) => {
    const replica = initialReplicaSession(
      { ...DEFAULT_REPLICA_SESSION, replicaId: alice, space, features },
      { cursor: 0, acked: 0, local: 0 },
    )
    const named = log === null ? replica : { ...replica, log }
    return stepReplicaSession(named, { type: 'connected', now: 0, resume })
  }

  it('names in its hello the snapshot the runtime holds the start of, and again if it repeats it', () => {
    const { state, effects } = connected('log-1')
    expect(effects[0]).toMatchObject({
      type: 'send',
      message: { type: 'hello', resume: { [space]: resume } },
    })
    const again = stepReplicaSession(state, { type: 'tick', now: 5_000 })
    expect(again.effects[0]).toMatchObject({
      type: 'send',
      message: { type: 'hello', resume: { [space]: resume } },
    })
  })

  it('names it when it asks the hub to send again, on a session that negotiated resume', () => {
    const asked = (features: readonly Feature[]) => {
      const replica = initialReplicaSession(
        { ...DEFAULT_REPLICA_SESSION, replicaId: alice, space, features },
        { cursor: 0, acked: 0, local: 0 },
      )
      const connected = stepReplicaSession(replica, { type: 'connected', now: 0 }).state
      const answer: HelloMessage = {
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        replicaId: alice,
        spaces: [space],
        have: { [space]: 0 },
        features: [Feature.Resend, Feature.Resume],
      }
      const ready = stepReplicaSession(connected, { type: 'message', now: 1, message: answer }).state
      return stepReplicaSession(ready, { type: 'apply-failed', now: 2, resume }).effects
    }
    expect(asked([Feature.Resend, Feature.Resume])).toContainEqual({
      type: 'send',
      message: { type: 'ack', space, upTo: 0, resend: true, resume },
    })
    expect(asked([Feature.Resend])).toContainEqual({
      type: 'send',
      message: { type: 'ack', space, upTo: 0, resend: true },
    })
  })

  it('names in its hello the frame limit the runtime asks for, and none by default', () => {
    const replica = initialReplicaSession(
      { ...DEFAULT_REPLICA_SESSION, replicaId: alice, space },
      { cursor: 0, acked: 0, local: 0 },
    )
    const limited = stepReplicaSession(replica, { type: 'connected', now: 0, readLimit: 128 * 1024 })
    expect(limited.effects[0]).toMatchObject({
      type: 'send',
      message: { type: 'hello', maxFrame: 128 * 1024 },
    })
    const plain = stepReplicaSession(replica, { type: 'connected', now: 0 })
    expect(plain.effects[0]?.type === 'send' && 'maxFrame' in plain.effects[0].message).toBe(false)
  })

  it('names none before a hub named its log, or without the feature', () => {
    for (const { effects } of [connected(null), connected('log-1', [Feature.Compact])]) {
      expect(effects[0]).toMatchObject({ type: 'send', message: { type: 'hello' } })
      expect(effects[0]?.type === 'send' && 'resume' in effects[0].message).toBe(false)
    }
  })
})
