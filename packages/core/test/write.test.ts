import { describe, expect, it } from 'vitest'
import { type Change, versionValue } from '../src/change.js'
import { ErrorCode } from '../src/errors.js'
import { formatHlc, type HlcStamp } from '../src/hlc.js'
import { asRecordId, asReplicaId, type ReplicaId } from '../src/ids.js'
import type { JsonObject } from '../src/json.js'
import { createLwwResolver } from '../src/lww-resolver.js'
import { createMergeResolver } from '../src/merge-resolver.js'
import { applyChange, type RecordState, recordContext } from '../src/record.js'
import type { Resolver } from '../src/resolver.js'
import { makeChange, type WriteIntent } from '../src/write.js'
import { expectChorusError } from './expect-chorus-error.js'

const alice = asReplicaId('alice')
const bob = asReplicaId('bob')
const carol = asReplicaId('carol')
const id = asRecordId('note-1')
const lww = createLwwResolver()
const merge = createMergeResolver()

function stamp(wall: number, replica: ReplicaId): HlcStamp {
  return formatHlc({ wall, counter: 0, replica })
}

function write(
  record: RecordState | undefined,
  intent: WriteIntent,
  replica: ReplicaId,
  counter: number,
  wall: number,
  resolver: Resolver = lww,
): Change {
  return makeChange({
    collection: 'notes',
    id,
    record,
    resolver,
    intent,
    dot: [replica, counter],
    hlc: stamp(wall, replica),
  })
}

function stateOf(...changes: Change[]): RecordState {
  let state: RecordState | undefined
  for (const change of changes) state = applyChange(state, change).state
  return state as RecordState
}

const created = write(
  undefined,
  { type: 'put', value: { title: 'Plan', body: 'draft', done: false } },
  alice,
  1,
  10,
)
const titleEdit = write(stateOf(created), { type: 'patch', fields: { title: 'Plan B' } }, bob, 4, 20)
const bodyEdit = write(stateOf(created), { type: 'patch', fields: { body: 'final' } }, carol, 2, 30)
/** Two concurrent edits of a shared record: two siblings. */
const conflicted = stateOf(created, titleEdit, bodyEdit)

describe('makeChange', () => {
  it('makes a put of the whole value, named by the given dot and stamp', () => {
    const change = write(undefined, { type: 'put', value: { title: 'Hi' } }, alice, 7, 99)
    expect(change).toEqual({
      collection: 'notes',
      id,
      dot: [alice, 7],
      context: {},
      hlc: stamp(99, alice),
      op: { type: 'put', value: { title: 'Hi' } },
    })
  })

  it('makes a delete as a tombstone', () => {
    const change = write(stateOf(created), { type: 'delete' }, bob, 1, 20)
    expect(change.op).toEqual({ type: 'delete' })
    expect(versionValue(change)).toBeNull()
  })

  it('gives every write the context of everything the writer holds of the record', () => {
    expect(conflicted.versions).toHaveLength(2)
    for (const intent of [
      { type: 'put', value: { title: 'x' } },
      { type: 'patch', fields: { title: 'x' } },
      { type: 'delete' },
    ] satisfies WriteIntent[]) {
      const change = write(conflicted, intent, alice, 2, 40)
      expect(change.context).toEqual(recordContext(conflicted))
      expect(change.context).toEqual({ alice: 1, bob: 4, carol: 2 })
      expect(applyChange(conflicted, change).state.versions).toEqual([change])
    }
  })

  it('makes a patch carry the view it was written on, without the fields it sets', () => {
    const view = merge.resolve(conflicted.versions)
    const change = write(conflicted, { type: 'patch', fields: { done: true, extra: 1 } }, alice, 2, 40, merge)
    expect(change.op).toEqual({
      type: 'patch',
      fields: { done: true, extra: 1 },
      base: { title: 'Plan B', body: 'final' },
      stamps: { title: titleEdit.hlc, body: bodyEdit.hlc },
      floor: view.floor,
    })
    expect(versionValue(change)).toEqual({ title: 'Plan B', body: 'final', done: true, extra: 1 })
  })

  it('takes the base from the collection resolver, so an lww writer patches the lww pick', () => {
    const change = write(conflicted, { type: 'patch', fields: { done: true } }, alice, 2, 40, lww)
    expect(versionValue(change)).toEqual({ title: 'Plan', body: 'final', done: true })
    expect(change.op).toMatchObject({
      stamps: { title: created.hlc, body: bodyEdit.hlc },
      floor: created.hlc,
    })
  })

  it('makes a patch of a missing record with an empty base and no floor', () => {
    const change = write(undefined, { type: 'patch', fields: { title: 'first' } }, alice, 1, 10)
    expect(change.context).toEqual({})
    expect(change.op).toEqual({
      type: 'patch',
      fields: { title: 'first' },
      base: {},
      stamps: {},
      floor: null,
    })
  })

  it('makes a patch of a deleted record with an empty base floored at the deletion', () => {
    const gone = write(stateOf(created), { type: 'delete' }, bob, 1, 20)
    const change = write(stateOf(created, gone), { type: 'patch', fields: { title: 'back' } }, alice, 2, 30)
    expect(change.context).toEqual({ alice: 1, bob: 1 })
    expect(change.op).toEqual({
      type: 'patch',
      fields: { title: 'back' },
      base: {},
      stamps: {},
      floor: gone.hlc,
    })
  })

  it('keeps fields named like Object.prototype members in the base, with their stamps', () => {
    const odd = write(undefined, { type: 'put', value: { constructor: 'c', toString: 't' } }, alice, 1, 10)
    const change = write(stateOf(odd), { type: 'patch', fields: { title: 'x' } }, bob, 1, 20)
    expect(change.op).toEqual({
      type: 'patch',
      fields: { title: 'x' },
      base: { constructor: 'c', toString: 't' },
      stamps: { constructor: odd.hlc, toString: odd.hlc },
      floor: odd.hlc,
    })
  })

  it('does not change the record it writes on', () => {
    const before = JSON.stringify(conflicted)
    write(conflicted, { type: 'patch', fields: { title: 'x' } }, alice, 2, 40, merge)
    expect(JSON.stringify(conflicted)).toBe(before)
  })
})

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

const cycle: Record<string, unknown> = { title: 'loop' }
cycle.self = cycle

const notJson: readonly [string, unknown, string][] = [
  ['undefined inside', { title: 'x', note: undefined }, '$.note'],
  ['a Date inside', { when: new Date(0) }, 'Date'],
  ['a Date as the value', new Date(0), 'Date'],
  ['a function inside', { run: () => 1 }, 'function'],
  ['NaN inside', { n: Number.NaN }, 'NaN'],
  ['Infinity deep inside', { a: { b: [1, Number.POSITIVE_INFINITY] } }, '$.a.b[1]'],
  ['a cycle', cycle, 'cycle'],
  ['a class instance inside', { at: new Point(1, 2) }, 'Point'],
  ['a Map inside', { tags: new Map() }, 'Map'],
  ['a bigint inside', { n: 1n }, 'bigint'],
  ['an array as the value', ['a', 'b'], 'array'],
  ['null as the value', null, 'null'],
  ['a string as the value', 'hello', 'string'],
  ['a __proto__ key', JSON.parse('{"__proto__": {"admin": true}}') as unknown, '__proto__'],
]

describe('makeChange refuses values that are not plain JSON objects', () => {
  it.each(notJson)('a put with %s is invalid-argument', (_, value, fragment) => {
    const error = expectChorusError(
      () => write(undefined, { type: 'put', value: value as JsonObject }, alice, 1, 10),
      ErrorCode.InvalidArgument,
    )
    expect(error.message).toContain('put value')
    expect(error.message).toContain(fragment)
  })

  it.each(notJson)('a patch with %s is invalid-argument', (_, value, fragment) => {
    const error = expectChorusError(
      () => write(stateOf(created), { type: 'patch', fields: value as JsonObject }, alice, 2, 20),
      ErrorCode.InvalidArgument,
    )
    expect(error.message).toContain('patch fields')
    expect(error.message).toContain(fragment)
  })

  it('refuses a write that is neither put, patch nor delete', () => {
    expectChorusError(
      () => write(undefined, { type: 'upsert' } as unknown as WriteIntent, alice, 1, 10),
      ErrorCode.InvalidArgument,
    )
  })
})
