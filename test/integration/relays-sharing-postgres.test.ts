import { createReplica, type Replica } from '@chorus/client'
import { ErrorCode, type ResolverKind } from '@chorus/core'
import { IDBFactory } from 'fake-indexeddb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { type PostgresServer, startPostgres } from '../../packages/relay/test/support/postgres-server.js'
import { eventually, type RelayProcess, runRelayCli, startRelay, tempDir, within } from './relay-process.js'

const WAIT_MS = 20_000

/** A Node replica of `space` on the fake IndexedDB `indexedDB`, syncing through `url`. */
function device(
  url: string,
  space: string,
  resolver: ResolverKind,
  indexedDB = new IDBFactory(),
): Promise<Replica> {
  return createReplica({
    space,
    url,
    indexedDB,
    dbName: `chorus-${space}`,
    WebSocket: WebSocket as never,
    resolvers: { notes: resolver },
  })
}

async function titles(replica: Replica): Promise<Record<string, unknown>> {
  const rows = await replica.collection('notes').list()
  return Object.fromEntries(rows.map((row) => [row.id, (row.value as { title?: unknown }).title]))
}

/** The entries of `titles` in id order, as text: equal for equal notes whatever their key order. */
function sorted(titles: Record<string, unknown>): string {
  return JSON.stringify(Object.entries(titles).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
}

/** Waits until every replica lists the same notes as `expected`. */
async function allShow(
  replicas: readonly Replica[],
  expected: Record<string, unknown>,
  what: string,
): Promise<void> {
  await eventually(async () => {
    for (const replica of replicas) if (sorted(await titles(replica)) !== sorted(expected)) return false
    return true
  }, what)
}

/** The names in the presence `replica` sees, sorted and joined. */
function names(replica: Replica): string {
  return replica.presence
    .map((peer) => String(peer.state.name))
    .sort()
    .join(',')
}

describe('two relay processes on one PostgreSQL database', () => {
  let postgres: PostgresServer
  let database: string
  let first: RelayProcess
  let second: RelayProcess
  const open: Replica[] = []

  beforeAll(async () => {
    postgres = await startPostgres()
    database = await postgres.createDatabase('chorus')
    // Started together: the first start creates the tables while the other waits its turn.
    ;[first, second] = await Promise.all([
      startRelay({ postgres: database }),
      startRelay({ postgres: database }),
    ])
  }, 60_000)

  afterAll(async () => {
    await Promise.all(open.map((replica) => replica.close()))
    await first?.stop()
    await second?.stop()
    await postgres?.stop()
  }, 60_000)

  async function on(relay: RelayProcess, space: string, resolver: ResolverKind, indexedDB?: IDBFactory) {
    const replica = await device(relay.url, space, resolver, indexedDB)
    open.push(replica)
    return replica
  }

  it('says where its data is, and a change written through either relay reaches replicas on both at once', async () => {
    // Printed on stderr after the URL (which `startRelay` waits for) on stdout.
    await eventually(() => /data: PostgreSQL/.test(first.output()), 'the relay to say where its data is')
    expect(first.output()).toMatch(/data: PostgreSQL at \/tmp\/chorus-pg-\w+\/chorus\n/)
    expect(first.output()).not.toMatch(/--data|relay\.db/)
    const space = 'shared-live'
    const alice = await on(first, space, 'lww')
    const bob = await on(second, space, 'lww')
    const carol = await on(second, space, 'lww')
    await within(Promise.all([alice.synced(), bob.synced(), carol.synced()]), WAIT_MS, 'all three to connect')
    // Live: the readers are connected and caught up before the write, so only forwarding
    // between the relays can bring it to them.
    await alice.collection('notes').put('n1', { title: 'from the first relay' })
    await allShow(
      [alice, bob, carol],
      { n1: 'from the first relay' },
      'the first relay’s write on the second',
    )
    await bob.collection('notes').put('n2', { title: 'from the second relay' })
    await allShow(
      [alice, bob, carol],
      { n1: 'from the first relay', n2: 'from the second relay' },
      'the second relay’s write on the first',
    )
  }, 60_000)

  it("synced() on one relay holds what another replica's synced() stored through the other", async () => {
    const space = 'shared-synced'
    const alice = await on(first, space, 'lww')
    const bob = await on(second, space, 'lww')
    await within(Promise.all([alice.synced(), bob.synced()]), WAIT_MS, 'both to connect')
    for (let i = 0; i < 20; i++) {
      await alice.collection('notes').put(`n${i}`, { title: `note ${i}` })
      await within(alice.synced(), WAIT_MS, 'alice to be synced')
      // The second relay answers bob's ping with the head the database holds, whether or not
      // the first relay's notice of the write has reached it.
      await within(bob.synced(), WAIT_MS, 'bob to be synced')
      expect(await bob.collection('notes').get(`n${i}`)).toEqual({ title: `note ${i}` })
    }
  }, 60_000)

  it('settles concurrent offline edits made on either side under each resolver, and shows a manual conflict everywhere', async () => {
    for (const resolver of ['lww', 'merge', 'manual'] as const) {
      const space = `shared-${resolver}`
      const alice = await on(first, space, resolver)
      const bob = await on(second, space, resolver)
      await alice.collection('notes').put('doc', { title: 'v0', body: 'start' })
      await allShow([alice, bob], { doc: 'v0' }, `${resolver}: the first version on both`)
      alice.disconnect()
      bob.disconnect()
      await alice.collection('notes').patch('doc', { title: 'alice’s title' })
      await bob.collection('notes').patch('doc', { body: 'bob’s body' })
      alice.connect()
      bob.connect()
      await eventually(async () => {
        const [a, b] = await Promise.all([
          alice.collection('notes').get('doc'),
          bob.collection('notes').get('doc'),
        ])
        const [ca, cb] = await Promise.all([alice.conflicts(), bob.conflicts()])
        return (
          JSON.stringify([a, ca]) === JSON.stringify([b, cb]) && (resolver !== 'manual' || ca.length === 1)
        )
      }, `${resolver}: both replicas to agree`)
      if (resolver === 'merge') {
        expect(await bob.collection('notes').get('doc')).toEqual({
          title: 'alice’s title',
          body: 'bob’s body',
        })
      }
      if (resolver === 'manual') {
        const [conflict] = await alice.conflicts()
        expect(conflict?.versions).toHaveLength(2)
        await bob.collection('notes').resolve('doc', { title: 'settled', body: 'both' })
        await eventually(
          async () => (await alice.conflicts()).length === 0 && (await titles(alice)).doc === 'settled',
          'manual: the resolution to reach the first relay’s replica',
        )
      }
    }
  }, 60_000)

  it('rides out a PostgreSQL crash: writes wait unacknowledged while it is down, then every one arrives on both relays', async () => {
    const space = 'shared-database-crash'
    const alice = await on(first, space, 'lww')
    const bob = await on(second, space, 'lww')
    const expected: Record<string, unknown> = {}
    for (let i = 0; i < 20; i++) {
      await alice.collection('notes').put(`before-${i}`, { title: `before ${i}` })
      expected[`before-${i}`] = `before ${i}`
    }
    await within(alice.synced(), WAIT_MS, 'the writes before the crash to be acknowledged')
    await postgres.crashAndRestart(async () => {
      for (let i = 0; i < 5; i++) {
        await alice.collection('notes').put(`during-${i}`, { title: `during ${i}` })
        expected[`during-${i}`] = `during ${i}`
      }
      // Nothing can be acknowledged while the database is down, and the relays say so.
      await eventually(() => alice.pending > 0, 'the writes to wait in the outbox')
      expect((await fetch(`${first.http}/healthz`)).status).toBe(503)
    })
    // The second relay heard of the first one's appends after the restart: its listening
    // connection, broken by the crash, came back (bob writes nothing that could bring them).
    await allShow([alice, bob], expected, 'both replicas to hold the writes made while the database was down')
    await bob.collection('notes').put('after', { title: 'after the restart' })
    expected.after = 'after the restart'
    await allShow([alice, bob], expected, 'both replicas to hold every write')
    await within(Promise.all([alice.synced(), bob.synced()]), WAIT_MS, 'both outboxes to empty')
    // Neither relay went down with the database; the first said why it acknowledged nothing.
    expect([first.child.exitCode, second.child.exitCode]).toEqual([null, null])
    expect(first.output()).toMatch(/error: storage-failed/)
    const health = await (await fetch(`${second.http}/healthz`)).json()
    expect(health).toMatchObject({ status: 'ok', listening: true })
    const metrics = await (await fetch(`${second.http}/metrics`)).text()
    expect(metrics).toMatch(/^chorus_relay_store_listening 1$/m)
    expect(Number(/^chorus_relay_remote_appends_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0)
  }, 90_000)

  it('deletes a space with chorus-relay delete-space while both relays run: replicas on both are refused, other spaces go on', async () => {
    const space = 'shared-deleted'
    const alice = await on(first, space, 'lww')
    const bob = await on(second, space, 'lww')
    const carol = await on(second, 'shared-kept', 'lww')
    await alice.collection('notes').put('n1', { title: 'soon gone' })
    await allShow([alice, bob], { n1: 'soon gone' }, 'both to hold the note')
    // Exported from the database while both relays run: what they hold.
    const exported = await runRelayCli(['export', '--postgres', database, '--space', space])
    expect(exported).toMatchObject({ code: 0 })
    expect(
      exported.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toMatchObject([
      { collection: 'notes', id: 'n1', versions: [{ op: { type: 'put', value: { title: 'soon gone' } } }] },
    ])
    const refusals = [alice, bob].map(
      (replica) =>
        new Promise<string>((resolve) =>
          replica.on('error', (error) => {
            if (error.code === ErrorCode.SpaceDeleted) resolve(error.code)
          }),
        ),
    )
    const deleted = await runRelayCli(['delete-space', '--postgres', database, '--space', space])
    expect(deleted).toMatchObject({ code: 0 })
    expect(deleted.stderr).toContain(`deleted space ${space}`)
    // The relay that did not delete it hears of it and closes its connections too.
    expect(await within(Promise.all(refusals), WAIT_MS, 'both replicas to be refused')).toEqual([
      ErrorCode.SpaceDeleted,
      ErrorCode.SpaceDeleted,
    ])
    await expect(bob.synced()).rejects.toMatchObject({ code: ErrorCode.SpaceDeleted })
    const newcomer = await on(first, space, 'lww')
    await expect(within(newcomer.synced(), WAIT_MS, 'the refusal')).rejects.toMatchObject({
      code: ErrorCode.SpaceDeleted,
    })
    await carol.collection('notes').put('k1', { title: 'kept' })
    await within(carol.synced(), WAIT_MS, 'the other space to sync')
  }, 60_000)

  it('passes presence between replicas on either relay; a replica that leaves is gone at once, one whose relay is killed within three refreshes and a tick', async () => {
    const args = ['--presence-refresh', '200ms']
    const [near, far] = await Promise.all([
      startRelay({ postgres: database, args }),
      startRelay({ postgres: database, args }),
    ])
    try {
      const space = 'shared-presence'
      const alice = await on(near, space, 'lww')
      const bob = await on(far, space, 'lww')
      const carol = await on(far, space, 'lww')
      await within(
        Promise.all([alice.synced(), bob.synced(), carol.synced()]),
        WAIT_MS,
        'all three to connect',
      )
      alice.setPresence({ name: 'alice' })
      bob.setPresence({ name: 'bob' })
      await eventually(
        () => names(carol) === 'alice,bob',
        'carol to see alice (other relay) and bob (same relay)',
      )
      await eventually(() => names(alice) === 'bob', 'alice to see bob across the relays')
      // A replica that changes its state, then leaves.
      bob.setPresence({ name: 'bob', note: 'n1' })
      await eventually(() => alice.presence.some((peer) => peer.state.note === 'n1'), 'the change to cross')
      bob.disconnect()
      await eventually(() => names(alice) === '' && names(carol) === 'alice', 'bob to be gone everywhere')
      // Alice's relay dies without a word: her presence goes once it is not heard again.
      expect(await near.stop('SIGKILL')).toBeNull()
      await eventually(() => names(carol) === '', 'alice’s presence to expire on the other relay')
    } finally {
      await near.stop()
      await far.stop()
    }
  }, 60_000)

  it('passes presence on between relays sharing the database and a relay linked to one of them, both ways', async () => {
    const args = ['--presence-refresh', '200ms']
    const space = 'shared-linked-presence'
    const [near, far] = await Promise.all([
      startRelay({ postgres: database, args }),
      startRelay({ postgres: database, args }),
    ])
    // `edge` keeps its own data, and links to `far` only: what `near` says reaches it through
    // the database and then the link, and the other way round.
    const dir = tempDir('chorus-edge-')
    const edge = await startRelay({
      dataDir: dir.path,
      args: [...args, '--link', far.url, '--link-space', space],
    })
    try {
      const alice = await on(near, space, 'lww')
      const erin = await on(edge, space, 'lww')
      await within(Promise.all([alice.synced(), erin.synced()]), WAIT_MS, 'both to connect')
      alice.setPresence({ name: 'alice' })
      erin.setPresence({ name: 'erin' })
      await eventually(
        () => names(alice) === 'erin' && names(erin) === 'alice',
        'each to see the other through the database and the link',
      )
      alice.setPresence({ name: 'alice', note: 'n1' })
      await eventually(() => erin.presence[0]?.state.note === 'n1', 'the change to cross both')
      erin.setPresence(null)
      await eventually(() => names(alice) === '', 'erin’s clear to reach alice')
      // Alice's relay dies without a word: her presence expires on the linked relay too.
      expect(await near.stop('SIGKILL')).toBeNull()
      await eventually(() => names(erin) === '', 'alice’s presence to expire on the linked relay')
    } finally {
      await edge.stop()
      await near.stop()
      await far.stop()
      dir.remove()
    }
  }, 60_000)

  it('loses nothing acknowledged when a relay is killed: its replica moves to the other relay and both hold every acknowledged write', async () => {
    const space = 'shared-failover'
    const aliceDb = new IDBFactory()
    let alice = await on(first, space, 'lww', aliceDb)
    const bob = await on(second, space, 'lww')
    const notes = Array.from({ length: 50 }, (_, i) => [`a${i}`, `alice ${i}`] as const)
    for (const [id, title] of notes) await alice.collection('notes').put(id, { title })
    await within(alice.synced(), WAIT_MS, 'alice’s writes to be acknowledged')
    expect(await first.stop('SIGKILL')).toBeNull()
    // Written while alice has no relay: the second relay stores them.
    await bob.collection('notes').put('b0', { title: 'bob while the first relay is down' })
    await alice.close()
    // The same device again (its IndexedDB kept), now pointed at the other relay.
    alice = await on(second, space, 'lww', aliceDb)
    await alice.collection('notes').put('a-after', { title: 'after the move' })
    const expected: Record<string, unknown> = Object.fromEntries(notes)
    expected.b0 = 'bob while the first relay is down'
    expected['a-after'] = 'after the move'
    await allShow([alice, bob], expected, 'both replicas to hold every acknowledged write')
    // And the relay left stops cleanly on SIGTERM: pending writes finished, its database
    // connections closed.
    expect(await second.stop('SIGTERM')).toBe(0)
    expect(second.output()).toMatch(/chorus-relay stopped/)
  }, 60_000)
})
