import { describe, expect, it } from 'vitest'
import { createPrng, seedFromEnv } from '../src/prng.js'
import { Scheduler } from '../src/scheduler.js'
import { type LinkFaults, SimNetwork, type SimNode } from '../src/sim-network.js'
import type { SimTraceEvent } from '../src/sim-trace.js'

const seed = seedFromEnv(process.env, 1_234)

interface Received {
  readonly at: number
  readonly from: string
  readonly message: string
}

/** A node that records what it receives, with the virtual time of each delivery. */
function recorder(network: () => SimNetwork): SimNode<string> & { readonly inbox: Received[] } {
  const inbox: Received[] = []
  return {
    inbox,
    deliver(from, message) {
      inbox.push({ at: network().now(), from, message })
    },
  }
}

function setup(faults: Partial<LinkFaults> = {}, ids: readonly string[] = ['a', 'b', 'c']) {
  const scheduler = new Scheduler({ startMs: 0 })
  const network = new SimNetwork<string>({ prng: createPrng(seed), scheduler, faults })
  const nodes = new Map(ids.map((id) => [id, recorder(() => network)] as const))
  for (const [id, node] of nodes) network.addNode(id, node)
  const inbox = (id: string): Received[] => nodes.get(id)?.inbox ?? []
  const messages = (id: string): string[] => inbox(id).map((received) => received.message)
  return { scheduler, network, inbox, messages }
}

describe(`SimNetwork (SEED=${seed})`, () => {
  it('delivers after the link latency in virtual time, not before', async () => {
    const { network, scheduler, inbox } = setup({ latencyMs: 40 })
    network.send('a', 'b', 'hello')
    await scheduler.runFor(39)
    expect(inbox('b')).toEqual([])
    await scheduler.runFor(1)
    expect(inbox('b')).toEqual([{ at: 40, from: 'a', message: 'hello' }])
    expect(network.stats).toEqual({ sent: 1, delivered: 1, lost: 0, duplicated: 0, blocked: 0 })
  })

  it('traces when each copy is due, and delivers it exactly then', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const trace: SimTraceEvent<string>[] = []
    const network = new SimNetwork<string>({
      prng: createPrng(seed),
      scheduler,
      faults: { latencyMs: 10, jitterMs: 20, duplicate: 0.5 },
      onTrace: (event) => trace.push(event),
    })
    network.addNode('a', { deliver: () => undefined })
    network.addNode('b', { deliver: () => undefined })
    for (let i = 0; i < 50; i++) network.send('a', 'b', `m${i}`)
    network.cut('a', 'b')
    network.send('a', 'b', 'blocked at send')
    network.heal()
    await scheduler.runUntilIdle()
    const due = trace.flatMap((event) => (event.type === 'schedule' ? [event] : []))
    const delivered = trace.flatMap((event) => (event.type === 'deliver' ? [event] : []))
    expect(due).toHaveLength(50 + network.stats.duplicated)
    expect(delivered).toHaveLength(due.length)
    for (const copy of due) {
      expect(copy.deliverAt).toBeGreaterThanOrEqual(copy.time + 10)
      expect(copy.deliverAt).toBeLessThanOrEqual(copy.time + 30)
    }
    const dueTimes = (id: number) => due.filter((copy) => copy.id === id).map((copy) => copy.deliverAt)
    for (const event of delivered) expect(dueTimes(event.id)).toContain(event.time)
    const blocked = trace.find((event) => event.type === 'blocked')
    expect(blocked === undefined ? [] : dueTimes(blocked.id)).toEqual([])
  })

  it('keeps delays within latency + jitter and preserves link order without jitter', async () => {
    const { network, scheduler, inbox, messages } = setup({ latencyMs: 10, jitterMs: 20 })
    for (let i = 0; i < 200; i++) network.send('a', 'b', `j${i}`)
    network.setFaults({ jitterMs: 0 }, 'a', 'c')
    for (let i = 0; i < 50; i++) network.send('a', 'c', `${i}`)
    await scheduler.runUntilIdle()
    const times = inbox('b').map((received) => received.at)
    expect(Math.min(...times)).toBeGreaterThanOrEqual(10)
    expect(Math.max(...times)).toBeLessThanOrEqual(30)
    expect(new Set(times).size).toBeGreaterThan(10)
    expect(messages('c')).toEqual(Array.from({ length: 50 }, (_, i) => `${i}`))
  })

  it('loses about the configured fraction of messages', async () => {
    const { network, scheduler, inbox } = setup({ loss: 0.2 })
    for (let i = 0; i < 10_000; i++) network.send('a', 'b', `${i}`)
    await scheduler.runUntilIdle()
    const { lost, delivered, sent } = network.stats
    expect(sent).toBe(10_000)
    expect(lost).toBeGreaterThan(1_700)
    expect(lost).toBeLessThan(2_300)
    expect(delivered).toBe(10_000 - lost)
    expect(inbox('b')).toHaveLength(delivered)
  })

  it('duplicates about the configured fraction, each copy on its own delay', async () => {
    const { network, scheduler, messages } = setup({ duplicate: 0.3, jitterMs: 10 })
    for (let i = 0; i < 2_000; i++) network.send('a', 'b', `${i}`)
    await scheduler.runUntilIdle()
    const { duplicated, delivered } = network.stats
    expect(duplicated).toBeGreaterThan(500)
    expect(duplicated).toBeLessThan(700)
    expect(delivered).toBe(2_000 + duplicated)
    const counts = new Map<string, number>()
    for (const message of messages('b')) counts.set(message, (counts.get(message) ?? 0) + 1)
    expect(counts.size).toBe(2_000)
    expect([...counts.values()].filter((count) => count === 2)).toHaveLength(duplicated)
  })

  it('reorder makes some messages overtake others on one link', async () => {
    const { network, scheduler, messages } = setup({ reorder: 0.2 })
    const sent = Array.from({ length: 200 }, (_, i) => i)
    for (const i of sent) {
      network.send('a', 'b', `${i}`)
      await scheduler.runFor(1)
    }
    await scheduler.runUntilIdle()
    const received = messages('b').map(Number)
    expect([...received].sort((x, y) => x - y)).toEqual(sent)
    const inversions = received.filter((value, index) => index > 0 && value < (received[index - 1] ?? 0))
    expect(inversions.length).toBeGreaterThan(5)
  })

  it('partition blocks both directions, including copies already in flight; heal restores', async () => {
    const { network, scheduler, messages } = setup({ latencyMs: 10 })
    network.send('a', 'b', 'in-flight')
    network.partition([['a'], ['b']])
    expect(network.canReach('a', 'b')).toBe(false)
    expect(network.canReach('b', 'a')).toBe(false)
    expect(network.canReach('a', 'c')).toBe(false)
    expect(network.canReach('b', 'c')).toBe(false)
    network.send('a', 'b', 'a->b')
    network.send('b', 'a', 'b->a')
    await scheduler.runUntilIdle()
    expect(messages('a')).toEqual([])
    expect(messages('b')).toEqual([])
    expect(network.stats.blocked).toBe(3)

    network.heal()
    expect(network.canReach('a', 'b')).toBe(true)
    network.send('a', 'b', 'after heal')
    network.send('b', 'a', 'reply')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual(['after heal'])
    expect(messages('a')).toEqual(['reply'])
  })

  it('puts nodes named in no group together in one extra group', () => {
    const { network } = setup({}, ['a', 'b', 'c', 'd'])
    network.partition([['a']])
    expect(network.canReach('b', 'c')).toBe(true)
    expect(network.canReach('c', 'd')).toBe(true)
    expect(network.canReach('a', 'b')).toBe(false)
    network.addNode('e', { deliver() {} })
    expect(network.canReach('e', 'b')).toBe(true)
    expect(() => network.partition([['a'], ['a', 'b']])).toThrow(/more than once/)
    expect(() => network.partition([['zed']])).toThrow(/no node "zed"/)
  })

  it('cut blocks one direction only', async () => {
    const { network, scheduler, messages } = setup()
    network.cut('a', 'b')
    expect(network.canReach('a', 'b')).toBe(false)
    expect(network.canReach('b', 'a')).toBe(true)
    network.send('a', 'b', 'dropped')
    network.send('b', 'a', 'arrives')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual([])
    expect(messages('a')).toEqual(['arrives'])
    network.heal()
    network.send('a', 'b', 'now arrives')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual(['now arrives'])
  })

  it('crash drops copies in flight and cancels the node timers; restart receives again', async () => {
    const { network, scheduler, messages } = setup({ latencyMs: 10 })
    const fired: string[] = []
    network.setTimer('b', 20, () => void fired.push('b-timer'))
    network.setTimer('a', 20, () => void fired.push('a-timer'))
    network.send('a', 'b', 'in flight')
    await scheduler.runFor(5)
    network.crash('b')
    expect(network.isUp('b')).toBe(false)
    network.send('a', 'b', 'while down')
    network.setTimer('b', 1, () => void fired.push('set while down'))
    await scheduler.runFor(12)
    expect(network.stats.blocked).toBe(2)
    network.restart('b')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual([])
    expect(fired).toEqual(['a-timer'])

    network.send('a', 'b', 'after restart')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual(['after restart'])
  })

  it('drops a copy in flight even if its target crashes and restarts before it arrives', async () => {
    const { network, scheduler, messages } = setup({ latencyMs: 10 })
    network.send('a', 'b', 'old connection')
    await scheduler.runFor(2)
    network.crash('b')
    network.send('a', 'b', 'sent while rebooting')
    await scheduler.runFor(2)
    network.restart('b')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual(['sent while rebooting'])
  })

  it('restart with a fresh handler delivers to the new handler only', async () => {
    const { network, scheduler, messages } = setup()
    network.crash('b')
    expect(() => network.crash('b')).toThrow(/already down/)
    const fresh: string[] = []
    network.restart('b', { deliver: (_from, message) => void fresh.push(message) })
    expect(() => network.restart('b')).toThrow(/not down/)
    network.send('a', 'b', 'hi')
    await scheduler.runUntilIdle()
    expect(fresh).toEqual(['hi'])
    expect(messages('b')).toEqual([])
  })

  it('a crashed node sends nothing, and its earlier sends still arrive', async () => {
    const { network, scheduler, messages } = setup()
    network.send('a', 'b', 'before crash')
    network.crash('a')
    network.send('a', 'b', 'from the dead')
    await scheduler.runUntilIdle()
    expect(messages('b')).toEqual(['before crash'])
  })

  it('awaits an async handler and surfaces its error to the run', async () => {
    const { network, scheduler } = setup()
    const order: string[] = []
    network.replaceNode('b', {
      async deliver(_from, message) {
        order.push(`${message}:start`)
        await Promise.resolve()
        order.push(`${message}:end`)
        if (message === 'bad') throw new Error('handler failed')
      },
    })
    network.send('a', 'b', 'one')
    network.send('a', 'b', 'two')
    await scheduler.runUntilIdle()
    expect(order).toEqual(['one:start', 'one:end', 'two:start', 'two:end'])
    network.send('a', 'b', 'bad')
    await expect(scheduler.runUntilIdle()).rejects.toThrow('handler failed')
  })

  it('applies per-link overrides over the defaults, one direction only', () => {
    const { network } = setup({ latencyMs: 7 })
    network.setFaults({ loss: 0.5 }, 'a', 'b')
    network.setFaults({ latencyMs: 9 })
    expect(network.linkFaults('a', 'b')).toEqual({
      latencyMs: 9,
      jitterMs: 0,
      loss: 0.5,
      duplicate: 0,
      reorder: 0,
      bytesPerMs: 0,
    })
    expect(network.linkFaults('b', 'a').loss).toBe(0)
    expect(() => network.setFaults({ loss: 2 })).toThrow(RangeError)
    expect(() => network.setFaults({ latencyMs: -1 }, 'a', 'b')).toThrow(RangeError)
  })

  it('rejects unknown and duplicate node ids but never throws for an unreachable target', () => {
    const { network } = setup()
    expect(() => network.addNode('a', { deliver() {} })).toThrow(/already has a node/)
    expect(() => network.send('a', 'nobody', 'x')).toThrow(RangeError)
    network.crash('b')
    network.partition([['a'], ['c']])
    expect(() => network.send('a', 'b', 'x')).not.toThrow()
    expect(() => network.send('a', 'c', 'x')).not.toThrow()
    expect(network.nodes()).toEqual(['a', 'b', 'c'])
  })

  it('keeps the books balanced under every fault at once', async () => {
    const { network, scheduler } = setup({
      latencyMs: 3,
      jitterMs: 7,
      loss: 0.1,
      duplicate: 0.1,
      reorder: 0.1,
    })
    const prng = createPrng(seed).fork('workload')
    const ids = network.nodes()
    for (let i = 0; i < 2_000; i++) {
      network.send(prng.pick(ids), prng.pick(ids), `${i}`)
      if (i % 100 === 0) network.partition([[prng.pick(ids)]])
      if (i % 100 === 50) network.heal()
      await scheduler.runFor(prng.int(0, 3))
    }
    await scheduler.runUntilIdle()
    const { sent, duplicated, delivered, lost, blocked } = network.stats
    expect(sent + duplicated).toBe(delivered + lost + blocked)
    expect(Math.min(delivered, lost, blocked, duplicated)).toBeGreaterThan(0)
  })

  it('carries a limited link one message after another, each taking its size over the rate', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const network = new SimNetwork<string>({
      prng: createPrng(seed),
      scheduler,
      faults: { latencyMs: 10, bytesPerMs: 2 },
      sizeOf: (message) => message.length,
    })
    const inbox: [number, string][] = []
    network.addNode('a', { deliver: () => undefined })
    network.addNode('b', { deliver: (_from, message) => void inbox.push([network.now(), message]) })
    network.addNode('c', { deliver: (_from, message) => void inbox.push([network.now(), message]) })
    // 100 bytes at 2 a ms: 50 ms to cross, then the latency; the next waits for it.
    network.send('a', 'b', 'x'.repeat(100))
    network.send('a', 'b', 'y'.repeat(5))
    // Another link is not held up.
    network.send('a', 'c', 'z')
    await scheduler.runUntilIdle()
    expect(inbox).toEqual([
      [11, 'z'],
      [60, 'x'.repeat(100)],
      [63, 'yyyyy'],
    ])
    // An idle link starts again from now, not from when it was last busy.
    await scheduler.runFor(100)
    network.send('a', 'b', 'w'.repeat(4))
    await scheduler.runUntilIdle()
    expect(inbox.at(-1)).toEqual([175, 'wwww'])
  })

  it('tells onUndelivered of every copy lost or blocked, at send and on delivery', async () => {
    const { network, scheduler } = setup({ latencyMs: 10 })
    const undelivered: string[] = []
    network.onUndelivered = (from, to, message) => undelivered.push(`${from}->${to}:${message}`)
    network.send('a', 'b', 'in flight')
    network.partition([['a'], ['b', 'c']])
    network.send('a', 'c', 'at send')
    await scheduler.runUntilIdle()
    network.heal()
    network.crash('c')
    network.send('a', 'c', 'to a crashed node')
    network.setFaults({ loss: 1 })
    network.send('a', 'b', 'lost')
    await scheduler.runUntilIdle()
    // A loss is told at send; a crashed target is found on delivery.
    expect(undelivered).toEqual(['a->c:at send', 'a->b:in flight', 'a->b:lost', 'a->c:to a crashed node'])
  })

  it('refuses a rate that is negative or not a number', () => {
    expect(() => setup({ bytesPerMs: -1 })).toThrow(RangeError)
    expect(() => setup({ bytesPerMs: Number.NaN })).toThrow(RangeError)
  })

  it('replays an identical trace from the same seed', async () => {
    async function run(runSeed: number): Promise<SimTraceEvent<string>[]> {
      const trace: SimTraceEvent<string>[] = []
      const scheduler = new Scheduler({ startMs: 0 })
      const network = new SimNetwork<string>({
        prng: createPrng(runSeed),
        scheduler,
        faults: { latencyMs: 2, jitterMs: 5, loss: 0.1, duplicate: 0.1, reorder: 0.1 },
        onTrace: (event) => trace.push(event),
      })
      const ids = ['a', 'b', 'c']
      for (const id of ids) {
        network.addNode(id, {
          deliver(from, message) {
            if (message.length < 6) network.send(id, from, `${message}!`)
          },
        })
      }
      const workload = createPrng(runSeed).fork('workload')
      for (let i = 0; i < 300; i++) {
        network.send(workload.pick(ids), workload.pick(ids), `m${i % 10}`)
        if (i === 100) network.partition([['a'], ['b', 'c']])
        if (i === 150) network.crash('c')
        if (i === 200) {
          network.heal()
          network.restart('c')
        }
        await scheduler.runFor(workload.int(0, 4))
      }
      await scheduler.runUntilIdle()
      return trace
    }
    const first = await run(seed)
    expect(first.length).toBeGreaterThan(600)
    expect(await run(seed)).toEqual(first)
    expect(await run(seed + 1)).not.toEqual(first)
  })
})
