import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId, asSpaceId, type SpaceId } from '../src/ids.js'
import type { JsonObject } from '../src/json.js'
import { decodeMessage, encodeMessage } from '../src/protocol/codec.js'
import { Feature, MAX_PRESENCE_CHARS, MAX_PRESENCE_KEYS } from '../src/protocol/messages.js'
import { openReplicaEngine, type PresenceEvent, type ReplicaEngine } from '../src/replica-engine.js'
import { expectChorusError } from './expect-chorus-error.js'
import { settle, wireToHub } from './wire-hub.js'

const SPACE = asSpaceId('team-notes')
const OTHER = asSpaceId('other-notes')
let time = 1_700_000_000_000
const now = () => time++

/** What a replica has heard of the others' presence, kept as its runtime would keep it. */
function heard() {
  const peers = new Map<string, JsonObject>()
  const events: PresenceEvent[] = []
  return {
    peers,
    events,
    onPresence(event: PresenceEvent) {
      events.push(event)
      if (event.type === 'reset') peers.clear()
      else if (event.state === null) peers.delete(`${event.replicaId}/${event.key}`)
      else peers.set(`${event.replicaId}/${event.key}`, event.state)
    },
  }
}

/** A replica named `name` of `space`, connected to `hub`. */
async function replicaOn(hub: HubEngine, name: string, space: SpaceId = SPACE) {
  const ears = heard()
  const errors: string[] = []
  const engine: ReplicaEngine = await openReplicaEngine({
    store: new MemoryReplicaStore(),
    space,
    now,
    createReplicaId: () => asReplicaId(name),
    onPresence: ears.onPresence,
    onError: (error) => errors.push(error.code),
  })
  const frames: string[] = []
  const connection = wireToHub(hub, engine, (frame) => frames.push(frame))
  return { engine, connection, frames, errors, ...ears }
}

describe('presence', () => {
  it('reaches every other replica on the space, not the sender nor another space, and goes when its connection does', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const alice = await replicaOn(hub, 'alice')
    const bob = await replicaOn(hub, 'bob')
    const elsewhere = await replicaOn(hub, 'carol', OTHER)
    await settle(hub, [alice.engine, bob.engine, elsewhere.engine])

    alice.engine.setPresence('tab-1', { name: 'Alice', note: 'n1' })
    alice.engine.setPresence('tab-2', { name: 'Alice', note: 'n2' })
    await settle(hub, [alice.engine, bob.engine, elsewhere.engine])
    expect(Object.fromEntries(bob.peers)).toEqual({
      'alice/tab-1': { name: 'Alice', note: 'n1' },
      'alice/tab-2': { name: 'Alice', note: 'n2' },
    })
    expect(alice.peers.size).toBe(0)
    expect(elsewhere.peers.size).toBe(0)

    // A replica that joins later is told what holds now.
    alice.engine.setPresence('tab-2', null)
    const dave = await replicaOn(hub, 'dave')
    await settle(hub, [alice.engine, bob.engine, dave.engine])
    expect(Object.fromEntries(dave.peers)).toEqual({ 'alice/tab-1': { name: 'Alice', note: 'n1' } })
    expect(Object.fromEntries(bob.peers)).toEqual({ 'alice/tab-1': { name: 'Alice', note: 'n1' } })

    // Alice's connection ends: her presence goes everywhere.
    await alice.connection.closed()
    alice.engine.detach()
    await settle(hub, [bob.engine, dave.engine])
    expect(bob.peers.size).toBe(0)
    expect(dave.peers.size).toBe(0)
  })

  it('is sent again on a new connection, and what was heard on the old one is dropped', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const alice = await replicaOn(hub, 'alice')
    const bob = await replicaOn(hub, 'bob')
    bob.engine.setPresence('tab', { name: 'Bob' })
    alice.engine.setPresence('tab', { name: 'Alice' })
    await settle(hub, [alice.engine, bob.engine])
    expect([...alice.peers.keys()]).toEqual(['bob/tab'])

    // Alice's transport drops; she hears nothing of Bob until connected again.
    await alice.connection.closed()
    alice.engine.detach()
    expect(alice.peers.size).toBe(0)
    await settle(hub, [bob.engine])
    expect(bob.peers.size).toBe(0)
    bob.engine.setPresence('tab', { name: 'Bob', note: 'n9' })
    wireToHub(hub, alice.engine)
    await settle(hub, [alice.engine, bob.engine])
    expect(Object.fromEntries(alice.peers)).toEqual({ 'bob/tab': { name: 'Bob', note: 'n9' } })
    expect(Object.fromEntries(bob.peers)).toEqual({ 'alice/tab': { name: 'Alice' } })
  })

  it('is sent again at the next tick when the hub dropped frames for going too fast, clears included', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const bob = await replicaOn(hub, 'bob')
    const alice = await openReplicaEngine({
      store: new MemoryReplicaStore(),
      space: SPACE,
      now,
      createReplicaId: () => asReplicaId('alice'),
    })
    // Between Alice and the hub, a rate limiter as a relay's: while `limited`, her frames are
    // dropped, and the first dropped one is answered with `rate-limited`.
    let limited = false
    let told = false
    const connection = hub.accept({ send: (frame) => void alice.receive(frame), close: () => alice.detach() })
    alice.attach((frame) => {
      if (!limited) return void connection.receive(frame)
      if (told) return
      told = true
      void alice.receive(encodeMessage({ type: 'error', code: ErrorCode.RateLimited, message: 'slow down' }))
    })
    alice.setPresence('tab', { note: 'n1' })
    alice.setPresence('side', { open: true })
    await settle(hub, [alice, bob.engine])
    expect(Object.fromEntries(bob.peers)).toEqual({
      'alice/tab': { note: 'n1' },
      'alice/side': { open: true },
    })

    limited = true
    alice.setPresence('tab', { note: 'n2' })
    alice.setPresence('side', null)
    await settle(hub, [alice, bob.engine])
    limited = false
    // Both frames were dropped: Bob still sees what was.
    expect(Object.fromEntries(bob.peers)).toEqual({
      'alice/tab': { note: 'n1' },
      'alice/side': { open: true },
    })

    await alice.tick()
    await settle(hub, [alice, bob.engine])
    expect(Object.fromEntries(bob.peers)).toEqual({ 'alice/tab': { note: 'n2' } })
  })

  it('is neither sent to nor taken from a replica that did not offer the feature', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const alice = await replicaOn(hub, 'alice')
    const old = await openReplicaEngine({
      store: new MemoryReplicaStore(),
      space: SPACE,
      now,
      createReplicaId: () => asReplicaId('old'),
      // As a replica of an earlier build: no presence among its features.
      session: { features: [Feature.Compact, Feature.Sparse, Feature.Collect] } as never,
    })
    const oldFrames: string[] = []
    wireToHub(hub, old, (frame) => oldFrames.push(frame))
    await settle(hub, [alice.engine, old])
    alice.engine.setPresence('tab', { name: 'Alice' })
    await settle(hub, [alice.engine, old])
    expect(oldFrames.some((frame) => frame.includes('"presence"'))).toBe(false)

    // A presence frame on a session that did not negotiate it is refused, and the others hear nothing.
    const refused: string[] = []
    const raw = hub.accept({ send: (frame) => refused.push(frame), close: () => {} })
    await raw.receive(
      encodeMessage({ type: 'hello', protocol: 1, replicaId: asReplicaId('raw'), spaces: [SPACE], have: {} }),
    )
    await raw.receive(encodeMessage({ type: 'presence', space: SPACE, key: 'k', state: { x: 1 } }))
    await settle(hub, [alice.engine])
    expect(refused.at(-1)).toMatch(/presence needs the presence feature/)
    expect(alice.peers.size).toBe(0)
  })

  it('is refused when malformed, too large, or past the keys a connection may hold', async () => {
    for (const [frame, why] of [
      ['{"type":"presence","space":"team-notes","key":"","state":null}', /presence\.key/],
      ['{"type":"presence","space":"team-notes","key":"k","state":[1]}', /presence\.state/],
      ['{"type":"presence","space":"team-notes","key":"k"}', /presence\.state/],
      [
        JSON.stringify({
          type: 'presence',
          space: 'team-notes',
          key: 'k',
          state: { t: 'x'.repeat(MAX_PRESENCE_CHARS) },
        }),
        /at most 4096 characters/,
      ],
      [
        '{"type":"presence","space":"team-notes","key":"k","state":{},"replicaId":"no spaces allowed"}',
        /replicaId/,
      ],
      ['{"type":"presence","space":"team-notes","key":"k","state":null,"origin":""}', /presence\.origin/],
      [
        '{"type":"presence","space":"team-notes","key":"k","state":null,"origin":"o","seq":-1}',
        /presence\.seq/,
      ],
    ] as const) {
      const decoded = decodeMessage(frame)
      expect(decoded.ok).toBe(false)
      if (!decoded.ok) expect(decoded.error.message).toMatch(why)
    }

    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const alice = await replicaOn(hub, 'alice')
    expectChorusError(() => alice.engine.setPresence('', { a: 1 }), ErrorCode.InvalidArgument)
    expectChorusError(
      () => alice.engine.setPresence('k', { big: 'x'.repeat(MAX_PRESENCE_CHARS) }),
      ErrorCode.InvalidArgument,
    )
    expectChorusError(
      () => alice.engine.setPresence('k', { bad: undefined } as never),
      ErrorCode.InvalidArgument,
    )
    for (let i = 0; i < MAX_PRESENCE_KEYS; i++) alice.engine.setPresence(`k${i}`, { i })
    expectChorusError(() => alice.engine.setPresence('one-more', { i: 0 }), ErrorCode.InvalidArgument)
    alice.engine.setPresence('k0', null)
    alice.engine.setPresence('one-more', { i: 0 })

    // A peer that sends more keys than the hub holds hears why, and the extra one goes nowhere.
    const bob = await replicaOn(hub, 'bob')
    const raw: string[] = []
    const greedy = hub.accept({ send: (frame) => raw.push(frame), close: () => {} })
    await greedy.receive(
      encodeMessage({
        type: 'hello',
        protocol: 1,
        replicaId: asReplicaId('greedy'),
        spaces: [SPACE],
        have: {},
        features: [Feature.Presence],
      }),
    )
    for (let i = 0; i <= MAX_PRESENCE_KEYS; i++)
      await greedy.receive(encodeMessage({ type: 'presence', space: SPACE, key: `g${i}`, state: { i } }))
    await settle(hub, [alice.engine, bob.engine])
    expect(raw.at(-1)).toMatch(/at most 32 presence keys/)
    expect([...bob.peers.keys()].filter((key) => key.startsWith('greedy/'))).toHaveLength(MAX_PRESENCE_KEYS)
    expect(alice.errors).toEqual([])
  })

  it('reaches no connection whose token has expired, before the tick that ends its session', async () => {
    let clock = 1_000
    const hub = createHubEngine({
      store: new MemoryHubStore(),
      now: () => clock,
      // Bob's token expires at 2,000; the others' do not.
      authenticate: (_token, replicaId) =>
        replicaId === 'bob'
          ? { ok: true, access: () => 'write', expiresAt: 2_000 }
          : { ok: true, access: () => 'write' },
    })
    const alice = await replicaOn(hub, 'alice')
    const bob = await replicaOn(hub, 'bob')
    const carol = await replicaOn(hub, 'carol')
    await settle(hub, [alice.engine, bob.engine, carol.engine])
    alice.engine.setPresence('tab', { note: 'n1' })
    await settle(hub, [alice.engine, bob.engine, carol.engine])
    expect(bob.peers.get('alice/tab')).toEqual({ note: 'n1' })
    clock = 2_500
    alice.engine.setPresence('tab', { note: 'n2' })
    await settle(hub, [alice.engine, bob.engine, carol.engine])
    expect(carol.peers.get('alice/tab')).toEqual({ note: 'n2' })
    expect(bob.peers.get('alice/tab')).toEqual({ note: 'n1' })
  })
})
