import type { Replica } from '@chorus/client'
import type { TestHub } from './test-hub.js'

/** Something that announces activity: returns the function that stops listening. */
export type ActivitySource = (listener: () => void) => () => void

/** Activity of a replica: its status and its records. */
export function replicaActivity(replica: Replica): ActivitySource {
  return (listener) => {
    const offStatus = replica.on('status', listener)
    const offChange = replica.on('change', listener)
    return () => {
      offStatus()
      offChange()
    }
  }
}

/** Activity of the test hub: frames handled, connections opened and closed. */
export function hubActivity(hub: TestHub): ActivitySource {
  return (listener) => hub.onActivity(listener)
}

/**
 * Resolves once `check` holds. It is evaluated now and after every event of `sources` — no
 * polling, no sleeps — and the wait rejects after `ms`, naming what it waited for.
 */
export function until(
  what: string,
  sources: readonly ActivitySource[],
  check: () => boolean | Promise<boolean>,
  ms = 5_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const stops: (() => void)[] = []
    let checking = false
    let again = false
    let done = false
    const finish = (error?: Error) => {
      if (done) return
      done = true
      clearTimeout(timer)
      for (const stop of stops) stop()
      if (error === undefined) resolve()
      else reject(error)
    }
    const timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    const evaluate = async (): Promise<void> => {
      if (done) return
      if (checking) {
        again = true
        return
      }
      checking = true
      try {
        do {
          again = false
          if (await check()) {
            finish()
            return
          }
        } while (again && !done)
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)))
      } finally {
        checking = false
      }
    }
    for (const source of sources) stops.push(source(() => void evaluate()))
    void evaluate()
  })
}

/** Rejects if `promise` does not settle within `ms`. */
export function within<TValue>(what: string, promise: Promise<TValue>, ms = 5_000): Promise<TValue> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** The first event a subscription delivers that passes `check`, within `ms`. */
export function nextEvent<TEvent>(
  what: string,
  subscribe: (listener: (event: TEvent) => void) => () => void,
  check: (event: TEvent) => boolean = () => true,
  ms = 5_000,
): Promise<TEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop()
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
    }, ms)
    const stop = subscribe((event) => {
      if (!check(event)) return
      clearTimeout(timer)
      stop()
      resolve(event)
    })
  })
}
