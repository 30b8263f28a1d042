/**
 * The timer functions the client uses, injectable so tests can observe or drive them.
 *
 * Handles are opaque: whatever `setTimeout`/`setInterval` returned is given back to the
 * matching `clear*` function.
 */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  setInterval(callback: () => void, ms: number): unknown
  clearInterval(handle: unknown): void
}

// The DOM declares timer handles as numbers and Node as `Timeout` objects; both runtimes take
// back what they returned, so the handle is passed through as the platform's own type.
type TimerHandle = Parameters<typeof globalThis.clearTimeout>[0]

/** The platform's timers (browser or Node). */
export const systemTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as TimerHandle),
  setInterval: (callback, ms) => globalThis.setInterval(callback, ms),
  clearInterval: (handle) => globalThis.clearInterval(handle as TimerHandle),
}

/**
 * Lets the process exit while only this timer is pending (Node's `unref`); a no-op elsewhere.
 *
 * Used for the engine's housekeeping tick, which has nothing to do unless a socket or a
 * reconnect timer — which do keep the process alive — is there too.
 */
export function unrefTimer(handle: unknown): void {
  if (
    typeof handle === 'object' &&
    handle !== null &&
    'unref' in handle &&
    typeof handle.unref === 'function'
  )
    handle.unref()
}
