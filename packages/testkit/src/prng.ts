/**
 * A seeded pseudo-random number generator: the only source of randomness in a simulation.
 *
 * Every draw is a pure function of the seed and the draws before it, so a run is replayed by
 * passing the same seed. `createPrng(p.seed)` yields the same stream as `p`.
 */
export interface Prng {
  /** The numeric seed this stream was built from (a string seed is shown as its hash). */
  readonly seed: number
  /** A float uniform in [0, 1), with 53 bits of resolution. */
  next(): number
  /** An integer uniform in [min, max], both inclusive; throws a `RangeError` if the bounds are not safe integers with min <= max. */
  int(min: number, max: number): number
  /** True with probability `p` (default 0.5): `bool(0)` is never true and `bool(1)` always is. */
  bool(p?: number): boolean
  /** One element chosen uniformly; throws a `RangeError` on an empty array. */
  pick<TItem>(items: readonly TItem[]): TItem
  /** A shuffled copy (Fisher–Yates); the input is not modified. */
  shuffle<TItem>(items: readonly TItem[]): TItem[]
  /**
   * An independent stream derived from this stream's seed and `label`.
   *
   * The child depends only on (seed, label), not on how many draws the parent made, so giving
   * each concern its own fork keeps unrelated draws stable when one concern draws more.
   */
  fork(label: string): Prng
}

const twoPow32 = 0x1_0000_0000
const twoPow53 = 2 ** 53

/**
 * Creates a {@link Prng} from a numeric or string seed.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, which passes
 * PractRand), seeded from the 53-bit seed the way PractRand does. A string seed is first hashed
 * with a 53-bit cyrb53-style hash. Numeric seeds must be safe integers so that no two distinct
 * seeds collapse onto the same stream through float rounding.
 */
export function createPrng(seed: number | string): Prng {
  const numericSeed = typeof seed === 'string' ? hashString(seed, 0, 0) : seed
  if (!Number.isSafeInteger(numericSeed)) {
    throw new RangeError(`PRNG seed must be a safe integer or a string, got ${String(seed)}`)
  }
  return new Sfc32Prng(numericSeed)
}

/**
 * Reads the simulation seed from `env.SEED` (a decimal integer), or returns `fallback`.
 *
 * This is how a failing run is replayed: the test prints its seed and `SEED=… pnpm test`
 * feeds it back. An empty or blank `SEED` counts as absent; anything else that is not a
 * decimal safe integer throws a `RangeError` rather than silently running another seed.
 */
export function seedFromEnv(env: Readonly<Record<string, string | undefined>>, fallback: number): number {
  return integerFromEnv(env, 'SEED') ?? fallback
}

/** `env[name]` as a decimal safe integer; undefined when absent or blank; a `RangeError` naming it otherwise. */
function integerFromEnv(env: Readonly<Record<string, string | undefined>>, name: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return undefined
  const text = raw.trim()
  const value = Number(text)
  if (!/^[+-]?\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw new RangeError(`${name} must be a decimal integer (e.g. ${name}=12345), got ${JSON.stringify(raw)}`)
  }
  return value
}

/** The seeds of a seeded sweep (see {@link sweepSeeds}). */
export interface SweepSeeds {
  readonly seeds: readonly number[]
  /** False when `SEED` replays one run: totals over a sweep are checked only on a whole one. */
  readonly full: boolean
}

/**
 * The seeds a sweep of `count` seeded runs takes from the environment: `SEED` replays one
 * (see {@link seedFromEnv}); `SOAK` (any non-empty value) runs 25 times as many; `SEEDS_FROM`
 * starts them at another seed than 1, so that a soak can try seeds no run has tried.
 */
export function sweepSeeds(env: Readonly<Record<string, string | undefined>>, count: number): SweepSeeds {
  const replay = integerFromEnv(env, 'SEED')
  if (replay !== undefined) return { seeds: [replay], full: false }
  const soak = env.SOAK !== undefined && env.SOAK !== '' ? 25 : 1
  const first = integerFromEnv(env, 'SEEDS_FROM') ?? 1
  return { seeds: Array.from({ length: count * soak }, (_, i) => first + i), full: true }
}

class Sfc32Prng implements Prng {
  readonly seed: number
  private a: number
  private b: number
  private c: number
  private counter: number

  constructor(seed: number) {
    this.seed = seed
    const [low, high] = seedWords(seed)
    this.a = 0
    this.b = low
    this.c = high
    this.counter = 1
    for (let round = 0; round < 12; round++) this.nextUint32()
  }

  next(): number {
    const high = this.nextUint32() >>> 5
    const low = this.nextUint32() >>> 6
    return (high * 67_108_864 + low) / twoPow53
  }

  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
      throw new RangeError(`int(min, max) needs safe integers with min <= max, got (${min}, ${max})`)
    }
    const span = max - min + 1
    if (!Number.isSafeInteger(span)) {
      throw new RangeError(`int(min, max) range is too wide: (${min}, ${max})`)
    }
    return min + Math.floor(this.next() * span)
  }

  bool(p = 0.5): boolean {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`bool(p) needs 0 <= p <= 1, got ${p}`)
    return this.next() < p
  }

  pick<TItem>(items: readonly TItem[]): TItem {
    if (items.length === 0) throw new RangeError('pick() needs a non-empty array')
    return items[this.int(0, items.length - 1)] as TItem
  }

  shuffle<TItem>(items: readonly TItem[]): TItem[] {
    const result = items.slice()
    for (let i = result.length - 1; i > 0; i--) {
      const j = this.int(0, i)
      const held = result[i] as TItem
      result[i] = result[j] as TItem
      result[j] = held
    }
    return result
  }

  fork(label: string): Prng {
    const [low, high] = seedWords(this.seed)
    return new Sfc32Prng(hashString(`fork:${label}`, low, high))
  }

  private nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.counter) | 0
    this.counter = (this.counter + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }
}

/** Splits a safe integer into its low and high 32-bit words (two's complement for negatives). */
function seedWords(seed: number): [number, number] {
  const low = ((seed % twoPow32) + twoPow32) % twoPow32
  const high = Math.floor(seed / twoPow32) | 0
  return [low | 0, high]
}

/** cyrb53 (bryc, public domain) with a two-word seed: a fast 53-bit non-cryptographic hash. */
function hashString(text: string, seedLow: number, seedHigh: number): number {
  let h1 = 0xdeadbeef ^ seedLow
  let h2 = 0x41c6ce57 ^ seedHigh
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ code, 2_654_435_761)
    h2 = Math.imul(h2 ^ code, 1_597_334_677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2_246_822_507)
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3_266_489_909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2_246_822_507)
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3_266_489_909)
  return 2_097_152 * (h2 & 2_097_151) + (h1 >>> 0)
}
