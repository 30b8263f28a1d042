import type { ChorusError } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { openWaiting, type WaitClock } from '../src/serve.js'

/** A clock that moves only when slept on, and the times it was slept on for. */
function virtualClock(): WaitClock & { readonly slept: number[]; time: number } {
  const clock = {
    time: 0,
    slept: [] as number[],
    now: () => clock.time,
    sleep: async (ms: number) => {
      clock.slept.push(ms)
      clock.time += ms
    },
  }
  return clock
}

/** What `PostgresRelayStore.open` throws while nothing listens where the database should be. */
function refused(): Error {
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
  return new Error('cannot open the relay database at 127.0.0.1:5432/chorus', { cause })
}

/** Opens as a database that is up from `upAt` on would, noting when each try was made. */
function databaseUpAt(clock: WaitClock, upAt: number): { open: () => Promise<string>; tries: number[] } {
  const tries: number[] = []
  return {
    tries,
    open: async () => {
      tries.push(clock.now())
      if (clock.now() < upAt) throw refused()
      return 'store'
    },
  }
}

describe('opening a store while its database cannot be reached', () => {
  it('tries a last time at the deadline, so a database up by then is used', async () => {
    const clock = virtualClock()
    const database = databaseUpAt(clock, 2_500)
    const errors: ChorusError[] = []
    expect(await openWaiting(database.open, 3_000, (error) => errors.push(error), clock)).toBe('store')
    // Backoff of 250 ms doubling; the 2 s step past the deadline is cut short to it.
    expect(database.tries).toEqual([0, 250, 750, 1_750, 3_000])
    expect(errors.map((error) => error.message)).toEqual([
      'cannot open the relay database at 127.0.0.1:5432/chorus; trying again for up to 3 s',
    ])
  })

  it('gives up once a try at the deadline fails, and at once with no wait or a reason not worth waiting for', async () => {
    const clock = virtualClock()
    const database = databaseUpAt(clock, Number.POSITIVE_INFINITY)
    await expect(openWaiting(database.open, 3_000, () => undefined, clock)).rejects.toThrow(
      /ECONNREFUSED|cannot open/,
    )
    expect(database.tries).toEqual([0, 250, 750, 1_750, 3_000])
    expect(clock.time).toBe(3_000)
    const noWait = virtualClock()
    const down = databaseUpAt(noWait, Number.POSITIVE_INFINITY)
    await expect(openWaiting(down.open, 0, () => undefined, noWait)).rejects.toThrow(/cannot open/)
    expect(down.tries).toEqual([0])
    const wrongPassword = virtualClock()
    const tries: number[] = []
    const refusing = async () => {
      tries.push(wrongPassword.now())
      throw new Error('password authentication failed for user "relay"')
    }
    await expect(openWaiting(refusing, 3_000, () => undefined, wrongPassword)).rejects.toThrow(/password/)
    expect(tries).toEqual([0])
  })
})
