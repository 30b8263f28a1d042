import { asReplicaId } from '@chorus/core'
import { createPrng, hostileFrame, type Prng, seedFromEnv } from '@chorus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeChange, within } from './support/fixtures.js'
import { startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is, type TestClient } from './support/test-client.js'

const seed = seedFromEnv(process.env, 20_240_917)
const SPACE = 'team-notes'
const SOCKETS = 5
const FRAMES = 5000
const A = asReplicaId('alice')

/**
 * Sends storm frames until `done()` says the relay has read enough, reconnecting whenever the
 * relay hangs up (frames sent into a closing socket are lost, so the relay's count decides).
 * Resolves with the number of reconnects.
 */
async function storm(url: string, prng: Prng, done: () => Promise<boolean>): Promise<number> {
  let reconnects = 0
  let client = await connectClient(url)
  for (let chunk = 0; chunk < 400 && !(await done()); chunk++) {
    for (let i = 0; i < 50; i++) {
      if (client.socket.readyState !== client.socket.OPEN) {
        reconnects++
        client = await connectClient(url)
      }
      const frame = hostileFrame(prng, SPACE)
      client.sendRaw(frame.data, { binary: frame.binary })
    }
    // Flow control: a pong comes back after the relay has read everything sent before the ping.
    const socket = client.socket
    await within(
      new Promise<void>((resolve) => {
        socket.once('pong', () => resolve())
        socket.once('close', () => resolve())
        if (socket.readyState === socket.OPEN) socket.ping()
        else resolve()
      }),
      5000,
      'a pong',
    )
  }
  await client.close()
  return reconnects
}

describe(`a malformed-frame storm (seed ${seed}; replay with SEED=${seed})`, () => {
  const faults: unknown[] = []
  const onFault = (error: unknown) => faults.push(error)
  let relay: TestRelay

  beforeAll(async () => {
    process.on('uncaughtException', onFault)
    process.on('unhandledRejection', onFault)
    relay = await startTestRelay({
      limits: { framesPerSecond: 1e6, frameBurst: 1e6, maxFrameBytes: 256 * 1024 },
    })
  })

  afterAll(async () => {
    await relay.stop()
    process.off('uncaughtException', onFault)
    process.off('unhandledRejection', onFault)
  })

  it('crashes nothing, keeps memory bounded, and a legitimate client syncs during and after', async () => {
    const gc = (globalThis as { gc?: () => void }).gc
    const alice = await connectClient(relay.url)
    alice.send(hello(A, { [SPACE]: 0 }))
    await alice.waitFor(is.hello, "alice's hello")
    const bob: TestClient = await connectClient(relay.url)
    bob.send(hello('bob', { [SPACE]: 0 }))
    await bob.waitFor(is.hello, "bob's hello")
    gc?.()
    const heapBefore = process.memoryUsage().heapUsed

    const prng = createPrng(seed)
    const framesBefore = (await relay.relay.metrics()).framesIn
    const done = async () => (await relay.relay.metrics()).framesIn - framesBefore >= FRAMES
    const stormers = Array.from({ length: SOCKETS }, (_, i) =>
      storm(relay.url, prng.fork(`socket-${i}`), done),
    )
    let counter = 0
    const legit = (async () => {
      for (let round = 0; round < 10; round++) {
        const batch = [makeChange(A, counter + 1, { id: `during-${round}` }), makeChange(A, counter + 2)]
        alice.send(changes(SPACE, counter, batch))
        counter += batch.length
        await alice.waitFor(is.ack(counter), `ack ${counter} during the storm`, { ms: 10_000 })
      }
    })()
    const reconnects = await within(Promise.all(stormers), 40_000, 'the storm to finish')
    await legit
    await bob.waitFor(is.changesTo(counter), 'bob receiving what alice wrote during the storm', {
      ms: 10_000,
    })
    await relay.relay.idle()

    alice.send(changes(SPACE, counter, [makeChange(A, counter + 1, { id: 'after' })]))
    await alice.waitFor(is.ack(counter + 1), 'ack after the storm')
    await bob.waitFor(is.changesTo(counter + 1), 'bob receiving what alice wrote after the storm')

    gc?.()
    const growth = process.memoryUsage().heapUsed - heapBefore
    expect(growth, `heap grew by ${Math.round(growth / 2 ** 20)} MiB`).toBeLessThan(96 * 2 ** 20)
    expect(faults).toEqual([])
    expect(relay.errors).toEqual([])
    expect([...alice.undecodable, ...bob.undecodable]).toEqual([])
    expect(alice.messages.filter((message) => message.type === 'error')).toEqual([])
    expect(reconnects.reduce((sum, n) => sum + n, 0)).toBeGreaterThan(0)
    expect((await relay.relay.metrics()).framesIn - framesBefore).toBeGreaterThanOrEqual(FRAMES)
    await Promise.all([alice.close(), bob.close()])
  }, 60_000)
})
