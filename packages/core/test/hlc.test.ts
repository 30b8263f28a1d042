import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import {
  compareHlc,
  createHlc,
  DEFAULT_MAX_DRIFT_MS,
  formatHlc,
  HLC_ZERO,
  type HlcParts,
  type HlcStamp,
  type HlcState,
  isHlcStamp,
  maxHlc,
  parseHlc,
  receiveHlc,
  tickHlc,
} from '../src/hlc.js'
import { asReplicaId, type ReplicaId } from '../src/ids.js'
import { expectChorusError } from './expect-chorus-error.js'

/** Fixed so runs repeat; `SEED=… pnpm test` replays the seed a failing property prints. */
const seed = Number(process.env.SEED ?? 20_240_601)

const MAX_COUNTER = 999_999
const MAX_WALL = 10 ** 15 - 1
const t0 = 1_700_000_000_000
const local = asReplicaId('local')
const remote = asReplicaId('remote')

const replicaIdArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/).map((id) => asReplicaId(id))
const partsArb: fc.Arbitrary<HlcParts> = fc.record({
  wall: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: MAX_WALL })),
  counter: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: MAX_COUNTER })),
  replica: replicaIdArb,
})

function stateOf(stamp: HlcStamp): HlcState {
  const { wall, counter } = parseHlc(stamp)
  return { wall, counter }
}

/** Tuple order of (wall, counter): negative, zero or positive. */
function compareState(a: HlcState, b: HlcState): number {
  return a.wall !== b.wall ? a.wall - b.wall : a.counter - b.counter
}

type ClockEvent =
  | { readonly type: 'tick'; readonly now: number }
  | { readonly type: 'receive'; readonly now: number; readonly stamp: HlcParts }

const nowArb = fc.integer({ min: t0 - 5_000, max: t0 + 5_000 })
const eventArb: fc.Arbitrary<ClockEvent> = fc.oneof(
  fc.record({ type: fc.constant('tick' as const), now: nowArb }),
  fc.record({
    type: fc.constant('receive' as const),
    now: nowArb,
    stamp: fc.record({
      wall: fc.oneof(nowArb, fc.integer({ min: t0 - 10_000, max: t0 + 7_200_000 })),
      counter: fc.oneof(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: MAX_COUNTER - 3, max: MAX_COUNTER }),
      ),
      replica: fc.constantFrom(remote, asReplicaId('other')),
    }),
  }),
)

describe('hybrid logical clock: monotonic under any clock and any remote stamps', () => {
  it('every stamp issued is strictly later than the one before, whatever now does', () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 90_000 }),
        (events, drift) => {
          let now = 0
          const clock = createHlc({ replicaId: local, now: () => now, maxDriftMs: drift })
          let previous: HlcStamp | null = null
          let followed: HlcStamp | null = null
          for (const event of events) {
            now = event.now
            if (event.type === 'receive') {
              const stamp = formatHlc(event.stamp)
              const receipt = clock.receive(stamp)
              expect(receipt.clamped).toBe(event.stamp.wall > event.now + drift)
              expect(receipt.skewMs).toBe(event.stamp.wall - event.now)
              if (!receipt.clamped) followed = stamp
              continue
            }
            const issued = clock.tick()
            expect(parseHlc(issued).replica).toBe(local)
            expect(parseHlc(issued).wall).toBeGreaterThanOrEqual(now)
            if (previous !== null) expect(compareHlc(issued, previous)).toBe(1)
            if (followed !== null) expect(compareState(stateOf(issued), stateOf(followed))).toBeGreaterThan(0)
            previous = issued
            followed = null
          }
        },
      ),
      { seed, numRuns: 300 },
    )
  })

  it('the pure functions never move the state backwards', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), (events) => {
        let state = HLC_ZERO
        for (const event of events) {
          const next =
            event.type === 'tick'
              ? tickHlc(state, event.now)
              : receiveHlc(state, event.stamp, event.now, DEFAULT_MAX_DRIFT_MS).state
          expect(compareState(next, state)).toBeGreaterThan(0)
          expect(next.counter).toBeLessThanOrEqual(MAX_COUNTER)
          state = next
        }
      }),
      { seed, numRuns: 300 },
    )
  })

  it('a single receipt never pulls the wall past now + maxDriftMs (unless already there)', () => {
    fc.assert(
      fc.property(
        fc.record({ wall: nowArb, counter: fc.integer({ min: 0, max: 1000 }) }),
        fc.record({
          wall: fc.integer({ min: 0, max: t0 * 2 }),
          counter: fc.integer({ min: 0, max: 1000 }),
          replica: fc.constant(remote),
        }),
        nowArb,
        fc.integer({ min: 0, max: 120_000 }),
        (state, stamp, now, drift) => {
          const { state: next, clamped } = receiveHlc(state, stamp, now, drift)
          expect(next.wall).toBeLessThanOrEqual(Math.max(state.wall, now + drift))
          if (!clamped) expect(compareState(next, stamp)).toBeGreaterThan(0)
        },
      ),
      { seed, numRuns: 300 },
    )
  })
})

describe('hybrid logical clock: remote stamps', () => {
  it('does not follow a stamp an hour ahead: the wall stops at now + maxDriftMs and the skew is reported', () => {
    const skews: [number, ReplicaId][] = []
    const clock = createHlc({ replicaId: local, now: () => t0, onSkew: (ms, from) => skews.push([ms, from]) })
    const future = formatHlc({ wall: t0 + 3_600_000, counter: 4, replica: remote })
    const receipt = clock.receive(future)
    expect(receipt.clamped).toBe(true)
    expect(receipt.skewMs).toBe(3_600_000)
    expect(receipt.state.wall).toBe(t0 + DEFAULT_MAX_DRIFT_MS)
    expect(skews).toEqual([[3_600_000, remote]])
    const next = clock.tick()
    expect(parseHlc(next).wall).toBe(t0 + DEFAULT_MAX_DRIFT_MS)
    expect(compareHlc(next, future)).toBe(-1)
  })

  it('honours a custom maxDriftMs', () => {
    const clock = createHlc({ replicaId: local, now: () => t0, maxDriftMs: 500 })
    const receipt = clock.receive(formatHlc({ wall: t0 + 501, counter: 0, replica: remote }))
    expect(receipt).toMatchObject({ clamped: true, skewMs: 501, state: { wall: t0 + 500 } })
    const within = createHlc({ replicaId: local, now: () => t0, maxDriftMs: 500 })
    expect(within.receive(formatHlc({ wall: t0 + 500, counter: 0, replica: remote })).clamped).toBe(false)
  })

  it('follows a stamp within the drift, so the next local stamp is later than it', () => {
    const skews: number[] = []
    const clock = createHlc({ replicaId: local, now: () => t0, onSkew: (ms) => skews.push(ms) })
    const ahead = formatHlc({ wall: t0 + 30_000, counter: 7, replica: remote })
    const receipt = clock.receive(ahead)
    expect(receipt).toEqual({ state: { wall: t0 + 30_000, counter: 8 }, skewMs: 30_000, clamped: false })
    expect(skews).toEqual([])
    const next = clock.tick()
    expect(parseHlc(next)).toEqual({ wall: t0 + 30_000, counter: 9, replica: local })
    expect(compareHlc(next, ahead)).toBe(1)
  })

  it('reports a remote clock behind as negative skew and keeps its own time', () => {
    const clock = createHlc({ replicaId: local, now: () => t0 })
    const receipt = clock.receive(formatHlc({ wall: t0 - 2_000, counter: 3, replica: remote }))
    expect(receipt).toEqual({ state: { wall: t0, counter: 0 }, skewMs: -2_000, clamped: false })
  })

  it('takes the larger counter plus one when local and remote share the wall', () => {
    expect(
      receiveHlc({ wall: t0, counter: 2 }, { wall: t0, counter: 9, replica: remote }, t0, 0).state,
    ).toEqual({
      wall: t0,
      counter: 10,
    })
    expect(
      receiveHlc({ wall: t0, counter: 12 }, { wall: t0, counter: 9, replica: remote }, t0, 0).state,
    ).toEqual({
      wall: t0,
      counter: 13,
    })
  })

  it('refuses a malformed remote stamp', () => {
    const clock = createHlc({ replicaId: local, now: () => t0 })
    expectChorusError(() => clock.receive('yesterday' as HlcStamp), ErrorCode.InvalidArgument)
    expect(clock.state()).toEqual(HLC_ZERO)
  })
})

describe('hybrid logical clock: a batch of remote stamps', () => {
  const batchStampArb = fc.record({
    wall: fc.oneof(nowArb, fc.integer({ min: t0 - 10_000, max: t0 + 7_200_000 })),
    counter: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: MAX_COUNTER })),
    replica: replicaIdArb,
  })

  it('leaves the clock where receiving each stamp would have it: past every one within the drift, never past the limit', () => {
    fc.assert(
      fc.property(
        fc.array(batchStampArb, { maxLength: 20 }),
        nowArb,
        fc.integer({ min: 0, max: 120_000 }),
        (parts, now, drift) => {
          const stamps = parts.map(formatHlc)
          const skews: [number, ReplicaId][] = []
          const batch = createHlc({
            replicaId: local,
            now: () => now,
            maxDriftMs: drift,
            onSkew: (ms, from) => skews.push([ms, from]),
          })
          batch.receiveAll(stamps)
          const oneByOne = createHlc({ replicaId: local, now: () => now, maxDriftMs: drift })
          for (const stamp of stamps) oneByOne.receive(stamp)
          const state = batch.state()
          // Both end at the same wall time; the counter may differ, never below a stamp's.
          expect(state.wall).toBe(oneByOne.state().wall)
          for (const stamp of stamps) {
            if (parseHlc(stamp).wall <= now + drift)
              expect(compareState(state, stateOf(stamp))).toBeGreaterThan(0)
          }
          // Every stamp past the limit is reported, once, with its own skew.
          const beyond = parts.filter((stamp) => stamp.wall > now + drift)
          expect(skews).toEqual(beyond.map((stamp) => [stamp.wall - now, stamp.replica]))
          const next = batch.tick()
          for (const stamp of stamps) {
            if (parseHlc(stamp).wall <= now + drift) expect(compareHlc(next, stamp)).toBe(1)
          }
        },
      ),
      { seed, numRuns: 300 },
    )
  })

  it('reports each replica whose clock is past the limit, not only the one furthest ahead', () => {
    const skews: [number, ReplicaId][] = []
    const clock = createHlc({
      replicaId: local,
      now: () => t0,
      maxDriftMs: 1_000,
      onSkew: (ms, from) => skews.push([ms, from]),
    })
    const other = asReplicaId('other')
    clock.receiveAll([
      formatHlc({ wall: t0 + 5_000, counter: 0, replica: remote }),
      formatHlc({ wall: t0 + 1_000, counter: 5, replica: other }),
      formatHlc({ wall: t0 + 1_001, counter: 0, replica: other }),
      formatHlc({ wall: t0 + 200, counter: 3, replica: other }),
    ])
    expect(skews).toEqual([
      [5_000, remote],
      [1_001, other],
    ])
    // At the limit, past the latest stamp within it.
    expect(clock.state()).toEqual({ wall: t0 + 1_000, counter: 6 })
  })

  it('changes nothing for an empty batch', () => {
    const clock = createHlc({ replicaId: local, now: () => t0 })
    clock.receiveAll([])
    expect(clock.state()).toEqual(HLC_ZERO)
  })
})

describe('hybrid logical clock: local time', () => {
  it('uses the wall clock when it moves forward and the counter when it does not', () => {
    let now = t0
    const clock = createHlc({ replicaId: local, now: () => now })
    expect(parseHlc(clock.tick())).toEqual({ wall: t0, counter: 0, replica: local })
    expect(parseHlc(clock.tick())).toEqual({ wall: t0, counter: 1, replica: local })
    now = t0 - 10_000
    expect(parseHlc(clock.tick())).toEqual({ wall: t0, counter: 2, replica: local })
    now = t0 + 1.9
    expect(parseHlc(clock.tick())).toEqual({ wall: t0 + 1, counter: 0, replica: local })
    expect(clock.state()).toEqual({ wall: t0 + 1, counter: 0 })
  })

  it('rolls a full counter over into the wall time', () => {
    const full: HlcState = { wall: t0, counter: MAX_COUNTER }
    expect(tickHlc(full, t0)).toEqual({ wall: t0 + 1, counter: 0 })
    expect(tickHlc(full, t0 - 50)).toEqual({ wall: t0 + 1, counter: 0 })
    const before = formatHlc({ ...full, replica: local })
    const after = formatHlc({ ...tickHlc(full, t0), replica: local })
    expect(compareHlc(after, before)).toBe(1)
    const received = receiveHlc(
      { wall: t0, counter: 0 },
      { wall: t0, counter: MAX_COUNTER, replica: remote },
      t0,
      0,
    )
    expect(received.state).toEqual({ wall: t0 + 1, counter: 0 })
  })

  it('stays monotonic across a restart from persisted state, even if the clock went back', () => {
    let now = t0
    const first = createHlc({ replicaId: local, now: () => now })
    first.receive(formatHlc({ wall: t0 + 50_000, counter: 3, replica: remote }))
    const lastBeforeRestart = first.tick()
    now = t0 - 3_600_000
    const restarted = createHlc({ replicaId: local, now: () => now, state: first.state() })
    const afterRestart = restarted.tick()
    expect(compareHlc(afterRestart, lastBeforeRestart)).toBe(1)
    expect(parseHlc(afterRestart)).toEqual({ wall: t0 + 50_000, counter: 6, replica: local })
  })
})

describe('hybrid logical clock: stamps of a running clock', () => {
  it('tick() is formatHlc of the state it moved to, whatever came before', () => {
    // The clock reuses the formatted wall time of a burst of ticks; each stamp must still be
    // exactly what formatHlc gives, through clock moves, receives and restored states.
    const stepArb = fc.oneof(
      fc.record({ kind: fc.constant('tick' as const), advance: fc.integer({ min: -5, max: 5 }) }),
      fc.record({ kind: fc.constant('receive' as const), ahead: fc.integer({ min: -3, max: 3 }) }),
      fc.record({ kind: fc.constant('observe' as const), ahead: fc.integer({ min: 0, max: 3 }) }),
    )
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), (steps) => {
        let now = t0
        const clock = createHlc({ replicaId: local, now: () => now })
        for (const step of steps) {
          if (step.kind === 'tick') {
            now += step.advance
            const stamp = clock.tick()
            expect(stamp).toBe(formatHlc({ ...clock.state(), replica: local }))
          } else if (step.kind === 'receive') {
            clock.receive(formatHlc({ wall: now + step.ahead, counter: 7, replica: remote }))
          } else {
            clock.observe({ wall: clock.state().wall + step.ahead, counter: 2 })
          }
        }
      }),
      { seed, numRuns: 300 },
    )
  })
})

describe('hybrid logical clock: stamp encoding', () => {
  it('formatHlc / parseHlc round-trip', () => {
    fc.assert(
      fc.property(partsArb, (parts) => {
        const stamp = formatHlc(parts)
        expect(isHlcStamp(stamp)).toBe(true)
        expect(parseHlc(stamp)).toEqual(parts)
      }),
      { seed, numRuns: 300 },
    )
  })

  it('string order of stamps is (wall, counter, replica) order', () => {
    fc.assert(
      fc.property(partsArb, partsArb, (p, q) => {
        const byParts =
          p.wall !== q.wall
            ? Math.sign(p.wall - q.wall)
            : p.counter !== q.counter
              ? Math.sign(p.counter - q.counter)
              : p.replica === q.replica
                ? 0
                : p.replica < q.replica
                  ? -1
                  : 1
        const a = formatHlc(p)
        const b = formatHlc(q)
        expect(compareHlc(a, b)).toBe(byParts)
        expect(maxHlc(a, b)).toBe(byParts >= 0 ? a : b)
      }),
      { seed, numRuns: 300 },
    )
  })

  it('breaks a tie of wall and counter by replica id', () => {
    const a = formatHlc({ wall: t0, counter: 1, replica: asReplicaId('alice') })
    const b = formatHlc({ wall: t0, counter: 1, replica: asReplicaId('bob') })
    expect(compareHlc(a, b)).toBe(-1)
    expect(compareHlc(b, a)).toBe(1)
    expect(compareHlc(a, a)).toBe(0)
  })

  it('has the documented layout', () => {
    expect(formatHlc({ wall: 42, counter: 7, replica: local })).toBe('000000000000042.000007@local')
  })

  it.each([
    ['a negative wall', { wall: -1, counter: 0 }],
    ['a wall of 16 digits', { wall: MAX_WALL + 1, counter: 0 }],
    ['a fractional wall', { wall: 1.5, counter: 0 }],
    ['a NaN wall', { wall: Number.NaN, counter: 0 }],
    ['a counter of 7 digits', { wall: 1, counter: MAX_COUNTER + 1 }],
    ['a negative counter', { wall: 1, counter: -1 }],
  ])('formatHlc refuses %s', (_, parts) => {
    expectChorusError(() => formatHlc({ ...parts, replica: local }), ErrorCode.InvalidArgument)
  })

  it.each([
    ['an empty string', ''],
    ['a short wall', '42.000007@local'],
    ['a missing replica', '000000000000042.000007@'],
    ['a missing @', '000000000000042.000007local'],
    ['an invalid replica id', '000000000000042.000007@__proto__'],
    ['a replica id with a space', '000000000000042.000007@a b'],
  ])('parseHlc refuses %s', (_, text) => {
    expect(isHlcStamp(text)).toBe(false)
    expectChorusError(() => parseHlc(text), ErrorCode.InvalidArgument)
  })
})
