import type { CompareClock } from '../clock.js'

/** The wall clock (`performance.now()`), for designs running as real processes. */
export function wallClock(): CompareClock {
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0) resolve()
      else setTimeout(resolve, ms)
    })
  return {
    kind: 'wall',
    now: () => performance.now(),
    sleep,
    at: (time, action) => {
      setTimeout(action, Math.max(0, time - performance.now()))
    },
    drive: (promise) => promise,
    pass: sleep,
    pollMs: 50,
  }
}
