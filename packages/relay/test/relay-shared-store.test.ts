import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import {
  asSpaceId,
  ChorusError,
  ErrorCode,
  Feature,
  type Message,
  type SharedPresence,
  type SpaceId,
} from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import { createRelay, type Relay } from '../src/relay.js'
import type { RelayOptions } from '../src/relay-options.js'
import type { RelayStore, StoreEvent } from '../src/relay-store.js'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { makeRun, makeTempDir, within } from './support/fixtures.js'
import { startTestRelay } from './support/harness.js'
import { A, B, SPACE } from './support/relay-store-suite.js'
import { changes, connectClient, hello, is } from './support/test-client.js'

const OTHER = asSpaceId('other-notes')

/**
 * The relay's side of a store shared with other relays, over a real SQLite store: the other
 * relays' appends are written to it here, and told through `watch` as the PostgreSQL store's
 * listener tells them; whether it hears them is `listening`.
 */
describe('a relay on a store shared with other relays', () => {
  let temp: ReturnType<typeof makeTempDir>
  let sqlite: SqliteRelayStore
  let listener: ((event: StoreEvent) => void) | null
  let hearing: boolean
  /** False: the store's `stats` fails, as a database that is down does. */
  let answering: boolean
  /** False: the store's appends fail, as on a full disk. */
  let committing: boolean
  /** The store as the relay sees it: shared, its `watch` calling `listener`. */
  let shared: RelayStore
  let server: WebSocketServer
  let relay: Relay

  beforeEach(async () => {
    temp = makeTempDir()
    sqlite = new SqliteRelayStore(join(temp.dir, 'relay.db'))
    listener = null
    hearing = true
    answering = true
    committing = true
    shared = new Proxy(sqlite, {
      get(target, property) {
        if (property === 'watch') {
          return (next: (event: StoreEvent) => void) => {
            listener = next
            return () => {
              listener = null
            }
          }
        }
        if (property === 'listening') return () => hearing
        if (property === 'stats' && !answering) return () => Promise.reject(new Error('the database is down'))
        if ((property === 'append' || property === 'appendMany') && !committing) {
          return () => Promise.reject(new ChorusError(ErrorCode.StorageFailed, 'the disk is full'))
        }
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    }) as RelayStore
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(server, 'listening')
    relay = createRelay({ server, store: shared, heartbeatMs: 0 })
  })

  afterEach(async () => {
    await relay.close()
    server.close()
    await sqlite.close()
    temp.remove()
  })

  it('streams another relay’s append to its clients once told, and counts the news', async () => {
    const client = await connectClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
    client.send(hello('bob', { [SPACE]: 0 }))
    await client.waitFor(is.hello, 'hello')
    // Another relay appends Alice's changes to the store this one shares.
    const written = makeRun(A, 1, 3)
    const { head } = await sqlite.append(SPACE, A, written)
    expect(listener).not.toBeNull()
    listener?.({ type: 'appended', space: SPACE, head, received: { [A]: 3 } })
    const frame = await client.waitFor(is.changesTo(3), 'the other relay’s changes')
    expect(frame).toMatchObject({ type: 'changes', space: SPACE, from: 0, to: 3 })
    expect((await relay.metrics()).remoteAppends).toBe(1)
    // Its own writer's batch continues after them.
    client.send(changes(SPACE, 0, makeRun(B, 1, 1)))
    await client.waitFor(is.ack(1), 'bob’s change acknowledged')
    expect((await sqlite.loadSpace(SPACE)).head).toBe(4)
    await client.close()
  })

  it('reads the counters a notice had no room for, so a writer that connects here is not taken for one the relay lost', async () => {
    const reader = await connectClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
    reader.send(hello('bob', { [SPACE]: 0 }))
    await reader.waitFor(is.hello, 'hello')
    // Alice wrote through another relay, whose notice carried no counters.
    const { head } = await sqlite.append(SPACE, A, makeRun(A, 1, 3))
    listener?.({ type: 'appended', space: SPACE, head })
    await reader.waitFor(is.changesTo(3), 'the other relay’s changes')
    const writer = await connectClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
    writer.send(hello('alice', { [SPACE]: 3 }))
    const answer = await writer.waitFor(is.hello, 'hello')
    expect(answer.have).toEqual({ [SPACE]: 3 })
    await writer.close()
    await reader.close()
  })

  it('is failing on /healthz, and says so in /metrics, while it does not hear the other relays', async () => {
    expect(await relay.health()).toMatchObject({ status: 'ok', listening: true })
    expect((await relay.metrics()).storeListening).toBe(1)
    hearing = false
    expect(await relay.health()).toMatchObject({ status: 'failing', listening: false })
    expect((await relay.metrics()).storeListening).toBe(0)
    hearing = true
    expect(await relay.health()).toMatchObject({ status: 'ok', listening: true })
    // The database down too: still saying it does not hear, and not claiming 0 spaces.
    hearing = false
    answering = false
    expect(await relay.health()).toMatchObject({ status: 'failing', listening: false, spaces: null })
    // /metrics still answers: what only the store knows is left out, the rest is there.
    const metrics = await relay.metrics()
    expect(metrics).toMatchObject({ storeListening: 0, connections: 0 })
    expect(metrics.spaces).toBeUndefined()
  })

  it('is failing on /healthz while its commits fail, until one succeeds', async () => {
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
    committing = false
    const alice = await connectClient(url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    await alice.waitFor(is.hello, 'hello')
    alice.send(changes(SPACE, 0, makeRun(A, 1, 2)))
    // The writer is told why nothing is acknowledged: not fatal, it sends them again.
    const told = await alice.waitFor(is.error(ErrorCode.StorageFailed), 'the storage failure')
    expect(told).toMatchObject({ space: SPACE })
    await within(
      (async () => {
        while ((await relay.health()).status !== 'failing')
          await new Promise((resolve) => setTimeout(resolve, 10))
      })(),
      5000,
      'the failed commit to show on /healthz',
    )
    expect(await relay.health()).toMatchObject({ status: 'failing', commitsFailing: true, listening: true })
    committing = true
    const bob = await connectClient(url)
    bob.send(hello('bob', { [OTHER]: 0 }))
    await bob.waitFor(is.hello, 'hello')
    bob.send(changes(OTHER, 0, makeRun(B, 1, 1)))
    await bob.waitFor(is.ack(1), 'bob’s change acknowledged')
    expect(await relay.health()).toMatchObject({ status: 'ok' })
    expect((await relay.health()).commitsFailing).toBeUndefined()
    await alice.close()
    await bob.close()
  })

  it.each([
    ['told of it', (space: SpaceId) => listener?.({ type: 'deleted', space })],
    ['finding it on a resync, after missing the news', () => listener?.({ type: 'resync' })],
  ] as const)('closes its connections on a space another relay deleted, %s', async (_, tell) => {
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
    const client = await connectClient(url)
    client.send(hello('bob', { [SPACE]: 0 }))
    await client.waitFor(is.hello, 'hello')
    const bystander = await connectClient(url)
    bystander.send(hello('carol', { [OTHER]: 0 }))
    await bystander.waitFor(is.hello, 'hello')
    // Another relay deletes the space in the store this one shares.
    expect(await sqlite.deleteSpace(SPACE)).toBe(true)
    tell(SPACE)
    await client.waitFor(is.error(ErrorCode.SpaceDeleted), 'the refusal')
    expect((await client.closed).code).toBe(1008)
    await within(
      (async () => {
        while ((await relay.metrics()).connections !== 1)
          await new Promise((resolve) => setTimeout(resolve, 10))
      })(),
      5000,
      'only the bystander to stay connected',
    )
    // Its own deletion of the space finds it done.
    expect(await relay.deleteSpace(SPACE)).toBe(false)
    await bystander.close()
  })

  it.each([
    [
      'told of its first append',
      (head: number) => listener?.({ type: 'appended', space: OTHER, head, received: { [A]: head } }),
    ],
    ['listing the store on a resync, after missing the news', () => listener?.({ type: 'resync' })],
  ] as const)(
    'takes a space another relay wrote onto its link of every space (`*`) at once, %s',
    async (_, tell) => {
      const never = { intervalMs: 0, horizonMs: 86_400_000 }
      const other = await startTestRelay({ compaction: never })
      // Its listing of the store at start is done before the other relay writes: what links
      // the space then is the news of it, not that listing (nor a compaction: there is none).
      let startupListed = () => {}
      const listed = new Promise<void>((resolve) => {
        startupListed = resolve
      })
      const store = new Proxy(shared, {
        get(target, property) {
          if (property === 'listSpaces') {
            return async () => {
              try {
                return await target.listSpaces()
              } finally {
                startupListed()
              }
            }
          }
          return Reflect.get(target, property)
        },
      })
      const linkServer = new WebSocketServer({ port: 0, host: '127.0.0.1' })
      await once(linkServer, 'listening')
      const errors: ChorusError[] = []
      const linking = createRelay({
        server: linkServer,
        store,
        heartbeatMs: 0,
        compaction: never,
        links: [{ url: other.url, spaces: '*' }],
        WebSocket: WebSocket as never,
        linkBackoffMs: { min: 20, max: 100 },
        linkListMs: 0,
        onError: (error) => errors.push(error),
      })
      try {
        await listed
        const { head } = await sqlite.append(OTHER, A, makeRun(A, 1, 3))
        tell(head)
        await expect
          .poll(
            async () => (await other.relay.describeSpaces()).find((summary) => summary.space === OTHER)?.head,
            { timeout: 4_000, message: 'the other relay to get the space' },
          )
          .toBe(3)
        expect(errors).toEqual([])
      } finally {
        await linking.close()
        linkServer.close()
        await other.stop()
      }
    },
  )

  /**
   * A relay on `store` with its own clock (`time`), a client of it (bob, present), and
   * alice's presence told it by another relay at the clock's start; `cleared` says whether
   * a message clears alice's. Closed by `close`.
   */
  async function presenceFromAnotherRelay(store: RelayStore, options: Partial<RelayOptions>) {
    const clock = { time: 1_700_000_000_000 }
    const presenceServer = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(presenceServer, 'listening')
    const timed = createRelay({
      server: presenceServer,
      store,
      heartbeatMs: 0,
      now: () => clock.time,
      ...options,
    })
    const client = await connectClient(`ws://127.0.0.1:${(presenceServer.address() as AddressInfo).port}`)
    const greeting = hello('bob', { [SPACE]: 0 }) as Extract<Message, { type: 'hello' }>
    client.send({ ...greeting, features: [Feature.Presence] })
    await client.waitFor(is.hello, 'hello')
    client.send({ type: 'presence', space: SPACE, key: 'tab', state: { name: 'bob' } })
    listener?.({
      type: 'presence',
      from: 'other-store',
      entries: [
        { space: SPACE, replicaId: A, key: 'tab', state: { name: 'alice' }, origin: 'other-relay', seq: 1 },
      ],
    })
    await client.waitFor(
      (message): message is Message => message.type === 'presence' && message.replicaId === 'alice',
      'alice’s presence',
    )
    return {
      clock,
      client,
      cleared: (message: Message) =>
        message.type === 'presence' && message.replicaId === 'alice' && message.state === null,
      close: async () => {
        await client.close()
        await timed.close()
        presenceServer.close()
      },
    }
  }

  it('clears presence another relay told it once three refreshes passed without news of it', async () => {
    // A count of its refreshes: it gives its own client's presence to the other relays at each.
    const refreshMs = 20
    let refreshes = 0
    const store = new Proxy(shared, {
      get(target, property) {
        if (property === 'publishPresence') {
          return async (entries: readonly SharedPresence[]) => {
            if (entries.some((entry) => entry.replicaId === 'bob')) refreshes++
          }
        }
        return Reflect.get(target, property)
      },
    })
    const { clock, client, cleared, close } = await presenceFromAnotherRelay(store, {
      presenceRefreshMs: refreshMs,
    })
    try {
      // Three refreshes without news of it: still held (the third of those counted ran after
      // the clock moved, whatever was under way as it did).
      clock.time += 3 * refreshMs
      const target = refreshes + 3
      await expect.poll(() => refreshes, { timeout: 2_000 }).toBeGreaterThanOrEqual(target)
      expect(client.messages.some(cleared)).toBe(false)
      // Past them: cleared (at the next tick, or refresh).
      clock.time += 1
      await client.waitFor((message): message is Message => cleared(message), 'alice’s presence cleared')
    } finally {
      await close()
    }
  })

  it('clears presence another relay told it within a tick of three refreshes without news, not at the next refresh', async () => {
    // Refreshes far apart (none during the test), ticks close together: the clearing is the tick's.
    const refreshMs = 60_000
    // A count of its ticks: each ends by flushing the store's acknowledgements.
    let ticks = 0
    const store = new Proxy(shared, {
      get(target, property) {
        if (property === 'flushAcks') {
          return async () => {
            await target.flushAcks()
            ticks++
          }
        }
        return Reflect.get(target, property)
      },
    })
    const { clock, client, cleared, close } = await presenceFromAnotherRelay(store, {
      presenceRefreshMs: refreshMs,
      tickMs: 5,
    })
    try {
      clock.time += 3 * refreshMs
      // Ticks run meanwhile (a few, begun after the clock moved): at three refreshes exactly, it is still held.
      const target = ticks + 3
      await expect.poll(() => ticks, { timeout: 2_000 }).toBeGreaterThanOrEqual(target)
      expect(client.messages.some(cleared)).toBe(false)
      clock.time += 1
      await client.waitFor((message): message is Message => cleared(message), 'alice’s presence cleared')
    } finally {
      await close()
    }
  })

  it('deletes a space itself: its connections close, and one that names it later is refused', async () => {
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
    const client = await connectClient(url)
    client.send(hello('bob', { [SPACE]: 0 }))
    await client.waitFor(is.hello, 'hello')
    client.send(changes(SPACE, 0, makeRun(B, 1, 2)))
    await client.waitFor(is.ack(2), 'bob’s changes acknowledged')
    expect(await relay.deleteSpace(SPACE)).toBe(true)
    await client.waitFor(is.error(ErrorCode.SpaceDeleted), 'the refusal')
    expect((await client.closed).code).toBe(1008)
    expect(await sqlite.loadSpace(SPACE)).toMatchObject({ deleted: true, head: 0 })
    const later = await connectClient(url)
    later.send(hello('alice', { [SPACE]: 0 }))
    await later.waitFor(is.error(ErrorCode.SpaceDeleted), 'the refusal of a later hello')
    expect((await later.closed).code).toBe(1008)
    expect((await relay.metrics()).sessionsRefused).toMatchObject({ [ErrorCode.SpaceDeleted]: 2 })
    await expect(relay.deleteSpace('not a space')).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
  })
})
