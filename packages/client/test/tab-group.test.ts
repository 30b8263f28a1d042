import { describe, expect, it } from 'vitest'
import { type ChannelLike, TabGroup, type TabGroupOptions } from '../src/tabs/tab-group.js'
import type { Timers } from '../src/timers.js'
import { FakeLocks } from './helpers/fake-locks.js'

// The group's logic against deterministic stand-ins: an exclusive lock manager with `steal`
// and `signal` as the Web Locks API has them, channels that deliver to every other member,
// and timers each "tab" owns, so one tab can be frozen while the clock moves on. The real
// APIs are exercised in Chromium (test/browser/tabs.test.ts, test/e2e).

/** Channels of one name that deliver to every other open one, asynchronously. */
function channels() {
  const open = new Set<ChannelLike>()
  return (_name: string): ChannelLike => {
    const channel: ChannelLike = {
      onmessage: null,
      postMessage(message) {
        for (const other of open) {
          if (other !== channel) queueMicrotask(() => other.onmessage?.({ data: message }))
        }
      },
      close() {
        open.delete(channel)
      },
    }
    open.add(channel)
    return channel
  }
}

/** Manual time shared by every tab; each tab's timers fire only while it is not frozen. */
class Clock {
  now = 0
  readonly #tabs: TabTimers[] = []

  timers(): TabTimers {
    const timers = new TabTimers(this)
    this.#tabs.push(timers)
    return timers
  }

  async advance(ms: number, step = 100): Promise<void> {
    for (let passed = 0; passed < ms; passed += step) {
      this.now += step
      for (const tab of this.#tabs) tab.fire(this.now)
      await settle()
    }
  }
}

class TabTimers implements Timers {
  frozen = false
  #next = 1
  readonly #intervals = new Map<number, { callback: () => void; ms: number; due: number }>()
  readonly #timeouts = new Map<number, { callback: () => void; due: number }>()
  readonly #clock: Clock

  constructor(clock: Clock) {
    this.#clock = clock
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++
    this.#timeouts.set(id, { callback, due: this.#clock.now + ms })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#timeouts.delete(handle as number)
  }

  setInterval(callback: () => void, ms: number): unknown {
    const id = this.#next++
    this.#intervals.set(id, { callback, ms, due: this.#clock.now + ms })
    return id
  }

  clearInterval(handle: unknown): void {
    this.#intervals.delete(handle as number)
  }

  fire(now: number): void {
    if (this.frozen) return
    for (const [id, timeout] of [...this.#timeouts]) {
      if (timeout.due > now) continue
      this.#timeouts.delete(id)
      timeout.callback()
    }
    for (const interval of [...this.#intervals.values()]) {
      while (interval.due <= now) {
        interval.due += interval.ms
        interval.callback()
      }
    }
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve()
}

function tab(
  clock: Clock,
  locks: FakeLocks,
  openChannel: (name: string) => ChannelLike,
  name: string,
  onLead: () => Promise<void> = async () => undefined,
) {
  const log: string[] = []
  const timers = clock.timers()
  const options: TabGroupOptions = {
    name: 'db',
    locks,
    openChannel,
    timers,
    now: () => clock.now,
    random: () => 0,
    heartbeatMs: 500,
    takeoverMs: 3_000,
    onLead: async () => {
      log.push('lead')
      await onLead()
    },
    onFollow: () => log.push('follow'),
    onMessage: () => undefined,
    onError: (error) => log.push(`error ${String(error)}`),
  }
  const group = new TabGroup(options)
  group.start(() => ({ type: 'leader', from: name }))
  return { group, log, timers }
}

/** Two tabs of one database on a shared clock; the first joined first, so it leads. */
async function twoTabs() {
  const clock = new Clock()
  const locks = new FakeLocks()
  const open = channels()
  const first = tab(clock, locks, open, 'first')
  await settle()
  const second = tab(clock, locks, open, 'second')
  return { clock, first, second }
}

describe('TabGroup: one tab leads, another takes over when it closes or goes silent', () => {
  it('the first tab leads; the second waits and leads once the first closes', async () => {
    const { clock, first, second } = await twoTabs()
    await clock.advance(5_000)
    expect(first.group.leading).toBe(true)
    expect(second.group.leading).toBe(false)
    expect(second.log).toEqual([])

    first.group.close()
    await settle()
    expect(second.group.leading).toBe(true)
    expect(second.log).toEqual(['lead'])
    second.group.close()
  })

  it('a leader that stops its heartbeat (frozen) is taken over; when it wakes it follows', async () => {
    const { clock, first, second } = await twoTabs()
    await clock.advance(2_000)
    expect(second.group.leading).toBe(false)

    first.timers.frozen = true
    await clock.advance(2_000)
    expect(second.group.leading).toBe(false) // not silent for long enough yet
    await clock.advance(2_000)
    expect(second.group.leading).toBe(true)
    expect(second.log).toEqual(['lead'])
    // The frozen tab's lock was stolen: it was told, and it waits behind the new leader.
    expect(first.group.leading).toBe(false)
    expect(first.log).toEqual(['lead', 'follow'])

    first.timers.frozen = false
    await clock.advance(5_000)
    expect(first.group.leading).toBe(false)
    expect(second.group.leading).toBe(true)
    first.group.close()
    second.group.close()
  })

  it('a leader that steps down (fenced) lets the other lead, and queues behind it', async () => {
    const { first, second } = await twoTabs()
    await settle()
    first.group.stepDown()
    await settle()
    expect(first.group.leading).toBe(false)
    expect(second.group.leading).toBe(true)
    second.group.close()
    await settle()
    expect(first.group.leading).toBe(true)
    expect(first.log).toEqual(['lead', 'follow', 'lead'])
    first.group.close()
  })

  it('a tab whose claim keeps failing (a full disk) claims again after pauses that grow, not at once', async () => {
    const clock = new Clock()
    let claims = 0
    // Fails the first 100 claims: without the pauses they would all be spent at once.
    const failing = tab(clock, new FakeLocks(), channels(), 'only', async () => {
      claims++
      if (claims <= 100) throw new Error('quota used up')
    })
    await settle()
    expect(claims).toBe(1)
    await clock.advance(10_000)
    // Pauses of 125, 250, 500, … ms (half of 250 ms doubled, the random part 0 here).
    expect(claims).toBeGreaterThanOrEqual(5)
    expect(claims).toBeLessThanOrEqual(8)
    expect(failing.group.leading).toBe(false)
    const before = claims
    await clock.advance(30_000)
    expect(claims - before).toBeLessThanOrEqual(3)
    failing.group.close()
  })

  it('writes of two tabs never overlap: the write lock runs them one at a time', async () => {
    const { first: a, second: b } = await twoTabs()
    let inside = 0
    let most = 0
    const work = async () => {
      inside += 1
      most = Math.max(most, inside)
      await settle()
      inside -= 1
    }
    await Promise.all([a.group.exclusive(work), b.group.exclusive(work), a.group.exclusive(work)])
    expect(most).toBe(1)
    a.group.close()
    b.group.close()
  })
})

describe('FakeLocks, the Web Locks stand-in these tests use', () => {
  it('an abort takes a queued request out of the queue, and does nothing once the lock is granted', async () => {
    const locks = new FakeLocks()
    let release!: () => void
    const held = locks.request('l', {}, () => new Promise<void>((resolve) => (release = resolve)))
    const queued = new AbortController()
    const aborted = locks.request('l', { signal: queued.signal }, () => 'ran')
    queued.abort()
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' })
    expect(locks.waiting('l')).toBe(0)

    const granted = new AbortController()
    let inside!: () => void
    const entered = new Promise<void>((resolve) => (inside = resolve))
    const later = locks.request('l', { signal: granted.signal }, async () => {
      inside()
      await Promise.resolve()
      return 'finished'
    })
    release()
    await held
    await entered
    granted.abort()
    await expect(later).resolves.toBe('finished')
  })
})
