import type { Timers } from '@chorus/client'

/** The platform's timers, counting the handles still pending so a test can see that all were released. */
export function trackedTimers(): Timers & { live(): number } {
  const live = new Set<unknown>()
  return {
    setTimeout(callback, ms) {
      const handle = setTimeout(() => {
        live.delete(handle)
        callback()
      }, ms)
      live.add(handle)
      return handle
    },
    clearTimeout(handle) {
      live.delete(handle)
      clearTimeout(handle as ReturnType<typeof setTimeout>)
    },
    setInterval(callback, ms) {
      const handle = setInterval(callback, ms)
      live.add(handle)
      return handle
    },
    clearInterval(handle) {
      live.delete(handle)
      clearInterval(handle as ReturnType<typeof setInterval>)
    },
    live: () => live.size,
  }
}
