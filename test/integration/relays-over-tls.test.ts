import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createReplica, type Replica } from '@chorus/client'
import { mintToken } from '@chorus/relay'
import { IDBFactory } from 'fake-indexeddb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClientOptions, WebSocket } from 'ws'
import { eventually, type RelayProcess, ROOT, startRelay, tempDir } from './relay-process.js'

const SPACE = 'team-notes'
const SECRET = 'the-secret-of-the-tls-relay-long-enough-to-use'
const TLS = join(ROOT, 'packages/relay/test/fixtures/tls')
const CA = join(TLS, 'cert-a.pem')

/** `ws`'s client, trusting the test certificate: what an app passes as `WebSocket` for a private CA. */
class TrustingWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[], options?: ClientOptions) {
    super(url, protocols, { ...options, ca: readFileSync(CA) })
  }
}

function device(url: string, WebSocketClass: unknown, token?: string): Promise<Replica> {
  return createReplica({
    space: SPACE,
    url,
    indexedDB: new IDBFactory(),
    WebSocket: WebSocketClass as never,
    resolvers: { notes: 'manual' },
    ...(token === undefined ? {} : { token }),
  })
}

async function notes(replica: Replica): Promise<string> {
  return JSON.stringify((await replica.collection('notes').list()).map((row) => [row.id, row.value]))
}

describe('a relay serving TLS, its clients and a relay linked to it over wss://', () => {
  const dirs = [tempDir('chorus-tls-central-'), tempDir('chorus-tls-site-')]
  let central: RelayProcess
  let site: RelayProcess
  const open: Replica[] = []

  beforeAll(async () => {
    central = await startRelay({
      dataDir: dirs[0]?.path as string,
      authSecret: SECRET,
      args: ['--tls-cert', CA, '--tls-key', join(TLS, 'key-a.pem')],
    })
    const linkToken = await mintToken({ secret: SECRET, sub: 'site', spaces: { '*': 'write' }, relay: true })
    // The site relay trusts the private certificate through Node's own variable.
    site = await startRelay({
      dataDir: dirs[1]?.path as string,
      args: ['--link', central.url, '--link-space', SPACE, '--link-token', linkToken],
      env: { NODE_EXTRA_CA_CERTS: CA },
    })
  }, 60_000)

  afterAll(async () => {
    await Promise.all(open.map((replica) => replica.close()))
    await site?.stop()
    await central?.stop()
    for (const dir of dirs) dir.remove()
  }, 60_000)

  it('syncs a replica over wss:// with the WebSocket it was given, and the link carries both ways', async () => {
    expect(central.url).toMatch(/^wss:\/\//)
    const token = await mintToken({ secret: SECRET, sub: 'alice', spaces: { [SPACE]: 'write' } })
    const alice = await device(central.url, TrustingWebSocket, token)
    const bob = await device(site.url, WebSocket)
    open.push(alice, bob)
    await alice.collection('notes').put('a1', { title: 'over TLS' })
    await bob.collection('notes').put('b1', { title: 'at the site' })
    await eventually(
      async () => (await notes(alice)) === (await notes(bob)) && (await notes(alice)).includes('b1'),
      'both replicas to see both notes across the wss:// link',
    )
    expect(JSON.parse(await notes(alice))).toEqual([
      ['a1', { title: 'over TLS' }],
      ['b1', { title: 'at the site' }],
    ])
    await alice.synced()
    expect(alice.status).toBe('synced')
  })

  it('a replica that does not trust the certificate uploads nothing while trusted ones sync on', async () => {
    const token = await mintToken({ secret: SECRET, sub: 'eve', spaces: { [SPACE]: 'write' } })
    const eve = await device(central.url, WebSocket, token)
    open.push(eve)
    await eve.collection('notes').put('e1', { title: 'stuck' })
    // A failed handshake is, to the replica, a relay it cannot reach: it keeps retrying.
    const [alice, bob] = open as [Replica, Replica]
    await alice.collection('notes').put('a2', { title: 'later' })
    await eventually(async () => (await notes(bob)).includes('a2'), 'a later note to cross the link')
    await alice.synced()
    expect(await notes(alice)).not.toContain('e1')
    expect(eve.status).not.toBe('synced')
    expect(eve.pending).toBe(1)
  })
})
