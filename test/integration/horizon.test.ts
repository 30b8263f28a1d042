import { createReplica } from '@chorus/client'
import type { SpaceId } from '@chorus/core'
import { type RunningRelay, startRelay } from '@chorus/relay'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { eventually, tempDir, within } from './relay-process.js'

const SPACE = 'team-notes'
const DAY = 24 * 60 * 60 * 1000
const WAIT_MS = 20_000

type Replica = Awaited<ReturnType<typeof createReplica>>

/**
 * A replica on `indexedDB`, which stays the device's disk across a close and a reopen;
 * offline without a `url`.
 */
function device(
  url: string | null,
  indexedDB: IDBFactory,
  notes: 'lww' | 'manual' = 'lww',
): Promise<Replica> {
  const online = url === null ? {} : { url, WebSocket: WebSocket as never }
  return createReplica({ space: SPACE, ...online, storage: 'indexeddb', indexedDB, resolvers: { notes } })
}

async function ids(replica: Replica): Promise<string[]> {
  return (await replica.collection('notes').list()).map((row) => row.id)
}

describe('a device away longer than the relay’s horizon', () => {
  const cleanup: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step()
  })

  /** A relay on a fresh data dir whose clock is `clock.now`, with a horizon of one day, compacting only when asked. */
  async function relayWithHorizon(clock: { now: number }): Promise<RunningRelay> {
    const dir = tempDir('chorus-horizon-')
    cleanup.push(dir.remove)
    const relay = await startRelay({
      dataDir: dir.path,
      port: 0,
      host: '127.0.0.1',
      heartbeatMs: 0,
      now: () => clock.now,
      compaction: { intervalMs: 0, horizonMs: DAY },
    })
    cleanup.push(() => relay.close())
    return relay
  }

  it('comes back without the notes deleted and collected meanwhile, and keeps its offline edit', async () => {
    const clock = { now: 1_700_000_000_000 }
    const relay = await relayWithHorizon(clock)
    const alice = await device(relay.url, new IDBFactory())
    cleanup.push(() => alice.close())
    const bob = await device(relay.url, new IDBFactory())
    cleanup.push(() => bob.close())
    const phoneDisk = new IDBFactory()
    let phone = await device(relay.url, phoneDisk)
    for (const id of ['a', 'b']) await alice.collection('notes').put(id, { title: id })
    for (const id of ['mine', 'kept']) await phone.collection('notes').put(id, { title: id })
    await within(Promise.all([alice.synced(), phone.synced()]), WAIT_MS, 'both devices to sync')
    await eventually(async () => (await ids(phone)).length === 4, 'the phone to hold all four notes')

    // The phone goes offline, edits a note there, and is put away.
    await phone.close()
    phone = await device(null, phoneDisk)
    await phone.collection('notes').put('kept', { title: 'kept', edited: 'offline' })
    await phone.close()

    // Meanwhile alice deletes a note of each device's; two days later the relay has heard
    // from alice and bob since, not from the phone: it forgets the phone and collects both.
    await alice.collection('notes').delete('a')
    await alice.collection('notes').delete('mine')
    clock.now += 2 * DAY
    await alice.collection('notes').put('c', { title: 'c' })
    await bob.collection('notes').put('d', { title: 'd' })
    await eventually(
      async () => (await ids(alice)).includes('d') && (await ids(bob)).includes('c'),
      'alice and bob to read each other’s notes',
    )
    // Replicas acknowledge what they applied a little later: compact until both have.
    const collected = { tombstonesDeleted: 0, replicasForgotten: 0 }
    await eventually(async () => {
      const result = (await relay.relay.compact()).get(SPACE as SpaceId)
      collected.tombstonesDeleted += result?.tombstonesDeleted ?? 0
      collected.replicasForgotten += result?.replicasForgotten ?? 0
      return collected.tombstonesDeleted >= 2
    }, 'the relay to collect both deletions')
    expect(collected).toEqual({ tombstonesDeleted: 2, replicasForgotten: 1 })

    phone = await device(relay.url, phoneDisk)
    cleanup.push(() => phone.close())
    await within(phone.synced(), WAIT_MS, 'the phone to sync again')
    await eventually(async () => (await ids(alice)).includes('kept'), 'alice to hold the offline edit')
    expect(await ids(phone)).toEqual(['b', 'c', 'd', 'kept'])
    expect(await phone.collection('notes').get('a')).toBeUndefined()
    expect(await phone.collection('notes').get('mine')).toBeUndefined()
    expect(await phone.collection('notes').get('kept')).toEqual({ title: 'kept', edited: 'offline' })
    await eventually(
      async () => (await alice.collection('notes').get('kept'))?.edited === 'offline',
      'the offline edit to reach alice',
    )
    expect(await ids(alice)).toEqual(['b', 'c', 'd', 'kept'])
  })

  it('edited offline while deleted elsewhere: the edit stands alone on every device, with no conflict', async () => {
    const clock = { now: 1_700_000_000_000 }
    const relay = await relayWithHorizon(clock)
    const alice = await device(relay.url, new IDBFactory(), 'manual')
    cleanup.push(() => alice.close())
    const bob = await device(relay.url, new IDBFactory(), 'manual')
    cleanup.push(() => bob.close())
    const phoneDisk = new IDBFactory()
    let phone = await device(relay.url, phoneDisk, 'manual')
    await alice.collection('notes').put('a', { title: 'a' })
    await within(alice.synced(), WAIT_MS, 'alice to sync')
    await eventually(async () => (await ids(phone)).includes('a'), 'the phone to hold the note')
    await phone.close()

    // Offline, the phone edits the note that alice deletes meanwhile; two days later the relay
    // has forgotten the phone and collects the deletion, and tells alice and bob.
    phone = await device(null, phoneDisk, 'manual')
    await phone.collection('notes').put('a', { title: 'a', edited: 'offline' })
    await phone.close()
    await alice.collection('notes').delete('a')
    clock.now += 2 * DAY
    await alice.collection('notes').put('c', { title: 'c' })
    await eventually(async () => (await ids(bob)).includes('c'), 'bob to read the new note')
    let tombstonesDeleted = 0
    await eventually(async () => {
      tombstonesDeleted += (await relay.relay.compact()).get(SPACE as SpaceId)?.tombstonesDeleted ?? 0
      return tombstonesDeleted >= 1
    }, 'the relay to collect the deletion')

    // The phone returns: its edit is the note now, on every device, and nobody sees a conflict.
    phone = await device(relay.url, phoneDisk, 'manual')
    cleanup.push(() => phone.close())
    await within(phone.synced(), WAIT_MS, 'the phone to sync again')
    for (const [name, replica] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      await eventually(
        async () => (await replica.collection('notes').get('a'))?.edited === 'offline',
        `the offline edit to reach ${name}`,
      )
    }
    for (const replica of [alice, bob, phone]) {
      expect(await replica.collection('notes').get('a')).toEqual({ title: 'a', edited: 'offline' })
      expect(await replica.conflicts()).toEqual([])
    }
  })
})
