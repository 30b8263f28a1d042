import type { Scheduler } from '@chorus/testkit'

/**
 * The time a comparison runs on: the virtual time of a simulation's {@link Scheduler}, or the
 * wall clock for designs running as real processes. The harness reads time, waits, and
 * schedules the fault script only through this, so one workload and one fault script serve
 * both.
 */
export interface CompareClock {
  /** `virtual`: a scheduler's time, deterministic per seed; `wall`: real milliseconds. */
  readonly kind: 'virtual' | 'wall'
  /** Milliseconds; only differences between two readings mean anything. */
  now(): number
  /** Resolves once `ms` have passed (at once for 0 or less). */
  sleep(ms: number): Promise<void>
  /** Calls `action` once the clock reads `time` or later. */
  at(time: number, action: () => void): void
  /**
   * Resolves with `promise` once it settles, letting time pass meanwhile: a virtual clock
   * steps its scheduler (the promise can only settle that way); the wall clock just waits.
   */
  drive<TValue>(promise: Promise<TValue>): Promise<TValue>
  /** Lets `ms` pass with everything scheduled in it done (a virtual clock runs its scheduler). */
  pass(ms: number): Promise<void>
  /** How often the harness checks a condition while waiting for it (ms). */
  readonly pollMs: number
}

/** A clock on `scheduler`'s virtual time; every wait is a scheduler task. */
export function virtualClock(scheduler: Scheduler): CompareClock {
  return {
    kind: 'virtual',
    now: () => scheduler.now(),
    sleep: (ms) =>
      new Promise((resolve) => {
        scheduler.after(ms, () => resolve())
      }),
    at: (time, action) => {
      scheduler.at(time, action)
    },
    drive: async (promise) => {
      let done = false
      const settle = () => {
        done = true
      }
      promise.then(settle, settle)
      // Every client operation of the comparison settles by its timeout, so this ends.
      while (!done) if (!(await scheduler.step())) break
      return promise
    },
    pass: async (ms) => {
      await scheduler.runFor(ms)
    },
    pollMs: 10,
  }
}
