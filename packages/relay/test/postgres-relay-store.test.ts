import {
  asReplicaId,
  asSpaceId,
  type ChorusError,
  ErrorCode,
  encodeChange,
  isChorusError,
  type ReplicaId,
  recordKey,
} from '@chorus/core'
import { runHubStoreConformance } from '@chorus/testkit/conformance'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { PostgresRelayStore, type PostgresWrite, postgresTarget } from '../src/postgres-relay-store.js'
import { POSTGRES_SCHEMA_VERSION } from '../src/postgres-schema.js'
import type { StoreEvent } from '../src/relay-store.js'
import { type RunningRelay, startRelay } from '../src/serve.js'
import { makeChange, makeRun, within } from './support/fixtures.js'
import { type PostgresServer, startPostgres } from './support/postgres-server.js'
import { A, B, C, DAY, runRelayStoreSuite, SPACE, T0 } from './support/relay-store-suite.js'

let server: PostgresServer

beforeAll(async () => {
  server = await startPostgres()
}, 60_000)

afterAll(async () => {
  await server?.stop()
}, 30_000)

/** A store over a fresh database, with its fault hook and commit count. */
async function postgresStore() {
  const url = await server.createDatabase()
  let failOn: PostgresWrite | null = null
  let ackCommits = 0
  const open = () =>
    PostgresRelayStore.open(url, {
      beforeCommit: (write) => {
        if (write === 'acks') ackCommits++
        if (write === failOn) {
          failOn = null
          throw new Error(`${write} failed (simulated)`)
        }
      },
    })
  /** A number read through a connection of its own: what is committed. */
  async function committed(sql: string, ...params: unknown[]): Promise<number | undefined> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const row = (await client.query<{ n: string | number }>(sql, params)).rows[0]
      return row === undefined ? undefined : Number(row.n)
    } finally {
      await client.end()
    }
  }
  return {
    url,
    open,
    committed,
    fail: (write: PostgresWrite) => {
      failOn = write
    },
    ackCommits: () => ackCommits,
  }
}

runHubStoreConformance('PostgresRelayStore', async () => {
  const postgres = await postgresStore()
  return {
    store: await postgres.open(),
    reopen: postgres.open,
    failNextWrite: () => postgres.fail('append'),
  }
})

runRelayStoreSuite('PostgresRelayStore', async () => {
  const postgres = await postgresStore()
  return {
    store: await postgres.open(),
    reopen: postgres.open,
    fail: async (write) => postgres.fail(write),
    committedLogRows: async () => (await postgres.committed('SELECT count(*) AS n FROM chorus_log')) ?? 0,
    committedAck: (replica: ReplicaId) =>
      postgres.committed('SELECT position AS n FROM chorus_acks WHERE replica = $1', replica),
    committedAckRows: async () => (await postgres.committed('SELECT count(*) AS n FROM chorus_acks')) ?? 0,
    ackCommits: postgres.ackCommits,
    cleanup: async () => undefined,
  }
})

/** Gathers the presence events `store` hears; `all` resolves once they hold `entries` entries. */
function hearPresence(store: PostgresRelayStore, entries: number) {
  const heard: StoreEvent[] = []
  const count = () => heard.flatMap((event) => (event.type === 'presence' ? event.entries : [])).length
  let allHeard = () => {}
  const all = new Promise<void>((resolve) => {
    allHeard = resolve
  })
  const stop = store.watch((event) => {
    if (event.type !== 'presence') return
    heard.push(event)
    if (count() >= entries) allHeard()
  })
  return { heard, all, stop }
}
describe('PostgresRelayStore shared by several relays', () => {
  let url: string
  let first: PostgresRelayStore
  let second: PostgresRelayStore

  beforeEach(async () => {
    const postgres = await postgresStore()
    url = postgres.url
    first = await postgres.open()
    second = await postgres.open()
  })

  afterEach(async () => {
    await first.close()
    await second.close()
  })

  /** Resolves with the first event `store` hands its listener that `match` accepts. */
  function nextEvent(store: PostgresRelayStore, match: (event: StoreEvent) => boolean): Promise<StoreEvent> {
    return within(
      new Promise<StoreEvent>((resolve) => {
        const stop = store.watch((event) => {
          if (!match(event)) return
          stop()
          resolve(event)
        })
      }),
      10_000,
      'a store event',
    )
  }

  /** Waits until `store` listens (its first event can only be one sent after that). */
  async function listening(store: PostgresRelayStore): Promise<void> {
    const stop = store.watch(() => undefined)
    await within(
      (async () => {
        for (;;) {
          const client = new pg.Client({ connectionString: url })
          await client.connect()
          try {
            const { rows } = await client.query<{ n: string }>(
              "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN chorus_relay%' AND datname = current_database()",
            )
            if (Number(rows[0]?.n) > 0) return
          } finally {
            await client.end()
          }
        }
      })(),
      10_000,
      'the listening connection',
    )
    stop()
  }

  it('tells the other store of an append with the new head, received counters and entries, and not itself', async () => {
    const own: StoreEvent[] = []
    first.watch((event) => own.push(event))
    await listening(second)
    const told = nextEvent(second, (event) => event.type === 'appended')
    const written = makeRun(A, 1, 3)
    await first.append(SPACE, A, written)
    const event = await told
    expect(event).toMatchObject({ type: 'appended', space: SPACE, head: 3, received: { [A]: 3 } })
    // The entries came with the news: the other relay need not read them.
    expect(event.type === 'appended' ? event.entries : undefined).toEqual(
      written.map((change, i) => ({ seq: i + 1, change, text: encodeChange(change) })),
    )
    expect((await second.readLog(SPACE, 0, 10)).map((entry) => entry.seq)).toEqual([1, 2, 3])
    const back = nextEvent(first, (event) => event.type === 'appended')
    await second.append(SPACE, B, makeRun(B, 1, 1))
    expect(await back).toMatchObject({ type: 'appended', space: SPACE, head: 4, received: { [B]: 1 } })
    // Its own appends are not among the events the first store heard.
    expect(own.map((event) => event.type === 'appended' && event.head)).toEqual([4])
  })

  it('reads the head another store committed, before its notice arrives (a ping is answered with it)', async () => {
    const space = asSpaceId('head-read')
    expect(await second.readHead(space)).toBe(0)
    await first.append(space, A, makeRun(A, 1, 4))
    expect(await second.readHead(space)).toBe(4)
    await second.append(space, B, makeRun(B, 1, 2))
    expect(await first.readHead(space)).toBe(6)
  })

  it('leaves out of the news what does not fit in a notice: the entries first, then the counters', async () => {
    await listening(second)
    // About 20 KB of changes: no room for their texts.
    const big = nextEvent(second, (event) => event.type === 'appended')
    await first.append(
      SPACE,
      A,
      Array.from({ length: 20 }, (_, i) => makeChange(A, i + 1, {}, { text: 'x'.repeat(1_000) })),
    )
    expect(await big).toEqual({ type: 'appended', space: SPACE, head: 20, received: { [A]: 20 } })
    // 200 replicas' counters at once: no room for them either.
    const many = nextEvent(second, (event) => event.type === 'appended')
    const writers = Array.from({ length: 200 }, (_, i) =>
      asReplicaId(`replica-with-a-rather-long-name-to-fill-the-notice-${i}`),
    )
    await first.appendMany(
      SPACE,
      writers.map((replica) => ({ replica, changes: makeRun(replica, 1, 1) })),
    )
    expect(await many).toEqual({ type: 'appended', space: SPACE, head: 220 })
  })

  it('numbers concurrent appends from both stores 1, 2, 3… without a gap or a repeat', async () => {
    const writers = [A, B, C]
    await Promise.all(
      writers.flatMap((replica, w) =>
        Array.from({ length: 10 }, (_, i) =>
          (w % 2 === 0 ? first : second).append(SPACE, replica, makeRun(replica, i * 3 + 1, i * 3 + 3)),
        ),
      ),
    )
    // Appends of one replica may land out of order and stop at a gap; the writer sends again.
    for (const replica of writers) {
      for (let round = 0; round < 10; round++) {
        await (round % 2 === 0 ? first : second).append(SPACE, replica, makeRun(replica, 1, 30))
      }
    }
    const log = await first.readLog(SPACE, 0, 1000)
    expect(log.map((entry) => entry.seq)).toEqual(Array.from({ length: 90 }, (_, i) => i + 1))
    const dots = new Set(log.map((entry) => entry.change.dot.join(':')))
    expect(dots.size).toBe(90)
    expect(await second.loadSpace(SPACE)).toMatchObject({ head: 90, received: { [A]: 30, [B]: 30, [C]: 30 } })
  })

  it('lets both stores append to one space at once without retries while they touch other records', async () => {
    await Promise.all(
      [A, B].map(async (replica, w) => {
        const store = w === 0 ? first : second
        for (let counter = 1; counter <= 20; counter++) {
          await store.append(SPACE, replica, [makeChange(replica, counter, { id: `${replica}-${counter}` })])
        }
      }),
    )
    expect((await first.loadSpace(SPACE)).head).toBe(40)
    expect((await first.stats()).appendRetries).toBe(0)
    expect((await second.stats()).appendRetries).toBe(0)
    // On the same records they may have to try again, and still lose nothing.
    await Promise.all(
      [A, B].map(async (replica, w) => {
        const store = w === 0 ? first : second
        for (let counter = 21; counter <= 40; counter++) {
          await store.append(SPACE, replica, [makeChange(replica, counter, { id: `shared-${counter % 3}` })])
        }
      }),
    )
    const log = await first.readLog(SPACE, 0, 1000)
    expect(log.map((entry) => entry.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1))
    const page = await first.readSnapshot(SPACE, null, 1000)
    // No write to a shared record saw the other writer's (their contexts are empty), and
    // each writer's later write replaces its own earlier ones: each record keeps both
    // writers' last versions, whichever store appended them and however often it retried.
    const shared = page.changes.filter((change) => change.id.startsWith('shared-'))
    expect(shared.map((change) => `${change.id} ${change.dot[0]}:${change.dot[1]}`).sort()).toEqual(
      [A, B]
        .flatMap((replica) => [`shared-0 ${replica}:39`, `shared-1 ${replica}:40`, `shared-2 ${replica}:38`])
        .sort(),
    )
  })

  it('tells the other store of a compaction’s collected-deletion mark', async () => {
    await first.append(SPACE, A, [
      makeChange(A, 1, { id: 'gone' }),
      makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null),
    ])
    await first.noteAck(SPACE, A, 2, T0)
    await listening(second)
    const told = nextEvent(second, (event) => event.type === 'collected')
    const result = await first.compact(SPACE, { now: T0, horizonMs: DAY })
    expect(result.tombstonesDeleted).toBe(1)
    expect(await told).toEqual({ type: 'collected', space: SPACE, mark: { at: 2, received: { [A]: 2 } } })
  })

  it('passes presence to the other store, in notices that fit, and not to itself', async () => {
    const own: StoreEvent[] = []
    first.watch((event) => own.push(event))
    await listening(second)
    const { heard, all, stop } = hearPresence(second, 20)
    // Enough entries of about 1 KB for several notices of at most 8000 bytes.
    const entries = Array.from({ length: 20 }, (_, n) => ({
      space: SPACE,
      replicaId: A,
      key: `tab-${n}`,
      state: n === 19 ? null : { name: `${n}`, pad: 'x'.repeat(1000) },
      // Some with the relay they came from and its change count, as a relay with links gives them.
      ...(n % 2 === 0 ? { origin: `relay-${n % 3}`, seq: n } : {}),
    }))
    await first.publishPresence(entries)
    await within(all, 10_000, 'every entry')
    stop()
    expect(heard.length).toBeGreaterThan(2)
    const got = heard.flatMap((event) => (event.type === 'presence' ? event.entries : []))
    expect(got).toEqual(entries)
    expect(heard.every((event) => event.type === 'presence' && event.from !== '')).toBe(true)
    expect(own).toEqual([])
  })

  it('passes an entry too long in bytes for one notice in parts, exactly, in the entries’ order', async () => {
    await listening(second)
    const { heard, all, stop } = hearPresence(second, 4)
    // 4,000 characters of 3 bytes each (about 12 KB), and characters that grow once escaped.
    const entries = [
      { space: SPACE, replicaId: A, key: 'small-before', state: { n: 1 } },
      { space: SPACE, replicaId: A, key: 'cjk', state: { text: '中'.repeat(4_000) } },
      { space: SPACE, replicaId: B, key: 'escapes', state: { text: `"\\\u0001\ud800😀`.repeat(400) } },
      { space: SPACE, replicaId: A, key: 'small-after', state: null, origin: 'relay-1', seq: 3 },
    ]
    await first.publishPresence(entries)
    await within(all, 10_000, 'every entry')
    stop()
    expect(heard.flatMap((event) => (event.type === 'presence' ? event.entries : []))).toEqual(entries)
  })

  it('ignores what other programs send on its channel: not JSON, not an object, not a relay’s notice', async () => {
    await listening(second)
    const heard: StoreEvent[] = []
    second.watch((event) => heard.push(event))
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    try {
      for (const payload of [
        'not json',
        '42',
        'null',
        '{"from":"x","type":"appended","space":"bad space","head":1}',
        '{"type":"appended"}',
        '{"from":"x","type":"presence","entries":[{"space":"bad space","replicaId":"a","key":"k","state":null}]}',
        '{"from":"x","type":"presence","entries":[{"space":"s","replicaId":"a","key":"","state":null}]}',
        '{"from":"x","type":"presence","entries":"none"}',
        '{"from":"x","type":"presence","entries":[{"space":"s","replicaId":"a","key":"k","state":null,"origin":"o"}]}',
        '{"from":"x","type":"presence","entries":[{"space":"s","replicaId":"a","key":"k","state":null,"seq":1}]}',
        '{"from":"x","type":"presence","entries":[{"space":"s","replicaId":"a","key":"k","state":null,"origin":"","seq":1}]}',
        '{"from":"x","type":"presence","entries":[{"space":"s","replicaId":"a","key":"k","state":null,"origin":"o","seq":-1}]}',
        '{"from":"x","type":"presence","entries":[{"space":"s","replicaId":"a","key":"k","state":null,"origin":"o","seq":"1"}]}',
        // Parts: one of one, too many, out of range, without text, and whole but not an entry.
        '{"from":"x","type":"presence-part","id":1,"part":0,"parts":1,"text":"{}"}',
        '{"from":"x","type":"presence-part","id":2,"part":0,"parts":99,"text":"{"}',
        '{"from":"x","type":"presence-part","id":3,"part":2,"parts":2,"text":"{"}',
        '{"from":"x","type":"presence-part","id":4,"part":0,"parts":2}',
        '{"from":"x","type":"presence-part","id":5,"part":0,"parts":2,"text":"{\\"space\\":"}',
        '{"from":"x","type":"presence-part","id":5,"part":1,"parts":2,"text":"\\"bad space\\"}"}',
        '{"from":"x","type":"presence-part","id":6,"part":0,"parts":2,"text":"not"}',
        '{"from":"x","type":"presence-part","id":6,"part":1,"parts":2,"text":" json"}',
      ]) {
        await admin.query("SELECT pg_notify('chorus_relay', $1)", [payload])
      }
    } finally {
      await admin.end()
    }
    // A real notice after them arrives, and is the only event heard.
    const told = nextEvent(second, (event) => event.type === 'appended')
    await first.append(SPACE, A, makeRun(A, 1, 1))
    await told
    expect(heard.map((event) => event.type)).toEqual(['appended'])
  })

  it('listens again after losing its connection, and says events may have been missed', async () => {
    await listening(second)
    const resync = nextEvent(second, (event) => event.type === 'resync')
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    try {
      await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN chorus_relay%' AND datname = current_database()",
      )
    } finally {
      await admin.end()
    }
    expect(await resync).toEqual({ type: 'resync' })
    expect(second.listening()).toBe(true)
    const told = nextEvent(second, (event) => event.type === 'appended')
    await first.append(SPACE, A, makeRun(A, 1, 1))
    expect(await told).toMatchObject({ type: 'appended', head: 1 })
  })

  it('gives one replica id to the first subject to claim it, whichever store each claim goes through', async () => {
    const subjects = ['alice', 'mallory', 'eve', 'trudy']
    const claims = await Promise.all(
      subjects.map((subject, i) => (i % 2 === 0 ? first : second).claimReplica(A, subject)),
    )
    expect(claims.filter(Boolean)).toHaveLength(1)
    const owner = subjects[claims.indexOf(true)] as string
    for (const store of [first, second]) {
      expect(await store.claimReplica(A, owner)).toBe(true)
      for (const subject of subjects)
        if (subject !== owner) expect(await store.claimReplica(A, subject)).toBe(false)
    }
  })
})

describe('PostgresRelayStore bad input and failures', () => {
  it('keeps record ids and values with NUL and lone surrogates, and compacts them', async () => {
    const postgres = await postgresStore()
    const store = await postgres.open()
    try {
      const odd = 'a\u0000b\uD800c'
      await store.append(SPACE, A, [
        makeChange(A, 1, { id: odd }, { text: odd }),
        makeChange(A, 2, { id: odd, context: { [A]: 1 } }, null),
        makeChange(A, 3, { id: 'kept' }, { text: odd }),
      ])
      const log = await store.readLog(SPACE, 0, 10)
      expect(log[0]?.change).toMatchObject({ id: odd, op: { type: 'put', value: { text: odd } } })
      await store.noteAck(SPACE, A, 3, T0)
      expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toMatchObject({ tombstonesDeleted: 1 })
      const page = await store.readSnapshot(SPACE, null, 10)
      expect(page.changes.map((change) => recordKey(change.collection, change.id))).toEqual([
        recordKey('notes', 'kept'),
      ])
    } finally {
      await store.close()
    }
  })

  it('refuses a database a newer relay made, and one it cannot reach, with storage-failed', async () => {
    const postgres = await postgresStore()
    await (await postgres.open()).close()
    const client = new pg.Client({ connectionString: postgres.url })
    await client.connect()
    await client.query("UPDATE chorus_meta SET value = $1 WHERE key = 'schema'", [
      String(POSTGRES_SCHEMA_VERSION + 1),
    ])
    await client.end()
    const newer = await postgres.open().catch((error: unknown) => error)
    expect(isChorusError(newer, ErrorCode.StorageFailed)).toBe(true)
    expect((newer as Error).message).toMatch(/upgrade the relay/)
    const missing = await PostgresRelayStore.open(
      `${server.url.replace('/postgres?', '/no_such_database?')}`,
    ).catch((error: unknown) => error)
    expect(isChorusError(missing, ErrorCode.StorageFailed)).toBe(true)
    expect((missing as Error).message).toMatch(/cannot open the relay database/)
  })

  it('lets a relay started while its database is down wait for it, then serve', async () => {
    const url = await server.createDatabase()
    const errors: ChorusError[] = []
    let starting: Promise<RunningRelay> | undefined
    await server.crashAndRestart(async () => {
      starting = startRelay({
        postgres: url,
        port: 0,
        host: '127.0.0.1',
        heartbeatMs: 0,
        postgresWaitMs: 60_000,
        onError: (error) => errors.push(error),
      })
      // It says so, once per reason, and keeps trying.
      await expect.poll(() => errors.length, { timeout: 10_000 }).toBeGreaterThan(0)
    })
    const relay = await (starting as Promise<RunningRelay>)
    try {
      expect(errors[0]?.message).toMatch(
        /^cannot open the relay database at .*; trying again for up to \d+ s$/,
      )
      expect(new Set(errors.map((error) => error.message)).size).toBe(errors.length)
      // Healthy once it listens for the other relays' notices too.
      await expect
        .poll(async () => (await fetch(`${relay.httpUrl}/healthz`)).status, { timeout: 10_000 })
        .toBe(200)
    } finally {
      await relay.close()
    }
  }, 60_000)

  it('names where a connection string points without its user or password', () => {
    expect(postgresTarget('postgres://relay:s3cret@db.internal:5432/chorus?sslmode=require')).toBe(
      'db.internal:5432/chorus',
    )
    expect(postgresTarget('postgresql://relay@/chorus?host=%2Fvar%2Frun%2Fpostgresql')).toBe(
      '/var/run/postgresql/chorus',
    )
    expect(postgresTarget('postgres:///chorus')).toBe('localhost/chorus')
    expect(postgresTarget('not a url with s3cret')).toBe('the configured database')
  })

  it('rejects calls after close with closed', async () => {
    const postgres = await postgresStore()
    const store = await postgres.open()
    await store.close()
    const outcome = await store.loadSpace(SPACE).catch((error: unknown) => error)
    expect(isChorusError(outcome, ErrorCode.Closed)).toBe(true)
  })
})
