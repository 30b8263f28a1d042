import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { join } from 'node:path'
import { createReplica } from '@chorus/client'
import type { SpaceId } from '@chorus/core'
import { DATABASE_FILE, PostgresRelayStore, SqliteRelayStore } from '@chorus/relay'
import { createPrng, type Prng, sweepSeeds } from '@chorus/testkit'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { shown } from '../../packages/client/test/helpers/idb-replicas.js'
import { type PostgresServer, startPostgres } from '../../packages/relay/test/support/postgres-server.js'
import { eventually, type RelayProcess, startRelay, tempDir } from './relay-process.js'

type Replica = Awaited<ReturnType<typeof createReplica>>

/**
 * A TCP proxy in front of the relay that, while `chaos` is on, hands bytes on in pieces of
 * random sizes after random short delays, and cuts each connection (both sides, at once,
 * wherever the stream is — mid-frame included) after a random lifetime. Off, it passes bytes
 * straight through. Given several relays' ports, it sends each new connection to one drawn
 * at random. Its decisions come from a seeded stream; their timing is real.
 */
class ChaosProxy {
  readonly #server: Server
  readonly #prng: Prng
  readonly #open = new Set<Socket>()
  chaos = true
  cuts = 0
  port = 0
  /** Connections sent to each relay's port. */
  readonly connections = new Map<number, number>()

  constructor(targets: number | readonly number[], prng: Prng) {
    this.#prng = prng
    this.#server = createServer((client) => {
      const target = typeof targets === 'number' ? targets : this.#prng.pick(targets)
      this.connections.set(target, (this.connections.get(target) ?? 0) + 1)
      const relay = tcpConnect(target, '127.0.0.1')
      this.#open.add(client).add(relay)
      const cut = () => {
        client.destroy()
        relay.destroy()
        this.#open.delete(client)
        this.#open.delete(relay)
      }
      client.on('error', cut).on('close', cut)
      relay.on('error', cut).on('close', cut)
      this.#pipe(client, relay)
      this.#pipe(relay, client)
      if (this.chaos) {
        setTimeout(
          () => {
            if (!this.chaos) return
            this.cuts++
            cut()
          },
          this.#prng.int(30, 600),
        )
      }
    })
  }

  /** Bytes from `from` to `to`, in order, in random pieces and after random delays while chaos is on. */
  #pipe(from: Socket, to: Socket): void {
    let queue = Promise.resolve()
    from.on('data', (chunk: Buffer) => {
      if (!this.chaos) {
        queue = queue.then(() => void to.write(chunk))
        return
      }
      const pieces: Buffer[] = []
      for (let at = 0; at < chunk.length; ) {
        const size = this.#prng.int(1, Math.max(1, chunk.length - at))
        pieces.push(chunk.subarray(at, at + size))
        at += size
      }
      for (const piece of pieces) {
        const delay = this.#prng.bool(0.3) ? this.#prng.int(0, 15) : 0
        queue = queue.then(
          () =>
            new Promise<void>((resolve) =>
              setTimeout(() => {
                if (!to.destroyed) to.write(piece)
                resolve()
              }, delay),
            ),
        )
      }
    })
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    const address = this.#server.address()
    this.port = typeof address === 'object' && address !== null ? address.port : 0
  }

  async close(): Promise<void> {
    for (const socket of this.#open) socket.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** A replica of `space` for these runs: its own fake IndexedDB, `manual` conflicts, quick ticks. */
function chaosReplica(
  space: string,
  url: string,
  reconnect?: { baseMs: number; maxMs: number },
): Promise<Replica> {
  return createReplica({
    space,
    url,
    storage: 'indexeddb',
    indexedDB: new IDBFactory(),
    IDBKeyRange,
    WebSocket: WebSocket as never,
    resolvers: { notes: 'manual' },
    ...(reconnect === undefined ? {} : { reconnect }),
    networkEvents: null,
    tickMs: 100,
  })
}

/**
 * Writes for three seconds at replicas drawn from `plan` (puts, patches of notes they show,
 * a tenth deletes), a few milliseconds apart; resolves with the values of the writes stored.
 */
async function writeForAWhile(
  replicas: readonly Replica[],
  ids: readonly string[],
  plan: Prng,
  label: string,
) {
  const writes: Promise<string | null>[] = []
  let token = 0
  const until = Date.now() + 3_000
  while (Date.now() < until) {
    const writer = plan.pick(replicas)
    const id = plan.pick(ids)
    const value = `${label}-${++token}`
    const notes = writer.collection('notes')
    const roll = plan.next()
    writes.push(
      (roll < 0.1
        ? notes.delete(id).then(() => null)
        : roll < 0.4 && (await notes.get(id)) !== undefined
          ? notes.patch(id, { value }).then(() => value)
          : notes.put(id, { value, by: token }).then(() => value)
      ).catch(() => null),
    )
    await new Promise((resolve) => setTimeout(resolve, plan.int(0, 8)))
  }
  return (await Promise.all(writes)).filter((value): value is string => value !== null)
}

/**
 * Four replicas of `space` through `url` (pushed onto `replicas`, for the caller to close)
 * write for a while; then the proxy's chaos stops, and they must upload everything, catch up
 * and show the same versions. Resolves with the values of the writes stored.
 */
async function writeAndConverge(
  proxy: ChaosProxy,
  replicas: Replica[],
  space: string,
  url: string,
  plan: Prng,
  label: string,
): Promise<string[]> {
  for (let i = 0; i < 4; i++) replicas.push(await chaosReplica(space, url, { baseMs: 10, maxMs: 100 }))
  const ids = ['a', 'b', 'c', 'd']
  const stored = await writeForAWhile(replicas, ids, plan, label)
  proxy.chaos = false
  await eventually(
    () => replicas.every((replica) => replica.pending === 0 && replica.status === 'synced'),
    'every replica to upload everything and catch up',
    30_000,
  )
  await eventually(
    async () => {
      const first = JSON.stringify(await shown(replicas[0] as Replica, ids))
      for (const replica of replicas.slice(1))
        if (JSON.stringify(await shown(replica, ids)) !== first) return false
      return true
    },
    'the replicas to show the same versions',
    10_000,
  ).catch(() => undefined)
  const first = await shown(replicas[0] as Replica, ids)
  for (const replica of replicas.slice(1)) expect(await shown(replica, ids)).toEqual(first)
  return stored
}

/**
 * The values the puts and patches in the log of a (stopped) relay's SQLite file, or of the
 * PostgreSQL database at a `postgres://` URL, hold for `space`.
 */
async function loggedValues(where: string, space: string): Promise<Set<string>> {
  const store = /^postgres(ql)?:\/\//.test(where)
    ? await PostgresRelayStore.open(where)
    : new SqliteRelayStore(join(where, DATABASE_FILE))
  try {
    return new Set(
      (await store.readLog(space as SpaceId, 0, 1_000_000)).flatMap(({ change }) => {
        const op = change.op
        const value =
          op.type === 'put'
            ? (op.value as { value?: string }).value
            : op.type === 'patch'
              ? (op.fields as { value?: string }).value
              : undefined
        return value === undefined ? [] : [value]
      }),
    )
  } finally {
    await store.close()
  }
}

/** Seeds 1 and 2; `SEED` replays one, `SOAK` and `SEEDS_FROM` run others (see `sweepSeeds`). */
const SEEDS = sweepSeeds(process.env, 2).seeds
/** As `SEEDS`, with seed 1 alone by default: for the runs that start several relay processes. */
const ONE_SEED = sweepSeeds(process.env, 1).seeds

describe('replicas through a proxy that cuts and slices their connections to a relay process', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: every replica ends showing the same, and every write a replica stored reached the relay`, async () => {
      const prng = createPrng(`chaos:${seed}`)
      const data = tempDir('chorus-chaos-')
      const relay = await startRelay({ dataDir: data.path })
      const proxy = new ChaosProxy(relay.port, prng.fork('proxy'))
      await proxy.listen()
      const space = `chaos-${seed}`
      const url = `ws://127.0.0.1:${proxy.port}/sync`
      const replicas: Replica[] = []
      try {
        const stored = await writeAndConverge(proxy, replicas, space, url, prng.fork('writes'), String(seed))
        // The connections were really cut, and writes really went through them.
        expect(proxy.cuts).toBeGreaterThan(5)
        expect(stored.length).toBeGreaterThan(50)
        await Promise.all(replicas.splice(0).map((replica) => replica.close()))
        await relay.stop()
        const logged = await loggedValues(data.path, space)
        expect(stored.filter((value) => !logged.has(value))).toEqual([])
      } finally {
        await Promise.all(replicas.map((replica) => replica.close()))
        await proxy.close()
        await relay.stop()
        data.remove()
      }
    }, 60_000)
  }
})

describe('two relay processes linked through a proxy that cuts and slices the link', () => {
  for (const seed of ONE_SEED) {
    it(`seed ${seed}: every replica on either relay ends showing the same, and every stored write reached both relays`, async () => {
      const prng = createPrng(`chaos:link:${seed}`)
      const dataA = tempDir('chorus-chaos-link-a-')
      const dataB = tempDir('chorus-chaos-link-b-')
      const space = `chaos-link-${seed}`
      const relayB = await startRelay({ dataDir: dataB.path })
      const proxy = new ChaosProxy(relayB.port, prng.fork('proxy'))
      await proxy.listen()
      const relayA = await startRelay({
        dataDir: dataA.path,
        args: ['--link', `ws://127.0.0.1:${proxy.port}/sync`, '--link-space', space],
      })
      const replicas: Replica[] = []
      try {
        for (const relay of [relayA, relayA, relayB, relayB])
          replicas.push(await chaosReplica(space, relay.url))
        const ids = ['a', 'b', 'c', 'd']
        const stored = await writeForAWhile(replicas, ids, prng.fork('writes'), `link${seed}`)
        proxy.chaos = false
        await eventually(
          async () => {
            const first = JSON.stringify(await shown(replicas[0] as Replica, ids))
            for (const replica of replicas.slice(1))
              if (replica.pending > 0 || JSON.stringify(await shown(replica, ids)) !== first) return false
            return true
          },
          'the replicas on both relays to show the same versions',
          45_000,
        )
        // The link was really cut, and writes really crossed it. A cut link is dialed again
        // after half a second, so three seconds of writes see two to five cuts.
        expect(proxy.cuts).toBeGreaterThanOrEqual(2)
        expect(stored.length).toBeGreaterThan(50)
        await Promise.all(replicas.splice(0).map((replica) => replica.close()))
        await relayA.stop()
        await relayB.stop()
        for (const data of [dataA, dataB]) {
          const logged = await loggedValues(data.path, space)
          expect(stored.filter((value) => !logged.has(value))).toEqual([])
        }
      } finally {
        await Promise.all(replicas.map((replica) => replica.close()))
        await proxy.close()
        await relayA.stop()
        await relayB.stop()
        dataA.remove()
        dataB.remove()
      }
    }, 90_000)
  }
})

describe('replicas through a proxy that cuts their connections and sends each new one to any of three relay processes on one PostgreSQL database', () => {
  let postgres: PostgresServer
  beforeAll(async () => {
    postgres = await startPostgres()
  }, 60_000)
  afterAll(async () => {
    await postgres?.stop()
  }, 60_000)

  for (const seed of ONE_SEED) {
    it(`seed ${seed}: every replica ends showing the same, and every write a replica stored is in the database`, async () => {
      const prng = createPrng(`chaos-postgres:${seed}`)
      const database = await postgres.createDatabase(`chaos_${seed}`)
      const relays: RelayProcess[] = []
      const replicas: Replica[] = []
      let proxy: ChaosProxy | null = null
      try {
        relays.push(
          ...(await Promise.all(
            [1, 2, 3].map(() => startRelay({ postgres: database, args: ['--presence-refresh', '1s'] })),
          )),
        )
        proxy = new ChaosProxy(
          relays.map((relay) => relay.port),
          prng.fork('proxy'),
        )
        await proxy.listen()
        const space = `chaos-postgres-${seed}`
        const url = `ws://127.0.0.1:${proxy.port}/sync`
        const stored = await writeAndConverge(proxy, replicas, space, url, prng.fork('writes'), `pg${seed}`)
        // Connections were really cut and spread over the three relays, and writes really went through them.
        expect(proxy.cuts).toBeGreaterThan(5)
        for (const relay of relays) expect(proxy.connections.get(relay.port) ?? 0).toBeGreaterThan(1)
        expect(stored.length).toBeGreaterThan(50)
        await Promise.all(replicas.splice(0).map((replica) => replica.close()))
        for (const relay of relays) expect(await relay.stop()).toBe(0)
        const logged = await loggedValues(database, space)
        expect(stored.filter((value) => !logged.has(value))).toEqual([])
      } finally {
        await Promise.all(replicas.map((replica) => replica.close()))
        await proxy?.close()
        await Promise.all(relays.map((relay) => relay.stop()))
      }
    }, 90_000)
  }
})
