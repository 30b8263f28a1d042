import { type AddressInfo, createServer, type Socket } from 'node:net'
import {
  type ChorusError,
  ErrorCode,
  isChorusError,
  type Replica,
  type StatusEvent,
  type WebSocketConstructorLike,
} from '@chorus/client'
import { createPrng } from '@chorus/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import {
  backoffDelay,
  DEFAULT_RECONNECT,
  INITIAL_LINK,
  type LinkInput,
  type LinkState,
  stepLink,
} from '../src/transport/reconnect.js'
import { replicaPool } from './helpers/replicas.js'
import { isHubQuiet, startTestHub, type TestHub } from './helpers/test-hub.js'
import { trackedTimers } from './helpers/timers.js'
import { hubActivity, nextEvent, replicaActivity, until, within } from './helpers/wait.js'

/**
 * A `ws` WebSocket class whose sockets lose every frame, both ways, while `muted`: a network
 * that is gone, unsaid. Each socket is listed in `sockets`, muted from the start when
 * `mutedFromStart` says so for its index, and `sent` sees each frame it is asked to send.
 */
function mutingWebSocket(
  options: {
    readonly mutedFromStart?: (index: number) => boolean
    readonly sent?: (data: string) => void
  } = {},
) {
  const sockets: { muted: boolean }[] = []
  class MutingWebSocket extends WebSocket {
    muted = options.mutedFromStart?.(sockets.length) ?? false
    constructor(url: string) {
      super(url)
      sockets.push(this)
    }
    override send(data: string): void {
      options.sent?.(data)
      if (!this.muted) super.send(data)
    }
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      return this.muted && event === 'message' ? false : super.emit(event, ...args)
    }
  }
  return { sockets, WebSocket: MutingWebSocket as unknown as WebSocketConstructorLike }
}

describe('backoff', () => {
  it('doubles its ceiling from 250 ms up to 30 s, and draws uniformly below it (full jitter)', () => {
    const ceilings = Array.from({ length: 10 }, (_, attempt) =>
      backoffDelay(DEFAULT_RECONNECT, attempt, 0.999_999_9),
    )
    expect(ceilings).toEqual([249, 499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999])
    expect(backoffDelay(DEFAULT_RECONNECT, 1000, 0.5)).toBe(15_000)
    const prng = createPrng(7)
    const draws = Array.from({ length: 500 }, () => backoffDelay(DEFAULT_RECONNECT, 3, prng.next()))
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...draws)).toBeLessThan(2000)
    // Spread over the whole window, not bunched at its top as a fixed doubling would be.
    expect(draws.filter((delay) => delay < 1000).length).toBeGreaterThan(150)
    expect(draws.filter((delay) => delay >= 1000).length).toBeGreaterThan(150)
  })
})

describe('the connection machine', () => {
  function run(inputs: readonly LinkInput[], from: LinkState = INITIAL_LINK) {
    let state = from
    const effects: string[] = []
    for (const input of inputs) {
      const step = stepLink(state, input)
      state = step.state
      for (const effect of step.effects)
        effects.push('attempt' in effect ? `${effect.type} ${effect.attempt}` : effect.type)
    }
    return { state, effects }
  }

  it('backs off further on each failed attempt and starts over once the hub said hello', () => {
    const { state, effects } = run([
      { type: 'start' },
      { type: 'closed', socket: 1 },
      { type: 'timer' },
      { type: 'closed', socket: 2 },
      { type: 'timer' },
      { type: 'opened', socket: 3 },
      { type: 'ready' },
      { type: 'closed', socket: 3 },
    ])
    expect(effects).toEqual([
      'open-socket',
      'schedule 0',
      'open-socket',
      'schedule 1',
      'open-socket',
      'attach',
      'detach',
      'schedule 0',
    ])
    expect(state).toEqual({ phase: 'waiting', attempt: 1, socket: 3 })
  })

  it('keeps the same state for a ready that has nothing to reset (it follows every frame)', () => {
    const open = run([{ type: 'start' }, { type: 'opened', socket: 1 }]).state
    expect(open).toEqual({ phase: 'open', attempt: 0, socket: 1 })
    expect(stepLink(open, { type: 'ready' })).toEqual({ state: open, effects: [] })
    expect(stepLink(open, { type: 'ready' }).state).toBe(open)
  })

  it('ignores events from a socket it replaced, and a second start', () => {
    const { state, effects } = run([
      { type: 'start' },
      { type: 'start' },
      { type: 'closed', socket: 1 },
      { type: 'online' },
      { type: 'opened', socket: 1 },
      { type: 'closed', socket: 1 },
      { type: 'opened', socket: 2 },
    ])
    expect(effects).toEqual(['open-socket', 'schedule 0', 'cancel-timer', 'open-socket', 'attach'])
    expect(state.phase).toBe('open')
  })

  it('stop hangs up and cancels a scheduled reconnect; start connects again at once', () => {
    expect(run([{ type: 'start' }, { type: 'opened', socket: 1 }, { type: 'stop' }]).effects).toEqual([
      'open-socket',
      'attach',
      'detach',
      'close-socket',
    ])
    const waiting = run([
      { type: 'start' },
      { type: 'closed', socket: 1 },
      { type: 'stop' },
      { type: 'timer' },
    ])
    expect(waiting.effects).toEqual(['open-socket', 'schedule 0', 'cancel-timer'])
    expect(waiting.state.phase).toBe('stopped')
    expect(run([{ type: 'start' }], waiting.state).effects).toEqual(['open-socket'])
  })

  it('going offline hangs up an open or opening socket and backs off; online cuts the wait short', () => {
    const open = run([
      { type: 'start' },
      { type: 'opened', socket: 1 },
      { type: 'offline' },
      { type: 'online' },
    ])
    expect(open.effects).toEqual([
      'open-socket',
      'attach',
      'detach',
      'close-socket',
      'schedule 0',
      'cancel-timer',
      'open-socket',
    ])
    expect(open.state).toEqual({ phase: 'opening', attempt: 1, socket: 2 })
    const opening = run([{ type: 'start' }, { type: 'offline' }])
    expect(opening.effects).toEqual(['open-socket', 'close-socket', 'schedule 0'])
    // Offline while already waiting, stopped or refused changes nothing.
    expect(run([{ type: 'offline' }], opening.state).effects).toEqual([])
    expect(run([{ type: 'offline' }]).effects).toEqual([])
  })

  it('a refusal is final: nothing reconnects, not even start', () => {
    const { state, effects } = run([
      { type: 'start' },
      { type: 'opened', socket: 1 },
      { type: 'refused' },
      { type: 'closed', socket: 1 },
      { type: 'start' },
      { type: 'online' },
      { type: 'stop' },
    ])
    expect(effects).toEqual(['open-socket', 'attach', 'detach', 'close-socket'])
    expect(state.phase).toBe('refused')
  })
})

describe('reconnecting over real sockets', () => {
  let hub: TestHub
  const pool = replicaPool(99)

  afterEach(async () => {
    await pool.closeAll()
    await hub.close()
  })

  it('replicas reconnect on their own after the hub drops every socket, and resume without re-downloading', async () => {
    hub = await startTestHub()
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    const everyone = [hubActivity(hub), replicaActivity(alice), replicaActivity(bob)]
    const quiet = () =>
      [alice, bob].every((replica) => replica.status === 'synced' && replica.pending === 0) &&
      hub.engine.sessions().length === 2 &&
      isHubQuiet(hub, 'team-notes')

    const notes = alice.collection('notes')
    for (let i = 0; i < 20; i++) await notes.put(`n${i}`, { title: `note ${i}` })
    await until(
      'bob to have 20 notes',
      everyone,
      async () => quiet() && (await bob.collection('notes').list()).length === 20,
    )
    const before = hub.changesSentTo(bob.replicaId)
    expect(before).toBe(20)

    const dropped = Promise.all(
      [alice, bob].map((replica) =>
        nextEvent<StatusEvent>(
          'the drop',
          (listener) => replica.on('status', listener),
          (event) => event.status === 'offline',
        ),
      ),
    )
    hub.terminateAll()
    await dropped
    for (let i = 20; i < 23; i++) await notes.put(`n${i}`, { title: `note ${i}` })
    await until(
      'bob to have 23 notes',
      everyone,
      async () => quiet() && (await bob.collection('notes').list()).length === 23,
    )

    // Only the three changes bob missed came down again, over one new socket each.
    expect(hub.changesSentTo(bob.replicaId) - before).toBe(3)
    expect(hub.accepted()).toBe(4)
  })

  /** A connected replica that hears network events from `network`, with a minute-long backoff. */
  async function connectedWithNetworkEvents() {
    hub = await startTestHub()
    const network = new EventTarget()
    const replica = await pool.create(hub, {
      networkEvents: network,
      reconnect: { baseMs: 60_000, maxMs: 60_000 },
      random: () => 0.99,
    })
    await within('the first connection', replica.synced())
    return { network, replica }
  }

  it('reconnects at once when the platform reports it is back online, instead of waiting out the backoff', async () => {
    const { network, replica } = await connectedWithNetworkEvents()
    const dropped = nextEvent<StatusEvent>(
      'the drop',
      (listener) => replica.on('status', listener),
      (event) => event.status === 'offline',
    )
    hub.terminateAll()
    await dropped
    network.dispatchEvent(new Event('online'))
    expect(replica.status).toBe('connecting')
    await within('the reconnection', replica.synced())
    expect(hub.accepted()).toBe(2)
  })

  it('hangs up at once when the platform reports the network is gone, and comes back on online', async () => {
    const { network, replica } = await connectedWithNetworkEvents()
    network.dispatchEvent(new Event('offline'))
    expect(replica.status).toBe('offline')
    await replica.collection('notes').put('offline-note', { title: 'written with the network gone' })
    expect(replica.pending).toBe(1)
    network.dispatchEvent(new Event('online'))
    expect(replica.status).toBe('connecting')
    await within('the reconnection and upload', replica.synced())
    expect(replica.pending).toBe(0)
    expect(hub.accepted()).toBe(2)
  })

  it('a token the hub refuses stops the replica: an error event, offline, and no reconnect loop', async () => {
    hub = await startTestHub({
      authenticate: (token) =>
        token === 'letmein'
          ? { ok: true, access: () => 'write' }
          : { ok: false, code: ErrorCode.Unauthenticated, message: 'bad token' },
    })
    const sockets: WebSocket[] = []
    class CountingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url)
        sockets.push(this)
      }
    }
    let draws = 0
    const replica = await pool.create(hub, {
      token: 'wrong',
      WebSocket: CountingWebSocket as WebSocketConstructorLike,
      random: () => {
        draws++
        return 0
      },
    })
    const errors: ChorusError[] = []
    replica.on('error', (error) => errors.push(error))
    const synced = replica.synced().then(
      () => new Error('synced() should reject'),
      (error: unknown) => error,
    )
    await nextEvent('the refusal', (listener) => replica.on('error', listener))
    const socket = sockets[0]
    if (socket === undefined) throw new Error('no socket was opened')
    if (socket.readyState !== WebSocket.CLOSED) await new Promise((resolve) => socket.once('close', resolve))

    expect(errors.map((error) => error.code)).toEqual(['unauthenticated'])
    expect(errors[0]?.message).toBe('bad token')
    expect(replica.status).toBe('offline')
    expect(isChorusError(await synced, ErrorCode.Unauthenticated)).toBe(true)
    replica.connect()
    expect(sockets).toHaveLength(1)
    expect(draws).toBe(0)
    expect(hub.accepted()).toBe(1)
  })

  it('close() releases the socket, timers and live queries, and the replica refuses further use', async () => {
    hub = await startTestHub()
    const timers = trackedTimers()
    const replica: Replica = await pool.create(hub, { timers })
    const stop = replica.collection('notes').subscribe(() => undefined)
    await replica.collection('notes').put('a', { title: 'a' })
    await within('the replica to be synced', replica.synced())
    // Closed before the relay can answer where its log ends: it rejects.
    const waiting = replica.synced().then(
      () => 'resolved',
      (error: unknown) => error,
    )
    const closing = replica.close()
    expect(replica.close()).toBe(closing)
    await within('close', closing)

    expect(timers.live()).toBe(0)
    expect(replica.status).toBe('offline')
    await until('the hub to see the socket close', [hubActivity(hub)], () => hub.engine.connections() === 0)
    expect(await waiting).toMatchObject({ code: 'closed' })
    await expect(replica.synced()).rejects.toMatchObject({ code: 'closed' })
    await expect(replica.collection('notes').put('b', { title: 'b' })).rejects.toMatchObject({
      code: 'closed',
    })
    await expect(replica.collection('notes').get('a')).rejects.toMatchObject({ code: 'closed' })
    await expect(replica.conflicts()).rejects.toMatchObject({ code: 'closed' })
    expect(() => replica.collection('notes').subscribe(() => undefined)).toThrow(/closed/)
    expect(() => replica.connect()).toThrow(/closed/)
    stop()
  })

  it('close() while connecting or while waiting to reconnect leaves nothing behind', async () => {
    hub = await startTestHub()
    const timers = trackedTimers()
    const connecting = await pool.create(hub, { timers })
    expect(connecting.status).toBe('connecting')
    await connecting.close()

    const unreachable = await pool.create(null, {
      url: 'ws://127.0.0.1:1/sync',
      WebSocket,
      timers,
      reconnect: { baseMs: 60_000, maxMs: 60_000 },
      random: () => 0.5,
    })
    await nextEvent<StatusEvent>(
      'the failed attempt',
      (listener) => unreachable.on('status', listener),
      (event) => event.status === 'offline',
    )
    expect(timers.live()).toBeGreaterThan(0)
    await unreachable.close()
    expect(timers.live()).toBe(0)
  })

  it('a connection gone silent without closing is pinged, then hung up and opened again; a live one is only pinged', async () => {
    hub = await startTestHub()
    let pings = 0
    const muting = mutingWebSocket({
      sent: (data) => {
        if (data.includes('"type":"ping"')) pings++
      },
    })
    const { sockets } = muting
    const replica = await pool.create(hub, {
      WebSocket: muting.WebSocket,
      // Long next to a loaded machine's answer to a ping, short next to the test's time.
      reconnect: { baseMs: 20, maxMs: 200, silenceMs: 1_500 },
      tickMs: 10,
    })
    await within('the first sync', replica.synced())
    // Live and idle: every silence is broken by a ping the relay answers, and nothing reconnects.
    await until('three pings', [hubActivity(hub)], () => pings >= 3, 15_000)
    expect(hub.accepted()).toBe(1)
    expect(sockets).toHaveLength(1)

    // The network goes, the socket stays open: the write waits, the ping goes unanswered, and
    // the replica opens another socket, over which the write is uploaded.
    ;(sockets[0] as { muted: boolean }).muted = true
    await replica.collection('notes').put('n1', { title: 'written as the network went' })
    await within('the upload over a new socket', replica.synced(), 15_000)
    expect(sockets.length).toBeGreaterThanOrEqual(2)
    expect(hub.accepted()).toBeGreaterThanOrEqual(2)
    expect(replica.pending).toBe(0)
  }, 40_000)

  it('a handshake that goes silent is given up after silenceMs and tried again: a socket the server never upgrades, and one whose hello gets no answer', async () => {
    // A server that takes connections and never answers: the socket stays connecting.
    const held: Socket[] = []
    const silent = createServer((socket) => {
      held.push(socket)
    })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const address = silent.address() as AddressInfo
      const stuck = await pool.create(null, {
        url: `ws://127.0.0.1:${address.port}/sync`,
        WebSocket,
        reconnect: { baseMs: 20, maxMs: 200, silenceMs: 1_000 },
        tickMs: 10,
      })
      const connections = (notify: () => void) => {
        silent.on('connection', notify)
        return () => silent.off('connection', notify)
      }
      await until('a second attempt', [connections], () => held.length >= 2, 15_000)
      expect(stuck.status).not.toBe('synced')
      await stuck.close()
    } finally {
      for (const socket of held) socket.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }

    // Upgraded, then every frame both ways lost: no answer to the hello ever comes.
    hub = await startTestHub()
    const muting = mutingWebSocket({ mutedFromStart: (index) => index === 0 })
    const { sockets } = muting
    const replica = await pool.create(hub, {
      WebSocket: muting.WebSocket,
      reconnect: { baseMs: 20, maxMs: 200, silenceMs: 1_000 },
      tickMs: 10,
    })
    await replica.collection('notes').put('n1', { title: 'written in a silent handshake' })
    await within('the upload over a second socket', replica.synced(), 15_000)
    expect(sockets.length).toBeGreaterThanOrEqual(2)
    expect(replica.pending).toBe(0)
  }, 40_000)

  it('a token function that never answers is given up on after 30 s and asked again; close() leaves nothing behind', async () => {
    hub = await startTestHub()
    const tracked = trackedTimers()
    // The same timers, with the 30 s wait for a token cut short.
    const timers = {
      ...tracked,
      setTimeout: (callback: () => void, ms: number) => tracked.setTimeout(callback, ms >= 30_000 ? 20 : ms),
    }
    let asked = 0
    const replica = await pool.create(hub, {
      timers,
      autoConnect: false,
      token: () => {
        asked++
        return new Promise<string>(() => undefined)
      },
    })
    const errors: ChorusError[] = []
    replica.on('error', (error) => errors.push(error))
    replica.connect()
    for (let turn = 0; asked < 2 && turn < 500; turn++)
      await new Promise((resolve) => setTimeout(resolve, 10))
    expect(asked).toBeGreaterThanOrEqual(2)
    expect(errors[0]).toMatchObject({ code: ErrorCode.Unauthenticated })
    expect(errors[0]?.message).toMatch(/no token within 30 s/)
    expect(hub.accepted()).toBe(0)
    await replica.close()
    expect(tracked.live()).toBe(0)
  })
})
