import { asReplicaId, encodeMessage, type Message, PROTOCOL_VERSION } from '@chorus/core'
import { createPrng, type Prng, seedFromEnv } from '@chorus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeChange, makeRun, within } from './support/fixtures.js'
import { startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is, type TestClient } from './support/test-client.js'

const seed = seedFromEnv(process.env, 20_240_917)
const SPACE = 'team-notes'
const SOCKETS = 5
const FRAMES = 5000
const A = asReplicaId('alice')

const weird: readonly unknown[] = [
  null,
  -1,
  0,
  1.5,
  2 ** 53 + 1,
  1e308,
  '',
  'x'.repeat(300),
  [],
  {},
  true,
  { __proto__: 1 },
  ['nested', ['deeper']],
]

/** A valid frame of some kind, for mutating or cutting. */
function validFrame(prng: Prng): string {
  const replica = asReplicaId(`storm-${prng.int(0, 9)}`)
  const messages: Message[] = [
    hello(replica, { [`s-${prng.int(0, 5)}`]: prng.int(0, 3) }),
    changes(SPACE, 0, makeRun(replica, 1, prng.int(1, 3))),
    { type: 'ack', space: SPACE as never, upTo: prng.int(0, 10) },
    { type: 'snapshot', space: SPACE as never, cursor: 1, page: 0, last: true, batch: [] },
    { type: 'error', code: 'internal', message: 'storm' },
  ]
  return encodeMessage(prng.pick(messages))
}

/** Replaces one value somewhere inside a parsed frame with a weird one. */
function mutate(value: unknown, prng: Prng): unknown {
  if (typeof value !== 'object' || value === null || prng.bool(0.25)) return prng.pick(weird)
  const keys = Object.keys(value)
  if (keys.length === 0) return prng.pick(weird)
  const key = prng.pick(keys)
  const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<string, unknown>
  copy[key] = mutate((value as Record<string, unknown>)[key], prng)
  return copy
}

function nested(depth: number, open: string, close: string, inner = '1'): string {
  return `${open.repeat(depth)}${inner}${close.repeat(depth)}`
}

type StormFrame = { readonly data: string | Buffer; readonly binary: boolean }

/** One hostile frame: random bytes, cut or mutated frames, wrong types, huge numbers, deep nesting. */
function stormFrame(prng: Prng): StormFrame {
  const text = (data: string): StormFrame => ({ data, binary: false })
  switch (prng.int(0, 11)) {
    case 0:
      return {
        data: Buffer.from(Array.from({ length: prng.int(0, 200) }, () => prng.int(0, 255))),
        binary: true,
      }
    case 1:
      // Not UTF-8 in a text frame: ws closes the socket (1007) before the relay sees it.
      return prng.bool(0.1)
        ? { data: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), binary: false }
        : text(String.fromCharCode(...Array.from({ length: prng.int(0, 100) }, () => prng.int(0, 0xffff))))
    case 2: {
      const frame = validFrame(prng)
      return text(frame.slice(0, prng.int(0, frame.length - 1)))
    }
    case 3:
      return text(JSON.stringify(mutate(JSON.parse(validFrame(prng)), prng)))
    case 4:
      return text(
        JSON.stringify({ type: prng.pick([42, null, 'hullo', 'HELLO', '', ['hello'], { type: 'hello' }]) }),
      )
    case 5:
      return text(
        prng.pick([
          '{"type":"changes"}',
          '{"type":"hello"}',
          '{"type":"ack"}',
          '{}',
          '[]',
          'null',
          '"hello"',
        ]),
      )
    case 6:
      return text(
        `{"type":"ack","space":"${SPACE}","upTo":${prng.pick(['1e400', '-0', '9007199254740993', '-1e400', '1.0000001', '0x10'])}}`,
      )
    case 7:
      return text(nested(prng.int(100, 5000), prng.pick(['[', '{"a":']), prng.pick([']', '}'])))
    case 8: {
      const value = nested(prng.int(65, 2000), '{"a":', '}', '{}')
      return text(
        `{"type":"changes","space":"${SPACE}","from":0,"to":1,"batch":[{"collection":"notes","id":"x","dot":["deep",1],"context":{},"hlc":"001700000000001.000000@deep","op":{"type":"put","value":${value}}}]}`,
      )
    }
    case 9:
      return text(
        JSON.stringify({
          type: 'hello',
          protocol: prng.pick([0, 2, PROTOCOL_VERSION]),
          replicaId: `r-${prng.int(0, 99)}`,
          spaces: [SPACE],
          have: { [SPACE]: prng.int(0, 1e6) },
        }),
      )
    case 10:
      return text(
        `{"type":"hello","protocol":1,"replicaId":"${'z'.repeat(prng.int(60, 70))}","spaces":${JSON.stringify(Array.from({ length: prng.int(60, 70) }, (_, i) => `s${i}`))},"have":{}}`,
      )
    default:
      return text(validFrame(prng))
  }
}

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
      const frame = stormFrame(prng)
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
