import type { ChorusError, Timers, WebSocketLike, WebSocketMessageLike } from '@chorus/client'
import { describe, expect, it } from 'vitest'
import { DEFAULT_RECONNECT, type LinkPhase } from '../src/transport/reconnect.js'
import { SocketLink } from '../src/transport/socket-link.js'

/** A WebSocket the test drives by hand. */
class FakeSocket implements WebSocketLike {
  static made: FakeSocket[] = []
  readyState = 0
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: WebSocketMessageLike) => void) | null = null
  onclose: ((event: unknown) => void) | null = null
  onerror: ((event: unknown) => void) | null = null
  readonly sent: string[] = []
  failSends = false
  closeCalls = 0

  constructor(readonly url: string) {
    FakeSocket.made.push(this)
  }

  send(data: string): void {
    if (this.failSends) throw new Error('the socket broke')
    this.sent.push(data)
  }

  close(): void {
    this.closeCalls++
    this.readyState = 2
  }

  open(): void {
    this.readyState = 1
    this.onopen?.({})
  }

  message(data: unknown): void {
    this.onmessage?.({ data })
  }

  closed(): void {
    this.readyState = 3
    this.onclose?.({})
  }
}

/** Timers that fire only when the test says so. */
function manualTimers(): Timers & { pending(): number; fire(): void } {
  let next = 0
  const due = new Map<number, () => void>()
  return {
    setTimeout(callback) {
      due.set(++next, callback)
      return next
    },
    clearTimeout(handle) {
      due.delete(handle as number)
    },
    setInterval() {
      throw new Error('not used')
    },
    clearInterval() {
      throw new Error('not used')
    },
    pending: () => due.size,
    fire() {
      const callbacks = [...due.values()]
      due.clear()
      for (const callback of callbacks) callback()
    },
  }
}

function link(prepare?: () => Promise<void>) {
  FakeSocket.made = []
  const timers = manualTimers()
  const frames: string[] = []
  const errors: ChorusError[] = []
  const phases: LinkPhase[] = []
  const sends: ((frame: string) => void)[] = []
  let closes = 0
  let release: () => void = () => undefined
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  let gated = false
  const waiting: { count: number; resolve: () => void }[] = []
  const socketLink = new SocketLink({
    url: 'ws://relay.test/sync',
    WebSocket: FakeSocket,
    timers,
    random: () => 0.5,
    policy: DEFAULT_RECONNECT,
    ...(prepare === undefined ? {} : { prepare }),
    onOpen: (send) => sends.push(send),
    onClose: () => closes++,
    onFrame: async (text) => {
      if (gated) await gate
      frames.push(text)
      for (const waiter of waiting) if (frames.length >= waiter.count) waiter.resolve()
    },
    onPhase: (phase) => phases.push(phase),
    onError: (error) => errors.push(error),
  })
  return {
    link: socketLink,
    timers,
    frames,
    errors,
    phases,
    sends,
    closes: () => closes,
    holdFrames: () => {
      gated = true
    },
    releaseFrames: release,
    /** Resolves once `count` frames were handed over (bounded by the test's timeout). */
    framesArrived: (count: number) =>
      new Promise<void>((resolve) => {
        if (frames.length >= count) resolve()
        else waiting.push({ count, resolve })
      }),
    socket: (index: number) => {
      const socket = FakeSocket.made[index]
      if (socket === undefined) throw new Error(`no socket ${index}`)
      return socket
    },
  }
}

/** Lets queued promise callbacks (frame decoding and delivery) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
  await new Promise<void>((resolve) => queueMicrotask(resolve))
}

describe('SocketLink', () => {
  it('hands frames over one at a time, in arrival order, whatever their container', async () => {
    const t = link()
    t.link.start()
    t.socket(0).open()
    t.socket(0).message(new Blob(['one']))
    t.socket(0).message('two')
    t.socket(0).message(new TextEncoder().encode('three'))
    await t.framesArrived(3)
    expect(t.frames).toEqual(['one', 'two', 'three'])
  })

  it("still delivers a frame that arrived just before its socket closed (a hub's refusal)", async () => {
    const t = link()
    t.link.start()
    t.socket(0).open()
    t.holdFrames()
    t.socket(0).message('{"type":"error","code":"unauthenticated"}')
    t.socket(0).closed()
    expect(t.link.phase).toBe('waiting')
    t.releaseFrames()
    await t.framesArrived(1)
    expect(t.frames).toEqual(['{"type":"error","code":"unauthenticated"}'])
    t.link.refused()
    expect(t.timers.pending()).toBe(0)
    expect(t.phases).toEqual(['opening', 'open', 'waiting', 'refused'])
  })

  it('drops frames of a socket once the app disconnected or a newer socket replaced it', async () => {
    const t = link()
    t.link.start()
    t.socket(0).open()
    t.holdFrames()
    t.socket(0).message('late')
    t.link.stop()
    t.releaseFrames()
    await flush()
    expect(t.frames).toEqual([])
    expect(t.socket(0).closeCalls).toBe(1)
    expect(t.socket(0).onmessage).toBeNull()
  })

  it('a send that throws closes the socket and reconnects after the backoff', async () => {
    const t = link()
    t.link.start()
    t.socket(0).open()
    t.socket(0).failSends = true
    t.sends[0]?.('{"type":"ack"}')
    expect(t.errors.map((error) => error.message)).toEqual(['sending a frame failed; reconnecting'])
    expect(t.socket(0).closeCalls).toBe(1)
    expect(t.closes()).toBe(1)
    expect(t.link.phase).toBe('waiting')
    t.timers.fire()
    expect(FakeSocket.made).toHaveLength(2)
    // The old socket's late close event changes nothing.
    t.socket(0).closed()
    expect(t.link.phase).toBe('opening')
    t.socket(1).open()
    t.sends[1]?.('{"type":"ack"}')
    expect(t.socket(1).sent).toEqual(['{"type":"ack"}'])
    // A send through the old socket's function goes nowhere.
    t.sends[0]?.('stale')
    expect(t.socket(1).sent).toEqual(['{"type":"ack"}'])
  })

  it('released() waits for a closing socket, and drops it after a bounded wait', async () => {
    const t = link()
    t.link.start()
    t.socket(0).open()
    t.link.stop()
    let released = false
    const done = t.link.released().then(() => {
      released = true
    })
    await flush()
    expect(released).toBe(false)
    t.timers.fire()
    await done
    expect(released).toBe(true)
  })

  it('opens a socket only once prepare resolved, and not at all when stopped meanwhile', async () => {
    const gates: (() => void)[] = []
    const t = link(() => new Promise<void>((resolve) => gates.push(resolve)))
    t.link.start()
    await flush()
    expect(FakeSocket.made).toHaveLength(0)
    gates[0]?.()
    await flush()
    expect(FakeSocket.made).toHaveLength(1)
    t.socket(0).closed()
    t.timers.fire()
    await flush()
    expect(gates).toHaveLength(2)
    t.link.stop()
    gates[1]?.()
    await flush()
    expect(FakeSocket.made).toHaveLength(1)
    expect(t.link.phase).toBe('stopped')
  })

  it('a prepare that fails is reported and retried after the backoff', async () => {
    let calls = 0
    const t = link(async () => {
      calls++
      if (calls === 1) throw new Error('no token to be had')
    })
    t.link.start()
    await flush()
    expect(FakeSocket.made).toHaveLength(0)
    expect(t.errors.map((error) => error.code)).toEqual(['internal'])
    expect(t.link.phase).toBe('waiting')
    t.timers.fire()
    await flush()
    expect(calls).toBe(2)
    expect(FakeSocket.made).toHaveLength(1)
    t.socket(0).open()
    expect(t.sends).toHaveLength(1)
  })

  it('gives up on a prepare that never settles, retries after the backoff, and ignores its late outcome', async () => {
    const gates: (() => void)[] = []
    const t = link(() => new Promise<void>((resolve) => gates.push(resolve)))
    t.link.start()
    await flush()
    expect(t.timers.pending()).toBe(1)
    t.timers.fire() // the prepare's timeout
    await flush()
    expect(t.errors.map((error) => error.message)).toEqual([expect.stringMatching(/took longer than 30 s/)])
    expect(t.link.phase).toBe('waiting')
    gates[0]?.() // too late: nothing opens for it
    await flush()
    expect(FakeSocket.made).toHaveLength(0)
    t.timers.fire() // the backoff
    await flush()
    expect(gates).toHaveLength(2)
    gates[1]?.()
    await flush()
    expect(FakeSocket.made).toHaveLength(1)
    expect(t.timers.pending()).toBe(0)
  })

  it('a stop while prepare runs leaves no timer behind', async () => {
    const t = link(() => new Promise<void>(() => undefined))
    t.link.start()
    await flush()
    expect(t.timers.pending()).toBe(1)
    t.link.stop()
    expect(t.timers.pending()).toBe(0)
  })
})
