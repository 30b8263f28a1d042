import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { NodeEffect, NodeInput, NodeMachine } from '../src/machine.js'
import { MemoryNodeStorage } from '../src/memory-node-storage.js'
import { NodeRuntime } from '../src/node/node-runtime.js'
import { SqliteNodeStorage } from '../src/node/sqlite-node-storage.js'
import { asNodeId, type NodeId } from '../src/node-id.js'
import type { NodeStorage } from '../src/storage.js'
import { GatedStorage } from './gated-storage.js'

type Message = { readonly id: string }
type Reply = { readonly id: string }
type Input = NodeInput<Message, Message>
type Effect = NodeEffect<Message, Reply, string>

/**
 * A machine that, for a request `{ id }`, persists `id`, sends `{ id }` to n2 as an `early`
 * send when the id starts with `early`, and answers; it tells `received` every message it gets.
 */
function machine(
  received: (message: Message) => void,
  stepped: (input: Input) => void = () => {},
  to = 'n2',
): TestMachine {
  return {
    recover: () => 0,
    step: (state, input) => {
      stepped(input)
      if (input.type === 'message') received(input.message)
      if (input.type !== 'request') return { state, effects: [] }
      const id = input.request.id
      const send: Effect = {
        type: 'send',
        to: asNodeId(to),
        message: { id },
        early: id.startsWith('early'),
      }
      const effects: Effect[] = [
        { type: 'persist', records: [id], epoch: null },
        send,
        { type: 'reply', client: input.client, reply: { id } },
      ]
      return { state, effects }
    },
    ...inputs,
  }
}

const runtimes: NodeRuntime<number, Input, Message, Reply, string>[] = []

/** The input constructors of every test machine here. */
const inputs: Pick<TestMachine, 'messageInput' | 'requestInput' | 'tickInput'> = {
  messageInput: (now, from, message) => ({ type: 'message', now, from, message: message as Message }),
  requestInput: (now, client, request) => ({ type: 'request', now, client, request: request as Message }),
  tickInput: (now) => ({ type: 'tick', now }),
}

/** A runtime for a cluster of one node, n1, stopped after the test. */
function singleNode(machine: TestMachine, storage: NodeStorage<string>, requestTimeoutMs: number) {
  const runtime = new NodeRuntime({
    id: asNodeId('n1'),
    nodes: [asNodeId('n1')],
    machine,
    storage,
    tickMs: 60_000,
    seed: 1,
    requestTimeoutMs,
  })
  runtimes.push(runtime)
  return runtime
}

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.stop()))
})

type TestMachine = NodeMachine<number, Input, Message, Reply, string>

/** Runtimes n1 (on `disk`) and n2 (in memory) of a two-node cluster, stopped after the test. */
function twoNodes(first: TestMachine, disk: GatedStorage<string>, second: TestMachine) {
  const nodes: NodeId[] = [asNodeId('n1'), asNodeId('n2')]
  const made = [
    [first, disk],
    [second, new MemoryNodeStorage<string>()],
  ].map(
    ([node, storage], index) =>
      new NodeRuntime({
        id: nodes[index] as NodeId,
        nodes,
        machine: node as TestMachine,
        storage: storage as MemoryNodeStorage<string>,
        tickMs: 60_000,
        seed: index + 1,
      }),
  )
  runtimes.push(...made)
  return made as [
    NodeRuntime<number, Input, Message, Reply, string>,
    NodeRuntime<number, Input, Message, Reply, string>,
  ]
}

async function post(port: number, id: string): Promise<Reply> {
  const response = await fetch(`http://127.0.0.1:${port}/request`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id }),
  })
  return (await response.json()) as Reply
}

describe('NodeRuntime and early sends', () => {
  it('sends an early message before the commit it follows, alone or in a group commit; other effects wait', async () => {
    const arrivals = new Map<string, () => void>()
    const arrived = (id: string) => new Promise<void>((resolve) => arrivals.set(id, resolve))
    const disk = new GatedStorage<string>()
    const [n1, n2] = twoNodes(
      machine(() => {}),
      disk,
      machine((message) => arrivals.get(message.id)?.()),
    )
    const [p1, p2] = await Promise.all([n1.start(), n2.start()])
    n1.transport.setPeers(new Map([['n2', { host: '127.0.0.1', port: p2.peerPort }]]))
    let answered = 0
    const ask = (id: string) =>
      post(p1.httpPort, id).then((reply) => {
        answered++
        return reply
      })

    // One input: its commit is held, its early send is out, its answer is not.
    const sentEarly = arrived('early-1')
    const first = ask('early-1')
    await disk.waiting()
    await sentEarly
    expect(answered).toBe(0)

    // Two more arrive during that commit and are committed together; the late one's send
    // (after the other's persist in the batch) still waits, the early one's does not.
    const sentEarly2 = arrived('early-2')
    const late = ask('late-1')
    const second = ask('early-2')
    while (n1.stats.queuedInputs < 2) await new Promise<void>((resolve) => setImmediate(resolve))
    disk.release()
    expect(await first).toEqual({ id: 'early-1' })
    await disk.waiting()
    await sentEarly2
    expect(answered).toBe(1)
    const sentLate = arrived('late-1')
    disk.release()
    await sentLate
    expect(await Promise.all([late, second])).toEqual([{ id: 'late-1' }, { id: 'early-2' }])
    expect(n1.stats.groupCommits).toBe(1)
  })

  it('steps a peer message queued behind a burst of requests in the next batch, not after the burst', async () => {
    const disk = new GatedStorage<string>()
    const order: string[] = []
    const steps = (input: Input) => {
      if (input.type === 'message') order.push(`peer:${input.message.id}`)
      if (input.type === 'request') order.push(input.request.id)
    }
    // n2 sends what it is asked to n1.
    const [n1, n2] = twoNodes(
      machine(() => {}, steps),
      disk,
      machine(() => {}, undefined, 'n1'),
    )
    const [p1, p2] = await Promise.all([n1.start(), n2.start()])
    n2.transport.setPeers(new Map([['n1', { host: '127.0.0.1', port: p1.peerPort }]]))
    // n1 is held in a commit while 400 requests queue up, then a message from n2 behind them.
    const first = post(p1.httpPort, 'first')
    await disk.waiting()
    const burst = Array.from({ length: 400 }, (_, i) => post(p1.httpPort, `r${i}`))
    while (n1.stats.queuedInputs < 400) await new Promise<void>((resolve) => setImmediate(resolve))
    await post(p2.httpPort, 'from-n2')
    while (n1.stats.queuedInputs < 401) await new Promise<void>((resolve) => setImmediate(resolve))
    disk.closed = false
    disk.release()
    await Promise.all([first, ...burst])
    await new Promise<void>((resolve) => {
      const check = () => (order.includes('peer:from-n2') ? resolve() : setTimeout(check, 5))
      check()
    })
    // The next batch took the message first, then the oldest 255 requests.
    expect(order.slice(0, 3)).toEqual(['first', 'peer:from-n2', 'r0'])
    expect(order.indexOf('r255')).toBe(order.length - 400 + 255)
  })
})

describe('NodeRuntime request timeouts', () => {
  it('waits for an answer as much longer as the request lets its node wait (waitMs)', async () => {
    // Holds every request until one with id "release", then answers them all.
    const held: string[] = []
    const holding: TestMachine = {
      recover: () => 0,
      step: (state, input) => {
        if (input.type !== 'request') return { state, effects: [] }
        held.push(input.client)
        if (input.request.id !== 'release') return { state, effects: [] }
        const effects: Effect[] = held
          .splice(0)
          .map((client) => ({ type: 'reply', client, reply: { id: client } }) satisfies Effect)
        return { state, effects }
      },
      ...inputs,
    }
    const runtime = singleNode(holding, new MemoryNodeStorage<string>(), 100)
    const { httpPort } = await runtime.start()
    const ask = (body: object) =>
      fetch(`http://127.0.0.1:${httpPort}/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    const patient = ask({ id: 'patient', waitMs: 30_000 })
    while (held.length < 1) await new Promise<void>((resolve) => setImmediate(resolve))
    // Asked after it, without waitMs: its timeout passes first, and so the plain one's has.
    const plain = await ask({ id: 'plain' })
    expect(plain.status).toBe(504)
    expect(await plain.json()).toMatchObject({ type: 'timeout' })
    const released = await ask({ id: 'release' })
    expect(released.status).toBe(200)
    const answer = await patient
    expect(answer.status).toBe(200)
    expect(await answer.json()).toEqual({ id: 'http-1' })
  })
})

describe('NodeRuntime when its storage fails', () => {
  it('answers the request whose write failed at once, with storage-failed, and goes on when storage does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-node-runtime-'))
    const storage = new SqliteNodeStorage<string>(join(dir, 'n1.sqlite'))
    // Persists each request's id, then answers it.
    const storing: TestMachine = {
      recover: () => 0,
      step: (state, input) => {
        if (input.type !== 'request') return { state, effects: [] }
        const effects: Effect[] = [
          { type: 'persist', records: [input.request.id], epoch: null },
          { type: 'reply', client: input.client, reply: { id: input.request.id } },
        ]
        return { state, effects }
      },
      ...inputs,
    }
    // Longer than the test may take: before, a failed write was answered only by this timeout.
    const runtime = singleNode(storing, storage, 600_000)
    try {
      const { httpPort } = await runtime.start()
      const ask = (id: string) =>
        fetch(`http://127.0.0.1:${httpPort}/request`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id }),
        })
      expect((await ask('first')).status).toBe(200)

      storage.failNextAppend('database or disk is full')
      const failed = await ask('second')
      expect(failed.status).toBe(503)
      expect(await failed.json()).toMatchObject({
        type: 'error',
        id: 'second',
        code: 'storage-failed',
        maybeApplied: true,
        message: expect.stringMatching(/n1 could not store it \(database or disk is full\)/),
      })
      expect((await ask('third')).status).toBe(200)

      // The file deleted under the node: refused, where before it was acknowledged and lost.
      rmSync(join(dir, 'n1.sqlite'))
      const orphaned = await ask('fourth')
      expect(orphaned.status).toBe(503)
      expect(await orphaned.json()).toMatchObject({
        code: 'storage-failed',
        message: expect.stringMatching(/was deleted or replaced while the node ran/),
      })
      expect(runtime.stats.storageRefusals).toBe(2)
    } finally {
      await runtime.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
