import { describe, expect, it } from 'vitest'
import { Scheduler } from '../src/scheduler.js'

describe('Scheduler', () => {
  it('starts at the default or given virtual time', () => {
    expect(new Scheduler().now()).toBe(1_700_000_000_000)
    expect(new Scheduler({ startMs: 0 }).now()).toBe(0)
  })

  it('runs tasks by time, then by insertion order, advancing now to each task', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const log: string[] = []
    const record = (name: string) => () => {
      log.push(`${name}@${scheduler.now()}`)
    }
    scheduler.at(30, record('c'))
    scheduler.at(10, record('a1'))
    scheduler.after(20, record('b'))
    scheduler.at(10, record('a2'))
    scheduler.at(10, record('a3'))
    expect(scheduler.pending).toBe(5)
    const ran = await scheduler.runUntilIdle()
    expect(ran).toBe(5)
    expect(log).toEqual(['a1@10', 'a2@10', 'a3@10', 'b@20', 'c@30'])
    expect(scheduler.pending).toBe(0)
    expect(await scheduler.step()).toBe(false)
  })

  it('clamps a time in the past to now', async () => {
    const scheduler = new Scheduler({ startMs: 100 })
    let ranAt = -1
    scheduler.at(50, () => {
      ranAt = scheduler.now()
    })
    await scheduler.step()
    expect(ranAt).toBe(100)
  })

  it('lets tasks schedule tasks, which run in time order with the rest', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const log: string[] = []
    scheduler.at(10, () => {
      log.push('outer')
      scheduler.after(5, () => {
        log.push(`inner@${scheduler.now()}`)
      })
    })
    scheduler.at(12, () => {
      log.push('middle')
    })
    await scheduler.runUntilIdle()
    expect(log).toEqual(['outer', 'middle', 'inner@15'])
  })

  it('cancels a task, and ignores cancelling one that ran or does not exist', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const log: string[] = []
    const id = scheduler.after(1, () => {
      log.push('cancelled')
    })
    const kept = scheduler.after(2, () => {
      log.push('kept')
    })
    scheduler.cancel(id)
    expect(scheduler.pending).toBe(1)
    await scheduler.runUntilIdle()
    scheduler.cancel(kept)
    scheduler.cancel(12_345)
    expect(log).toEqual(['kept'])
  })

  it('cancels every pending task of an owner and reports how many', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const log: string[] = []
    for (let i = 0; i < 3; i++) scheduler.after(i, () => void log.push(`a${i}`), 'a')
    scheduler.after(1, () => void log.push('b'), 'b')
    scheduler.after(1, () => void log.push('none'))
    expect(scheduler.cancelOwner('a')).toBe(3)
    expect(scheduler.cancelOwner('a')).toBe(0)
    expect(scheduler.pending).toBe(2)
    await scheduler.runUntilIdle()
    expect(log).toEqual(['b', 'none'])
  })

  it('runFor runs only tasks inside the window and ends exactly at start + ms', async () => {
    const scheduler = new Scheduler({ startMs: 1_000 })
    const log: number[] = []
    for (const time of [1_000, 1_050, 1_100, 1_101, 2_000]) scheduler.at(time, () => void log.push(time))
    expect(await scheduler.runFor(100)).toBe(3)
    expect(log).toEqual([1_000, 1_050, 1_100])
    expect(scheduler.now()).toBe(1_100)
    expect(await scheduler.runFor(0)).toBe(0)
    expect(await scheduler.runFor(50)).toBe(1)
    expect(scheduler.now()).toBe(1_150)
    expect(scheduler.pending).toBe(1)
    await expect(scheduler.runFor(-1)).rejects.toThrow(RangeError)
  })

  it('awaits an async task before running the next one', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const log: string[] = []
    scheduler.at(1, async () => {
      log.push('first:start')
      await Promise.resolve()
      await Promise.resolve()
      log.push('first:end')
    })
    scheduler.at(1, () => {
      log.push('second')
    })
    await scheduler.runUntilIdle()
    expect(log).toEqual(['first:start', 'first:end', 'second'])
  })

  it('rethrows a task error or rejection from step and stays usable', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    scheduler.at(1, () => {
      throw new Error('sync boom')
    })
    scheduler.at(2, async () => {
      await Promise.resolve()
      throw new Error('async boom')
    })
    let ran = false
    scheduler.at(3, () => {
      ran = true
    })
    await expect(scheduler.step()).rejects.toThrow('sync boom')
    await expect(scheduler.runFor(10)).rejects.toThrow('async boom')
    expect(scheduler.now()).toBe(2)
    await scheduler.runUntilIdle()
    expect(ran).toBe(true)
  })

  it('throws a clear livelock error when tasks keep scheduling tasks', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const spin = (): void => {
      scheduler.after(0, spin)
    }
    scheduler.after(0, spin)
    await expect(scheduler.runFor(10, { maxTasks: 1_000 })).rejects.toThrow(/ran 1000 tasks.*livelock/)
    await expect(scheduler.runUntilIdle({ maxTasks: 500 })).rejects.toThrow(/livelock/)
  })

  it('runUntilIdle refuses to chase a periodic timer past maxTimeMs', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    let ticks = 0
    const tick = (): void => {
      ticks++
      scheduler.after(100, tick)
    }
    scheduler.after(100, tick)
    await expect(scheduler.runUntilIdle({ maxTimeMs: 1_000 })).rejects.toThrow(/maxTimeMs=1000/)
    expect(ticks).toBe(10)
    expect(scheduler.now()).toBe(1_000)
  })

  it('rejects a run started from inside a task', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    scheduler.at(1, async () => {
      await scheduler.step()
    })
    await expect(scheduler.step()).rejects.toThrow(/while a run is in progress/)
  })

  it('keeps order across many interleaved tasks (heap property)', async () => {
    const scheduler = new Scheduler({ startMs: 0 })
    const times = Array.from({ length: 500 }, (_, i) => (i * 7_919) % 97)
    const ran: Array<[number, number]> = []
    times.forEach((time, index) => {
      const id = scheduler.at(time, () => void ran.push([time, index]))
      if (index % 5 === 0) scheduler.cancel(id)
    })
    await scheduler.runUntilIdle()
    const expected = times
      .map((time, index): [number, number] => [time, index])
      .filter(([, index]) => index % 5 !== 0)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    expect(ran).toEqual(expected)
  })
})
