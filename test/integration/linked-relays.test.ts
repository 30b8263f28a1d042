import { createReplica, type Replica } from '@chorus/client'
import { mintToken } from '@chorus/relay'
import { IDBFactory } from 'fake-indexeddb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { eventually, type RelayProcess, startRelay, tempDir } from './relay-process.js'

const SPACE = 'team-notes'
const SECRET = 'the-secret-of-relay-b-which-is-long-enough'

/** A Node replica of the space on its own fake IndexedDB, syncing through `url`. */
function device(url: string, token?: string, indexedDB = new IDBFactory()): Promise<Replica> {
  return createReplica({
    space: SPACE,
    url,
    indexedDB,
    dbName: 'chorus-linked',
    WebSocket: WebSocket as never,
    resolvers: { notes: 'manual' },
    ...(token === undefined ? {} : { token }),
  })
}

async function notes(replica: Replica): Promise<string> {
  const rows = await replica.collection('notes').list()
  return JSON.stringify(rows.map((row) => [row.id, row.value]))
}

async function metricsOf(relay: RelayProcess): Promise<string> {
  return (await fetch(`${relay.http}/metrics`)).text()
}

describe('two relays linked over the protocol (relay↔relay)', () => {
  const dirs = [tempDir('chorus-link-a-'), tempDir('chorus-link-b-')]
  let a: RelayProcess
  let b: RelayProcess
  let linkArgs: string[]
  const open: Replica[] = []

  beforeAll(async () => {
    // B requires tokens; A links to it with one that may relay, and runs open for its clients.
    b = await startRelay({ dataDir: dirs[1]?.path as string, authSecret: SECRET })
    const linkToken = await mintToken({
      secret: SECRET,
      sub: 'relay-a',
      spaces: { [SPACE]: 'write' },
      relay: true,
    })
    linkArgs = ['--link', b.url, '--link-space', SPACE, '--link-token', linkToken]
    a = await startRelay({ dataDir: dirs[0]?.path as string, args: linkArgs })
  }, 60_000)

  afterAll(async () => {
    await Promise.all(open.map((replica) => replica.close()))
    await a?.stop()
    await b?.stop()
    for (const dir of dirs) dir.remove()
  }, 60_000)

  async function onA(indexedDB?: IDBFactory): Promise<Replica> {
    const replica = await device(a.url, undefined, indexedDB)
    open.push(replica)
    return replica
  }
  async function onB(): Promise<Replica> {
    const token = await mintToken({ secret: SECRET, sub: 'bob', spaces: { [SPACE]: 'write' } })
    const replica = await device(b.url, token)
    open.push(replica)
    return replica
  }

  it('carries writes both ways, and a conflict shows on both sides and is settled by one resolve', async () => {
    const alice = await onA()
    const bob = await onB()
    await alice.collection('notes').put('a1', { title: 'from A' })
    await bob.collection('notes').put('b1', { title: 'from B' })
    await eventually(
      async () => (await notes(alice)) === (await notes(bob)) && (await notes(alice)).includes('b1'),
      'both sides to see both notes',
    )
    expect(JSON.parse(await notes(bob))).toEqual([
      ['a1', { title: 'from A' }],
      ['b1', { title: 'from B' }],
    ])
    // The link is up on A's metrics and health.
    expect(await metricsOf(a)).toContain(`chorus_relay_link_up{url="${b.url}"} 1`)
    expect(await (await fetch(`${a.http}/healthz`)).json()).toMatchObject({ links: { up: 1, total: 1 } })

    // Both edit one note while A's side is offline: a conflict on both sides once they meet.
    alice.disconnect()
    await alice.collection('notes').put('shared', { title: 'alice’s' })
    await bob.collection('notes').put('shared', { title: 'bob’s' })
    await bob.synced()
    alice.connect()
    const conflicted = async (replica: Replica) =>
      (await replica.conflicts()).some(
        (conflict) => conflict.id === 'shared' && conflict.versions.length === 2,
      )
    await eventually(
      async () => (await conflicted(alice)) && (await conflicted(bob)),
      'the conflict on both sides',
    )
    await bob.collection('notes').resolve('shared', { title: 'both' })
    await eventually(
      async () =>
        (await alice.conflicts()).length === 0 &&
        (await alice.collection('notes').get('shared'))?.title === 'both',
      'the resolution to reach A',
    )
  }, 60_000)

  it('passes presence over the link both ways, and clears it when a replica leaves', async () => {
    const alice = await onA()
    const bob = await onB()
    await Promise.all([alice.synced(), bob.synced()])
    alice.setPresence({ name: 'alice' })
    bob.setPresence({ name: 'bob' })
    const names = (replica: Replica) => replica.presence.map((peer) => String(peer.state.name)).join(',')
    await eventually(
      () => names(alice) === 'bob' && names(bob) === 'alice',
      'each to see the other across the link',
    )
    alice.setPresence({ name: 'alice', note: 'n1' })
    await eventually(() => bob.presence[0]?.state.note === 'n1', 'the change to cross')
    alice.disconnect()
    await eventually(() => names(bob) === '', 'alice to be gone on the other relay')
    alice.connect()
    await eventually(() => names(bob) === 'alice', 'alice back on the other relay')
    await alice.close()
    await bob.close()
  }, 60_000)

  it('loses nothing acknowledged when the dialing relay is killed mid-stream, and both converge after its restart', async () => {
    const idb = new IDBFactory()
    const writer = await onA(idb)
    const reader = await onB()
    const writes: Promise<void>[] = []
    for (let i = 0; i < 300; i++)
      writes.push(writer.collection('notes').put(`burst-${i}`, { title: `burst ${i}` }))
    await Promise.all(writes)
    // Some of the burst has been acknowledged by A, maybe not yet passed on to B.
    await eventually(() => writer.pending < 300, 'A to acknowledge part of the burst', 20_000)
    await a.stop('SIGKILL')
    a = await startRelay({ dataDir: dirs[0]?.path as string, port: a.port, args: linkArgs })
    await writer.synced()
    await eventually(
      async () => {
        const rows = await reader.collection('notes').list()
        return rows.filter((row) => row.id.startsWith('burst-')).length === 300
      },
      'B’s replica to hold the whole burst',
      30_000,
    )
    expect(await notes(reader)).toBe(await notes(writer))
  }, 90_000)

  it('loses nothing when the accepting relay is killed while the link carries a burst, and resumes after its restart', async () => {
    const writer = await onA()
    const reader = await onB()
    const writes: Promise<void>[] = []
    for (let i = 0; i < 300; i++)
      writes.push(writer.collection('notes').put(`wave-${i}`, { title: `wave ${i}` }))
    await Promise.all(writes)
    await eventually(async () => {
      const rows = await reader.collection('notes').list()
      return rows.some((row) => row.id.startsWith('wave-'))
    }, 'the first of the wave to reach B')
    await b.stop('SIGKILL')
    b = await startRelay({ dataDir: dirs[1]?.path as string, authSecret: SECRET, port: b.port })
    await writer.synced()
    await eventually(
      async () => {
        const rows = await reader.collection('notes').list()
        return rows.filter((row) => row.id.startsWith('wave-')).length === 300
      },
      'B’s replica to hold the whole wave',
      30_000,
    )
    expect(await notes(reader)).toBe(await notes(writer))
  }, 90_000)

  it('gives a standby relay that links every space all of the other’s before any client asks, and it serves them once the other is lost', async () => {
    const spaces = ['standby-one', 'standby-two']
    for (const space of spaces) {
      const writer = await createReplica({
        space,
        url: b.url,
        indexedDB: new IDBFactory(),
        WebSocket: WebSocket as never,
        token: await mintToken({ secret: SECRET, sub: 'carol', spaces: { [space]: 'write' } }),
      })
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          writer.collection('notes').put(`${space}-${i}`, { title: `${i}` }),
        ),
      )
      await writer.synced()
      await writer.close()
    }
    // One way: the standby reads every space of B, and no client of its own opens any.
    const standbySecret = 'the-secret-of-the-standby-relay-long-enough'
    const dir = tempDir('chorus-link-standby-')
    const standbyLink = await mintToken({
      secret: SECRET,
      sub: 'standby',
      spaces: { '*': 'read' },
      relay: true,
    })
    const standby = await startRelay({
      dataDir: dir.path,
      authSecret: standbySecret,
      args: ['--link', b.url, '--link-space', '*', '--link-token', standbyLink],
    })
    const admin = await mintToken({ secret: standbySecret, sub: 'ops', spaces: {}, admin: true })
    const heads = async (): Promise<Record<string, number>> => {
      const response = await fetch(`${standby.http}/admin/spaces`, {
        headers: { authorization: `Bearer ${admin}` },
      })
      const rows = (await response.json()) as { space: string; head: number }[]
      return Object.fromEntries(rows.map((row) => [row.space, row.head]))
    }
    try {
      await eventually(async () => {
        const held = await heads()
        return held['standby-one'] === 20 && held['standby-two'] === 20
      }, 'the standby to hold both spaces')
      // B is lost; a device of the standby's gets a space it never asked B for.
      await b.stop('SIGKILL')
      const reader = await createReplica({
        space: 'standby-two',
        url: standby.url,
        indexedDB: new IDBFactory(),
        WebSocket: WebSocket as never,
        token: await mintToken({ secret: standbySecret, sub: 'carol', spaces: { 'standby-two': 'read' } }),
      })
      open.push(reader)
      await reader.synced()
      expect((await reader.collection('notes').list()).map((row) => row.id).sort()).toEqual(
        Array.from({ length: 20 }, (_, i) => `standby-two-${i}`).sort(),
      )
      expect(standby.output()).not.toMatch(/link-failed: .*listing/)
    } finally {
      b = await startRelay({ dataDir: dirs[1]?.path as string, authSecret: SECRET, port: b.port })
      await standby.stop()
      dir.remove()
    }
  }, 90_000)

  it('refuses a link whose token may not relay; its relay reports it and keeps serving', async () => {
    const plain = await mintToken({ secret: SECRET, sub: 'relay-c', spaces: { [SPACE]: 'write' } })
    const dir = tempDir('chorus-link-c-')
    const c = await startRelay({
      dataDir: dir.path,
      args: ['--link', b.url, '--link-space', SPACE, '--link-token', plain],
    })
    try {
      await eventually(
        () => /link-failed: link to .*forbidden.*relay claim/.test(c.output()),
        'C to report the refusal',
      )
      expect(await metricsOf(c)).toContain(`chorus_relay_link_up{url="${b.url}"} 0`)
      expect(await (await fetch(`${c.http}/healthz`)).json()).toMatchObject({
        status: 'ok',
        links: { up: 0, total: 1 },
      })
      expect(await metricsOf(b)).toMatch(/chorus_relay_sessions_refused_total\{code="forbidden"\} [1-9]/)
    } finally {
      await c.stop()
      dir.remove()
    }
  }, 60_000)
})
