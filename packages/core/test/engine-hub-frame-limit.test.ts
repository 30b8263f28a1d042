import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import type { ChorusError } from '../src/errors.js'
import { ErrorCode } from '../src/errors.js'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import { DEFAULT_LIMITS } from '../src/protocol/messages.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { wireToHub } from './wire-hub.js'

// A hub that reads frames of at most 64 KiB, and replicas with the default 4 MiB: the hub names
// its limit (in its hello, and in refusing a frame over it), and the replicas go by it.
const HUB_FRAME = 64 * 1024
const WALL = 1_700_000_000_000

interface Setup {
  readonly hub: HubEngine
  readonly hubStore: MemoryHubStore
  readonly now: () => number
  /** Moves the shared clock on. */
  readonly advance: (ms: number) => void
}

function setup(): Setup {
  let time = WALL
  const now = () => time
  const hubStore = new MemoryHubStore()
  const hub = createHubEngine({
    store: hubStore,
    now,
    limits: { ...DEFAULT_LIMITS, maxFrameBytes: HUB_FRAME },
  })
  return { hub, hubStore, now, advance: (ms) => (time += ms) }
}

async function replicaOf(
  { now }: Setup,
  name: string,
  errors: ChorusError[] = [],
  store = new MemoryReplicaStore(),
): Promise<{ replica: ReplicaEngine; refused: string[] }> {
  const replica = await openReplicaEngine({
    store,
    space: 'team',
    now,
    createReplicaId: () => asReplicaId(name),
    onError: (error) => errors.push(error),
  })
  return { replica, refused: [] }
}

function connect({ hub }: Setup, replica: ReplicaEngine, refused: string[]): void {
  wireToHub(hub, replica, (frame) => {
    if (frame.includes('"frame-too-large"')) refused.push(frame)
  })
}

/** Lets hub and replica run, with ticks 100 ms apart, until `done` or 200 rounds. */
async function settle(setup: Setup, replica: ReplicaEngine, done: () => boolean): Promise<void> {
  for (let round = 0; round < 200 && !done(); round++) {
    await setup.hub.idle()
    await replica.idle()
    setup.advance(100)
    await replica.tick()
  }
}

describe('a hub that reads shorter frames than the replica', () => {
  it('names its limit, and the replica uploads in frames that fit it', async () => {
    const s = setup()
    const { replica, refused } = await replicaOf(s, 'writer')
    const body = 'n'.repeat(1_000)
    for (let i = 0; i < 200; i++) await replica.put('notes', `note-${i}`, { body })
    connect(s, replica, refused)
    await settle(s, replica, () => replica.pending() === 0)
    expect(replica.pending()).toBe(0)
    expect(replica.session().maxFrame).toBe(HUB_FRAME)
    expect((await s.hubStore.readLog('team' as never, 0, 1_000)).length).toBe(200)
    // Whatever went before the hub's hello may have been refused, naming the limit; after it,
    // nothing is.
    for (const frame of refused) expect(JSON.parse(frame)).toMatchObject({ maxFrame: HUB_FRAME })

    // Once named, the limit is the writes' too: a value the hub could never take is refused
    // when it is made, not left to block the outbox.
    await expect(replica.put('notes', 'big', { body: 'b'.repeat(HUB_FRAME) })).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: expect.stringMatching(/must fit one 65536-byte frame/),
    })
    expect(replica.pending()).toBe(0)
  })

  it('keeps the limit it learnt: reopened offline, it still refuses a write the hub could never take', async () => {
    const s = setup()
    const store = new MemoryReplicaStore()
    const first = await replicaOf(s, 'restarted', [], store)
    connect(s, first.replica, first.refused)
    await settle(s, first.replica, () => first.replica.session().maxFrame !== null)
    expect(first.replica.session().maxFrame).toBe(HUB_FRAME)
    await first.replica.close()

    const { replica } = await replicaOf(s, 'restarted', [], store.reopen())
    expect(replica.session().maxFrame).toBe(HUB_FRAME)
    await expect(replica.put('notes', 'big', { body: 'b'.repeat(HUB_FRAME) })).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: expect.stringMatching(/must fit one 65536-byte frame/),
    })
    await replica.put('notes', 'small', { body: 'fits' })
    expect(replica.pending()).toBe(1)
  })

  it('stops with frame-too-large, saying why, when a change written before it knew the limit can never fit', async () => {
    const s = setup()
    const errors: ChorusError[] = []
    const { replica, refused } = await replicaOf(s, 'offline-writer', errors)
    await replica.put('notes', 'small', { body: 'fits' })
    await replica.put('notes', 'large', { body: 'L'.repeat(2 * HUB_FRAME) })
    await replica.put('notes', 'after', { body: 'waits behind it' })
    connect(s, replica, refused)
    await settle(s, replica, () => errors.length > 0)
    expect(errors.map((error) => error.code)).toEqual([ErrorCode.FrameTooLarge])
    expect(errors[0]?.message).toMatch(/at most 65536 bytes.*can never be uploaded/)
    expect(replica.status()).toBe('offline')
    expect(replica.session().fatal?.code).toBe(ErrorCode.FrameTooLarge)
    // What came before it was uploaded; it and what follows it were not.
    const log = await s.hubStore.readLog('team' as never, 0, 100)
    expect(log.map((entry) => entry.change.id)).toEqual(['small'])
    expect(replica.pending()).toBe(2)
  })
})
