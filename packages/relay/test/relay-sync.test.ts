import { once } from 'node:events'
import { renameSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { asReplicaId, type ChorusError, ErrorCode, type Message } from '@chorus/core'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { opaqueLabel, renderPrometheus } from '../src/metrics.js'
import { createRelay } from '../src/relay.js'
import { DATABASE_FILE } from '../src/serve.js'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { makeChange, makeRun, makeTempDir, until } from './support/fixtures.js'
import { get, sample, startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is } from './support/test-client.js'

const SPACE = 'team-notes'
const A = asReplicaId('alice')
const DAY = 86_400_000

describe('the relay over real sockets', () => {
  let relay: TestRelay
  let clock: number

  beforeEach(async () => {
    clock = 1_700_000_000_000
    relay = await startTestRelay({ now: () => clock, compaction: { intervalMs: 0, horizonMs: DAY } })
  })

  afterEach(async () => {
    await relay.stop()
    expect(relay.errors).toEqual([])
  })

  it('answers hello, acknowledges changes only once committed, and streams them to another client', async () => {
    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    expect(await alice.waitFor(is.hello, "the relay's hello")).toMatchObject({
      replicaId: 'alice',
      spaces: [SPACE],
      have: { [SPACE]: 0 },
      heads: { [SPACE]: 0 },
    })

    // The ack handler runs in this process as soon as the frame arrives: a second SQLite
    // connection sees only committed rows, so this checks "commit, then ack".
    const reader = new Database(join(relay.dataDir, DATABASE_FILE), { readonly: true })
    const committedAtAck: number[] = []
    alice.onMessage((message) => {
      if (message.type === 'ack' && message.upTo > 0 && reader.open) {
        committedAtAck.push((reader.prepare('SELECT count(*) AS n FROM log').get() as { n: number }).n)
      }
    })
    alice.send(changes(SPACE, 0, makeRun(A, 1, 3)))
    await alice.waitFor(is.ack(3), 'the ack of changes 1–3')
    alice.send(changes(SPACE, 3, makeRun(A, 4, 4)))
    await alice.waitFor(is.ack(4), 'the ack of change 4')
    expect(committedAtAck).toEqual([3, 4])
    reader.close()

    const bob = await connectClient(relay.url)
    bob.send(hello('bob', { [SPACE]: 0 }))
    const snapshot = await bob.waitFor(is.lastSnapshot, 'a snapshot for the new replica')
    expect(snapshot).toMatchObject({ space: SPACE, cursor: 4, page: 0 })
    expect(snapshot.batch).toEqual(makeRun(A, 1, 4))
    bob.send({ type: 'ack', space: SPACE as never, upTo: 4 })

    const next = [makeChange(A, 5, { id: 'alice-1', context: { [A]: 1 } }, { title: 'edited' })]
    alice.send(changes(SPACE, 4, next))
    const streamed = await bob.waitFor(is.changesTo(5), 'change 5 streamed to bob')
    expect(streamed).toMatchObject({ from: 4, to: 5, batch: next })
    expect([...alice.undecodable, ...bob.undecodable]).toEqual([])
    await Promise.all([alice.close(), bob.close()])
  })

  it('resumes a replica from where it was, sending only what it lacks', async () => {
    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    alice.send(changes(SPACE, 0, makeRun(A, 1, 5)))
    await alice.waitFor(is.ack(5), 'ack 5')
    const bob = await connectClient(relay.url)
    bob.send(hello('bob', { [SPACE]: 3 }))
    const reply = await bob.waitFor(is.hello, 'hello')
    expect(reply.heads).toEqual({ [SPACE]: 5 })
    const streamed = await bob.waitFor(is.changesTo(5), 'changes 4–5')
    expect(streamed).toMatchObject({ from: 3, batch: makeRun(A, 4, 5) })
    expect(bob.messages.filter((message) => message.type === 'snapshot')).toEqual([])
    await Promise.all([alice.close(), bob.close()])
  })

  it('serves /healthz and /metrics, whose counts move with traffic', async () => {
    const health = await get(relay, '/healthz')
    expect(health.status).toBe(200)
    expect(health.type).toContain('application/json')
    expect(JSON.parse(health.body)).toEqual({ status: 'ok', connections: 0, spaces: 0, uptimeSeconds: 0 })
    const before = (await get(relay, '/metrics')).body
    expect(sample(before, 'chorus_relay_changes_stored_total')).toBe(0)
    expect(sample(before, 'chorus_relay_connections')).toBe(0)
    expect(sample(before, 'chorus_relay_append_commit_seconds_count')).toBe(0)

    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    alice.send(changes(SPACE, 0, makeRun(A, 1, 4)))
    await alice.waitFor(is.ack(4), 'ack 4')
    const bob = await connectClient(relay.url)
    bob.send(hello('bob', { [SPACE]: 0 }))
    await bob.waitFor(is.lastSnapshot, 'a snapshot')

    const metrics = await get(relay, '/metrics')
    expect(metrics.status).toBe(200)
    expect(metrics.type).toContain('text/plain; version=0.0.4')
    const after = metrics.body
    // A relay on a store of its own shows no figures of a shared one, and its health no `listening`.
    expect(after).not.toMatch(/store_listening|remote_appends|append_retries/)
    expect(JSON.parse((await get(relay, '/healthz')).body)).not.toHaveProperty('listening')
    expect(sample(after, 'chorus_relay_connections')).toBe(2)
    expect(sample(after, 'chorus_relay_spaces')).toBe(1)
    expect(sample(after, 'chorus_relay_log_entries')).toBe(4)
    expect(sample(after, 'chorus_relay_changes_stored_total')).toBe(4)
    // One append, one commit: counted in the histogram, in every bucket it fits under.
    expect(sample(after, 'chorus_relay_append_commit_seconds_count')).toBe(1)
    expect(sample(after, 'chorus_relay_append_commit_seconds_bucket{le="+Inf"}')).toBe(1)
    expect(sample(after, 'chorus_relay_append_commit_seconds_bucket{le="1"}')).toBe(1)
    expect(sample(after, 'chorus_relay_append_commit_seconds_sum')).toBeGreaterThan(0)
    expect(sample(after, 'chorus_relay_frames_in_total')).toBe(3)
    expect(sample(after, 'chorus_relay_bytes_in_total')).toBeGreaterThan(500)
    expect(sample(after, 'chorus_relay_bytes_out_total')).toBeGreaterThan(
      sample(before, 'chorus_relay_bytes_out_total'),
    )
    // Bob holds the snapshot but has not acknowledged it yet: four positions behind. The
    // space and the replica are named by hashes: /metrics answers anyone, and on an open relay
    // a space's name is all it takes to read it.
    const bobLag = `chorus_relay_replica_lag{space="${opaqueLabel(SPACE)}",replica="${opaqueLabel('bob')}"}`
    expect(opaqueLabel(SPACE)).toMatch(/^#[0-9a-f]{16}$/)
    expect(after).toContain(`${bobLag} 4`)
    expect(after).not.toContain(SPACE)
    bob.send({ type: 'ack', space: SPACE as never, upTo: 4 })
    await relay.relay.idle()
    expect((await get(relay, '/metrics')).body).toContain(`${bobLag} 0`)
    // Named as they are only when asked (a /metrics only operators reach).
    const named = renderPrometheus(await relay.relay.metrics(), { names: true })
    expect(named).toContain(`chorus_relay_replica_lag{space="${SPACE}",replica="bob"} 0`)
    expect(JSON.parse((await get(relay, '/healthz')).body)).toMatchObject({ connections: 2, spaces: 1 })

    expect((await get(relay, '/nowhere')).status).toBe(404)
    expect((await fetch(`${relay.httpUrl}/metrics`, { method: 'POST' })).status).toBe(405)
    await expect(connectClient(relay.url.replace('/sync', '/elsewhere'))).rejects.toThrow(/HTTP 404/)
    await Promise.all([alice.close(), bob.close()])
  })

  it('counts a replica on two connections once in /metrics: one lag series per space and replica', async () => {
    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    alice.send(changes(SPACE, 0, makeRun(A, 1, 3)))
    await alice.waitFor(is.ack(3), 'ack 3')
    // The same replica twice: an old connection not yet found dead beside its new one.
    const old = await connectClient(relay.url)
    old.send(hello('bob', { [SPACE]: 0 }))
    await old.waitFor(is.lastSnapshot, 'a snapshot')
    const fresh = await connectClient(relay.url)
    fresh.send(hello('bob', { [SPACE]: 0 }))
    await fresh.waitFor(is.lastSnapshot, 'a snapshot')
    fresh.send({ type: 'ack', space: SPACE as never, upTo: 3 })
    await relay.relay.idle()
    const body = (await get(relay, '/metrics')).body
    const bobLag = `chorus_relay_replica_lag{space="${opaqueLabel(SPACE)}",replica="${opaqueLabel('bob')}"}`
    // Once, by the connection furthest along.
    expect(body.split('\n').filter((line) => line.startsWith(bobLag))).toEqual([`${bobLag} 0`])
    await Promise.all([alice.close(), old.close(), fresh.close()])
  })

  it('fails its health check once the store refuses its own work, with no client writing', async () => {
    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    alice.send(changes(SPACE, 0, makeRun(A, 1, 2)))
    await alice.waitFor(is.ack(2), 'ack 2')
    expect(JSON.parse((await get(relay, '/healthz')).body)).toMatchObject({ status: 'ok' })
    // The database moved away under the relay: its next compaction is refused.
    renameSync(join(relay.dataDir, DATABASE_FILE), join(relay.dataDir, 'moved.db'))
    const refused = await relay.relay.compact().then(
      () => null,
      (error: ChorusError) => error.code,
    )
    expect(refused).toBe(ErrorCode.StorageFailed)
    const health = await get(relay, '/healthz')
    expect(health.status).toBe(503)
    expect(JSON.parse(health.body)).toMatchObject({ status: 'failing', commitsFailing: true })
    await alice.close()
  })

  it('sends a replica that returns below the compacted floor a snapshot without collected deletions', async () => {
    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    const put = makeChange(A, 1, { id: 'n1' })
    alice.send(changes(SPACE, 0, [put, ...makeRun(A, 2, 3)]))
    await alice.waitFor(is.ack(3), 'ack 3')
    const bob = await connectClient(relay.url)
    bob.send(hello('bob', { [SPACE]: 0 }))
    await bob.waitFor(is.lastSnapshot, 'a snapshot')
    bob.send({ type: 'ack', space: SPACE as never, upTo: 3 })
    await relay.relay.idle()
    await bob.close()

    const remove = makeChange(A, 4, { id: 'n1', context: { [A]: 1 } }, null)
    alice.send(changes(SPACE, 3, [remove, ...makeRun(A, 5, 6)]))
    await alice.waitFor(is.ack(6), 'ack 6')
    expect((await relay.relay.compact()).get(SPACE as never)).toMatchObject({ floor: 3 })

    clock += 2 * DAY
    const compacted = (await relay.relay.compact()).get(SPACE as never)
    expect(compacted).toMatchObject({ floor: 6, tombstonesDeleted: 1, replicasForgotten: 1 })

    const back = await connectClient(relay.url)
    back.send(hello('bob', { [SPACE]: 3 }))
    const snapshot = await back.waitFor(is.lastSnapshot, 'a fresh snapshot for the forgotten replica')
    expect(snapshot.cursor).toBe(6)
    expect(snapshot.batch.map((change) => change.id)).toEqual(['alice-2', 'alice-3', 'alice-5', 'alice-6'])
    expect(back.messages.filter((message) => message.type === 'changes')).toEqual([])
    await Promise.all([alice.close(), back.close()])
  })
})

describe('createRelay with a store that fails', () => {
  it('is failing on /healthz while replicas’ positions cannot be written, and ok once the buffered ones are, with no change written', async () => {
    const temp = makeTempDir()
    let refuseAcks = true
    const store = new SqliteRelayStore(join(temp.dir, 'relay.db'), {
      beforeCommit: (write) => {
        if (write === 'acks' && refuseAcks) throw new Error('disk full (simulated)')
      },
    })
    await store.append(SPACE as never, A, makeRun(A, 1, 2))
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(server, 'listening')
    const relay = createRelay({ server, store, heartbeatMs: 0, tickMs: 20, onError: () => {} })
    const reader = await connectClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
    reader.send(hello('bob', { [SPACE]: 0 }))
    await reader.waitFor(is.lastSnapshot, 'a snapshot')
    reader.send({ type: 'ack', space: SPACE as never, upTo: 2 })
    await until(
      async () => (await relay.health()).commitsFailing === true,
      5000,
      'the refused position to show on /healthz',
    )
    expect(await relay.health()).toMatchObject({ status: 'failing' })

    // The disk has room again: the tick writes the position kept buffered, and that is enough.
    refuseAcks = false
    await until(
      async () => (await relay.health()).status === 'ok',
      5000,
      'health back once the positions are written',
    )
    const db = new Database(join(temp.dir, 'relay.db'), { readonly: true })
    expect(db.prepare('SELECT replica, position FROM acks').all()).toEqual([{ replica: 'bob', position: 2 }])
    db.close()
    expect((await relay.metrics()).changesStored).toBe(0)
    await reader.close()
    await relay.close()
    server.close()
    await store.close()
    temp.remove()
  })

  it('acknowledges nothing from a failed append, and the resent batch once it commits', async () => {
    const temp = makeTempDir()
    let failNext = false
    const store = new SqliteRelayStore(join(temp.dir, 'relay.db'), {
      beforeCommit: (write) => {
        if (write === 'append' && failNext) {
          failNext = false
          throw new Error('disk full (simulated)')
        }
      },
    })
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(server, 'listening')
    const errors: ChorusError[] = []
    const relay = createRelay({ server, store, heartbeatMs: 0, onError: (error) => errors.push(error) })
    const client = await connectClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
    client.send(hello('alice', { [SPACE]: 0 }))
    await client.waitFor(is.hello, 'hello')

    failNext = true
    const batch = changes(SPACE, 0, makeRun(A, 1, 3))
    client.send(batch)
    await client.waitFor(is.ack(0), 'an ack of nothing')
    expect(errors.map((error) => error.code)).toEqual([ErrorCode.StorageFailed])
    expect(await store.loadSpace(SPACE as never)).toMatchObject({ head: 0, received: {} })

    const from = client.messages.length
    client.send(batch)
    await client.waitFor(is.ack(3), 'the ack once the append commits', { from })
    expect((await store.readLog(SPACE as never, 0, 10)).map((entry) => entry.seq)).toEqual([1, 2, 3])
    // The writer was told of the failure, once, and of nothing else.
    expect(client.messages.filter((message: Message) => message.type === 'error')).toEqual([
      expect.objectContaining({ code: ErrorCode.StorageFailed, space: SPACE }),
    ])

    await client.close()
    await relay.close()
    server.close()
    await store.close()
    temp.remove()
  })
})
