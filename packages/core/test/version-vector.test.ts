import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import { asReplicaId, type ReplicaId } from '../src/ids.js'
import {
  addDot,
  compareVv,
  counterOf,
  coversDot,
  decodeVv,
  descends,
  EMPTY_VV,
  encodeVv,
  incrementVv,
  isVersionVector,
  mergeVv,
  Order,
  type VersionVector,
} from '../src/version-vector.js'
import { expectChorusError } from './expect-chorus-error.js'

/** Fixed so runs repeat; `SEED=… pnpm test` replays the seed a failing property prints. */
const seed = Number(process.env.SEED ?? 20_240_601)
const runs = { seed, numRuns: 300 }

function vvArb(pool: readonly string[]): fc.Arbitrary<VersionVector> {
  return fc.dictionary(fc.constantFrom(...pool), fc.integer({ min: 1, max: 20 }), { noNullPrototype: true })
}

/** The same vector with its keys inserted in reverse order. */
function reversed(vv: VersionVector): VersionVector {
  return Object.fromEntries(Object.entries(vv).reverse())
}

const notBefore: readonly string[] = [Order.After, Order.Equal]

describe.each([
  ['plain replica ids', ['a', 'b', 'c', 'd']],
  ['replica ids that are Object.prototype names', ['constructor', 'toString', 'valueOf', 'a']],
])('version vector laws over %s', (_, pool) => {
  const vv = vvArb(pool)
  const replica = fc.constantFrom(...pool).map((id) => asReplicaId(id))

  it('compareVv is reflexive: a vector equals itself and any copy of itself', () => {
    fc.assert(
      fc.property(vv, (a) => {
        expect(compareVv(a, a)).toBe(Order.Equal)
        expect(compareVv(a, reversed(a))).toBe(Order.Equal)
        expect(compareVv(a, { ...a })).toBe(Order.Equal)
      }),
      runs,
    )
  })

  it('compareVv is antisymmetric: before one way is after the other, equal and concurrent are symmetric', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        const ab = compareVv(a, b)
        const ba = compareVv(b, a)
        const mirror = { before: 'after', after: 'before', equal: 'equal', concurrent: 'concurrent' } as const
        expect(ba).toBe(mirror[ab])
        if (ab === Order.Equal) expect(a).toEqual(b)
      }),
      runs,
    )
  })

  it('compareVv is transitive along chains built by merging', () => {
    fc.assert(
      fc.property(vv, vv, vv, (a, x, y) => {
        const b = mergeVv(a, x)
        const c = mergeVv(b, y)
        const ab = compareVv(a, b)
        const bc = compareVv(b, c)
        const ac = compareVv(a, c)
        expect([Order.Before, Order.Equal]).toContain(ab)
        expect([Order.Before, Order.Equal]).toContain(bc)
        expect(ac).toBe(ab === Order.Equal && bc === Order.Equal ? Order.Equal : Order.Before)
      }),
      runs,
    )
  })

  it('compareVv is transitive over arbitrary triples that happen to be ordered', () => {
    fc.assert(
      fc.property(vv, vv, vv, (a, b, c) => {
        const ab = compareVv(a, b)
        const bc = compareVv(b, c)
        if (ab === Order.Before && bc === Order.Before) expect(compareVv(a, c)).toBe(Order.Before)
        if (ab === Order.After && bc === Order.After) expect(compareVv(a, c)).toBe(Order.After)
      }),
      runs,
    )
  })

  it('mergeVv is the least upper bound that compareVv and descends agree on', () => {
    fc.assert(
      fc.property(vv, vv, vv, (a, b, extra) => {
        const m = mergeVv(a, b)
        expect([Order.Before, Order.Equal]).toContain(compareVv(a, m))
        expect([Order.Before, Order.Equal]).toContain(compareVv(b, m))
        expect(descends(m, a)).toBe(true)
        expect(descends(m, b)).toBe(true)
        const above = mergeVv(m, extra)
        expect(descends(above, m)).toBe(true)
        for (const id of pool) expect(counterOf(m, id)).toBe(Math.max(counterOf(a, id), counterOf(b, id)))
      }),
      runs,
    )
  })

  it('mergeVv is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(vv, vv, vv, (a, b, c) => {
        expect(mergeVv(a, b)).toEqual(mergeVv(b, a))
        expect(mergeVv(mergeVv(a, b), c)).toEqual(mergeVv(a, mergeVv(b, c)))
        expect(mergeVv(a, a)).toEqual(a)
        expect(mergeVv(a, mergeVv(a, b))).toEqual(mergeVv(a, b))
      }),
      runs,
    )
  })

  it('mergeVv leaves its inputs untouched', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        const frozenA = Object.freeze({ ...a })
        const frozenB = Object.freeze({ ...b })
        mergeVv(frozenA, frozenB)
        expect(frozenA).toEqual(a)
        expect(frozenB).toEqual(b)
      }),
      runs,
    )
  })

  it('descends(a, b) holds exactly when compareVv(a, b) is after or equal', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        expect(descends(a, b)).toBe(notBefore.includes(compareVv(a, b)))
      }),
      runs,
    )
  })

  it('concurrent means neither descends from the other, in both directions', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        const concurrent = compareVv(a, b) === Order.Concurrent
        expect(concurrent).toBe(compareVv(b, a) === Order.Concurrent)
        expect(concurrent).toBe(!descends(a, b) && !descends(b, a))
      }),
      runs,
    )
  })

  it('incrementVv names the next event of the replica and moves only its entry', () => {
    fc.assert(
      fc.property(vv, replica, (a, id) => {
        const { vv: next, dot } = incrementVv(a, id)
        expect(dot).toEqual([id, counterOf(a, id) + 1])
        expect(compareVv(a, next)).toBe(Order.Before)
        expect(coversDot(a, dot)).toBe(false)
        expect(coversDot(next, dot)).toBe(true)
        for (const other of pool) if (other !== id) expect(counterOf(next, other)).toBe(counterOf(a, other))
        expect(isVersionVector(next)).toBe(true)
      }),
      runs,
    )
  })

  it('coversDot agrees with descends on a one-entry vector, and addDot makes it hold', () => {
    fc.assert(
      fc.property(vv, replica, fc.integer({ min: 1, max: 25 }), (a, id, n) => {
        const covered = coversDot(a, [id, n])
        expect(covered).toBe(counterOf(a, id) >= n)
        expect(covered).toBe(descends(a, { [id]: n }))
        const added = addDot(a, [id, n])
        expect(coversDot(added, [id, n])).toBe(true)
        expect(added).toEqual(mergeVv(a, { [id]: n }))
        expect(addDot(added, [id, n])).toEqual(added)
      }),
      runs,
    )
  })

  it('encodeVv / decodeVv round-trip', () => {
    fc.assert(
      fc.property(vv, (a) => {
        expect(decodeVv(encodeVv(a))).toEqual(a)
      }),
      runs,
    )
  })

  it('encodeVv is deterministic and injective: equal strings exactly for equal vectors', () => {
    fc.assert(
      fc.property(vv, vv, (a, b) => {
        expect(encodeVv(reversed(a))).toBe(encodeVv(a))
        expect(encodeVv(a) === encodeVv(b)).toBe(compareVv(a, b) === Order.Equal)
      }),
      runs,
    )
  })
})

describe('version vectors by example', () => {
  const a = asReplicaId('a')
  const b = asReplicaId('b')

  it('tells before, after, equal and concurrent apart', () => {
    expect(compareVv({ a: 1 }, { a: 2 })).toBe(Order.Before)
    expect(compareVv({ a: 2, b: 1 }, { a: 2 })).toBe(Order.After)
    expect(compareVv({ a: 2, b: 1 }, { b: 1, a: 2 })).toBe(Order.Equal)
    expect(compareVv({ a: 2 }, { b: 1 })).toBe(Order.Concurrent)
    expect(compareVv(EMPTY_VV, { a: 1 })).toBe(Order.Before)
    expect(compareVv(EMPTY_VV, {})).toBe(Order.Equal)
  })

  it('encodes sorted by replica id, counters in base 36', () => {
    expect(encodeVv({ b: 36, a: 10 })).toBe('a:a,b:10')
    expect(encodeVv(EMPTY_VV)).toBe('')
    expect(decodeVv('')).toEqual({})
    expect(decodeVv('a:a,b:10')).toEqual({ a: 10, b: 36 })
  })

  it.each([
    ['a bare replica id', 'a'],
    ['a missing counter', 'a:'],
    ['a missing replica id', ':1'],
    ['a zero counter', 'a:0'],
    ['a negative counter', 'a:-1'],
    ['a fractional counter', 'a:1.5'],
    ['upper-case base-36 digits', 'a:Z'],
    ['a counter beyond the safe integers', 'a:zzzzzzzzzzz'],
    ['more than 11 digits', 'a:000000000001'],
    ['a trailing comma', 'a:1,'],
    ['a leading comma', ',a:1'],
    ['a duplicated replica id', 'a:1,a:2'],
    ['a replica id with a space', 'a b:1'],
    ['a replica id with a colon', 'a:1:2'],
    ['a __proto__ replica id', '__proto__:1'],
  ])('decodeVv rejects %s with invalid-argument', (_, text) => {
    expectChorusError(() => decodeVv(text), ErrorCode.InvalidArgument)
  })

  it('decodeVv names the malformed text in its message', () => {
    expect(() => decodeVv('a:0')).toThrow('"a:0" is not an encoded version vector')
  })

  it('counts replica ids named like Object.prototype members from zero', () => {
    const ctor = asReplicaId('constructor')
    const str = asReplicaId('toString')
    expect(counterOf(EMPTY_VV, ctor)).toBe(0)
    expect(counterOf({}, str)).toBe(0)
    expect(coversDot({}, [ctor, 1])).toBe(false)
    expect(descends({}, { toString: 2 })).toBe(false)
    expect(compareVv({}, { constructor: 1 })).toBe(Order.Before)
    expect(compareVv({ toString: 1 }, {})).toBe(Order.After)
    expect(mergeVv({ a: 1 }, { constructor: 3 })).toEqual({ a: 1, constructor: 3 })
    expect(incrementVv({}, ctor)).toEqual({ vv: { constructor: 1 }, dot: [ctor, 1] })
    const decoded = decodeVv('constructor:1,toString:2')
    expect(Object.hasOwn(decoded, 'constructor')).toBe(true)
    expect(decoded).toEqual({ constructor: 1, toString: 2 })
    expect(encodeVv(decoded)).toBe('constructor:1,toString:2')
    expect(isVersionVector({ constructor: 1 })).toBe(true)
  })

  it('isVersionVector refuses bad ids and counters', () => {
    expect(isVersionVector({ a: 1, b: 2 })).toBe(true)
    expect(isVersionVector({ a: 0 })).toBe(false)
    expect(isVersionVector({ a: 1.5 })).toBe(false)
    expect(isVersionVector({ 'a b': 1 })).toBe(false)
    expect(isVersionVector([])).toBe(false)
    expect(isVersionVector(null)).toBe(false)
  })

  it('incrementVv on one replica does not disturb what the other has seen', () => {
    const start: VersionVector = { a: 3, b: 7 }
    const { vv, dot } = incrementVv(start, b)
    expect(dot).toEqual([b, 8])
    expect(vv).toEqual({ a: 3, b: 8 })
    expect(start).toEqual({ a: 3, b: 7 })
    const fresh: ReplicaId = asReplicaId('c')
    expect(incrementVv(vv, fresh).dot).toEqual([fresh, 1])
    expect(coversDot(vv, [a, 3])).toBe(true)
    expect(coversDot(vv, [a, 4])).toBe(false)
  })
})
