import { seedFromEnv } from '@chorus/testkit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { ErrorCode } from '../src/errors.js'
import { asRecordId, asReplicaId } from '../src/ids.js'
import type { JsonObject } from '../src/json.js'
import {
  type DecodeResult,
  decodeMessage,
  encodeChange,
  encodeChangesMessage,
  encodeMessage,
  encodeRowOp,
  encodeSnapshotMessage,
  validateMessage,
} from '../src/protocol/codec.js'
import {
  type ChangesMessage,
  DEFAULT_LIMITS,
  Feature,
  type HelloMessage,
  type Message,
  PROTOCOL_VERSION,
  type SnapshotMessage,
} from '../src/protocol/messages.js'
import { EMPTY_VV } from '../src/version-vector.js'
import { alice, bob, carol, space, stamp, t0 } from './codec-fixtures.js'

const seed = seedFromEnv(process.env, 20_241_123)
const runs = { seed, numRuns: 300 }

const put: Change = {
  collection: 'notes',
  id: asRecordId('018f4e1c-7a2b-7000-8000-000000000001'),
  dot: [alice, 3],
  context: { alice: 2, bob: 5 },
  hlc: stamp(t0, 7, alice),
  op: { type: 'put', value: { title: 'Groceries', tags: ['home'], meta: { pinned: true, rank: 1.5 } } },
}

const patch: Change = {
  collection: 'tasks',
  id: asRecordId('018f4e1c-7a2b-7000-8000-000000000002'),
  dot: [bob, 6],
  context: { alice: 3, bob: 5, carol: 1 },
  hlc: stamp(t0 + 500, 0, bob),
  op: {
    type: 'patch',
    fields: { title: 'Groceries (Saturday)' },
    base: { tags: ['home'] },
    stamps: { tags: stamp(t0, 0, alice) },
    floor: null,
  },
}

const remove: Change = {
  collection: 'notes',
  id: asRecordId('018f4e1c-7a2b-7000-8000-000000000001'),
  dot: [carol, 1],
  context: {},
  hlc: stamp(0, 0, carol),
  op: { type: 'delete' },
}

const changes: ChangesMessage = {
  type: 'changes',
  space,
  from: 2,
  to: 5,
  batch: [put, patch, remove],
  head: 9,
}
const snapshot: SnapshotMessage = {
  type: 'snapshot',
  space,
  cursor: 42,
  page: 3,
  last: false,
  batch: [put, patch],
}

function roundTrip(message: Message): DecodeResult {
  return decodeMessage(encodeMessage(message, { compact: true }))
}

function expectRejected(result: DecodeResult, code: ErrorCode, fragment?: string): void {
  expect(result).toMatchObject({ ok: false, error: { code } })
  if (!result.ok && fragment !== undefined) expect(result.error.message).toContain(fragment)
}

type Rows = {
  collections: unknown[]
  replicas: unknown[]
  wall: number
  batch: unknown[][]
} & Record<string, unknown>

/** The compact frame of `message` as parsed JSON, to edit. */
function compactRaw(message: ChangesMessage | SnapshotMessage = changes): Rows {
  return JSON.parse(encodeMessage(message, { compact: true })) as Rows
}

function decodeEdited(edit: (frame: Rows) => void): DecodeResult {
  const frame = compactRaw()
  edit(frame)
  return decodeMessage(JSON.stringify(frame))
}

const replicaIds = fc.constantFrom(alice, bob, carol, asReplicaId('d-1'), asReplicaId('writer_2'))
/** A plain JSON object, as a peer's parser would build it (ordinary prototype). */
const jsonObject = fc
  .dictionary(
    fc.string({ maxLength: 8 }).filter((key) => key !== '__proto__'),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: 4 },
  )
  .map((value) => JSON.parse(JSON.stringify(value)) as JsonObject)

const anyChange: fc.Arbitrary<Change> = fc
  .record({
    collection: fc.constantFrom('notes', 'tasks', 'a.b:c-d'),
    id: fc.string({ minLength: 1, maxLength: 40 }),
    replica: replicaIds,
    counter: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    others: fc.dictionary(replicaIds, fc.integer({ min: 1, max: 2 ** 40 }), { maxKeys: 4 }),
    wall: fc.integer({ min: 0, max: 999_999_999_999_999 }),
    tick: fc.integer({ min: 0, max: 999_999 }),
    kind: fc.constantFrom('put', 'delete', 'patch'),
    value: jsonObject,
    base: jsonObject,
    floor: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: null }),
  })
  .map(({ collection, id, replica, counter, others, wall, tick, kind, value, base, floor }) => {
    const context: Record<string, number> = { ...others }
    if ((context[replica] ?? 0) >= counter) delete context[replica]
    const fields = Object.fromEntries(Object.entries(value).filter(([key]) => !Object.hasOwn(base, key)))
    const stamps = Object.fromEntries(Object.keys(base).map((key) => [key, stamp(t0, 1, bob)]))
    const op: Change['op'] =
      kind === 'put'
        ? { type: 'put', value }
        : kind === 'delete'
          ? { type: 'delete' }
          : { type: 'patch', fields, base, stamps, floor: floor === null ? null : stamp(floor, 0, carol) }
    return {
      collection,
      id: asRecordId(id),
      dot: [replica, counter] as const,
      context,
      hlc: stamp(wall, tick, replica),
      op,
    }
  })

describe(`compact batches (SEED=${seed})`, () => {
  describe('round trips', () => {
    it('decodes to exactly the changes the plain form decodes to', () => {
      for (const message of [changes, snapshot, { ...changes, batch: [] }]) {
        const compact = roundTrip(message)
        expect(compact).toStrictEqual(decodeMessage(encodeMessage(message)))
        expect(compact).toStrictEqual({ ok: true, message })
      }
    })

    it('decodes every empty context, compact or plain, to the one shared frozen EMPTY_VV', () => {
      for (const compact of [true, false]) {
        const decoded = decodeMessage(encodeMessage(changes, { compact }))
        if (!decoded.ok || decoded.message.type !== 'changes') throw new Error('expected a changes message')
        const [first, , last] = decoded.message.batch
        expect(last?.context).toBe(EMPTY_VV)
        expect(Object.isFrozen(last?.context)).toBe(true)
        expect(first?.context).toEqual({ alice: 2, bob: 5 })
      }
    })

    it('writes each collection and replica id once per frame, and no change objects', () => {
      const text = encodeMessage(changes, { compact: true })
      const frame = JSON.parse(text) as Rows
      expect(frame.collections).toEqual(['notes', 'tasks'])
      expect(frame.replicas).toEqual(['alice', 'bob', 'carol'])
      expect(frame.wall).toBe(0)
      expect(frame.batch.map((row) => row[5])).toEqual([t0, t0 + 500, 0])
      const later = JSON.parse(encodeMessage({ ...changes, batch: [patch, put] }, { compact: true })) as Rows
      expect(later.wall).toBe(t0)
      expect(later.batch.map((row) => row[5])).toEqual([500, 0])
      expect(frame.batch.every(Array.isArray)).toBe(true)
      expect(text.split('"alice"').length - 1).toBe(1)
      expect(text.length).toBeLessThan(encodeMessage(changes).length * 0.75)
    })

    it('round-trips arbitrary valid batches, byte for byte however they are encoded', () => {
      fc.assert(
        fc.property(fc.array(anyChange, { maxLength: 12 }), fc.boolean(), (batch, isSnapshot) => {
          const message: ChangesMessage | SnapshotMessage = isSnapshot
            ? { type: 'snapshot', space, cursor: 7, page: 0, last: true, batch }
            : { type: 'changes', space, from: 0, to: batch.length + 1, batch }
          const text = encodeMessage(message, { compact: true })
          expect(decodeMessage(text)).toStrictEqual({ ok: true, message })
          const cached = { compact: true, rowOp: (change: Change) => encodeRowOp(change.op) }
          expect(
            message.type === 'snapshot'
              ? encodeSnapshotMessage(message, cached)
              : encodeChangesMessage(message, cached),
          ).toBe(text)
        }),
        runs,
      )
    })

    it('gives the plain text when compact is off, and for messages without a batch', () => {
      expect(encodeChangesMessage(changes, { changeText: encodeChange })).toBe(encodeMessage(changes))
      expect(encodeSnapshotMessage(snapshot)).toBe(encodeMessage(snapshot))
      const ack: Message = { type: 'ack', space, upTo: 3 }
      expect(encodeMessage(ack, { compact: true })).toBe(encodeMessage(ack))
    })

    it('falls back to change objects for a change whose stamp is not its writer’s', () => {
      const forged: Change = { ...put, hlc: stamp(t0, 0, bob) }
      const text = encodeMessage({ ...changes, batch: [forged] }, { compact: true })
      expect(JSON.parse(text)).not.toHaveProperty('replicas')
      expectRejected(decodeMessage(text), ErrorCode.InvalidMessage, 'stamped by bob')
    })
  })

  describe('refuses hostile rows with stable codes', () => {
    const cases: readonly [string, (frame: Rows) => void, string][] = [
      ['a batch that is no array', (f) => Object.assign(f, { batch: {} }), 'changes.batch'],
      ['rows without their tables', (f) => Reflect.deleteProperty(f, 'collections'), 'changes.collections'],
      [
        'change objects with tables',
        (f) => Object.assign(f, { batch: [JSON.parse(encodeChange(put))] }),
        'changes.batch[0]: expected a change row',
      ],
      ['a row not an array', (f) => Object.assign(f.batch, { 0: { a: 1 } }), 'changes.batch[0]'],
      ['an unknown op code', (f) => f.batch[0]?.splice(7, 1, 9), 'changes.batch[0][7]'],
      ['a fractional op code', (f) => f.batch[0]?.splice(7, 1, 0.5), 'changes.batch[0][7]'],
      ['a short row', (f) => f.batch[0]?.pop(), 'changes.batch[0]: has 8 items; expected 9'],
      ['a long row', (f) => f.batch[2]?.push(null), 'changes.batch[2]: has 9 items; expected 8'],
      ['a collection index past the table', (f) => f.batch[0]?.splice(0, 1, 2), 'changes.batch[0][0]'],
      ['a negative replica index', (f) => f.batch[0]?.splice(2, 1, -1), 'changes.batch[0][2]'],
      ['a string replica index', (f) => f.batch[0]?.splice(2, 1, '0'), 'changes.batch[0][2]'],
      ['an empty id', (f) => f.batch[0]?.splice(1, 1, ''), 'changes.batch[0][1]'],
      ['a zero counter', (f) => f.batch[0]?.splice(3, 1, 0), 'changes.batch[0][3]'],
      ['an odd context', (f) => f.batch[0]?.splice(4, 1, [1]), 'changes.batch[0][4]'],
      ['a context naming a replica twice', (f) => f.batch[0]?.splice(4, 1, [1, 2, 1, 3]), 'twice'],
      [
        'a context covering its own dot',
        (f) => f.batch[0]?.splice(4, 1, [0, 3]),
        "covers the change's own dot",
      ],
      ['a context counter of 0', (f) => f.batch[0]?.splice(4, 1, [1, 0]), 'changes.batch[0][4][1]'],
      ['a negative wall time', (f) => f.batch[0]?.splice(5, 1, -1), 'changes.batch[0][5]'],
      ['a wall time past 15 digits', (f) => f.batch[0]?.splice(5, 1, 1e15), 'changes.batch[0][5]'],
      [
        'a wall time past the largest stamp',
        (f) => Object.assign(f, { wall: 999_999_999_999_000 }),
        'changes.batch[0][5]',
      ],
      [
        'a frame without its base wall time',
        (f) => Reflect.deleteProperty(f, 'wall'),
        'changes.wall: missing',
      ],
      ['a fractional base wall time', (f) => Object.assign(f, { wall: 0.5 }), 'changes.wall'],
      ['a tick past 6 digits', (f) => f.batch[0]?.splice(6, 1, 1_000_000), 'changes.batch[0][6]'],
      ['a put of an array', (f) => f.batch[0]?.splice(8, 1, [1]), 'changes.batch[0][8]'],
      [
        'a put with a __proto__ key',
        (f) => f.batch[0]?.splice(8, 1, JSON.parse('{"__proto__":{"x":1}}')),
        '__proto__',
      ],
      [
        'a patch base sharing a field',
        (f) => f.batch[1]?.splice(9, 1, { title: 'x' }),
        'changes.batch[1].op.base',
      ],
      [
        'a patch stamp that is no stamp',
        (f) => f.batch[1]?.splice(10, 1, { tags: 'x' }),
        'changes.batch[1].op.stamps.tags',
      ],
      ['a bad collection name', (f) => f.collections.splice(0, 1, 'no spaces'), 'changes.collections[0]'],
      ['a bad replica id', (f) => f.replicas.splice(0, 1, '-x'), 'changes.replicas[0]'],
      ['a replica listed twice', (f) => f.replicas.splice(1, 1, 'alice'), 'listed twice'],
      ['a missing table', (f) => Reflect.deleteProperty(f, 'replicas'), 'changes.replicas'],
    ]

    it.each(cases)('%s', (_, edit, fragment) => {
      expectRejected(decodeEdited(edit), ErrorCode.InvalidMessage, fragment)
    })

    it('refuses more rows than the batch limit, before reading them', () => {
      const limits = { ...DEFAULT_LIMITS, maxBatch: 2 }
      expectRejected(
        decodeMessage(encodeMessage(changes, { compact: true }), limits),
        ErrorCode.BatchTooLarge,
        'changes.batch',
      )
    })

    it('refuses a context longer than the vector limit', () => {
      const limits = { ...DEFAULT_LIMITS, maxVectorEntries: 2 }
      expectRejected(
        decodeMessage(encodeMessage({ ...changes, batch: [patch] }, { compact: true }), limits),
        ErrorCode.InvalidMessage,
        'changes.batch[0][4]: has 3 entries',
      )
    })

    it('never throws, and answers only codec codes, whatever a row holds', () => {
      const frame = compactRaw(snapshot)
      const paths: [number, number][] = []
      for (const [r, row] of frame.batch.entries()) for (let i = 0; i < row.length; i++) paths.push([r, i])
      fc.assert(
        fc.property(fc.constantFrom(...paths), fc.jsonValue(), ([r, i], value) => {
          const copy = compactRaw(snapshot)
          ;(copy.batch[r] as unknown[])[i] = value
          for (const result of [decodeMessage(JSON.stringify(copy)), validateMessage(copy)]) {
            if (!result.ok)
              expect([ErrorCode.InvalidMessage, ErrorCode.BatchTooLarge]).toContain(result.error.code)
            else expect(decodeMessage(encodeMessage(result.message, { compact: true }))).toStrictEqual(result)
          }
        }),
        runs,
      )
    })

    it('never throws on arbitrary tables and rows', () => {
      fc.assert(
        fc.property(fc.jsonValue(), fc.jsonValue(), fc.jsonValue(), (collections, replicas, batch) => {
          const result = validateMessage({
            type: 'snapshot',
            space,
            cursor: 1,
            page: 0,
            last: true,
            collections,
            replicas,
            batch,
          })
          if (!result.ok)
            expect([ErrorCode.InvalidMessage, ErrorCode.BatchTooLarge]).toContain(result.error.code)
        }),
        runs,
      )
    })
  })

  describe('hello.features', () => {
    const hello: HelloMessage = {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId: alice,
      spaces: [space],
      have: {},
    }

    it('round-trips the features it knows, each once, and drops the ones it does not', () => {
      const result = decodeMessage(JSON.stringify({ ...hello, features: ['zstd', 'compact', 'compact'] }))
      expect(result).toStrictEqual({ ok: true, message: { ...hello, features: [Feature.Compact] } })
      if (result.ok) expect(decodeMessage(encodeMessage(result.message))).toStrictEqual(result)
    })

    it('leaves features out when none is known', () => {
      expect(decodeMessage(JSON.stringify({ ...hello, features: ['zstd'] }))).toStrictEqual({
        ok: true,
        message: hello,
      })
      expect(encodeMessage({ ...hello, features: [] })).not.toContain('features')
    })

    it.each([
      ['not an array', 'compact', 'hello.features'],
      ['a name that is no string', ['compact', 1], 'hello.features[1]'],
      ['too many names', Array.from({ length: 65 }, () => 'x'), 'at most 64'],
    ])('refuses %s', (_, features, fragment) => {
      expectRejected(
        decodeMessage(JSON.stringify({ ...hello, features })),
        ErrorCode.InvalidMessage,
        fragment,
      )
    })
  })
})
