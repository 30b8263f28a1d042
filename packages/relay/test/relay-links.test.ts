import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { asReplicaId, type ChorusError, ErrorCode } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import { createRelay } from '../src/relay.js'
import { startRelay } from '../src/serve.js'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { mintToken } from '../src/token-auth.js'
import { makeChange, makeTempDir } from './support/fixtures.js'
import { get, startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is } from './support/test-client.js'

const SPACE = 'team-notes'
const DAY = 86_400_000
const COMPACTION = { intervalMs: 0, horizonMs: DAY }

/** Waits until `check` holds, for at most 10 s. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  await expect.poll(check, { timeout: 10_000, message: `waiting for ${what}` }).toBe(true)
}

async function headOf(relay: TestRelay, space = SPACE): Promise<number> {
  return (await relay.relay.describeSpaces()).find((summary) => summary.space === space)?.head ?? 0
}

/**
 * An HTTP server standing in for another relay: `onRequest` answers its listings, and every
 * WebSocket dial is hung up. Returns the link URL it answers for, and how to stop it.
 */
async function fakeRelay(
  onRequest: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const server = createHttpServer(onRequest)
  server.on('upgrade', (_request, socket) => socket.destroy())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/sync`,
    async stop() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A relay linking every space (`'*'`) to `url`, listing it every 20 ms. */
function linkingEverySpace(url: string): Promise<TestRelay> {
  return startTestRelay({
    compaction: COMPACTION,
    links: [{ url, spaces: '*' }],
    linkBackoffMs: { min: 20, max: 100 },
    linkListMs: 20,
  })
}

/** Writes a note and deletes it through `relay`, as replica `replica`, and waits for the acks. */
async function writeAndDelete(relay: TestRelay, space = SPACE, replica = 'alice'): Promise<void> {
  const writer = asReplicaId(replica)
  const client = await connectClient(relay.url)
  client.send(hello(replica, { [space]: 0 }))
  await client.waitFor(is.hello, 'the hello answer')
  const put = makeChange(writer, 1, { id: 'gone' })
  const remove = makeChange(writer, 2, { id: 'gone', context: { [writer]: 1 } }, null)
  client.send(changes(space, 0, [put, remove]))
  await client.waitFor(is.ack(2), 'the ack of both')
  client.send({ type: 'ack', space: space as never, upTo: 2 })
  await relay.relay.idle()
  client.close()
}

describe('relays linked to each other', () => {
  const relays: TestRelay[] = []
  afterEach(async () => {
    for (const relay of relays.splice(0)) await relay.stop()
  })

  it('keep each other’s changes, and neither collects the deletions of a linked space', async () => {
    const b = await startTestRelay({ compaction: COMPACTION })
    relays.push(b)
    const a = await startTestRelay({
      compaction: COMPACTION,
      links: [{ url: b.url, spaces: [SPACE] }],
      linkBackoffMs: { min: 20, max: 200 },
    })
    relays.push(a)
    // A relay on its own, for comparison: it collects the same deletion.
    const alone = await startTestRelay({ compaction: COMPACTION })
    relays.push(alone)
    await writeAndDelete(a)
    await writeAndDelete(alone)
    await until(async () => (await headOf(b)) === 2, 'b to hold both changes')
    await until(
      async () => (await get(a, '/metrics')).body.includes(`chorus_relay_link_up{url="${b.url}"} 1`),
      'the link to be up',
    )
    const collected = async (relay: TestRelay) =>
      (await relay.relay.compact()).get(SPACE as never)?.tombstonesDeleted ?? 0
    expect(await collected(alone)).toBe(1)
    // a links the space; b counts a's stream (a relay id) in it.
    expect(await collected(a)).toBe(0)
    expect(await collected(b)).toBe(0)
    expect(a.errors).toEqual([])
    expect(b.errors).toEqual([])
  })

  it('keep linking the other spaces when one is deleted on the relay the link goes to', async () => {
    const other = 'other-notes'
    const b = await startTestRelay({ compaction: COMPACTION })
    relays.push(b)
    const a = await startTestRelay({
      compaction: COMPACTION,
      links: [{ url: b.url, spaces: [SPACE, other] }],
      linkBackoffMs: { min: 20, max: 200 },
    })
    relays.push(a)
    await until(
      async () => (await get(a, '/metrics')).body.includes(`chorus_relay_link_up{url="${b.url}"} 1`),
      'the link to be up',
    )
    expect(await b.relay.deleteSpace(other)).toBe(true)
    await until(
      async () => a.errors.some((error) => error.message.includes(`space ${other} is deleted`)),
      'the link to drop the space',
    )
    expect(a.errors.map((error) => error.message)).toEqual([
      `link to ${b.url}: space ${other} is deleted; it links the others`,
    ])
    // The link comes back without it, and still carries the other space.
    await writeAndDelete(a)
    await until(async () => (await headOf(b)) === 2, 'b to hold a’s changes')
  })

  it('link every space (`*`), not listing the other relay’s: those held, those written, and one only the other relay holds once a client opens it', async () => {
    const secret = 'a-secret-for-the-relay-that-is-linked-to-0123456789'
    const b = await startTestRelay({ compaction: COMPACTION, authSecret: secret })
    relays.push(b)
    // Held by b alone, before anything links to it.
    const bOnly = 'only-on-b'
    const seeder = await connectClient(b.url)
    const seederToken = await mintToken({ secret, sub: 's', spaces: { [bOnly]: 'write' } })
    seeder.send(hello('seeder', { [bOnly]: 0 }, seederToken))
    await seeder.waitFor(is.hello, 'the hello answer')
    seeder.send(changes(bOnly, 0, [makeChange(asReplicaId('seeder'), 1, { id: 'from-b' })]))
    await seeder.waitFor(is.ack(1), 'the ack')
    seeder.close()
    // A token for every space; two spaces to a connection at most, so three take two.
    const token = await mintToken({ secret, sub: 'edge', spaces: { '*': 'write' }, relay: true })
    const a = await startTestRelay({
      compaction: COMPACTION,
      tickMs: 50,
      limits: { maxSpaces: 2 },
      links: [{ url: b.url, spaces: '*', token }],
      linkBackoffMs: { min: 20, max: 200 },
      linkListMs: 0,
    })
    relays.push(a)
    const spaces = ['first', 'second', 'third']
    for (const [i, space] of spaces.entries()) await writeAndDelete(a, space, `writer-${i}`)
    for (const space of spaces) await until(async () => (await headOf(b, space)) === 2, `b to get ${space}`)
    // A client on a opens the space only b holds: a links it and gets its change.
    const reader = await connectClient(a.url)
    reader.send(hello('reader', { [bOnly]: 0 }))
    await reader.waitFor(is.hello, 'the hello answer')
    await until(async () => (await headOf(a, bOnly)) === 1, 'a to get the space only b held')
    reader.close()
    // Four spaces, two to a connection: b has two connections from a.
    await until(async () => (await b.relay.metrics()).connections === 2, 'two link connections')
    expect((await a.relay.metrics()).links).toEqual([{ url: b.url, up: 1 }])
    expect(await (await fetch(`${a.httpUrl}/healthz`)).json()).toMatchObject({ links: { up: 1, total: 1 } })
    expect(a.errors).toEqual([])
  })

  it('link every space (`*`) the other relay lists for the link’s token, as it holds them', async () => {
    const secret = 'a-secret-for-the-relay-that-is-linked-to-0123456789'
    const b = await startTestRelay({ compaction: COMPACTION, authSecret: secret })
    relays.push(b)
    // Linked before b holds any space the token lists: nothing to carry, and up all the same.
    const early = await startTestRelay({
      compaction: COMPACTION,
      links: [
        {
          url: b.url,
          spaces: '*',
          token: await mintToken({ secret, sub: 'edge', spaces: { listed: 'write' }, relay: true }),
        },
      ],
      linkListMs: 50,
    })
    relays.push(early)
    await until(
      async () => (await (await fetch(`${early.httpUrl}/healthz`)).json()).links?.up === 1,
      'an idle link of every space to count as up once b listed its spaces (none)',
    )
    expect(await early.relay.describeSpaces()).toEqual([])
    const seed = async (space: string, replica: string): Promise<void> => {
      const client = await connectClient(b.url)
      const seedToken = await mintToken({ secret, sub: replica, spaces: { [space]: 'write' } })
      client.send(hello(replica, { [space]: 0 }, seedToken))
      await client.waitFor(is.hello, 'the hello answer')
      client.send(changes(space, 0, [makeChange(asReplicaId(replica), 1, { id: `from-${replica}` })]))
      await client.waitFor(is.ack(1), 'the ack')
      client.close()
    }
    await seed('listed', 'seeder-1')
    await seed('not-granted', 'seeder-2')
    // The token grants two spaces, one of them not on b yet; and it may relay.
    const token = await mintToken({
      secret,
      sub: 'edge',
      spaces: { listed: 'write', 'listed-later': 'read' },
      relay: true,
    })
    const list = (etag?: string) =>
      fetch(`${b.httpUrl}/sync/spaces`, {
        headers: {
          authorization: `Bearer ${token}`,
          ...(etag === undefined ? {} : { 'if-none-match': etag }),
        },
      })
    const listing = await list()
    expect(listing.status).toBe(200)
    expect(await listing.json()).toEqual({ spaces: ['listed'] })
    // Listed again with its etag, unchanged: 304 and no body.
    const first = listing.headers.get('etag') as string
    expect(first).toMatch(/^"[\w-]{27}"$/)
    const unchanged = await list(first)
    expect(unchanged.status).toBe(304)
    expect(await unchanged.text()).toBe('')
    expect((await list(`"other", W/${first}`)).status).toBe(304)
    expect((await list('"other"')).status).toBe(200)
    const a = await startTestRelay({
      compaction: COMPACTION,
      tickMs: 50,
      links: [{ url: b.url, spaces: '*', token }],
      linkBackoffMs: { min: 20, max: 200 },
      linkListMs: 50,
    })
    relays.push(a)
    // No client of a asked for it: a takes it from b's list.
    await until(async () => (await headOf(a, 'listed')) === 1, 'a to get the space b lists')
    // One b holds from now on comes at a later listing.
    await seed('listed-later', 'seeder-3')
    await until(async () => (await headOf(a, 'listed-later')) === 1, 'a to get the space b holds later')
    // The listing changed: the old etag gets it whole, under a new etag.
    const changed = await list(first)
    expect(changed.status).toBe(200)
    expect(changed.headers.get('etag')).not.toBe(first)
    expect(await changed.json()).toEqual({ spaces: ['listed', 'listed-later'] })
    expect((await a.relay.describeSpaces()).map((summary) => summary.space).sort()).toEqual([
      'listed',
      'listed-later',
    ])
    expect(a.errors).toEqual([])
  })

  it('list spaces only to a relay token, over GET, and say so to a link whose listing is refused', async () => {
    const secret = 'a-secret-for-the-relay-that-is-linked-to-0123456789'
    const b = await startTestRelay({ compaction: COMPACTION, authSecret: secret })
    relays.push(b)
    const url = `${b.httpUrl}/sync/spaces`
    const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })
    const none = await fetch(url)
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer')
    expect(await none.json()).toMatchObject({ code: ErrorCode.Unauthenticated })
    const wrong = await fetch(url, bearer('not-a-token'))
    expect(wrong.status).toBe(401)
    const user = await mintToken({ secret, sub: 'alice', spaces: { '*': 'write' } })
    const notRelay = await fetch(url, bearer(user))
    expect(notRelay.status).toBe(403)
    expect(await notRelay.json()).toMatchObject({
      code: ErrorCode.Forbidden,
      error: expect.stringMatching(/relay/),
    })
    const relayToken = await mintToken({ secret, sub: 'edge', spaces: { '*': 'write' }, relay: true })
    const posted = await fetch(url, { method: 'POST', ...bearer(relayToken) })
    expect(posted.status).toBe(405)
    expect(posted.headers.get('allow')).toBe('GET')
    expect(await (await fetch(url, bearer(relayToken))).json()).toEqual({ spaces: [] })
    // An open relay lists to no one: a relay linking every space to it says so once, and
    // still links the spaces it holds itself.
    const open = await startTestRelay({ compaction: COMPACTION })
    relays.push(open)
    const openListing = await fetch(`${open.httpUrl}/sync/spaces`, bearer(relayToken))
    expect(openListing.status).toBe(403)
    expect(await openListing.json()).toMatchObject({ error: expect.stringMatching(/open/) })
    const a = await startTestRelay({
      compaction: COMPACTION,
      tickMs: 50,
      links: [{ url: open.url, spaces: '*' }],
      linkBackoffMs: { min: 20, max: 200 },
      linkListMs: 50,
    })
    relays.push(a)
    await writeAndDelete(a)
    await until(async () => (await headOf(open)) === 2, 'the open relay to get a’s changes')
    await until(async () => a.errors.length > 0, 'a to report the refused listing')
    expect(a.errors.map((error) => [error.code, error.message])).toEqual([
      [
        ErrorCode.LinkFailed,
        expect.stringMatching(/^link to .*: listing its spaces failed: it answered 403: .*open/),
      ],
    ])
  })

  it('ask for the listing with the etag of the last one, and take a 304 as nothing new', async () => {
    // Lists one space under etag "v1", then two under "v2"; answers 304 to the current etag.
    let version = 1
    const asked: (string | undefined)[] = []
    const askedFour = { count: 0, done: () => {} }
    let fourMore = new Promise<void>((resolve) => {
      askedFour.done = resolve
    })
    const other = await fakeRelay((request, response) => {
      if (request.url !== '/sync/spaces') {
        response.writeHead(404).end()
        return
      }
      const tag = request.headers['if-none-match']
      asked.push(tag)
      const etag = `"v${version}"`
      if (tag === etag) response.writeHead(304, { etag }).end()
      else {
        const spaces = version === 1 ? ['first'] : ['first', 'second']
        response.writeHead(200, { 'content-type': 'application/json', etag }).end(JSON.stringify({ spaces }))
      }
      if (++askedFour.count === 4) askedFour.done()
    })
    try {
      const a = await linkingEverySpace(other.url)
      relays.push(a)
      await fourMore
      expect(asked.slice(0, 4)).toEqual([undefined, '"v1"', '"v1"', '"v1"'])
      version = 2
      askedFour.count = 0
      fourMore = new Promise<void>((resolve) => {
        askedFour.done = resolve
      })
      const from = asked.length
      await fourMore
      // The first ask after the change gets the new listing; from then on it names "v2".
      const after = asked.slice(from, from + 4)
      expect(after[0]).toBe('"v1"')
      expect(after.slice(1)).toEqual(['"v2"', '"v2"', '"v2"'])
      // A 304 is no failure.
      expect(a.errors.filter((error) => error.message.includes('listing its spaces'))).toEqual([])
    } finally {
      await other.stop()
    }
  })

  it('report a listing refused again and again once', async () => {
    // Answers every listing with 403, counting them, and every dial by hanging up.
    const asked = { count: 0, third: () => {} }
    const thirdListing = new Promise<void>((resolve) => {
      asked.third = resolve
    })
    const other = await fakeRelay((request, response) => {
      response.writeHead(request.url === '/sync/spaces' ? 403 : 404, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ code: 'forbidden', error: 'not for you' }))
      if (request.url === '/sync/spaces' && ++asked.count === 3) asked.third()
    })
    const url = other.url
    try {
      const a = await linkingEverySpace(url)
      relays.push(a)
      await thirdListing
      const listings = a.errors.filter((error) => error.message.includes('listing its spaces'))
      expect(listings.map((error) => error.message)).toEqual([
        `link to ${url}: listing its spaces failed: it answered 403: not for you`,
      ])
    } finally {
      await other.stop()
    }
  })

  it('report a link that cannot connect, once, and dial again until it can', async () => {
    // A port where no relay answers, for now: each dial is cut as it connects, the failure is
    // reported once, and the link dials again (three dials counted before looking).
    const dials = { count: 0, third: () => {} }
    const thirdDial = new Promise<void>((resolve) => {
      dials.third = resolve
    })
    const refuser = createServer((socket) => {
      socket.destroy()
      if (++dials.count === 3) dials.third()
    })
    await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve))
    const port = (refuser.address() as AddressInfo).port
    const url = `ws://127.0.0.1:${port}/sync`
    const ups: string[] = []
    const a = await startTestRelay({
      compaction: COMPACTION,
      links: [{ url, spaces: [SPACE] }],
      linkBackoffMs: { min: 20, max: 100 },
      onLinkUp: (upUrl) => ups.push(upUrl),
    })
    relays.push(a)
    await thirdDial
    expect(ups).toEqual([])
    await new Promise<void>((resolve) => refuser.close(() => resolve()))
    const failures = a.errors.filter((error: ChorusError) => error.code === ErrorCode.LinkFailed)
    expect(failures).toHaveLength(1)
    expect(failures[0]?.message).toContain(url)
    expect(await (await fetch(`${a.httpUrl}/healthz`)).json()).toMatchObject({
      status: 'ok',
      links: { up: 0, total: 1 },
    })
    // The other relay comes up on that port: the link follows, and a's change reaches it.
    const temp = makeTempDir()
    const b = await startRelay({ dataDir: temp.dir, port, host: '127.0.0.1', heartbeatMs: 0 })
    try {
      await writeAndDelete(a)
      await until(async () => (await b.relay.describeSpaces())[0]?.head === 2, 'b to get a’s changes')
      expect(await (await fetch(`${a.httpUrl}/healthz`)).json()).toMatchObject({ links: { up: 1, total: 1 } })
      // Its recovery is told once, as its failure was.
      expect(ups).toEqual([url])
    } finally {
      await b.close()
      temp.remove()
    }
  })

  it.each([
    [
      'expired before it dials',
      -2 * DAY,
      /the token has expired \(this relay's clock reads \d{4}-.*\): present a new one/,
    ],
    // Valid for about 3 s more (an hour, and the 30 s tolerance, from just over an hour ago):
    // the link is up until its session ends, then each dial is refused.
    [
      'expiring while it is up',
      3_000 - 30_000 - 3_600_000,
      /the token has expired: connect again with a new one/,
    ],
  ] as const)(
    'report a link whose token is %s once, though the other relay’s clock reads later at each refusal',
    async (_, issuedAgo, first) => {
      const secret = 'a-secret-for-the-relay-that-is-linked-to-0123456789'
      const b = await startTestRelay({ compaction: COMPACTION, authSecret: secret })
      relays.push(b)
      const token = await mintToken({
        secret,
        sub: 'edge',
        spaces: { [SPACE]: 'write' },
        relay: true,
        now: Date.now() + issuedAgo,
        expiresIn: '1h',
      })
      const a = await startTestRelay({
        compaction: COMPACTION,
        links: [{ url: b.url, spaces: [SPACE], token }],
        linkBackoffMs: { min: 20, max: 40 },
      })
      relays.push(a)
      const refusedSessions = async () =>
        Object.values((await b.relay.metrics()).sessionsRefused).reduce((sum, count) => sum + count, 0)
      await expect
        .poll(refusedSessions, { timeout: 10_000, message: 'b to refuse the link four times' })
        .toBeGreaterThanOrEqual(4)
      // Said once, as first worded.
      const failures = a.errors.filter((error) => error.code === ErrorCode.LinkFailed)
      expect(failures.map((error) => error.message)).toEqual([
        expect.stringMatching(
          new RegExp(`^link to .*: the other relay said unauthenticated: ${first.source}`),
        ),
      ])
      expect((await a.relay.metrics()).relayErrors).toBe(1)
    },
    15_000,
  )

  it('say why a link breaks on a change larger than the linking relay’s frame limit', async () => {
    const a = await startTestRelay({ compaction: COMPACTION })
    relays.push(a)
    const b = await startTestRelay({
      compaction: COMPACTION,
      limits: { maxFrameBytes: 65_536 },
      links: [{ url: a.url, spaces: [SPACE] }],
      linkBackoffMs: { min: 20, max: 100 },
    })
    relays.push(b)
    const writer = asReplicaId('alice')
    const client = await connectClient(a.url)
    client.send(hello('alice', { [SPACE]: 0 }))
    await client.waitFor(is.hello, 'the hello answer')
    client.send(changes(SPACE, 0, [makeChange(writer, 1, { id: 'big' }, { text: 'x'.repeat(100_000) })]))
    await client.waitFor(is.ack(1), 'the ack')
    client.close()
    await until(
      async () =>
        b.errors.some(
          (error) =>
            error.code === ErrorCode.LinkFailed &&
            /closed on a frame over a relay's frame limit \(this relay's is 65536 bytes\)/.test(
              error.message,
            ),
        ),
      'b to say why the link broke',
    )
    // Said once, however often the link dials again and breaks on it.
    await until(async () => (await b.relay.metrics()).framesRefused >= 3, 'b to refuse the change thrice')
    expect(b.errors.filter((error) => error.code === ErrorCode.LinkFailed)).toHaveLength(1)
  })

  it('refuse links without spaces or with more than one hello takes, with a URL that is not ws://, or without a WebSocket to dial with', async () => {
    const temp = makeTempDir()
    const store = new SqliteRelayStore(`${temp.dir}/relay.db`)
    const server = new WebSocketServer({ noServer: true })
    try {
      const base = { server, store, WebSocket: WebSocket as never }
      expect(() => createRelay({ ...base, links: [{ url: 'ws://127.0.0.1:1/sync', spaces: [] }] })).toThrow(
        /needs spaces/,
      )
      expect(() =>
        createRelay({ ...base, links: [{ url: 'http://127.0.0.1:1/sync', spaces: [SPACE] }] }),
      ).toThrow(/ws:\/\/ or wss:\/\//)
      const many = Array.from({ length: 65 }, (_, i) => `space-${i}`)
      expect(() => createRelay({ ...base, links: [{ url: 'ws://127.0.0.1:1/sync', spaces: many }] })).toThrow(
        /names 65 spaces; one link carries at most 64/,
      )
      expect(() =>
        createRelay({ server, store, links: [{ url: 'ws://127.0.0.1:1/sync', spaces: [SPACE] }] }),
      ).toThrow(/WebSocket/)
    } finally {
      server.close()
      await store.close()
      temp.remove()
    }
  })
})
