import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createPrng, seedFromEnv, sweepSeeds } from '../src/prng.js'

const fcSeed = 20_240_601

function draws(seed: number | string, count = 32): number[] {
  const prng = createPrng(seed)
  return Array.from({ length: count }, () => prng.next())
}

describe('createPrng', () => {
  it('gives the same sequence for the same seed', () => {
    expect(draws(42)).toEqual(draws(42))
    expect(draws('alpha')).toEqual(draws('alpha'))
  })

  it('gives different sequences for different seeds, including neighbouring and large ones', () => {
    const seeds = [0, 1, 2, -1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER, 1_700_000_000_000]
    const firsts = new Set(seeds.map((seed) => draws(seed, 4).join(',')))
    expect(firsts.size).toBe(seeds.length)
  })

  it('reproduces a stream from its seed property, also for string seeds', () => {
    const fromString = createPrng('replay me')
    expect(Number.isSafeInteger(fromString.seed)).toBe(true)
    expect(draws(fromString.seed)).toEqual(draws('replay me'))
    expect(createPrng(7).seed).toBe(7)
    expect(draws('a')).not.toEqual(draws('b'))
  })

  it('rejects seeds that are not safe integers', () => {
    expect(() => createPrng(1.5)).toThrow(RangeError)
    expect(() => createPrng(Number.NaN)).toThrow(RangeError)
    expect(() => createPrng(2 ** 60)).toThrow(RangeError)
  })

  it('draws next() in [0, 1) with a mean near 0.5', () => {
    const prng = createPrng(3)
    let sum = 0
    for (let i = 0; i < 10_000; i++) {
      const value = prng.next()
      expect(value).toBeGreaterThanOrEqual(0)
      expect(value).toBeLessThan(1)
      sum += value
    }
    expect(sum / 10_000).toBeGreaterThan(0.48)
    expect(sum / 10_000).toBeLessThan(0.52)
  })

  it('keeps int() within inclusive bounds for any seed and range', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: -1_000_000, max: 1_000_000 }),
        fc.integer({ min: 0, max: 1_000 }),
        (seed, min, width) => {
          const prng = createPrng(seed)
          for (let i = 0; i < 20; i++) {
            const value = prng.int(min, min + width)
            expect(Number.isInteger(value)).toBe(true)
            expect(value).toBeGreaterThanOrEqual(min)
            expect(value).toBeLessThanOrEqual(min + width)
          }
        },
      ),
      { seed: fcSeed },
    )
  })

  it('hits both ends of a small int() range roughly uniformly', () => {
    const prng = createPrng(11)
    const counts = [0, 0, 0, 0, 0, 0]
    for (let i = 0; i < 6_000; i++) {
      const value = prng.int(1, 6)
      counts[value - 1] = (counts[value - 1] ?? 0) + 1
    }
    for (const count of counts) {
      expect(count).toBeGreaterThan(850)
      expect(count).toBeLessThan(1_150)
    }
    expect(prng.int(5, 5)).toBe(5)
  })

  it('rejects invalid int() bounds', () => {
    const prng = createPrng(1)
    expect(() => prng.int(3, 2)).toThrow(RangeError)
    expect(() => prng.int(0.5, 2)).toThrow(RangeError)
    expect(() => prng.int(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)).toThrow(RangeError)
  })

  it('returns true from bool(p) with about probability p, and never/always at 0/1', () => {
    const prng = createPrng(5)
    let hits = 0
    for (let i = 0; i < 10_000; i++) if (prng.bool(0.3)) hits++
    expect(hits).toBeGreaterThan(2_700)
    expect(hits).toBeLessThan(3_300)
    for (let i = 0; i < 1_000; i++) {
      expect(prng.bool(0)).toBe(false)
      expect(prng.bool(1)).toBe(true)
    }
    expect(() => prng.bool(1.5)).toThrow(RangeError)
  })

  it('picks members of the array and throws a RangeError on an empty one', () => {
    const prng = createPrng(9)
    const items = ['a', 'b', 'c'] as const
    const seen = new Set<string>()
    for (let i = 0; i < 100; i++) seen.add(prng.pick(items))
    expect([...seen].sort()).toEqual(['a', 'b', 'c'])
    expect(() => prng.pick([])).toThrow(RangeError)
  })

  it('shuffles into a new permutation without touching the input', () => {
    const input = Array.from({ length: 20 }, (_, i) => i)
    const frozen = Object.freeze(input.slice())
    const shuffled = createPrng(4).shuffle(frozen)
    expect(shuffled).not.toBe(frozen)
    expect([...shuffled].sort((a, b) => a - b)).toEqual(input)
    expect(shuffled).not.toEqual(input)
    expect(createPrng(4).shuffle(frozen)).toEqual(shuffled)
  })
})

describe('Prng.fork', () => {
  it('depends only on seed and label, not on how many draws the parent made', () => {
    const fresh = createPrng(100)
    const used = createPrng(100)
    for (let i = 0; i < 57; i++) used.next()
    const a = fresh.fork('network')
    const b = used.fork('network')
    expect(Array.from({ length: 16 }, () => a.next())).toEqual(Array.from({ length: 16 }, () => b.next()))
  })

  it('does not disturb the parent stream', () => {
    const parent = createPrng(100)
    const child = parent.fork('x')
    for (let i = 0; i < 10; i++) child.next()
    expect(Array.from({ length: 16 }, () => parent.next())).toEqual(draws(100, 16))
  })

  it('gives different streams for different labels and from the parent', () => {
    const parent = createPrng(100)
    const streams = [parent, parent.fork('a'), parent.fork('b'), createPrng(101).fork('a')].map((prng) =>
      Array.from({ length: 8 }, () => prng.next()).join(','),
    )
    expect(new Set(streams).size).toBe(streams.length)
  })

  it('is reproducible from the child seed', () => {
    const child = createPrng('root').fork('leaf')
    expect(draws(child.seed, 8)).toEqual(Array.from({ length: 8 }, () => child.next()))
  })
})

describe('seedFromEnv', () => {
  it('returns the fallback when SEED is absent or blank', () => {
    expect(seedFromEnv({}, 17)).toBe(17)
    expect(seedFromEnv({ SEED: undefined }, 17)).toBe(17)
    expect(seedFromEnv({ SEED: '  ' }, 17)).toBe(17)
  })

  it('parses a decimal integer', () => {
    expect(seedFromEnv({ SEED: '12345' }, 0)).toBe(12_345)
    expect(seedFromEnv({ SEED: ' -7 ' }, 0)).toBe(-7)
    expect(seedFromEnv({ SEED: '0' }, 99)).toBe(0)
  })

  it('throws a RangeError naming SEED for anything else', () => {
    for (const bad of ['abc', '1.5', '0x10', '1e3', '12abc', '99999999999999999999']) {
      expect(() => seedFromEnv({ SEED: bad }, 0)).toThrow(/SEED must be a decimal integer/)
      expect(() => seedFromEnv({ SEED: bad }, 0)).toThrow(RangeError)
    }
  })
})

describe('sweepSeeds', () => {
  it('is seeds 1 to count, a whole sweep', () => {
    expect(sweepSeeds({}, 3)).toEqual({ seeds: [1, 2, 3], full: true })
  })

  it('replays the one SEED names, and says the sweep is not whole', () => {
    expect(sweepSeeds({ SEED: '42', SOAK: '1', SEEDS_FROM: '7' }, 3)).toEqual({ seeds: [42], full: false })
  })

  it('runs 25 times as many under SOAK, from SEEDS_FROM', () => {
    const { seeds, full } = sweepSeeds({ SOAK: '1', SEEDS_FROM: '1001' }, 2)
    expect(full).toBe(true)
    expect(seeds).toHaveLength(50)
    expect([seeds[0], seeds[49]]).toEqual([1001, 1050])
    expect(sweepSeeds({ SOAK: '' }, 2).seeds).toEqual([1, 2])
  })

  it('throws a RangeError naming SEEDS_FROM when it is not a decimal integer', () => {
    expect(() => sweepSeeds({ SEEDS_FROM: '1e3' }, 2)).toThrow(/SEEDS_FROM must be a decimal integer/)
  })
})
