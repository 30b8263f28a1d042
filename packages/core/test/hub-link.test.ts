import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { type ChorusError, ErrorCode } from '../src/errors.js'
import {
  type Authenticate,
  createHubEngine,
  type HubConnection,
  type HubEngine,
  type SharedPresence,
} from '../src/hub-engine.js'
import { asReplicaId, asSpaceId, type SpaceId } from '../src/ids.js'
import { decodeMessage } from '../src/protocol/codec.js'
import { openReplicaEngine, type PresenceEvent, type ReplicaEngine } from '../src/replica-engine.js'
import type { HubStore } from '../src/storage.js'
import { wireToHub } from './wire-hub.js'

const SPACE = asSpaceId('team')
let time = 1_700_000_000_000
const now = () => time++

function hubOn(store: HubStore, authenticate?: Authenticate, presenceOrigin?: string): HubEngine {
  return createHubEngine({
    store,
    now,
    ...(authenticate === undefined ? {} : { authenticate }),
    ...(presenceOrigin === undefined ? {} : { presenceOrigin }),
  })
}

/** A replica named `name`, connected to `hub`; `peers` keeps the others' presence it hears. */
async function replicaOn(
  hub: HubEngine,
  name: string,
  space: SpaceId = SPACE,
  peers?: Map<string, unknown>,
): Promise<ReplicaEngine> {
  const engine = await openReplicaEngine({
    store: new MemoryReplicaStore(),
    space,
    now,
    createReplicaId: () => asReplicaId(name),
    ...(peers === undefined
      ? {}
      : {
          onPresence: (event: PresenceEvent) => {
            if (event.type === 'reset') peers.clear()
            else if (event.state === null) peers.delete(`${event.replicaId}/${event.key}`)
            else peers.set(`${event.replicaId}/${event.key}`, event.state)
          },
        }),
  })
  wireToHub(hub, engine)
  return engine
}

interface Link {
  /** Every frame each side sent, decoded. */
  readonly sent: { readonly dialer: string[]; readonly acceptor: string[] }
  readonly errors: ChorusError[]
  /** The space each error frame named, by index in `errors` (undefined where none). */
  readonly errorSpaces: (string | undefined)[]
  /** Whether the link was hung up (by either side). */
  closed(): boolean
  /** Hangs the connection up on both sides. */
  cut(): Promise<void>
}

/** Links `dialer` to `acceptor` in this process, as a relay dialing another would. */
function link(
  dialer: HubEngine,
  acceptor: HubEngine,
  options: { readonly spaces?: readonly SpaceId[]; readonly token?: string; readonly id?: string } = {},
): Link {
  const sent = { dialer: [] as string[], acceptor: [] as string[] }
  const errors: ChorusError[] = []
  const errorSpaces: (string | undefined)[] = []
  let open = true
  let dialed: HubConnection | null = null
  const accepted = acceptor.accept({
    send: (frame) => {
      sent.acceptor.push(frame)
      if (open) void dialed?.receive(frame)
    },
    close: () => {
      if (!open) return
      open = false
      void dialed?.closed()
    },
  })
  dialed = dialer.dial(
    {
      send: (frame) => {
        sent.dialer.push(frame)
        if (open) void accepted.receive(frame)
      },
      close: () => {
        if (!open) return
        open = false
        void accepted.closed()
      },
    },
    {
      spaces: options.spaces ?? [SPACE],
      replicaId: asReplicaId(options.id ?? 'hub-a'),
      ...(options.token === undefined ? {} : { token: options.token }),
      onError: (error, space) => {
        errors.push(error)
        errorSpaces.push(space)
      },
    },
  )
  return {
    sent,
    errors,
    errorSpaces,
    closed: () => !open,
    async cut() {
      if (!open) return
      open = false
      await Promise.all([accepted.closed(), dialed?.closed()])
    },
  }
}

async function settle(hubs: readonly HubEngine[], replicas: readonly ReplicaEngine[]): Promise<void> {
  for (let round = 0; round < 8; round++) {
    await Promise.all(hubs.map((hub) => hub.idle()))
    await Promise.all(replicas.map((replica) => replica.idle()))
  }
}

async function rows(replica: ReplicaEngine): Promise<[string, unknown][]> {
  return (await replica.list('notes')).map((row) => [row.id, row.value] as [string, unknown])
}

/** The changes a side's `changes` frames carried, over the link's life. */
function changesSent(frames: readonly string[]): number {
  let count = 0
  for (const frame of frames) {
    const decoded = decodeMessage(frame)
    if (decoded.ok && (decoded.message.type === 'changes' || decoded.message.type === 'snapshot'))
      count += decoded.message.batch.length
  }
  return count
}

/** Each dot in a store's log, and how often. */
async function dotsIn(store: HubStore, space: SpaceId = SPACE): Promise<Map<string, number>> {
  const dots = new Map<string, number>()
  for (const entry of await store.readLog(space, 0, 1_000_000)) {
    const key = entry.change.dot.join(':')
    dots.set(key, (dots.get(key) ?? 0) + 1)
  }
  return dots
}

describe('linked hubs (relay↔relay)', () => {
  it('carry each hub’s changes to the other’s replicas, both ways, each stored once', async () => {
    const storeA = new MemoryHubStore({ log: 'log-a' })
    const storeB = new MemoryHubStore({ log: 'log-b' })
    const a = hubOn(storeA)
    const b = hubOn(storeB)
    const alice = await replicaOn(a, 'alice')
    const bob = await replicaOn(b, 'bob')
    await alice.put('notes', 'a1', { by: 'alice' })
    await bob.put('notes', 'b1', { by: 'bob' })
    link(a, b)
    await settle([a, b], [alice, bob])
    const expected = [
      ['a1', { by: 'alice' }],
      ['b1', { by: 'bob' }],
    ]
    expect(await rows(alice)).toEqual(expected)
    expect(await rows(bob)).toEqual(expected)
    // Live writes after linking flow too.
    await alice.put('notes', 'a2', { by: 'alice' })
    await bob.patch('notes', 'a1', { seen: true })
    await settle([a, b], [alice, bob])
    expect(await rows(alice)).toEqual(await rows(bob))
    expect(await bob.get('notes', 'a2')).toEqual({ by: 'alice' })
    expect(await alice.get('notes', 'a1')).toEqual({ by: 'alice', seen: true })
    // Each hub stored every change once: what came back over the link was dropped.
    for (const store of [storeA, storeB]) {
      const dots = await dotsIn(store)
      expect([...dots.keys()].sort()).toEqual(['alice:1', 'alice:2', 'bob:1', 'bob:2'])
      expect([...dots.values()].every((count) => count === 1)).toBe(true)
    }
    expect(alice.pending()).toBe(0)
    expect(bob.pending()).toBe(0)
  })

  it('settles concurrent edits of one record on both sides to the same state', async () => {
    const a = hubOn(new MemoryHubStore({ log: 'log-a' }))
    const b = hubOn(new MemoryHubStore({ log: 'log-b' }))
    const alice = await replicaOn(a, 'alice')
    const bob = await replicaOn(b, 'bob')
    await alice.put('notes', 'n', { title: 'from alice' })
    await bob.put('notes', 'n', { title: 'from bob' })
    await bob.put('notes', 'gone', { x: 1 })
    await settle([a, b], [alice, bob])
    link(a, b)
    await settle([a, b], [alice, bob])
    await alice.delete('notes', 'gone')
    await settle([a, b], [alice, bob])
    expect(await rows(alice)).toEqual(await rows(bob))
    expect(await alice.get('notes', 'gone')).toBeUndefined()
    const [left, right] = [await alice.conflicts(), await bob.conflicts()]
    expect(left).toEqual(right)
    expect(await alice.get('notes', 'n')).toEqual(await bob.get('notes', 'n'))
  })

  it('resumes where it stopped after the link is cut: only what is new crosses', async () => {
    const a = hubOn(new MemoryHubStore({ log: 'log-a' }))
    const b = hubOn(new MemoryHubStore({ log: 'log-b' }))
    const alice = await replicaOn(a, 'alice')
    const bob = await replicaOn(b, 'bob')
    for (let i = 0; i < 50; i++) await alice.put('notes', `a${i}`, { i })
    for (let i = 0; i < 30; i++) await bob.put('notes', `b${i}`, { i })
    const first = link(a, b)
    await settle([a, b], [alice, bob])
    expect((await rows(bob)).length).toBe(80)
    await first.cut()
    await alice.put('notes', 'a-late', { late: true })
    await bob.put('notes', 'b-late', { late: true })
    await settle([a, b], [alice, bob])
    expect(await bob.get('notes', 'a-late')).toBeUndefined()
    const second = link(a, b)
    await settle([a, b], [alice, bob])
    expect(await bob.get('notes', 'a-late')).toEqual({ late: true })
    expect(await alice.get('notes', 'b-late')).toEqual({ late: true })
    // Each side sends its one new change, and not the other's back.
    expect(changesSent(second.sent.dialer)).toBe(1)
    expect(changesSent(second.sent.acceptor)).toBe(1)
    expect(await rows(alice)).toEqual(await rows(bob))
  })

  it('sends a snapshot to a hub whose position the other compacted away, and loses nothing', async () => {
    const storeB = new MemoryHubStore({ log: 'log-b' })
    const b = hubOn(storeB)
    const bob = await replicaOn(b, 'bob')
    for (let i = 0; i < 40; i++) await bob.put('notes', `b${i % 25}`, { i })
    // Bob's last change is replaced by carol's: the snapshot holds none of bob's 40.
    const carol = await replicaOn(b, 'carol')
    await settle([b], [bob, carol])
    await carol.put('notes', 'b14', { over: true })
    await settle([b], [bob, carol])
    storeB.truncateLog(SPACE, 30)
    const storeA = new MemoryHubStore({ log: 'log-a' })
    const a = hubOn(storeA)
    const alice = await replicaOn(a, 'alice')
    await alice.put('notes', 'a0', { mine: true })
    const linked = link(a, b)
    await settle([a, b], [alice, bob])
    expect(await rows(alice)).toEqual(await rows(bob))
    expect((await rows(alice)).length).toBe(26)
    // Every counter of bob's the snapshot covers counts as held, the replaced last one too:
    // bob would otherwise be taken, on the linking hub, for a writer whose changes it lost.
    expect((await storeA.loadSpace(SPACE)).received.bob).toBe(40)
    const snapshot = linked.sent.acceptor
      .map((frame) => decodeMessage(frame))
      .find((decoded) => decoded.ok && decoded.message.type === 'snapshot')
    expect(snapshot).toBeDefined()
    // Later changes continue from the snapshot's position.
    await bob.put('notes', 'after', { ok: true })
    await settle([a, b], [alice, bob])
    expect(await alice.get('notes', 'after')).toEqual({ ok: true })
  })

  it('sends a linking hub one snapshot at a time, whole, before the next space’s, under backpressure too', async () => {
    const spaces = ['s1', 's2', 's3'].map(asSpaceId)
    const storeA = new MemoryHubStore({ log: 'log-a' })
    // Pages of three records, so each space's snapshot takes three; and a send buffer of one
    // byte, so every frame waits for the transport to say it is writable again.
    const a = createHubEngine({ store: storeA, now, session: { snapshotPage: 3, sendBuffer: 1 } })
    const writers = await Promise.all(spaces.map((space, i) => replicaOn(a, `w${i}`, space)))
    for (const writer of writers) for (let k = 0; k < 8; k++) await writer.put('notes', `n${k}`, { k })
    await settle([a], writers)
    for (const space of spaces) storeA.truncateLog(space, 8)
    const b = hubOn(new MemoryHubStore({ log: 'log-b' }))
    // b dials a; a's side of the link reports a backlog after each frame until it is drained.
    const sent: string[] = []
    let backlog = 0
    let dialed: HubConnection | null = null
    const accepted = a.accept({
      send: (frame) => {
        sent.push(frame)
        backlog = 1
        void dialed?.receive(frame)
      },
      close: () => {},
      backlog: () => backlog,
    })
    dialed = b.dial(
      { send: (frame) => void accepted.receive(frame), close: () => {} },
      { spaces, replicaId: asReplicaId('hub-b') },
    )
    const readers = await Promise.all(spaces.map((space, i) => replicaOn(b, `r${i}`, space)))
    for (let round = 0; round < 40; round++) {
      await settle([a, b], [...writers, ...readers])
      backlog = 0
      await accepted.writable()
    }
    for (const [i, reader] of readers.entries())
      expect(await rows(reader)).toEqual(await rows(writers[i] as ReplicaEngine))
    // The pages as a sent them: each space's from its first to its last, then the next one's
    // (b keeps a snapshot's pages until its last: interleaved, all three would sit there).
    const order = sent
      .map((frame) => decodeMessage(frame))
      .flatMap((decoded) =>
        decoded.ok && decoded.message.type === 'snapshot'
          ? [`${decoded.message.space}:${decoded.message.page}${decoded.message.last ? '!' : ''}`]
          : [],
      )
    const grouped = [...spaces]
      .sort((x, y) => order.indexOf(`${x}:0`) - order.indexOf(`${y}:0`))
      .flatMap((space) => [`${space}:0`, `${space}:1`, `${space}:2!`])
    expect(order).toEqual(grouped)
  })

  it('converge around a ring of three without sending changes round forever', async () => {
    const stores = ['x', 'y', 'z'].map((name) => new MemoryHubStore({ log: `log-${name}` }))
    const hubs = stores.map((store) => hubOn(store))
    const [x, y, z] = hubs as [HubEngine, HubEngine, HubEngine]
    const replicas = [await replicaOn(x, 'rx'), await replicaOn(y, 'ry'), await replicaOn(z, 'rz')]
    const links = [link(x, y, { id: 'hub-x' }), link(y, z, { id: 'hub-y' }), link(z, x, { id: 'hub-z' })]
    for (const [i, replica] of replicas.entries()) {
      for (let k = 0; k < 10; k++) await replica.put('notes', `r${i}-${k}`, { i, k })
      await replica.put('notes', 'shared', { by: i })
    }
    await settle(hubs, replicas)
    const first = await rows(replicas[0] as ReplicaEngine)
    expect(first.length).toBe(31)
    for (const replica of replicas) expect(await rows(replica)).toEqual(first)
    for (const store of stores) {
      const dots = await dotsIn(store)
      expect(dots.size).toBe(33)
      expect([...dots.values()].every((count) => count === 1)).toBe(true)
    }
    // Quiet once converged: a tick resends nothing.
    const before = links.map((each) => each.sent.dialer.length + each.sent.acceptor.length)
    await Promise.all(hubs.map((hub) => hub.tick()))
    await settle(hubs, replicas)
    expect(links.map((each) => each.sent.dialer.length + each.sent.acceptor.length)).toEqual(before)
  })

  it('pass presence along a chain, both ways; a connection’s goes with it, and a cut link’s with the link or its expiry', async () => {
    const hubs = ['x', 'y', 'z'].map((name) =>
      hubOn(new MemoryHubStore({ log: `log-${name}` }), undefined, `hub-${name}`),
    )
    const [x, y, z] = hubs as [HubEngine, HubEngine, HubEngine]
    const heard = {
      rx: new Map<string, unknown>(),
      ry: new Map<string, unknown>(),
      rz: new Map<string, unknown>(),
    }
    const rx = await replicaOn(x, 'rx', SPACE, heard.rx)
    const ry = await replicaOn(y, 'ry', SPACE, heard.ry)
    const rz = await replicaOn(z, 'rz', SPACE, heard.rz)
    const xy = link(x, y, { id: 'hub-x' })
    link(y, z, { id: 'hub-y' })
    const replicas = [rx, ry, rz]
    await settle(hubs, replicas)
    rx.setPresence('tab', { at: 'x' })
    rz.setPresence('tab', { at: 'z' })
    await settle(hubs, replicas)
    // Two hops each way, and to the hub between.
    expect(Object.fromEntries(heard.rz)).toEqual({ 'rx/tab': { at: 'x' } })
    expect(Object.fromEntries(heard.rx)).toEqual({ 'rz/tab': { at: 'z' } })
    expect(Object.fromEntries(heard.ry)).toEqual({ 'rx/tab': { at: 'x' }, 'rz/tab': { at: 'z' } })
    rx.setPresence('tab', { at: 'x', note: 'n2' })
    await settle(hubs, replicas)
    expect(heard.rz.get('rx/tab')).toEqual({ at: 'x', note: 'n2' })

    // A replica joining late hears what holds, over both links.
    const late = new Map<string, unknown>()
    const rz2 = await replicaOn(z, 'rz2', SPACE, late)
    await settle(hubs, [...replicas, rz2])
    expect([...late.keys()].sort()).toEqual(['rx/tab', 'rz/tab'])

    // The link x–y is cut: y forgets at once what came over it; z, one link further, once
    // it is not heard again within the age it is given.
    await xy.cut()
    await settle(hubs, [...replicas, rz2])
    expect([...heard.ry.keys()]).toEqual(['rz/tab'])
    expect([...heard.rz.keys()]).toEqual(['rx/tab'])
    z.refreshPresence(0)
    await settle(hubs, [...replicas, rz2])
    expect([...heard.rz.keys()]).toEqual([])
    // x gives its own again on a refresh, over a new link: back everywhere.
    link(x, y, { id: 'hub-x' })
    await settle(hubs, [...replicas, rz2])
    x.refreshPresence(60_000)
    await settle(hubs, [...replicas, rz2])
    expect(heard.rz.get('rx/tab')).toEqual({ at: 'x', note: 'n2' })
    // rx goes: gone everywhere.
    rx.setPresence('tab', null)
    await settle(hubs, [...replicas, rz2])
    expect([...heard.rz.keys()]).toEqual([])
    expect([...heard.ry.keys()]).toEqual(['rz/tab'])
  })

  it('pass presence into a ring from a hub outside it, keeping each hub’s latest change, and go quiet', async () => {
    const hubs = ['w', 'x', 'y', 'z'].map((name) =>
      hubOn(new MemoryHubStore({ log: `log-${name}` }), undefined, `hub-${name}`),
    )
    const [w, x, y, z] = hubs as [HubEngine, HubEngine, HubEngine, HubEngine]
    const heardY = new Map<string, unknown>()
    const heardZ = new Map<string, unknown>()
    const rw = await replicaOn(w, 'rw')
    const ry = await replicaOn(y, 'ry', SPACE, heardY)
    const rz = await replicaOn(z, 'rz', SPACE, heardZ)
    // w hangs off a ring of x, y and z: every change of w's enters the ring at x and could go
    // round it for ever, were a change heard twice passed on twice.
    const links = [
      link(w, x, { id: 'hub-w' }),
      link(x, y, { id: 'hub-x' }),
      link(y, z, { id: 'hub-y' }),
      link(z, x, { id: 'hub-z' }),
    ]
    const replicas = [rw, ry, rz]
    const sent = () =>
      links.reduce((sum, each) => sum + each.sent.dialer.length + each.sent.acceptor.length, 0)
    await settle(hubs, replicas)
    const quiet = sent()
    for (let n = 1; n <= 5; n++) rw.setPresence('tab', { n })
    await settle(hubs, replicas)
    expect(heardY.get('rw/tab')).toEqual({ n: 5 })
    expect(heardZ.get('rw/tab')).toEqual({ n: 5 })
    // Each of the five changes crossed each of the four links at most twice (once each way).
    const after = sent()
    expect(after - quiet).toBeLessThanOrEqual(5 * 4 * 2)
    await settle(hubs, replicas)
    expect(sent()).toBe(after)
    rw.setPresence('tab', null)
    await settle(hubs, replicas)
    expect(heardY.size).toBe(0)
    expect(heardZ.size).toBe(0)
  })

  it('pass presence between hubs sharing a store and on over their links, both ways, with refresh and expiry', async () => {
    // x and y share a store, and tell each other of presence as relays do over it
    // (`onPresence` to `remotePresence`, while `shared`); y is linked to z.
    let shared = true
    const told: SharedPresence[] = []
    const sharing = (name: string, to: () => HubEngine) =>
      createHubEngine({
        store: new MemoryHubStore({ log: `log-${name}` }),
        now,
        presenceOrigin: `hub-${name}`,
        onPresence: (entry) => {
          if (name === 'x') told.push(entry)
          if (shared) to().remotePresence(`store-${name}`, entry)
        },
      })
    const x: HubEngine = sharing('x', () => y)
    const y: HubEngine = sharing('y', () => x)
    const z = hubOn(new MemoryHubStore({ log: 'log-z' }), undefined, 'hub-z')
    const hubs = [x, y, z]
    const heardX = new Map<string, unknown>()
    const heardZ = new Map<string, unknown>()
    const rx = await replicaOn(x, 'rx', SPACE, heardX)
    const rz = await replicaOn(z, 'rz', SPACE, heardZ)
    link(y, z, { id: 'hub-y' })
    const replicas = [rx, rz]
    await settle(hubs, replicas)

    rx.setPresence('tab', { at: 'x' })
    rz.setPresence('tab', { at: 'z' })
    await settle(hubs, replicas)
    // x's through the store to y and over the link to z; z's over the link to y and through
    // the store to x.
    expect(Object.fromEntries(heardZ)).toEqual({ 'rx/tab': { at: 'x' } })
    expect(Object.fromEntries(heardX)).toEqual({ 'rz/tab': { at: 'z' } })
    expect(told.map((entry) => [entry.origin, entry.seq])).toEqual([['hub-x', 1]])

    // An older change heard late (a slow notice) does not undo a newer one.
    rx.setPresence('tab', { at: 'x', note: 'n2' })
    await settle(hubs, replicas)
    y.remotePresence('store-x', told[0] as SharedPresence)
    await settle(hubs, replicas)
    expect(heardZ.get('rx/tab')).toEqual({ at: 'x', note: 'n2' })

    // x goes quiet (its relay stopped without a word): y and z clear its presence once it
    // is not heard again within the age they are given.
    shared = false
    y.refreshPresence(0)
    z.refreshPresence(0)
    await settle(hubs, replicas)
    expect(heardZ.size).toBe(0)
    // Heard again: x's refresh gives its own again, through the store and over the link.
    shared = true
    x.refreshPresence(60_000)
    await settle(hubs, replicas)
    expect(Object.fromEntries(heardZ)).toEqual({ 'rx/tab': { at: 'x', note: 'n2' } })
    // And a clear goes the same way.
    rx.setPresence('tab', null)
    await settle(hubs, replicas)
    expect(heardZ.size).toBe(0)
  })

  it('refuses a link whose token may not relay, and tells the dialer why', async () => {
    const writeOnly: Authenticate = () => ({ ok: true, access: () => 'write' })
    const storeB = new MemoryHubStore({ log: 'log-b' })
    const a = hubOn(new MemoryHubStore({ log: 'log-a' }))
    const b = hubOn(storeB, writeOnly)
    const alice = await replicaOn(a, 'alice')
    await alice.put('notes', 'a1', { x: 1 })
    const linked = link(a, b, { token: 't' })
    await settle([a, b], [alice])
    expect(linked.errors.map((error) => error.code)).toEqual([ErrorCode.Forbidden])
    expect(linked.errors[0]?.message).toMatch(/relay claim/)
    expect((await storeB.loadSpace(SPACE)).head).toBe(0)
  })

  it('only reads over a link the other hub grants read access to', async () => {
    const readOnly: Authenticate = (_token, replica) =>
      replica === 'hub-a'
        ? { ok: true, access: () => 'read', relay: true }
        : { ok: true, access: () => 'write' }
    const storeB = new MemoryHubStore({ log: 'log-b' })
    const a = hubOn(new MemoryHubStore({ log: 'log-a' }))
    const b = hubOn(storeB, readOnly)
    const alice = await replicaOn(a, 'alice')
    const bob = await replicaOn(b, 'bob')
    await alice.put('notes', 'a1', { x: 1 })
    await bob.put('notes', 'b1', { x: 2 })
    const linked = link(a, b)
    await settle([a, b], [alice, bob])
    expect(await alice.get('notes', 'b1')).toEqual({ x: 2 })
    expect(await bob.get('notes', 'a1')).toBeUndefined()
    expect(linked.errors).toEqual([])
    expect(changesSent(linked.sent.dialer)).toBe(0)
  })

  it('keeps positions per log: a hub restored from a backup is read from its start again', async () => {
    const storeB = new MemoryHubStore({ log: 'log-b' })
    const a = hubOn(new MemoryHubStore({ log: 'log-a' }))
    let b = hubOn(storeB)
    const bob = await replicaOn(b, 'bob')
    await bob.put('notes', 'b1', { x: 1 })
    await settle([b], [bob])
    const backup = storeB.copy('log-b-restored')
    await bob.put('notes', 'b2', { x: 2 })
    const first = link(a, b)
    const alice = await replicaOn(a, 'alice')
    await settle([a, b], [alice, bob])
    expect((await rows(alice)).length).toBe(2)
    await first.cut()
    // B comes back from the backup: it lacks b2 (which a still holds and gives back), and its
    // position 2 is now another change, which a must not take for the one it read there.
    b = hubOn(backup)
    const carol = await replicaOn(b, 'carol')
    await carol.put('notes', 'c1', { x: 3 })
    await settle([b], [carol])
    expect((await backup.loadSpace(SPACE)).head).toBe(2)
    link(a, b)
    await settle([a, b], [alice, carol])
    expect((await dotsIn(backup)).has('bob:2')).toBe(true)
    expect(await alice.get('notes', 'c1')).toEqual({ x: 3 })
    expect(await rows(alice)).toEqual(await rows(carol))
  })

  it('refuses bad dial options', () => {
    const a = hubOn(new MemoryHubStore({ log: 'log-a' }))
    const peer = { send: () => {}, close: () => {} }
    expect(() => a.dial(peer, { spaces: [] })).toThrow(/non-empty/)
    expect(() => a.dial(peer, { spaces: [SPACE, SPACE] })).toThrow(/twice/)
    expect(() => a.dial(peer, { spaces: [SPACE], replicaId: asReplicaId('ok') })).not.toThrow()
  })

  it('hangs up when its store names no log to be its id and none is given', async () => {
    const a = hubOn(new MemoryHubStore())
    const closed: string[] = []
    a.dial({ send: () => {}, close: (code) => closed.push(String(code)) }, { spaces: [SPACE] })
    await a.idle()
    expect(closed).toEqual([ErrorCode.InvalidArgument])
  })

  it('leave out a space deleted on either hub, naming it, and link the rest', async () => {
    const other = asSpaceId('other')
    const storeA = new MemoryHubStore({ log: 'log-a' })
    const storeB = new MemoryHubStore({ log: 'log-b' })
    const a = hubOn(storeA)
    const b = hubOn(storeB)
    const bob = await replicaOn(b, 'bob')
    await bob.put('notes', 'b1', { x: 1 })
    await settle([b], [bob])
    // Deleted on the accepting hub: the hello naming it is refused, naming it.
    await b.deleteSpace(other)
    const refused = link(a, b, { spaces: [SPACE, other] })
    await settle([a, b], [bob])
    expect(refused.errors.map((error) => error.code)).toEqual([ErrorCode.SpaceDeleted])
    expect(refused.errorSpaces).toEqual([other])
    expect(refused.closed()).toBe(true)
    // Deleted on the dialing hub: left out of the dial, said so, and the rest linked.
    await a.deleteSpace(other)
    const linked = link(a, b, { spaces: [SPACE, other] })
    const alice = await replicaOn(a, 'alice')
    await settle([a, b], [alice, bob])
    expect(linked.errors.map((error) => error.code)).toEqual([ErrorCode.SpaceDeleted])
    expect(linked.errorSpaces).toEqual([other])
    expect(linked.closed()).toBe(false)
    expect(await alice.get('notes', 'b1')).toEqual({ x: 1 })
    // A space the accepting hub deletes while linked ends the session, naming it.
    await b.deleteSpace(SPACE)
    await settle([a, b], [alice])
    expect(linked.errors.map((error) => error.code)).toEqual([ErrorCode.SpaceDeleted, ErrorCode.SpaceDeleted])
    expect(linked.errorSpaces).toEqual([other, SPACE])
    expect(linked.closed()).toBe(true)
  })
})
