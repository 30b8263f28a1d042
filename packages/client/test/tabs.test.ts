import { createReplica, type Replica } from '@chorus/client'
import { ErrorCode, type SpaceId } from '@chorus/core'
import { createPrng } from '@chorus/testkit'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { WebSocket } from 'ws'
import { FakeLocks } from './helpers/fake-locks.js'
import { idbReplicas, poll, shown } from './helpers/idb-replicas.js'
import { startTestHub, type TestHub } from './helpers/test-hub.js'

// Tabs of one origin in Node: one fake-indexeddb factory is the origin's IndexedDB, Node's
// BroadcastChannel delivers between instances of one process, and `navigator.locks` is an
// exclusive lock manager with the Web Locks API's `steal` and `signal`. Two replicas opened on
// one database name are then two tabs, as in a browser (test/browser/tabs.test.ts runs the
// real APIs in Chromium).

let hub: TestHub
const locks = new FakeLocks()
const hadNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator')

beforeAll(async () => {
  Object.defineProperty(globalThis, 'navigator', {
    value: { locks },
    configurable: true,
    writable: true,
  })
  hub = await startTestHub()
})

afterAll(async () => {
  await hub.close()
  if (hadNavigator === undefined) Reflect.deleteProperty(globalThis, 'navigator')
  else Object.defineProperty(globalThis, 'navigator', hadNavigator)
})

afterEach(async () => {
  await replicas.closeAll()
})

let spaces = 0
const replicas = idbReplicas(() => hub, 'manual')
const replica = replicas.open
const until = poll

/** Once they have had time to, the `others` show every one of `ids` as `model` does. */
async function expectSame(model: Replica, others: readonly Replica[], ids: readonly string[]): Promise<void> {
  const same = async () => {
    const want = JSON.stringify(await shown(model, ids))
    for (const other of others) if (JSON.stringify(await shown(other, ids)) !== want) return false
    return true
  }
  await poll(same, 'every replica to show the same', 5_000).catch(() => undefined)
  const expected = await shown(model, ids)
  for (const other of others) expect(await shown(other, ids)).toEqual(expected)
}

/**
 * A fresh space with two tabs of one replica — the first holding the connection, synced — and
 * another device on it, synced.
 */
async function twoTabsAndADevice(name: string) {
  spaces += 1
  const space = `tabs-${name}-${spaces}`
  const origin = new IDBFactory()
  const leader = await replica(space, origin, 'shared')
  await leader.synced()
  const follower = await replica(space, origin, 'shared')
  const device = await replica(space, new IDBFactory(), 'device')
  await device.synced()
  return { space, origin, leader, follower, device }
}

describe('tabs sharing one replica, in Node', () => {
  it('a refusal the connected tab meets (the space deleted on the relay) reaches the other tab: it says so and stops waiting', async () => {
    spaces += 1
    const space = `tabs-refused-${spaces}`
    const origin = new IDBFactory()
    const leader = await replica(space, origin, 'refused')
    await leader.synced()
    const follower = await replica(space, origin, 'refused')
    const errors: string[] = []
    follower.on('error', (error) => errors.push(error.code))
    await follower.collection('notes').put('n', { by: 'the other tab' })
    // Not synced before its write is uploaded, which the refusal stops for good.
    const waiting = follower.synced().then(
      () => 'synced',
      (error: { code?: string }) => error.code,
    )

    expect(await hub.engine.deleteSpace(space as SpaceId)).toBe(true)
    await until(() => errors.length > 0, 'the other tab to hear of the refusal')
    expect(errors).toEqual([ErrorCode.SpaceDeleted])
    expect(await waiting).toBe(ErrorCode.SpaceDeleted)
    await expect(follower.synced()).rejects.toMatchObject({ code: ErrorCode.SpaceDeleted })
    expect(follower.refusal?.code).toBe(ErrorCode.SpaceDeleted)
    await expect(leader.synced()).rejects.toMatchObject({ code: ErrorCode.SpaceDeleted })
  })

  it('a tab that comes to lead says connecting until it is connected, never offline', async () => {
    spaces += 1
    const space = `tabs-status-${spaces}`
    const tab = await replica(space, new IDBFactory(), 'status')
    const seen = [tab.status]
    tab.on('status', (event) => seen.push(event.status))
    await tab.synced()
    // Before, the tab said offline between taking the lead and starting its connection, and a
    // screen reader went on announcing the server out of reach through "connecting".
    expect(seen).not.toContain('offline')
    expect(seen.at(-1)).toBe('synced')
  })

  it('a tab that closes while it takes over the connection does not connect afterwards', async () => {
    // The first tab's close hands the connection over; the second closes at a different
    // moment of taking it over each round. A takeover that went on after its tab's shutdown
    // started the link again, and the socket's open then found the engine closed.
    for (let round = 0; round < 48; round++) {
      spaces += 1
      const space = `tabs-close-${spaces}`
      const origin = new IDBFactory()
      const first = await replica(space, origin, 'handover')
      const second = await replica(space, origin, 'handover')
      await first.synced()
      const closing = first.close()
      for (let turn = 0; turn < round % 12; turn++) await new Promise((resolve) => setImmediate(resolve))
      await second.close()
      await closing
      await until(
        () => hub.engine.sessions().every((session) => session.replicaId !== first.replicaId),
        'no connection of the closed tabs',
      )
    }
  }, 60_000)

  it('a write in a tab without the connection and a remote write to the same record, at once, end the same in both tabs and on the other device', async () => {
    const { leader, follower, device } = await twoTabsAndADevice('race')
    expect(follower.replicaId).toBe(leader.replicaId)

    // The device's writes reach the connected tab through the hub while the other tab writes
    // the same records: two streams, neither waiting for the other.
    const writes: Promise<void>[] = []
    for (let round = 0; round < 200; round++) {
      const id = `note-${round % 4}`
      writes.push(device.collection('notes').put(id, { by: 'device', round }))
      writes.push(follower.collection('notes').put(id, { by: 'tab', round }))
      if (round % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 2))
    }
    await Promise.all(writes)
    await until(() => leader.pending === 0 && device.pending === 0, 'every write to be uploaded')
    await Promise.all([leader.synced(), device.synced()])
    await expectSame(device, [leader, follower], ['note-0', 'note-1', 'note-2', 'note-3'])
  }, 30_000)

  it('updates from both tabs at once each read the record as the other tab left it: no increment is lost', async () => {
    const { leader, follower, device } = await twoTabsAndADevice('update')
    const increments: Promise<boolean>[] = []
    for (let round = 0; round < 100; round++) {
      for (const tab of [leader, follower]) {
        increments.push(
          tab.collection<{ n: number }>('counters').update('c', (current) => ({ n: (current?.n ?? 0) + 1 })),
        )
      }
      if (round % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 2))
    }
    expect(await Promise.all(increments)).toEqual(increments.map(() => true))
    await until(() => leader.pending === 0, 'every write to be uploaded')
    await Promise.all([leader.synced(), device.synced()])
    for (const replica of [leader, follower, device])
      expect(await replica.collection('counters').get('c')).toEqual({ n: 200 })
  }, 30_000)

  it('presence: each tab’s reaches another device through the connected tab, the others’ reaches every tab, and a tab’s goes when it closes', async () => {
    const { space, origin, leader, follower, device } = await twoTabsAndADevice('presence')
    const states = (of: Replica) => of.presence.map((peer) => JSON.stringify(peer.state)).sort()

    // The tab without the connection gives its presence to the one with it, which sends it on.
    follower.setPresence({ tab: 'follower' })
    leader.setPresence({ tab: 'leader' })
    device.setPresence({ tab: 'device' })
    await until(() => states(device).length === 2, 'the device to see both tabs')
    expect(states(device)).toEqual(['{"tab":"follower"}', '{"tab":"leader"}'])
    expect(device.presence.every((peer) => peer.replicaId === leader.replicaId)).toBe(true)
    // Both tabs show the device, and not each other (they are one replica).
    await until(
      () => states(follower).length === 1 && states(leader).length === 1,
      'both tabs to see the device',
    )
    expect(states(follower)).toEqual(['{"tab":"device"}'])

    follower.setPresence({ tab: 'follower', note: 'n7' })
    await until(
      () => states(device).includes('{"tab":"follower","note":"n7"}'),
      'the change to reach the device',
    )

    // The connected tab closes: one of the other two takes the connection and sends its own
    // presence again, and the third gives the new leader its own.
    const second = await replica(space, origin, 'shared')
    second.setPresence({ tab: 'second' })
    await until(() => states(device).length === 3, 'the device to see three tabs')
    await leader.close()
    const remaining = JSON.stringify(['{"tab":"follower","note":"n7"}', '{"tab":"second"}'])
    await until(
      () => JSON.stringify(states(device)) === remaining,
      'the device to see only the remaining tabs',
    )
    await until(
      () => states(follower).length === 1 && states(second).length === 1,
      'the remaining tabs to see the device again',
    )
    await second.close()
    await until(() => states(device).length === 1, 'the second tab’s presence to go')

    // A third tab joins and then closes: the device sees it come and go.
    const third = await replica(space, origin, 'shared')
    third.setPresence({ tab: 'third' })
    await until(() => states(device).length === 2, 'the device to see the third tab')
    await third.close()
    await until(() => states(device).length === 1, 'the third tab’s presence to go')
  }, 30_000)

  it('presence: the connected tab forgets a tab that went without a word once it stops hearing from it', async () => {
    spaces += 1
    const space = `tabs-ghost-${spaces}`
    const origin = new IDBFactory()
    let skew = 0
    const leader = await createReplica({
      space,
      url: hub.url,
      WebSocket,
      indexedDB: origin,
      IDBKeyRange,
      dbName: 'ghostly',
      reconnect: { baseMs: 20, maxMs: 200 },
      networkEvents: null,
      tickMs: 50,
      now: () => Date.now() + skew,
    })
    const device = await replica(space, new IDBFactory(), 'device')
    try {
      await leader.synced()
      // A tab that gives its presence and is never heard from again (it crashed).
      const channel = new BroadcastChannel('chorus:ghostly')
      channel.postMessage({ type: 'presence', key: 'ghost', seq: 1, state: { tab: 'ghost' } })
      channel.close()
      await until(() => device.presence.some((peer) => peer.key === 'ghost'), 'the device to see the tab')
      // Past the time a live tab would have given it again: the connected tab forgets it.
      skew = 20_000
      await until(() => device.presence.length === 0, 'the ghost’s presence to go')
    } finally {
      await leader.close()
    }
  }, 30_000)

  it('a tab closed right after a write still tells the others: their live queries show it', async () => {
    spaces += 1
    const space = `tabs-close-${spaces}`
    const origin = new IDBFactory()
    const leader = await replica(space, origin, 'shared')
    await leader.synced()
    const closing = await replica(space, origin, 'shared')
    const seen: string[][] = []
    leader.collection('notes').subscribe((rows) => seen.push(rows.map((row) => row.id)))
    const written = closing.collection('notes').put('last-words', { title: 'typed, then the tab closed' })
    await closing.close()
    await written
    await until(
      () => seen.some((ids) => ids.includes('last-words')),
      "the other tab's live query to show it",
      2_000,
    )
  })

  it('a write whose notice never came is found at the next tick: the connected tab says reload, and reads it', async () => {
    spaces += 1
    const space = `tabs-lost-notice-${spaces}`
    const origin = new IDBFactory()
    const leader = await replica(space, origin, 'shared')
    await leader.synced()
    const writer = await replica(space, origin, 'shared')
    await writer.collection('notes').put('n1', { title: 'v1' })
    await until(async () => (await leader.collection('notes').get('n1'))?.title === 'v1', 'the first write')
    const heard: string[] = []
    leader.on('change', (event) => heard.push(`change ${event.ids.join(',')}`))
    leader.on('reload', () => heard.push('reload'))
    // The writing tab crashes between its commit and its notice: the notice never goes out.
    const original = BroadcastChannel.prototype.postMessage
    const post = vi.spyOn(BroadcastChannel.prototype, 'postMessage').mockImplementation(function (
      this: BroadcastChannel,
      message: unknown,
    ) {
      if ((message as { type?: unknown }).type !== 'changed') original.call(this, message)
    })
    try {
      await writer.collection('notes').put('n1', { title: 'v2' })
    } finally {
      post.mockRestore()
    }
    await until(() => heard.includes('reload'), 'the connected tab to find the write and say reload', 5_000)
    expect(heard.some((entry) => entry.startsWith('change'))).toBe(false)
    expect(await leader.collection('notes').get('n1')).toEqual({ title: 'v2' })
  })

  it("synced() in a tab without the connection holds what another device's synced() had put on the relay", async () => {
    const { leader, follower, device } = await twoTabsAndADevice('synced')
    await follower.synced()
    for (let round = 0; round < 10; round++) {
      await device.collection('notes').put(`n${round}`, { round })
      await device.synced()
      await follower.synced()
      expect(await follower.collection('notes').get(`n${round}`)).toEqual({ round })
      expect(await leader.collection('notes').get(`n${round}`)).toEqual({ round })
    }
  })

  it('wantsConnection is shared: a tab that goes offline and closes leaves the others offline and saying so, a tab opened later too, and the last call wins', async () => {
    const { space, origin, leader, follower, device } = await twoTabsAndADevice('wish')
    const heard: boolean[] = []
    leader.on('status', (event) => heard.push(event.wantsConnection))
    follower.disconnect()
    expect(follower.wantsConnection).toBe(false)
    await until(() => leader.status === 'offline', 'the connected tab to go offline')
    expect(leader.wantsConnection).toBe(false)
    expect(heard.at(-1)).toBe(false)
    await follower.close()
    // A tab opened now takes the setting from the connected one.
    const later = await replica(space, origin, 'shared')
    await until(() => !later.wantsConnection, 'the new tab to hear the setting')
    expect(later.status).toBe('offline')
    expect(leader.status).toBe('offline')
    // Back online from the new tab: the connected tab connects, and every tab says so.
    later.connect()
    await until(() => leader.wantsConnection && leader.status === 'synced', 'the connected tab to reconnect')
    await device.collection('notes').put('n', { by: 'device' })
    await device.synced()
    await later.synced()
    expect(await later.collection('notes').get('n')).toEqual({ by: 'device' })
    // Two tabs setting it at once, each before hearing the other: both end offline.
    leader.connect()
    later.disconnect()
    leader.connect()
    later.disconnect()
    await until(() => leader.status === 'offline' && !leader.wantsConnection, 'both tabs to settle offline')
    expect(later.wantsConnection).toBe(false)
  })

  it('synced() in a tab without the connection is answered by the tab that takes it over, when the connected one closes first', async () => {
    const { leader, follower, device } = await twoTabsAndADevice('synced-handover')
    await follower.synced()
    // Offline: the connected tab takes the ask, and cannot answer it before it closes.
    leader.disconnect()
    await until(() => follower.status === 'offline', 'the other tab to hear the connection is down')
    await device.collection('notes').put('n', { by: 'device' })
    await device.synced()
    const waiting = follower.synced()
    await leader.close()
    follower.connect()
    await waiting
    expect(await follower.collection('notes').get('n')).toEqual({ by: 'device' })
  })

  it('a write from a tab whose notice never reaches the others (it crashed right after its commit) is uploaded all the same, and the live lists show it', async () => {
    spaces += 1
    const space = `tabs-mute-${spaces}`
    const origin = new IDBFactory()
    const leader = await replica(space, origin, 'shared')
    await leader.synced()
    const listed: string[][] = []
    const stop = leader.collection('notes').subscribe((rows) => listed.push(rows.map((row) => row.id)))
    const device = await replica(space, new IDBFactory(), 'device')
    // This tab's channel delivers nothing: the others never hear of its writes.
    const Channel = globalThis.BroadcastChannel
    globalThis.BroadcastChannel = class extends Channel {
      override postMessage(): void {}
    }
    let mute: Replica
    try {
      mute = await replica(space, origin, 'shared')
    } finally {
      globalThis.BroadcastChannel = Channel
    }
    await mute.collection('notes').put('unannounced', { title: 'written, then the tab died' })
    await until(
      async () => (await device.collection('notes').get('unannounced')) !== undefined,
      'the device to receive the write',
    )
    await until(() => leader.pending === 0 && leader.status === 'synced', 'the connected tab to be synced')
    // Told of nothing, the live list still shows it: the connected tab found the write itself.
    await until(
      () => listed.some((ids) => ids.includes('unannounced')),
      "the connected tab's live list to show it",
    )
    stop()
  })

  for (const seed of [1, 2, 3, 35]) {
    it(`seeded tabs (seed ${seed}): writes from any tab and a device, tabs closing and opening, going offline and back — the tabs end as the device does, and every acknowledged write reached the hub`, async () => {
      const prng = createPrng(seed)
      spaces += 1
      const space = `tabs-seeded-${spaces}`
      const origin = new IDBFactory()
      const tabs: Replica[] = [await replica(space, origin, 'shared')]
      await tabs[0]?.synced()
      tabs.push(await replica(space, origin, 'shared'))
      const device = await replica(space, new IDBFactory(), 'device')
      const ids = ['a', 'b', 'c']
      const writes: Promise<string | null>[] = []
      let token = 0
      const write = (writer: Replica) => {
        const id = prng.pick(ids)
        const value = `${seed}-${++token}`
        const notes = writer.collection('notes')
        const done = prng.bool(0.15)
          ? notes.delete(id).then(() => null)
          : notes.put(id, { value }).then(() => value)
        // A write refused because its tab closed meanwhile was never acknowledged.
        writes.push(done.catch(() => null))
      }
      for (let step = 0; step < 120; step++) {
        const roll = prng.next()
        if (roll < 0.45) write(prng.pick(tabs))
        else if (roll < 0.75) write(device)
        else if (roll < 0.83 && tabs.length > 1) {
          const closing = tabs.splice(prng.int(0, tabs.length - 1), 1)[0] as Replica
          void closing.close()
        } else if (roll < 0.9 && tabs.length < 4) tabs.push(await replica(space, origin, 'shared'))
        else if (roll < 0.95) prng.pick(tabs).disconnect()
        else prng.pick(tabs).connect()
        await new Promise((resolve) => setTimeout(resolve, prng.int(0, 3)))
      }
      const acknowledged = (await Promise.all(writes)).filter((value): value is string => value !== null)
      ;(tabs[0] as Replica).connect()
      // A timeout says where each one stood, for whoever replays it.
      const standing = () =>
        [
          ...tabs.map((tab, i) => `tab ${i}: ${tab.status}, ${tab.pending} pending`),
          `device: ${device.status}, ${device.pending} pending`,
          `locks: ${locks.describe() || 'none'}`,
        ].join('; ')
      await until(
        () => tabs.every((tab) => tab.pending === 0 && tab.status === 'synced') && device.pending === 0,
        'every tab and the device to upload everything',
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message} (${standing()})`)
      })
      await expectSame(device, tabs, ids)
      const logged = new Set(
        (await hub.store.readLog(space as SpaceId, 0, 100_000)).flatMap(({ change }) =>
          change.op.type === 'put' ? [String((change.op.value as { value?: unknown }).value)] : [],
        ),
      )
      expect(acknowledged.filter((value) => !logged.has(value))).toEqual([])
    }, 60_000)
  }
})
