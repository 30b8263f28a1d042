import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import {
  asRecordId,
  asReplicaId,
  asSpaceId,
  assertCollectionName,
  isRecordId,
  isReplicaId,
  isSpaceId,
  MAX_RECORD_ID_LENGTH,
  replicaIdFromBytes,
  uuidV7FromBytes,
} from '../src/ids.js'
import {
  approximateJsonLength,
  assertJsonObject,
  canonicalJson,
  copyJsonObject,
  explainNonJson,
  isJsonObject,
  isJsonValue,
  type JsonValue,
  jsonEqual,
  MAX_JSON_DEPTH,
} from '../src/json.js'
import { expectChorusError } from './expect-chorus-error.js'

/** Fixed so runs repeat; `SEED=… pnpm test` replays the seed a failing property prints. */
const seed = Number(process.env.SEED ?? 20_240_601)
const runs = { seed, numRuns: 300 }

describe('replica ids', () => {
  it.each(['a', 'Z9', 'tab-1_main', '0abc', 'constructor', 'toString', 'x'.repeat(64)])(
    'accepts %j',
    (id) => {
      expect(isReplicaId(id)).toBe(true)
      expect(asReplicaId(id)).toBe(id)
    },
  )

  it.each([
    ['empty', ''],
    ['__proto__', '__proto__'],
    ['a leading underscore', '_a'],
    ['a leading dash', '-a'],
    ['65 characters', 'x'.repeat(65)],
    ['a space inside', 'tab 1'],
    ['a leading space', ' a'],
    ['a dot', 'a.b'],
    ['an @', 'a@b'],
    ['a non-ASCII letter', 'café'],
  ])('refuses %s', (_, id) => {
    expect(isReplicaId(id)).toBe(false)
    const error = expectChorusError(() => asReplicaId(id), ErrorCode.InvalidArgument)
    expect(error.message).toContain(JSON.stringify(id))
  })

  it('refuses values that are not strings', () => {
    for (const value of [1, null, undefined, {}, ['a']]) expect(isReplicaId(value)).toBe(false)
  })

  it('derives lowercase base-32 ids from random bytes', () => {
    expect(replicaIdFromBytes(Uint8Array.from({ length: 16 }, (_, i) => i))).toBe(
      'aaaqeayeaudaocajbifqydiob4',
    )
    expect(replicaIdFromBytes(new TextEncoder().encode('foobarba'))).toBe('mzxw6ytbojrgc')
    expect(replicaIdFromBytes(new Uint8Array(10).fill(255))).toBe('7777777777777777')
  })

  it('makes UUID v7 record ids that sort by their time, and refuses a time or randomness it cannot use', () => {
    const random = Uint8Array.from({ length: 16 }, (_, i) => 0xf0 + i)
    // RFC 9562's example time, 2022-02-22 19:22:22 UTC: 0x017F22E279B0.
    expect(uuidV7FromBytes(0x017f22e279b0, random)).toBe('017f22e2-79b0-76f7-b8f9-fafbfcfdfeff')
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 48 - 2 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (time, a, b) => {
          const earlier = uuidV7FromBytes(time, a)
          const later = uuidV7FromBytes(time + 1, b)
          return (
            isRecordId(earlier) &&
            earlier < later &&
            /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab]/.test(earlier)
          )
        },
      ),
      { seed },
    )
    for (const bad of [-1, 2 ** 48, 1.5, Number.NaN])
      expectChorusError(() => uuidV7FromBytes(bad, random), ErrorCode.InvalidArgument)
    expectChorusError(() => uuidV7FromBytes(0, new Uint8Array(8)), ErrorCode.InvalidArgument)
  })

  it('derives a valid, distinct id for distinct 16-byte inputs', () => {
    const bytes = fc.uint8Array({ minLength: 16, maxLength: 16 })
    fc.assert(
      fc.property(bytes, bytes, (a, b) => {
        const idA = replicaIdFromBytes(a)
        expect(isReplicaId(idA)).toBe(true)
        expect(idA).toHaveLength(26)
        expect(idA).toBe(replicaIdFromBytes(Uint8Array.from(a)))
        expect(idA === replicaIdFromBytes(b)).toBe(a.every((byte, i) => byte === b[i]))
      }),
      runs,
    )
  })

  it('caps an id from many bytes at 64 characters', () => {
    const id = replicaIdFromBytes(new Uint8Array(100).fill(7))
    expect(id).toHaveLength(64)
    expect(isReplicaId(id)).toBe(true)
  })

  it('refuses fewer than 8 random bytes', () => {
    expectChorusError(() => replicaIdFromBytes(new Uint8Array(7)), ErrorCode.InvalidArgument)
    expect(replicaIdFromBytes(new Uint8Array(8))).toBe('aaaaaaaaaaaaa')
  })
})

describe('record ids, spaces and collections', () => {
  it('accepts any non-empty record id up to the limit', () => {
    for (const id of [
      'x',
      'a b/ü?#',
      '018f4e1c-7a2b-7000-8000-000000000001',
      'y'.repeat(MAX_RECORD_ID_LENGTH),
    ]) {
      expect(isRecordId(id)).toBe(true)
      expect(asRecordId(id)).toBe(id)
    }
  })

  it('refuses an empty or too long record id', () => {
    expect(isRecordId('')).toBe(false)
    expectChorusError(() => asRecordId(''), ErrorCode.InvalidArgument)
    const long = 'y'.repeat(MAX_RECORD_ID_LENGTH + 1)
    expect(isRecordId(long)).toBe(false)
    const error = expectChorusError(() => asRecordId(long), ErrorCode.InvalidArgument)
    expect(error.message).toContain(String(MAX_RECORD_ID_LENGTH))
  })

  it('accepts collection and space names of letters, digits and _.:-', () => {
    for (const name of ['notes', 'team:board-1', 'a.b_c', '9', 'n'.repeat(128)]) {
      expect(assertCollectionName(name)).toBe(name)
      expect(isSpaceId(name)).toBe(true)
      expect(asSpaceId(name)).toBe(name)
    }
  })

  it.each([
    ['empty', ''],
    ['a leading dot', '.notes'],
    ['a space', 'my notes'],
    ['a slash', 'a/b'],
    ['129 characters', 'n'.repeat(129)],
    ['__proto__', '__proto__'],
  ])('refuses a collection or space name with %s', (_, name) => {
    const collection = expectChorusError(() => assertCollectionName(name), ErrorCode.InvalidArgument)
    expect(collection.message).toContain('collection')
    expect(isSpaceId(name)).toBe(false)
    const space = expectChorusError(() => asSpaceId(name), ErrorCode.InvalidArgument)
    expect(space.message).toContain('space')
  })
})

function nested(depth: number): JsonValue {
  let value: JsonValue = 1
  for (let i = 0; i < depth; i++) value = { inner: value }
  return value
}

describe('explainNonJson', () => {
  it('accepts plain JSON, shared (non-cyclic) references and null-prototype objects', () => {
    const shared = { tag: 'x' }
    const bare = Object.create(null) as Record<string, unknown>
    bare.a = 1
    for (const value of [
      null,
      true,
      0,
      -1.5,
      '',
      [],
      {},
      { a: [1, 'b', null, { c: false }] },
      { x: shared, y: shared },
      bare,
    ]) {
      expect(explainNonJson(value)).toBeUndefined()
      expect(isJsonValue(value)).toBe(true)
    }
  })

  it('says where the problem is and what it is', () => {
    class Point {
      x = 1
    }
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    const cases: [unknown, string][] = [
      [undefined, '$ is a undefined'],
      [{ a: undefined }, '$.a is a undefined, which JSON cannot represent'],
      [{ f: () => 1 }, '$.f is a function, which JSON cannot represent'],
      [{ n: [1, Number.NaN] }, '$.n[1] is NaN, which JSON cannot represent'],
      [{ n: -Infinity }, '$.n is -Infinity, which JSON cannot represent'],
      [{ s: Symbol('s') }, '$.s is a symbol, which JSON cannot represent'],
      [{ big: 2n }, '$.big is a bigint, which JSON cannot represent'],
      [{ d: new Date(0) }, '$.d is a Date instance; only plain objects are JSON'],
      [{ p: new Point() }, '$.p is a Point instance; only plain objects are JSON'],
      [cycle, '$.self is a cycle back to an enclosing value'],
      // biome-ignore lint/suspicious/noSparseArray: the hole is the point of this case
      [{ list: [1, , 3] }, '$.list[1] is a hole in a sparse array'],
      [JSON.parse('{"a":{"__proto__":1}}'), '$.a has a "__proto__" key'],
    ]
    for (const [value, message] of cases) expect(explainNonJson(value)).toContain(message)
  })

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH} levels`, () => {
    expect(explainNonJson(nested(MAX_JSON_DEPTH))).toBeUndefined()
    expect(explainNonJson(nested(MAX_JSON_DEPTH + 1))).toContain(
      `nested deeper than ${MAX_JSON_DEPTH} levels`,
    )
  })

  it('assertJsonObject accepts plain objects only, naming what was wrong', () => {
    expect(assertJsonObject({ a: 1 }, 'the value')).toEqual({ a: 1 })
    expect(
      expectChorusError(() => assertJsonObject([1], 'the value'), ErrorCode.InvalidArgument).message,
    ).toBe('the value must be a JSON object, got an array')
    expect(
      expectChorusError(() => assertJsonObject(null, 'the value'), ErrorCode.InvalidArgument).message,
    ).toBe('the value must be a JSON object, got null')
    expect(
      expectChorusError(() => assertJsonObject({ a: Number.NaN }, 'the value'), ErrorCode.InvalidArgument)
        .message,
    ).toBe('the value is not JSON-serialisable: $.a is NaN, which JSON cannot represent')
  })

  it('isJsonObject is true for plain JSON objects only', () => {
    expect(isJsonObject({ a: [1] })).toBe(true)
    expect(isJsonObject([])).toBe(false)
    expect(isJsonObject(null)).toBe(false)
    expect(isJsonObject({ a: new Date(0) })).toBe(false)
  })
})

describe('copyJsonObject', () => {
  /** True when `value` and everything inside it is frozen. */
  function deeplyFrozen(value: unknown): boolean {
    if (value === null || typeof value !== 'object') return true
    return Object.isFrozen(value) && Object.values(value).every(deeplyFrozen)
  }

  it('gives what a JSON round trip gives, deeply frozen, never the caller’s objects', () => {
    fc.assert(
      fc.property(jsonArb, (inner) => {
        const value = { inner, list: [inner] }
        const copy = copyJsonObject(value, 'the value')
        expect(copy).toStrictEqual(JSON.parse(JSON.stringify(value)))
        expect(Object.keys(copy)).toEqual(Object.keys(value))
        expect(deeplyFrozen(copy)).toBe(true)
        if (inner !== null && typeof inner === 'object') expect(copy.inner).not.toBe(inner)
      }),
      runs,
    )
    const bare = Object.create(null) as Record<string, unknown>
    bare.zero = -0
    const copy = copyJsonObject({ bare, shared: [bare, bare] }, 'the value')
    expect(Object.is((copy.bare as { zero: number }).zero, 0)).toBe(true)
    expect(Object.getPrototypeOf(copy.bare)).toBe(Object.prototype)
  })

  it('refuses what assertJsonObject refuses, with the same error', () => {
    class Point {
      x = 1
    }
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    for (const value of [
      [1],
      null,
      'text',
      { a: undefined },
      { n: [1, Number.NaN] },
      { d: new Date(0) },
      { p: new Point() },
      cycle,
      // biome-ignore lint/suspicious/noSparseArray: the hole is the point of this case
      { list: [1, , 3] },
      JSON.parse('{"a":{"__proto__":1}}'),
      { deep: nested(MAX_JSON_DEPTH) },
    ]) {
      const expected = expectChorusError(
        () => assertJsonObject(value, 'the value'),
        ErrorCode.InvalidArgument,
      )
      const actual = expectChorusError(() => copyJsonObject(value, 'the value'), ErrorCode.InvalidArgument)
      expect(actual.message).toBe(expected.message)
    }
    expect(copyJsonObject(nested(MAX_JSON_DEPTH - 1), 'the value')).toEqual(nested(MAX_JSON_DEPTH - 1))
  })
})

/** The same value with every object's keys inserted in reverse order. */
function reordered(value: JsonValue): JsonValue {
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((item: JsonValue) => reordered(item))
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([key, item]) => [key, reordered(item as JsonValue)]),
  )
}

const jsonArb = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue>

describe('canonicalJson and jsonEqual', () => {
  it('sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }], c: null })).toBe('{"a":[{"c":2,"d":1}],"b":1,"c":null}')
  })

  it('gives equal text for equal values whatever the key order, and reads back as the same value', () => {
    fc.assert(
      fc.property(jsonArb, (value) => {
        const text = canonicalJson(value)
        expect(canonicalJson(reordered(value))).toBe(text)
        expect(jsonEqual(value, reordered(value))).toBe(true)
        expect(jsonEqual(JSON.parse(text) as JsonValue, value)).toBe(true)
      }),
      runs,
    )
  })

  it('gives equal text exactly when jsonEqual says the values are equal', () => {
    fc.assert(
      fc.property(jsonArb, jsonArb, (a, b) => {
        expect(canonicalJson(a) === canonicalJson(b)).toBe(jsonEqual(a, b))
        expect(jsonEqual(a, b)).toBe(jsonEqual(b, a))
      }),
      runs,
    )
  })

  it('tells apart values that differ only in shape', () => {
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false)
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1 })).toBe(false)
    expect(jsonEqual({ a: 1 }, { b: 1 })).toBe(false)
    expect(jsonEqual([1, 2], [2, 1])).toBe(false)
    expect(jsonEqual([], {})).toBe(false)
    expect(jsonEqual(null, {})).toBe(false)
    expect(jsonEqual('1', 1)).toBe(false)
    expect(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toBe(true)
  })
})

describe('approximateJsonLength', () => {
  it('comes close to the JSON length of values without escapes', () => {
    const values: JsonValue[] = [
      'plain text',
      12345.678,
      true,
      null,
      [],
      {},
      [1, 'two', { three: [3] }],
      { title: 'Groceries', body: 'milk, eggs, bread', done: false, tags: ['home', 'weekly'], n: 7 },
      { nested: { deeper: { deepest: 'x'.repeat(1000) } } },
    ]
    for (const value of values) {
      const exact = JSON.stringify(value).length
      const approximate = approximateJsonLength(value)
      expect(approximate, JSON.stringify(value).slice(0, 40)).toBeGreaterThanOrEqual(exact * 0.8)
      expect(approximate).toBeLessThanOrEqual(exact * 2 + 16)
    }
  })

  it('with escapes, is at least the JSON length of values whose numbers are short', () => {
    // Numbers count 12 characters; every other part is measured or over-counted.
    const short = fc.oneof(fc.integer({ min: -1e9, max: 1e9 }), fc.constant(0.5))
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        fc.string({ unit: 'binary' }),
        fc.string({ unit: fc.constantFrom('\u0000', '\u001f', '"', '\\', '\n', '\ud800', 'a', '😀') }),
        short,
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string({ unit: fc.constantFrom('\u0001', '"', 'k') }), tie('value'), { maxKeys: 4 }),
      ),
    })).value as fc.Arbitrary<JsonValue>
    fc.assert(
      fc.property(json, (value) => {
        expect(approximateJsonLength(value, true)).toBeGreaterThanOrEqual(JSON.stringify(value).length)
      }),
    )
    // Without escapes, text of control characters is counted at a sixth of its JSON length.
    const controls = '\u0001'.repeat(1000)
    expect(approximateJsonLength(controls)).toBe(1002)
    expect(approximateJsonLength(controls, true)).toBe(JSON.stringify(controls).length)
  })
})
