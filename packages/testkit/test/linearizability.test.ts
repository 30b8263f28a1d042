import { ChorusError, canonicalJson, type JsonValue } from '@chorus/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkLinearizable, findStaleReads, type RegisterOperation } from '../src/linearizability.js'
import { seedFromEnv } from '../src/prng.js'

const seed = seedFromEnv(process.env, 20_250_105)
const runs = { seed, numRuns: 400 }

/**
 * The oracle: try every subset of the pending writes and every order of the chosen
 * operations, keeping those that respect real time, and replay each on a register.
 * Exponential, so only for a handful of operations; it shares no code with the checker.
 */
function bruteForceLinearizable(history: readonly RegisterOperation[]): boolean {
  const keys = new Set(history.map((op) => op.key))
  for (const key of keys) {
    const ops = history.filter(
      (op) =>
        op.key === key && (op.ok || op.complete === null) && !(op.kind === 'read' && op.complete === null),
    )
    const required = ops.filter((op) => op.complete !== null)
    const optional = ops.filter((op) => op.complete === null)
    let found = false
    for (let mask = 0; mask < 1 << optional.length && !found; mask++) {
      const chosen = [...required, ...optional.filter((_, i) => (mask >> i) & 1)]
      found = permutations(chosen).some((order) => respectsRealTime(order) && replays(order))
    }
    if (!found) return false
  }
  return true
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()]
  const out: T[][] = []
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest])
  })
  return out
}

function respectsRealTime(order: readonly RegisterOperation[]): boolean {
  for (let i = 0; i < order.length; i++) {
    for (let j = i + 1; j < order.length; j++) {
      const later = order[j] as RegisterOperation
      const earlier = order[i] as RegisterOperation
      if (later.complete !== null && later.complete < earlier.invoke) return false
    }
  }
  return true
}

function replays(order: readonly RegisterOperation[]): boolean {
  let value = 'null'
  for (const op of order) {
    const text = op.value === undefined || op.value === null ? 'null' : canonicalJson(op.value)
    if (op.kind === 'write') value = text
    else if (text !== value) return false
  }
  return true
}

/** Small random histories: a few processes, each issuing operations one after another. */
const historyArbitrary = fc
  .record({
    keys: fc.integer({ min: 1, max: 2 }),
    ops: fc.array(
      fc.record({
        process: fc.integer({ min: 0, max: 2 }),
        key: fc.integer({ min: 0, max: 1 }),
        write: fc.boolean(),
        value: fc.integer({ min: 0, max: 3 }),
        gap: fc.integer({ min: 0, max: 4 }),
        length: fc.integer({ min: 0, max: 6 }),
        fate: fc.constantFrom('ok', 'ok', 'ok', 'pending', 'failed'),
      }),
      { minLength: 1, maxLength: 7 },
    ),
  })
  .map(({ keys, ops }) => {
    const clock = [0, 0, 0]
    return ops.map((op): RegisterOperation => {
      const invoke = (clock[op.process] as number) + op.gap
      // A pending operation's client gave up at invoke + length and moved on.
      clock[op.process] = invoke + op.length + 1
      return {
        process: `p${op.process}`,
        key: `k${op.key % keys}`,
        kind: op.write ? 'write' : 'read',
        value: op.value === 0 ? undefined : op.value,
        invoke,
        complete: op.fate === 'pending' ? null : invoke + op.length,
        ok: op.fate !== 'failed',
      }
    })
  })

/**
 * Histories made linearizable by construction: each operation takes effect at a random point
 * inside its interval on a real register, and reads report what it held there.
 */
const linearizableArbitrary = fc
  .array(
    fc.record({
      write: fc.boolean(),
      start: fc.integer({ min: 0, max: 40 }),
      length: fc.integer({ min: 0, max: 12 }),
      point: fc.double({ min: 0, max: 1, noNaN: true }),
      pending: fc.boolean(),
      takesEffect: fc.boolean(),
    }),
    { minLength: 1, maxLength: 40 },
  )
  .map((specs) => {
    const events = specs.map((spec, i) => ({ spec, i, at: spec.start + spec.point * spec.length }))
    let current: number | undefined
    const read = new Map<number, number | undefined>()
    for (const event of [...events].sort((a, b) => a.at - b.at)) {
      if (event.spec.write) {
        if (!event.spec.pending || event.spec.takesEffect) current = event.i + 1
      } else {
        read.set(event.i, current)
      }
    }
    return specs.map(
      (spec, i): RegisterOperation => ({
        process: `p${i}`,
        key: 'k',
        kind: spec.write ? 'write' : 'read',
        value: spec.write ? i + 1 : read.get(i),
        invoke: spec.start,
        complete: spec.write && spec.pending ? null : spec.start + spec.length,
        ok: true,
      }),
    )
  })

const op = (
  process: string,
  kind: 'write' | 'read',
  value: JsonValue | undefined,
  invoke: number,
  complete: number | null,
  ok = true,
): RegisterOperation => ({ process, key: 'x', kind, value, invoke, complete, ok })

describe(`checkLinearizable (SEED=${seed})`, () => {
  it('agrees with the brute-force oracle on small random histories', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        const expected = bruteForceLinearizable(history)
        const result = checkLinearizable(history)
        expect(result.inconclusive).toEqual([])
        expect(result.ok).toBe(expected)
        expect(result.violations.length === 0).toBe(expected)
      }),
      runs,
    )
  })

  it('finds both verdicts among the random histories (the oracle test is not vacuous)', () => {
    const verdicts = fc.sample(historyArbitrary, { seed, numRuns: 300 }).map(bruteForceLinearizable)
    expect(verdicts.filter(Boolean).length).toBeGreaterThan(30)
    expect(verdicts.filter((ok) => !ok).length).toBeGreaterThan(30)
  })

  it('accepts every history that is linearizable by construction, even long and concurrent ones', () => {
    fc.assert(
      fc.property(linearizableArbitrary, (history) => {
        const result = checkLinearizable(history)
        expect(result.violations).toEqual([])
        expect(result.ok).toBe(true)
      }),
      { seed, numRuns: 200 },
    )
  })

  it('flags a stale read after a completed write', () => {
    const result = checkLinearizable([
      op('a', 'write', 1, 0, 2),
      op('a', 'write', 2, 3, 5),
      op('b', 'read', 1, 6, 8),
    ])
    expect(result.ok).toBe(false)
    expect(result.violations).toHaveLength(1)
    expect(result.violations[0]?.key).toBe('x')
    expect(result.violations[0]?.message).toContain('read by b [6, 8] returning 1')
  })

  it('flags a read of the initial value after a completed write', () => {
    const result = checkLinearizable([op('a', 'write', 1, 0, 2), op('b', 'read', undefined, 3, 4)])
    expect(result.ok).toBe(false)
  })

  it('accepts either value for a read concurrent with a write', () => {
    for (const seenValue of [undefined, 1]) {
      const result = checkLinearizable([op('a', 'write', 1, 0, 10), op('b', 'read', seenValue, 2, 5)])
      expect(result.ok).toBe(true)
    }
  })

  it('rejects a value that goes back: new then old while the write is still running', () => {
    const history = [op('a', 'write', 1, 0, 20), op('b', 'read', 1, 2, 4), op('c', 'read', undefined, 6, 8)]
    expect(checkLinearizable(history).ok).toBe(false)
  })

  it('lets a pending write take effect, or not, but not half of each', () => {
    const applied = [op('a', 'write', 1, 0, null), op('b', 'read', 1, 50, 51), op('b', 'read', 1, 60, 61)]
    const notApplied = [op('a', 'write', 1, 0, null), op('b', 'read', undefined, 50, 51)]
    const flipFlop = [
      op('a', 'write', 1, 0, null),
      op('b', 'read', 1, 50, 51),
      op('b', 'read', undefined, 60, 61),
    ]
    expect(checkLinearizable(applied).ok).toBe(true)
    expect(checkLinearizable(notApplied).ok).toBe(true)
    expect(checkLinearizable(flipFlop).ok).toBe(false)
  })

  it('ignores definite failures and pending reads', () => {
    const history = [
      op('a', 'write', 1, 0, 2, false),
      op('b', 'read', 7, 3, null),
      op('c', 'read', undefined, 4, 5),
    ]
    expect(checkLinearizable(history).ok).toBe(true)
  })

  it('reads a value no write produced as a violation with a clear message', () => {
    const result = checkLinearizable([op('a', 'read', 42, 0, 1)])
    expect(result.violations[0]?.message).toContain('a value no write produced')
  })

  it('judges keys independently', () => {
    const result = checkLinearizable([
      op('a', 'write', 1, 0, 1),
      { ...op('b', 'read', undefined, 2, 3), key: 'y' },
      op('c', 'read', undefined, 2, 3),
    ])
    expect(result.violations.map((v) => v.key)).toEqual(['x'])
  })

  it('reports inconclusive instead of hanging when the budget runs out', () => {
    const history = Array.from({ length: 30 }, (_, i) =>
      op(`p${i}`, i % 2 ? 'read' : 'write', i % 2 ? 0 : i, 0, 100),
    )
    const result = checkLinearizable(history, { maxSteps: 50 })
    expect(result.ok).toBe(false)
    expect(result.inconclusive[0]?.message).toContain('gave up after 50 search steps')
  })

  it('stays fast on a long sequential history with some concurrency', () => {
    const history: RegisterOperation[] = []
    let value: number | undefined
    for (let i = 0; i < 3_000; i++) {
      const t = i * 10
      if (i % 3 === 0) {
        value = i
        history.push(op(`w${i % 4}`, 'write', i, t, t + 15))
      } else {
        history.push(op(`r${i % 5}`, 'read', value, t + 16, t + 18))
      }
    }
    const result = checkLinearizable(history)
    expect(result.violations).toEqual([])
    expect(result.ok).toBe(true)
  })

  it('refuses a malformed history with a typed error', () => {
    expect(() => checkLinearizable([op('a', 'write', 1, 5, 2)])).toThrow(ChorusError)
    expect(() => checkLinearizable([op('a', 'write', 1, Number.NaN, 2)])).toThrow(/invoke must be a finite/)
    expect(() =>
      checkLinearizable([{ ...op('a', 'write', 1, 0, 2), value: new Date() as unknown as JsonValue }]),
    ).toThrow(/not JSON/)
  })
})

describe('findStaleReads', () => {
  it('finds a read of an overwritten value and names the write it missed', () => {
    const w2 = op('a', 'write', 2, 3, 5)
    const stale = findStaleReads([op('a', 'write', 1, 0, 2), w2, op('b', 'read', 1, 6, 8)])
    expect(stale).toHaveLength(1)
    expect(stale[0]?.missed).toEqual(w2)
  })

  it('does not count reads concurrent with the newer write', () => {
    expect(
      findStaleReads([op('a', 'write', 1, 0, 2), op('a', 'write', 2, 3, 9), op('b', 'read', 1, 6, 8)]),
    ).toEqual([])
  })

  it('counts a read of nothing after a completed write', () => {
    expect(findStaleReads([op('a', 'write', 1, 0, 2), op('b', 'read', undefined, 3, 4)])).toHaveLength(1)
  })

  it('reports only reads the checker also rejects', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        if (findStaleReads(history).length > 0) expect(bruteForceLinearizable(history)).toBe(false)
      }),
      runs,
    )
  })
})
