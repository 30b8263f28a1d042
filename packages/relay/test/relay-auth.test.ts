import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { asReplicaId, ErrorCode, type Message } from '@chorus/core'
import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { createRelay } from '../src/relay.js'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { createTokenAuthenticator, mintToken, type SpaceGrants, verifyAdminToken } from '../src/token-auth.js'
import { makeChange, makeRun, makeTempDir, within } from './support/fixtures.js'
import { get, sample, startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is, type TestClient } from './support/test-client.js'

const SECRET = 'relay-test-secret-0123456789-abcdefghijklmnop'
const SPACE = 'team-notes'
const OTHER = 'other-board'
const A = asReplicaId('alice-laptop')
const HOUR_MS = 3_600_000

function token(
  sub: string,
  spaces: SpaceGrants,
  options: { secret?: string; now?: number; expiresIn?: number } = {},
) {
  return mintToken({
    secret: options.secret ?? SECRET,
    sub,
    spaces,
    expiresIn: options.expiresIn ?? 3600,
    ...(options.now === undefined ? {} : { now: options.now }),
  })
}

/** Waits for the relay to hang up and checks that the refusal was the only thing it sent. */
async function expectRefused(client: TestClient, code: string, message?: RegExp): Promise<void> {
  const closed = await within(client.closed, 5000, `the relay to hang up (${code})`)
  expect(closed).toEqual({ code: 1008, reason: code })
  expect(client.messages).toHaveLength(1)
  const [refusal] = client.messages as [Message]
  expect(refusal).toMatchObject({ type: 'error', code })
  if (message !== undefined && refusal.type === 'error') expect(refusal.message).toMatch(message)
}

describe('a relay started with an auth secret', () => {
  let relay: TestRelay
  let alice: TestClient
  let reader: TestClient

  beforeAll(async () => {
    relay = await startTestRelay({ authSecret: SECRET })
    alice = await connectClient(relay.url)
    alice.send(hello(A, { [SPACE]: 0 }, await token('alice', { [SPACE]: 'write' })))
    await alice.waitFor(is.hello, 'the hello for alice')
    alice.send(changes(SPACE, 0, makeRun(A, 1, 2)))
    await alice.waitFor(is.ack(2), 'ack 2')
    reader = await connectClient(relay.url)
    reader.send(hello('reader-1', { [SPACE]: 0 }, await token('rita', { [SPACE]: 'read' })))
    await reader.waitFor(is.lastSnapshot, 'the snapshot for a reader')
  })

  afterAll(async () => {
    // The authorised clients were never disturbed: alice still writes and the reader follows.
    alice.send(changes(SPACE, 2, makeRun(A, 3, 4)))
    await alice.waitFor(is.ack(4), 'ack 4 at the end')
    await reader.waitFor(is.changesTo(4), 'the reader receiving changes 3–4')
    expect(alice.messages.filter((message) => message.type === 'error')).toEqual([])
    expect(await relay.store.loadSpace(SPACE as never)).toMatchObject({ head: 4, received: { [A]: 4 } })
    await Promise.all([alice.close(), reader.close()])
    await relay.stop()
    expect(relay.errors).toEqual([])
  })

  it('refuses a hello without a token', async () => {
    const client = await connectClient(relay.url)
    client.send(hello('anon-1', { [SPACE]: 0 }))
    await expectRefused(client, ErrorCode.Unauthenticated, /requires a token/)
  })

  it('refuses an expired token', async () => {
    const client = await connectClient(relay.url)
    const expired = await token('alice', { [SPACE]: 'write' }, { now: Date.now() - 2 * HOUR_MS })
    client.send(hello('alice-phone', { [SPACE]: 0 }, expired))
    await expectRefused(client, ErrorCode.Unauthenticated, /expired/)
  })

  it('refuses a token signed with another secret, and one that is not a token', async () => {
    const forged = await connectClient(relay.url)
    const signed = await token(
      'alice',
      { [SPACE]: 'write' },
      { secret: 'not-the-relay-secret-but-just-as-long-0000' },
    )
    forged.send(hello('alice-phone', { [SPACE]: 0 }, signed))
    await expectRefused(forged, ErrorCode.Unauthenticated, /signature/)
    const garbage = await connectClient(relay.url)
    garbage.send(hello('alice-phone', { [SPACE]: 0 }, 'not.a.jwt'))
    await expectRefused(garbage, ErrorCode.Unauthenticated, /malformed/)
  })

  it('refuses a hello naming a space the token does not grant', async () => {
    const client = await connectClient(relay.url)
    client.send(hello('bob-1', { [OTHER]: 0 }, await token('bob', { [SPACE]: 'write' })))
    await expectRefused(client, ErrorCode.Forbidden, new RegExp(OTHER))
  })

  it('rejects changes from a read-only client with an error frame and stores nothing', async () => {
    const from = reader.messages.length
    reader.send(changes(SPACE, 0, makeRun(asReplicaId('reader-1'), 1, 1)))
    await reader.waitFor(is.error(ErrorCode.Forbidden), 'a forbidden error', { from })
    expect(reader.messages.slice(from).filter((message) => message.type === 'ack')).toEqual([])
    expect((await relay.store.loadSpace(SPACE as never)).received).not.toHaveProperty('reader-1')
  })

  it('refuses changes uploaded under another replica id, and closes', async () => {
    const client = await connectClient(relay.url)
    client.send(hello('mallory-1', { [SPACE]: 2 }, await token('mallory', { [SPACE]: 'write' })))
    await client.waitFor(is.hello, 'the hello for mallory')
    client.send(changes(SPACE, 2, [makeChange(A, 3, {}, { title: 'spoofed' })]))
    await client.waitFor(is.error(ErrorCode.ReplicaMismatch), 'replica-mismatch')
    expect(await client.closed).toEqual({ code: 1008, reason: ErrorCode.ReplicaMismatch })
    expect(await relay.store.loadSpace(SPACE as never)).toMatchObject({ received: { [A]: 2 } })
  })

  it('refuses a replica id in the form linked relays use, to a session that is not a relay', async () => {
    const client = await connectClient(relay.url)
    client.send(hello('relay-evil', { [SPACE]: 0 }, await token('mallory', { [SPACE]: 'write' })))
    await expectRefused(client, ErrorCode.Forbidden, /only linked relays use/)
  })

  it('refuses a connection under a replica id that belongs to another user', async () => {
    const client = await connectClient(relay.url)
    client.send(hello(A, { [SPACE]: 0 }, await token('mallory', { [SPACE]: 'write' })))
    await expectRefused(client, ErrorCode.Forbidden, /belongs to another user/)
  })
})

describe('a connection whose token expires', () => {
  it('is closed with unauthenticated once the token expires, and a new token lets the replica back', async () => {
    let clock = Date.parse('2026-01-05T09:00:00Z')
    const relay = await startTestRelay({ authSecret: SECRET, now: () => clock, tickMs: 20 })
    try {
      // One minute, and the relay's 30 s of tolerance for clock skew.
      const short = await token('alice', { [SPACE]: 'write' }, { now: clock, expiresIn: 60 })
      const client = await connectClient(relay.url)
      client.send(hello(A, { [SPACE]: 0 }, short))
      await client.waitFor(is.hello, 'the hello for alice')
      client.send(changes(SPACE, 0, makeRun(A, 1, 2)))
      await client.waitFor(is.ack(2), 'the ack before the expiry')

      // A second before the expiry the session still takes and acknowledges changes.
      clock += 89_000
      client.send(changes(SPACE, 2, makeRun(A, 3, 3)))
      await client.waitFor(is.ack(3), 'the ack a second before the expiry')
      expect(client.messages.some(is.error(ErrorCode.Unauthenticated))).toBe(false)

      clock += 1_000
      const refusal = await client.waitFor(is.error(ErrorCode.Unauthenticated), 'the refusal at expiry')
      expect(refusal.message).toMatch(/expired/)
      expect(await within(client.closed, 5000, 'the close at expiry')).toEqual({
        code: 1008,
        reason: ErrorCode.Unauthenticated,
      })

      const stale = await connectClient(relay.url)
      stale.send(hello(A, { [SPACE]: 0 }, short))
      await expectRefused(stale, ErrorCode.Unauthenticated, /expired/)

      const renewed = await connectClient(relay.url)
      renewed.send(hello(A, { [SPACE]: 0 }, await token('alice', { [SPACE]: 'write' }, { now: clock })))
      const answer = await renewed.waitFor(is.hello, 'the hello with a new token')
      expect(answer.have).toEqual({ [SPACE]: 3 })
      await renewed.close()
      // Both closes are counted: the session that expired, and the hello with the old token.
      const metrics = await get(relay, '/metrics')
      expect(sample(metrics.body, 'chorus_relay_sessions_refused_total{code="unauthenticated"}')).toBe(2)
    } finally {
      await relay.stop()
    }
  })
})

describe('a hello being authenticated', () => {
  it('loads no space for a refused hello, and holds frames sent behind a hello until it passes', async () => {
    const temp = makeTempDir()
    const store = new SqliteRelayStore(join(temp.dir, 'relay.db'))
    const loaded: string[] = []
    const load = store.loadSpace.bind(store)
    store.loadSpace = (space) => {
      loaded.push(space)
      return load(space)
    }
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(server, 'listening')
    const relay = createRelay({
      server,
      store,
      heartbeatMs: 0,
      authenticate: createTokenAuthenticator(SECRET),
    })
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`

    const stranger = await connectClient(url)
    const many = Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`probe-${i}`, 0]))
    stranger.send(hello('stranger', many, 'forged.token.here'))
    await expectRefused(stranger, ErrorCode.Unauthenticated)
    const nosy = await connectClient(url)
    nosy.send(hello('nosy', { ...many, [SPACE]: 0 }, await token('nosy', { [SPACE]: 'write' })))
    await expectRefused(nosy, ErrorCode.Forbidden, /probe-0/)
    expect(loaded).toEqual([])

    const eager = await connectClient(url)
    eager.send(hello('eager', { [SPACE]: 0 }, await token('eager', { [SPACE]: 'write' })))
    eager.send(changes(SPACE, 0, makeRun(asReplicaId('eager'), 1, 2)))
    await eager.waitFor(is.ack(2), 'the ack of changes sent right behind the hello')
    expect(eager.messages.map((message) => message.type)).toEqual(['hello', 'ack'])
    expect(loaded).toEqual([SPACE])

    await eager.close()
    await relay.close()
    server.close()
    await store.close()
    temp.remove()
  })
})

describe('createTokenAuthenticator', () => {
  it('grants exactly the spaces in the token and names its subject', async () => {
    const now = 1_700_000_000_000
    const authenticate = createTokenAuthenticator(SECRET, { now: () => now })
    const minted = await mintToken({
      secret: SECRET,
      sub: 'alice',
      spaces: { a: 'write', 'b:c': 'read' },
      now,
      expiresIn: '1h',
    })
    const result = await authenticate(minted, A)
    if (!result.ok) throw new Error(result.message)
    expect(result.subject).toBe('alice')
    expect([result.access('a' as never), result.access('b:c' as never), result.access('c' as never)]).toEqual(
      ['write', 'read', null],
    )
    const later = createTokenAuthenticator(SECRET, { now: () => now + 2 * HOUR_MS })
    const expired = await later(minted, A)
    expect(expired).toMatchObject({ ok: false, code: ErrorCode.Unauthenticated })
    // The refusal names the relay's clock, which may be the one that is wrong.
    expect((expired as { message: string }).message).toContain(new Date(now + 2 * HOUR_MS).toISOString())
  })

  it('mints a different token each time, even for the same claims in the same second', async () => {
    const claims = { secret: SECRET, sub: 'alice', spaces: { a: 'write' }, now: 1_700_000_000_000 } as const
    const [first, second] = [await mintToken(claims), await mintToken(claims)]
    expect(first).not.toBe(second)
  })

  it('mints nothing from a bad request', async () => {
    await expect(mintToken({ secret: '', sub: 'a', spaces: {} })).rejects.toThrow(/secret/)
    await expect(mintToken({ secret: SECRET, sub: 'a', spaces: { '-bad': 'read' } })).rejects.toThrow(
      /space name/,
    )
    await expect(mintToken({ secret: SECRET, sub: 'a', spaces: { ok: 'admin' as never } })).rejects.toThrow(
      /access/,
    )
    await expect(mintToken({ secret: SECRET, sub: 'a', spaces: {}, expiresIn: 'soon' })).rejects.toThrow(/7d/)
    for (const sub of ['a\u0000b', 'u\ud800', '\udc00u', 'u\ud800\ud800'])
      await expect(mintToken({ secret: SECRET, sub, spaces: {} })).rejects.toMatchObject({
        code: ErrorCode.InvalidArgument,
      })
    // A pair, whole, is a character like any other.
    await expect(mintToken({ secret: SECRET, sub: 'u\ud83d\ude00', spaces: {} })).resolves.toEqual(
      expect.any(String),
    )
  })

  it('refuses a token whose subject no store keeps as given: U+0000, or half of a surrogate pair', async () => {
    const authenticate = createTokenAuthenticator(SECRET)
    for (const [sub, why] of [
      ['a\u0000b', /U\+0000/],
      ['u\ud800', /surrogate/],
      ['\udc00', /surrogate/],
    ] as const) {
      // Signed by another program holding the secret: the claims as it wrote them.
      const signed = await new SignJWT({ spaces: { [SPACE]: 'write' } })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(sub)
        .setIssuedAt()
        .sign(new TextEncoder().encode(SECRET))
      const result = await authenticate(signed, A)
      expect(result).toMatchObject({ ok: false, code: ErrorCode.Unauthenticated })
      expect((result as { message: string }).message).toMatch(why)
      expect(await verifyAdminToken(SECRET, signed)).toMatchObject({
        ok: false,
        code: ErrorCode.Unauthenticated,
      })
    }
  })
})
