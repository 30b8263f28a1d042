import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { asReplicaId, type ChorusError, DEFAULT_LIMITS, ErrorCode } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { createRelay, type Relay } from '../src/relay.js'
import type { RelayOptions } from '../src/relay-options.js'
import { sharedPongSocketClass } from '../src/shared-pong-socket.js'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { makeChange, makeRun, makeTempDir, until, within } from './support/fixtures.js'
import { get, sample, startTestRelay, type TestRelay } from './support/harness.js'
import { slowLink } from './support/slow-link.js'
import { changes, connectClient, hello, is, type TestClient } from './support/test-client.js'

const SPACE = 'team-notes'
const A = asReplicaId('alice')

/**
 * A relay made with `createRelay` on a bare `WebSocketServer` (ws's default 100 MiB maxPayload);
 * with `sharedPongs`, its sockets share one pong listener, as `startRelay`'s do.
 */
async function bareRelay(options: Omit<RelayOptions, 'server' | 'store'>, sharedPongs = false) {
  const temp = makeTempDir()
  const store = new SqliteRelayStore(join(temp.dir, 'relay.db'))
  const server = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    ...(sharedPongs ? { WebSocket: sharedPongSocketClass() } : {}),
  })
  await once(server, 'listening')
  const errors: ChorusError[] = []
  const relay: Relay = createRelay({
    heartbeatMs: 0,
    ...options,
    server,
    store,
    onError: (error) => errors.push(error),
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    relay,
    store,
    errors,
    async stop() {
      await relay.close()
      server.close()
      await store.close()
      temp.remove()
    },
  }
}

/** A client that says hello and writes, to show the relay still serves others. */
async function syncs(url: string, replica: string): Promise<void> {
  const client = await connectClient(url)
  client.send(hello(replica, { [SPACE]: 0 }))
  await client.waitFor(is.hello, `the hello for ${replica}`)
  client.send(changes(SPACE, 0, makeRun(asReplicaId(replica), 1, 2)))
  await client.waitFor(is.ack(2), `ack 2 for ${replica}`)
  await client.close()
}

describe('frame limits', () => {
  let relay: TestRelay | undefined

  afterEach(async () => {
    await relay?.stop()
    relay = undefined
  })

  it('refuses an oversized frame naming its limit, closes with 1009, and keeps serving others', async () => {
    relay = await startTestRelay({ limits: { maxFrameBytes: 64 * 1024 } })
    const big = await connectClient(relay.url)
    big.sendRaw('x'.repeat(100 * 1024))
    // Read (ws takes frames up to the clients' 4 MiB) and refused by the relay, which names
    // its limit: a replica that sent it before the relay's hello sizes its uploads to it.
    const refusal = await big.waitFor(is.error(ErrorCode.FrameTooLarge), 'frame-too-large')
    expect(refusal).toMatchObject({ maxFrame: 64 * 1024 })
    expect((await big.closed).code).toBe(1009)
    // Past the clients' limit, ws closes the connection before the relay sees the frame.
    const huge = await connectClient(relay.url)
    huge.sendRaw('x'.repeat(DEFAULT_LIMITS.maxFrameBytes + 1))
    expect((await huge.closed).code).toBe(1009)
    await syncs(relay.url, 'other-1')
    const metrics = (await get(relay, '/metrics')).body
    expect(sample(metrics, 'chorus_relay_frames_refused_total')).toBe(1)
    expect(sample(metrics, 'chorus_relay_socket_errors_total')).toBe(1)
    expect(relay.errors).toEqual([])
  })

  it('enforces the frame limit itself when the server was built without maxPayload', async () => {
    const bare = await bareRelay({ limits: { maxFrameBytes: 1024 } })
    const big = await connectClient(bare.url)
    big.sendRaw(`{"type":"hello","pad":"${'y'.repeat(2000)}"}`)
    expect(await big.closed).toEqual({ code: 1009, reason: 'frames are limited to 1024 bytes' })
    await syncs(bare.url, 'other-2')
    expect((await bare.relay.metrics()).framesRefused).toBe(1)
    await bare.stop()
    expect(bare.errors).toEqual([])
  })

  it('reads binary frames as UTF-8 text and answers one that is not UTF-8 with malformed-frame', async () => {
    relay = await startTestRelay()
    const client = await connectClient(relay.url)
    client.sendRaw(Buffer.from([0xff, 0xfe, 0x7b]), { binary: true })
    await client.waitFor(is.error(ErrorCode.MalformedFrame), 'malformed-frame')
    client.sendRaw(Buffer.from(JSON.stringify(hello('binary-1', { [SPACE]: 0 })), 'utf8'), { binary: true })
    await client.waitFor(is.hello, 'the hello answering a binary hello')
    await client.close()
  })

  it('answers a batch over the limit with batch-too-large and stores none of it', async () => {
    relay = await startTestRelay({ limits: { maxBatch: 10 } })
    const client = await connectClient(relay.url)
    client.send(hello('batcher', { [SPACE]: 0 }))
    await client.waitFor(is.hello, 'hello')
    client.send(changes(SPACE, 0, makeRun(asReplicaId('batcher'), 1, 11)))
    await client.waitFor(is.error(ErrorCode.BatchTooLarge), 'batch-too-large')
    client.send(changes(SPACE, 0, makeRun(asReplicaId('batcher'), 1, 10)))
    await client.waitFor(is.ack(10), 'ack 10')
    await client.close()
  })
})

describe('rate limits', () => {
  it('answers a flood with rate-limited, closes a client that keeps on, and leaves others alone', async () => {
    const bare = await bareRelay({
      now: () => 1_700_000_000_000,
      limits: { framesPerSecond: 1, frameBurst: 5, maxStrikes: 3 },
    })
    const flooder = await connectClient(bare.url)
    flooder.send(hello('flooder', { [SPACE]: 0 }))
    await flooder.waitFor(is.hello, 'hello')
    for (let i = 0; i < 20; i++) flooder.send({ type: 'ack', space: SPACE as never, upTo: 0 })
    await flooder.waitFor(is.error(ErrorCode.RateLimited), 'rate-limited')
    expect(await flooder.closed).toEqual({ code: 1008, reason: ErrorCode.RateLimited })
    expect(flooder.messages.filter((message) => message.type === 'error')).toHaveLength(1)
    // The clock is frozen, so the limiter never refills: exactly burst frames passed.
    const metrics = await bare.relay.metrics()
    expect(metrics.rateLimited).toBe(4)
    await syncs(bare.url, 'calm-1')
    await bare.stop()
    expect(bare.errors).toEqual([])
  })
})

describe('heartbeats', () => {
  it.each([
    ['a listener each', false],
    ['one shared pong listener', true],
  ])(
    'drops a socket that stops answering pings and keeps one that answers (sockets with %s)',
    async (_, shared) => {
      const bare = await bareRelay({ heartbeatMs: 50 }, shared)
      const silent = new WebSocket(bare.url, { autoPong: false })
      const silentClosed = new Promise<number>((resolve) => silent.on('close', (code) => resolve(code)))
      silent.on('error', () => {
        // The relay terminates the socket; 'close' reports it.
      })
      const answering = await connectClient(bare.url)
      expect(await within(silentClosed, 5000, 'the silent socket to be dropped')).toBe(1006)
      expect(answering.socket.readyState).toBe(WebSocket.OPEN)
      await answering.close()
      await bare.stop()
      expect(bare.errors).toEqual([])
    },
  )

  it('keeps a socket whose pong waits behind a long frame it is still sending', async () => {
    const bare = await bareRelay({ heartbeatMs: 300 }, true)
    // About 240 KB in one frame over 60 KB/s up: 4 s, more than ten heartbeats.
    const pad = 'x'.repeat(6_000)
    const batch = Array.from({ length: 40 }, (_, n) => makeChange(A, n + 1, {}, { pad, n }))
    const link = await slowLink(bare.url, 60_000, 'up')
    try {
      const uploader = await connectClient(link.url)
      uploader.send(hello('alice', { [SPACE]: 0 }))
      await uploader.waitFor(is.hello, 'the hello answer')
      uploader.send(changes(SPACE, 0, batch))
      // Before, the relay took it for dead two heartbeats later, half way through the frame.
      await uploader.waitFor(is.ack(40), 'the ack', { ms: 30_000 })
      expect(uploader.socket.readyState).toBe(WebSocket.OPEN)
      expect(link.connections()).toBe(1)
      uploader.socket.terminate()
    } finally {
      link.close()
      await bare.stop()
    }
    expect(bare.errors).toEqual([])
  }, 60_000)

  it('keeps a socket on a slow link, its pong behind what it has not read yet, and drops it once it reads nothing more', async () => {
    // A reader slower than 500 KB/s may be taken for dead: the stalled one below goes soon.
    const bare = await bareRelay({ heartbeatMs: 1_500, limits: { minReadBytesPerSecond: 500_000 } }, true)
    // About 6 MB of records, more than the relay holds for one socket (4 MiB): at 1 MB/s a ping
    // waits behind several seconds of data, longer than two heartbeats.
    const pad = 'x'.repeat(3_000)
    const records = Array.from({ length: 2_000 }, (_, n) => makeChange(A, n + 1, {}, { pad, n }))
    for (let at = 0; at < records.length; at += 500)
      await bare.store.append(SPACE as never, A, records.slice(at, at + 500))
    const link = await slowLink(bare.url, 1_000_000)
    const snapshotChanges = (client: TestClient) =>
      client.messages.reduce(
        (sum, message) => sum + (message.type === 'snapshot' ? message.batch.length : 0),
        0,
      )
    try {
      // Slow but reading: it all comes, on one connection.
      const reader = await connectClient(link.url)
      reader.send(hello('slow-reader', { [SPACE]: 0 }))
      await reader.waitFor(is.lastSnapshot, 'the last snapshot page', { ms: 60_000 })
      expect(snapshotChanges(reader)).toBe(records.length)
      expect(reader.socket.readyState).toBe(WebSocket.OPEN)
      expect(link.connections()).toBe(1)

      // Reading, then not at all: dropped, once the relay writes out nothing more to it. The
      // slow reader, whose pongs came late, is still connected then, seconds later.
      const stalled = await connectClient(link.url)
      stalled.send(hello('stalled-reader', { [SPACE]: 0 }))
      await until(() => snapshotChanges(stalled) >= 50, 30_000, 'some of the snapshot')
      link.stall()
      await until(
        async () => (await bare.relay.metrics()).connections === 1,
        30_000,
        'the stalled reader dropped',
      )
      expect(snapshotChanges(stalled)).toBeLessThan(records.length)
      expect((await bare.relay.metrics()).lag.map((entry) => entry.replica)).toEqual(['slow-reader'])
      expect(reader.socket.readyState).toBe(WebSocket.OPEN)
      expect(reader.messages.filter((message) => message.type === 'error')).toEqual([])
      reader.socket.terminate()
      stalled.socket.terminate()
    } finally {
      link.close()
      await bare.stop()
    }
    expect(bare.errors).toEqual([])
  }, 120_000)
})

describe('a client that closes while much is queued for it', () => {
  it('is dropped at once, not after everything queued and then the close have crossed its link', async () => {
    const bare = await bareRelay({ tickMs: 100 })
    const pad = 'x'.repeat(3_000)
    const records = Array.from({ length: 1_000 }, (_, n) => makeChange(A, n + 1, {}, { pad, n }))
    for (let at = 0; at < records.length; at += 500)
      await bare.store.append(SPACE as never, A, records.slice(at, at + 500))
    // 3 MB of snapshot at 100 KB/s: 30 s to cross.
    const link = await slowLink(bare.url, 100_000)
    try {
      const reader = await connectClient(link.url)
      reader.send(hello('leaving', { [SPACE]: 0 }))
      await until(
        () => reader.messages.some((message) => message.type === 'snapshot'),
        20_000,
        'a snapshot page',
      )
      reader.socket.close(1000)
      const closedAt = link.delivered()
      // Before, the relay went on writing out the whole snapshot, then its close, over the link.
      await until(async () => (await bare.relay.metrics()).connections === 0, 5_000, 'the connection dropped')
      expect(link.delivered() - closedAt).toBeLessThan(1_500_000)
    } finally {
      link.close()
      await bare.stop()
    }
    expect(bare.errors).toEqual([])
  }, 60_000)
})

describe('connections that say nothing, and too many connections', () => {
  it('closes a connection whose hello is not answered in time, and keeps one that said hello', async () => {
    const bare = await bareRelay({ limits: { helloTimeoutMs: 200 } })
    const talker = await connectClient(bare.url)
    talker.send(hello('talker', { [SPACE]: 0 }))
    await talker.waitFor(is.hello, 'the hello answer')
    // Connected after the talker: by the time it is closed, the talker's time is up too.
    const silent = await connectClient(bare.url)
    const error = await silent.waitFor(is.error(ErrorCode.HelloRequired), 'hello-required', { ms: 5_000 })
    expect(error.message).toMatch(/no hello answered within 200 ms/)
    expect((await silent.closed).code).toBe(1008)
    expect(talker.socket.readyState).toBe(WebSocket.OPEN)
    talker.send(changes(SPACE, 0, makeRun(asReplicaId('talker'), 1, 2)))
    await talker.waitFor(is.ack(2), 'the ack')
    expect((await bare.relay.metrics()).helloTimeouts).toBe(1)
    await talker.close()
    await bare.stop()
    expect(bare.errors).toEqual([])
  })

  it('drops a connection that ignores its close after closeGraceMs, freeing its slot', async () => {
    const bare = await bareRelay({ limits: { helloTimeoutMs: 100, closeGraceMs: 100, maxConnections: 1 } })
    // A raw socket that completes the upgrade and then answers nothing, not even the close.
    const { port } = new URL(bare.url)
    const ignoring = netConnect(Number(port), '127.0.0.1')
    const ended = new Promise<string>((resolve) => ignoring.on('close', () => resolve('dropped')))
    let heard = ''
    ignoring.on('data', (chunk: Buffer) => {
      heard += chunk.toString('latin1')
    })
    ignoring.write(
      [
        'GET / HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'),
    )
    // Closed by the relay (hello-required, then 1008) and dropped, where the WebSocket
    // library alone would have waited 30 s for the close to be answered.
    expect(await within(ended, 10_000, 'the ignoring socket to be dropped')).toBe('dropped')
    expect(heard).toMatch(/^HTTP\/1\.1 101 /)
    // Its slot is free again.
    const next = await connectClient(bare.url)
    next.send(hello('next', { [SPACE]: 0 }))
    await next.waitFor(is.hello, 'the hello answer')
    await next.close()
    await bare.stop()
  }, 20_000)

  it('answers 408 and closes an HTTP connection whose headers do not arrive within 10 s', async () => {
    const relay = await startTestRelay()
    try {
      const slow = netConnect(relay.port, '127.0.0.1')
      let heard = ''
      slow.on('data', (chunk: Buffer) => {
        heard += chunk.toString('latin1')
      })
      const ended = new Promise<void>((resolve) => slow.on('close', () => resolve()))
      // The start of a request, and then nothing: a slow sender holding a socket.
      slow.write('GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Trickle: a')
      await within(ended, 25_000, 'the slow connection to be closed')
      expect(heard).toMatch(/^HTTP\/1\.1 408 /)
    } finally {
      await relay.stop()
    }
  }, 30_000)

  it('closes a connection past the limit for one address with 1013, and takes one again once one from there leaves', async () => {
    const bare = await bareRelay({ limits: { maxConnectionsPerAddress: 2 } })
    const first = await connectClient(bare.url)
    const second = await connectClient(bare.url)
    const third = await connectClient(bare.url)
    expect(await third.closed).toEqual({
      code: 1013,
      reason: "this address has 2 connections open, the relay's limit for one address: try again later",
    })
    expect((await bare.relay.metrics()).connectionsRefused).toBe(1)
    await first.close()
    await expect.poll(() => bare.relay.metrics().then((metrics) => metrics.connections)).toBe(1)
    // The place it held is free again: another connection from the address syncs.
    await syncs(bare.url, 'later')
    await second.close()
    await expect.poll(() => bare.relay.metrics().then((metrics) => metrics.connections)).toBe(0)
    // Every place is given back: two at once again, the second answered.
    const again = [await connectClient(bare.url), await connectClient(bare.url)]
    again[1]?.send(hello('after', { [SPACE]: 0 }))
    await again[1]?.waitFor(is.hello, 'the hello of a second connection')
    for (const client of again) await client.close()
    await bare.stop()
    expect(bare.errors).toEqual([])
  })

  it('closes a connection past the limit with 1013, and takes one again once another leaves', async () => {
    const bare = await bareRelay({ limits: { maxConnections: 2 } })
    const first = await connectClient(bare.url)
    const second = await connectClient(bare.url)
    const third = await connectClient(bare.url)
    expect(await third.closed).toEqual({
      code: 1013,
      reason: 'the relay is at its limit of 2 connections: try again later',
    })
    expect((await bare.relay.metrics()).connectionsRefused).toBe(1)
    await first.close()
    await expect.poll(() => bare.relay.metrics().then((metrics) => metrics.connections)).toBe(1)
    await syncs(bare.url, 'later')
    await second.close()
    await bare.stop()
    expect(bare.errors).toEqual([])
  })
})
