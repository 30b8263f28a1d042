import { asReplicaId, ErrorCode } from '@chorus/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AdminEvent } from '../src/http.js'
import { mintToken, verifyAdminToken } from '../src/token-auth.js'
import { makeChange, makeRun, within } from './support/fixtures.js'
import { startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is } from './support/test-client.js'

const SECRET = 'relay-admin-secret-0123456789-abcdefghijklmnop'
const SPACE = 'team:notes'
const A = asReplicaId('alice-laptop')

function adminToken(options: { admin?: boolean; secret?: string; expiresIn?: number } = {}) {
  return mintToken({
    secret: options.secret ?? SECRET,
    sub: 'ops',
    spaces: {},
    expiresIn: options.expiresIn ?? 60,
    ...(options.admin === false ? {} : { admin: true }),
  })
}

async function deleteSpace(relay: TestRelay, space: string, token?: string, method = 'DELETE') {
  const response = await fetch(`${relay.httpUrl}/admin/spaces/${encodeURIComponent(space)}`, {
    method,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  }
}

describe('the administration API of a relay with an auth secret', () => {
  let relay: TestRelay
  const events: AdminEvent[] = []

  beforeAll(async () => {
    relay = await startTestRelay({ authSecret: SECRET, onAdmin: (event) => events.push(event) })
  })

  afterAll(async () => {
    await relay.stop()
  })

  it('deletes a space for an admin token: its connections are refused at once, and a second call finds it done', async () => {
    const alice = await connectClient(relay.url)
    alice.send(
      hello(
        A,
        { [SPACE]: 0 },
        await mintToken({ secret: SECRET, sub: 'alice', spaces: { [SPACE]: 'write' } }),
      ),
    )
    await alice.waitFor(is.hello, 'the hello for alice')
    alice.send(changes(SPACE, 0, makeRun(A, 1, 2)))
    await alice.waitFor(is.ack(2), 'ack 2')

    expect(await deleteSpace(relay, SPACE, await adminToken())).toEqual(
      expect.objectContaining({ status: 200, body: { space: SPACE, deleted: true } }),
    )
    await alice.waitFor(is.error(ErrorCode.SpaceDeleted), 'the refusal')
    expect(await within(alice.closed, 5000, 'the hang-up')).toEqual({
      code: 1008,
      reason: ErrorCode.SpaceDeleted,
    })
    expect((await deleteSpace(relay, SPACE, await adminToken())).body).toEqual({
      space: SPACE,
      deleted: false,
    })
    // The operator's log says who did it; the metrics count the deletion once.
    expect(events).toEqual([
      { action: 'delete-space', space: SPACE, subject: 'ops', deleted: true },
      { action: 'delete-space', space: SPACE, subject: 'ops', deleted: false },
    ])
    expect((await relay.relay.metrics()).spacesDeleted).toBe(1)
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/^chorus_relay_spaces_deleted_total 1$/m)
    expect(await relay.store.loadSpace(SPACE as never)).toMatchObject({ deleted: true, head: 0 })

    // Alice's device comes back: refused, and her replica id is bound to nobody again, so the
    // deletion left nothing of her in the relay.
    const back = await connectClient(relay.url)
    back.send(
      hello(
        A,
        { [SPACE]: 2 },
        await mintToken({ secret: SECRET, sub: 'alice', spaces: { [SPACE]: 'write' } }),
      ),
    )
    await back.waitFor(is.error(ErrorCode.SpaceDeleted), 'the refusal of her return')
    expect(await relay.store.claimReplica(A, 'someone-else')).toBe(true)
  })

  it('refuses a request without a token (401), with a token that is not an admin’s or not this relay’s, and a bad name', async () => {
    const none = await deleteSpace(relay, 'other')
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer')
    expect(none.body).toMatchObject({ code: ErrorCode.Unauthenticated })
    const user = await deleteSpace(relay, 'other', await adminToken({ admin: false }))
    expect(user).toMatchObject({ status: 403, body: { code: ErrorCode.Forbidden } })
    const forged = await deleteSpace(relay, 'other', await adminToken({ secret: `${SECRET}-not` }))
    expect(forged).toMatchObject({ status: 401, body: { code: ErrorCode.Unauthenticated } })
    expect(await deleteSpace(relay, 'not a name', await adminToken())).toMatchObject({
      status: 400,
      body: { code: ErrorCode.InvalidArgument, error: 'not a space name: "not a name"' },
    })
    expect((await relay.store.loadSpace('other' as never)).deleted).not.toBe(true)
  })

  it('lists the spaces for an admin token', async () => {
    const bob = await connectClient(relay.url)
    bob.send(
      hello(
        'bob-phone',
        { kept: 0 },
        await mintToken({ secret: SECRET, sub: 'bob', spaces: { kept: 'write' } }),
      ),
    )
    await bob.waitFor(is.hello, 'the hello for bob')
    bob.send(changes('kept', 0, makeRun(asReplicaId('bob-phone'), 1, 3)))
    await bob.waitFor(is.ack(3), 'ack 3')
    const response = await fetch(`${relay.httpUrl}/admin/spaces`, {
      headers: { authorization: `Bearer ${await adminToken()}` },
    })
    expect(response.status).toBe(200)
    expect(await response.json()).toContainEqual({
      space: 'kept',
      head: 3,
      logEntries: 3,
      writers: 1,
      readers: 0,
      links: 0,
    })
    expect((await fetch(`${relay.httpUrl}/admin/spaces`)).status).toBe(401)
    // The scheme's name is not case-sensitive (RFC 9110); the token is.
    const lower = await fetch(`${relay.httpUrl}/admin/spaces`, {
      headers: { authorization: `bearer   ${await adminToken()}` },
    })
    expect(lower.status).toBe(200)
    const other = await fetch(`${relay.httpUrl}/admin/spaces`, {
      headers: { authorization: `Basic ${await adminToken()}` },
    })
    expect(other.status).toBe(401)
    await bob.close()
  })

  it('exports a space’s records for an admin token: conflict siblings and deletions kept, in key order', async () => {
    const writers = ['ann-laptop', 'ben-phone'].map(asReplicaId)
    for (const [index, writer] of writers.entries()) {
      const client = await connectClient(relay.url)
      const token = await mintToken({ secret: SECRET, sub: writer, spaces: { exported: 'write' } })
      client.send(hello(writer, { exported: 0 }, token))
      await client.waitFor(is.hello, 'the hello answer')
      // Both put n1 without having seen the other's: siblings. Ann also writes and deletes n0.
      const batch = [makeChange(writer, 1, { id: 'n1' }, { title: `by ${writer}` })]
      if (index === 0)
        batch.push(
          makeChange(writer, 2, { id: 'n0' }, { title: 'gone soon' }),
          makeChange(writer, 3, { id: 'n0', context: { [writer]: 2 } }, null),
        )
      client.send(changes('exported', 0, batch))
      await client.waitFor(is.ack(batch.length), 'the ack')
      await client.close()
    }
    const exported = async (space: string, token?: string, method = 'GET') =>
      fetch(`${relay.httpUrl}/admin/spaces/${encodeURIComponent(space)}/records`, {
        method,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      })
    const response = await exported('exported', await adminToken())
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8')
    const lines = (await response.text())
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(lines.map((line) => [line.collection, line.id, line.versions.length])).toEqual([
      ['notes', 'n0', 1],
      ['notes', 'n1', 2],
    ])
    expect(lines[0].versions[0]).toMatchObject({ dot: ['ann-laptop', 3], op: { type: 'delete' } })
    const titles = lines[1].versions.map(
      (version: { op: { value: { title: string } } }) => version.op.value.title,
    )
    expect(titles.sort()).toEqual(['by ann-laptop', 'by ben-phone'])
    // A space that holds nothing exports nothing; bad requests are refused.
    expect(await (await exported('never-written', await adminToken())).text()).toBe('')
    expect((await exported('exported')).status).toBe(401)
    expect((await exported('exported', await adminToken({ admin: false }))).status).toBe(403)
    const wrongMethod = await exported('exported', await adminToken(), 'DELETE')
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('GET')
    expect((await deleteSpace(relay, 'exported', await adminToken())).status).toBe(200)
    const gone = await exported('exported', await adminToken())
    expect(gone.status).toBe(404)
    expect(await gone.json()).toMatchObject({ code: ErrorCode.SpaceDeleted })
  })

  it('answers only DELETE on /admin/spaces/NAME, and GET on /admin/spaces', async () => {
    const get = await deleteSpace(relay, 'other', await adminToken(), 'GET')
    expect(get.status).toBe(405)
    expect(get.headers.get('allow')).toBe('DELETE')
    const response = await fetch(`${relay.httpUrl}/admin/users`, { method: 'DELETE' })
    expect(response.status).toBe(404)
    const post = await fetch(`${relay.httpUrl}/admin/spaces`, { method: 'POST' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET')
  })
})

describe('the administration API of an open relay', () => {
  it('is off (403), whatever the token', async () => {
    const relay = await startTestRelay()
    try {
      const answer = await deleteSpace(relay, SPACE, await adminToken())
      expect(answer.status).toBe(403)
      expect(String(answer.body.error)).toContain('start it with --auth-secret')
    } finally {
      await relay.stop()
    }
  })
})

describe('verifyAdminToken', () => {
  it('lets through an admin token of this secret, and says why it refuses others', async () => {
    expect(await verifyAdminToken(SECRET, await adminToken())).toEqual({ ok: true, subject: 'ops' })
    expect(await verifyAdminToken(SECRET, undefined)).toMatchObject({
      ok: false,
      code: ErrorCode.Unauthenticated,
    })
    expect(await verifyAdminToken(SECRET, await adminToken({ admin: false }))).toMatchObject({
      ok: false,
      code: ErrorCode.Forbidden,
    })
    const expired = await mintToken({
      secret: SECRET,
      sub: 'ops',
      spaces: {},
      admin: true,
      now: 0,
      expiresIn: 60,
    })
    expect(await verifyAdminToken(SECRET, expired)).toMatchObject({ ok: false, message: /expired/ })
  })
})
