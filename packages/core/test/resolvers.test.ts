import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { ErrorCode } from '../src/errors.js'
import { formatHlc, type HlcStamp } from '../src/hlc.js'
import { asRecordId, asReplicaId, type ReplicaId } from '../src/ids.js'
import type { JsonObject } from '../src/json.js'
import { createLwwResolver } from '../src/lww-resolver.js'
import { createManualResolver } from '../src/manual-resolver.js'
import { createMergeResolver, type MergeFunction } from '../src/merge-resolver.js'
import { applyChange, type RecordState } from '../src/record.js'
import type { ConflictVersion, Resolver } from '../src/resolver.js'
import { builtInResolver, createResolverLookup } from '../src/resolvers.js'
import { makeChange, type WriteIntent } from '../src/write.js'
import { expectChorusError } from './expect-chorus-error.js'

const alice = asReplicaId('alice')
const bob = asReplicaId('bob')
const carol = asReplicaId('carol')
const id = asRecordId('note-1')
const t0 = 1_700_000_000_000

function stamp(wall: number, replica: ReplicaId, counter = 0): HlcStamp {
  return formatHlc({ wall: t0 + wall, counter, replica })
}

/** A replica's local write, as the SDK would make it. */
function writeOn(
  record: RecordState | undefined,
  resolver: Resolver,
  intent: WriteIntent,
  replica: ReplicaId,
  counter: number,
  wall: number,
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

/** The versions of a record that received `changes`, in canonical order. */
function versionsOf(...changes: Change[]): readonly Change[] {
  return stateOf(...changes).versions
}

describe('lww resolver', () => {
  const lww = createLwwResolver()

  it('reads the version with the highest hybrid-clock stamp, whatever the arrival order', () => {
    const a = writeOn(undefined, lww, { type: 'put', value: { title: 'from alice' } }, alice, 1, 10)
    const b = writeOn(undefined, lww, { type: 'put', value: { title: 'from bob' } }, bob, 1, 30)
    const c = writeOn(undefined, lww, { type: 'put', value: { title: 'from carol' } }, carol, 1, 20)
    for (const order of [
      [a, b, c],
      [c, b, a],
      [b, a, c],
    ]) {
      const resolved = lww.resolve(versionsOf(...order))
      expect(resolved.value).toEqual({ title: 'from bob' })
      expect(resolved.stamps).toEqual({ title: b.hlc })
      expect(resolved.floor).toBe(b.hlc)
      expect(resolved.conflict).toBeUndefined()
    }
  })

  it('breaks a tie of wall time and counter by replica id', () => {
    const a = writeOn(undefined, lww, { type: 'put', value: { title: 'alice' } }, alice, 1, 10)
    const b = writeOn(undefined, lww, { type: 'put', value: { title: 'bob' } }, bob, 1, 10)
    expect(lww.resolve(versionsOf(a, b)).value).toEqual({ title: 'bob' })
    expect(lww.resolve(versionsOf(b, a)).value).toEqual({ title: 'bob' })
  })

  it('reads a record as deleted when the latest version is a deletion', () => {
    const a = writeOn(undefined, lww, { type: 'put', value: { title: 'x' } }, alice, 1, 10)
    const gone = writeOn(undefined, lww, { type: 'delete' }, bob, 1, 20)
    expect(lww.resolve(versionsOf(a, gone))).toEqual({ value: undefined, stamps: {}, floor: gone.hlc })
  })

  it('keeps the field stamps a patch inherited from what its writer read', () => {
    const first = writeOn(undefined, lww, { type: 'put', value: { title: 'a', body: 'b' } }, alice, 1, 10)
    const edit = writeOn(stateOf(first), lww, { type: 'patch', fields: { title: 'A' } }, bob, 1, 20)
    expect(lww.resolve(versionsOf(first, edit))).toEqual({
      value: { title: 'A', body: 'b' },
      stamps: { title: edit.hlc, body: first.hlc },
      floor: first.hlc,
    })
  })
})

describe('merge resolver', () => {
  const merge = createMergeResolver()
  const start = writeOn(
    undefined,
    merge,
    { type: 'put', value: { title: 'Plan', body: 'draft', done: false } },
    alice,
    1,
    10,
  )
  const base = stateOf(start)

  it('keeps both concurrent edits of different fields', () => {
    const title = writeOn(base, merge, { type: 'patch', fields: { title: 'Plan B' } }, bob, 1, 20)
    const body = writeOn(base, merge, { type: 'patch', fields: { body: 'final' } }, carol, 1, 30)
    const resolved = merge.resolve(versionsOf(start, title, body))
    expect(resolved.value).toEqual({ title: 'Plan B', body: 'final', done: false })
    expect(resolved.stamps).toEqual({ title: title.hlc, body: body.hlc, done: start.hlc })
    expect(merge.resolve(versionsOf(body, title, start))).toEqual(resolved)
  })

  it('takes the later write of a field both edited', () => {
    const early = writeOn(base, merge, { type: 'patch', fields: { title: 'early' } }, carol, 1, 20)
    const late = writeOn(base, merge, { type: 'patch', fields: { title: 'late' } }, bob, 1, 25)
    expect(merge.resolve(versionsOf(early, late)).value).toEqual({
      title: 'late',
      body: 'draft',
      done: false,
    })
    expect(merge.resolve(versionsOf(late, early)).value).toEqual({
      title: 'late',
      body: 'draft',
      done: false,
    })
  })

  it('reads a record as deleted when the deletion is later than every concurrent edit', () => {
    const edit = writeOn(base, merge, { type: 'patch', fields: { title: 'edited' } }, bob, 1, 20)
    const gone = writeOn(base, merge, { type: 'delete' }, carol, 1, 30)
    expect(merge.resolve(versionsOf(edit, gone))).toEqual({ value: undefined, stamps: {}, floor: gone.hlc })
  })

  it('lets edits win over an earlier concurrent deletion', () => {
    const gone = writeOn(base, merge, { type: 'delete' }, carol, 1, 20)
    const title = writeOn(base, merge, { type: 'patch', fields: { title: 'kept' } }, bob, 1, 30)
    const done = writeOn(base, merge, { type: 'patch', fields: { done: true } }, alice, 2, 25)
    expect(merge.resolve(versionsOf(gone, title, done)).value).toEqual({
      title: 'kept',
      body: 'draft',
      done: true,
    })
  })

  it('removes a field that a later put dropped, despite an older concurrent patch of it', () => {
    const patchBody = writeOn(base, merge, { type: 'patch', fields: { body: 'edited' } }, bob, 1, 20)
    const replace = writeOn(base, merge, { type: 'put', value: { title: 'New plan' } }, carol, 1, 30)
    const resolved = merge.resolve(versionsOf(patchBody, replace))
    expect(resolved.value).toEqual({ title: 'New plan' })
    expect(resolved.floor).toBe(replace.hlc)
  })

  it('keeps a field from a patch later than the put that dropped it', () => {
    const replace = writeOn(base, merge, { type: 'put', value: { title: 'New plan' } }, carol, 1, 20)
    const patchBody = writeOn(base, merge, { type: 'patch', fields: { body: 'edited' } }, bob, 1, 30)
    expect(merge.resolve(versionsOf(patchBody, replace)).value).toEqual({ title: 'New plan', body: 'edited' })
  })

  it('does not let a patch of a record it never saw remove fields a concurrent put created', () => {
    const created = writeOn(undefined, merge, { type: 'put', value: { title: 'T', body: 'B' } }, alice, 1, 10)
    const blind = writeOn(undefined, merge, { type: 'patch', fields: { done: true } }, bob, 1, 20)
    expect(merge.resolve(versionsOf(created, blind)).value).toEqual({ title: 'T', body: 'B', done: true })
  })

  it('treats fields named like Object.prototype members as plain fields', () => {
    const created = writeOn(
      undefined,
      merge,
      { type: 'put', value: { constructor: 'c', toString: 1 } },
      alice,
      1,
      10,
    )
    const edit = writeOn(stateOf(created), merge, { type: 'patch', fields: { toString: 2 } }, bob, 1, 20)
    const other = writeOn(stateOf(created), merge, { type: 'patch', fields: { title: 't' } }, carol, 1, 15)
    const resolved = merge.resolve(versionsOf(created, edit, other))
    expect(resolved.value).toEqual({ constructor: 'c', toString: 2, title: 't' })
    expect(Object.hasOwn(resolved.value as JsonObject, 'constructor')).toBe(true)
    expect(resolved.stamps).toEqual({ constructor: created.hlc, toString: edit.hlc, title: other.hlc })
  })

  it('passes a single version through unchanged', () => {
    expect(merge.resolve([start])).toEqual(createLwwResolver().resolve([start]))
  })
})

describe('merge resolver with a user merge function', () => {
  const lww = createLwwResolver()
  const a = writeOn(undefined, lww, { type: 'put', value: { votes: 2 } }, alice, 1, 30)
  const b = writeOn(undefined, lww, { type: 'put', value: { votes: 5 } }, bob, 1, 10)
  const gone = writeOn(undefined, lww, { type: 'delete' }, carol, 1, 20)

  it('gets the concurrent versions oldest first and its result is what the application reads', () => {
    const calls: (readonly ConflictVersion[])[] = []
    const sum: MergeFunction = (versions) => {
      calls.push(versions)
      return { votes: versions.reduce((total, version) => total + Number(version.value?.votes ?? 0), 0) }
    }
    const resolver = createMergeResolver({ merge: sum })
    const resolved = resolver.resolve(versionsOf(a, gone, b))
    expect(calls).toEqual([
      [
        { value: { votes: 5 }, replicaId: bob, hlc: b.hlc },
        { value: null, replicaId: carol, hlc: gone.hlc },
        { value: { votes: 2 }, replicaId: alice, hlc: a.hlc },
      ],
    ])
    expect(resolved).toEqual({ value: { votes: 7 }, stamps: { votes: a.hlc }, floor: a.hlc })
  })

  it('reads the record as deleted when the function returns null', () => {
    const resolver = createMergeResolver({ merge: () => null })
    expect(resolver.resolve(versionsOf(a, b))).toEqual({ value: undefined, stamps: {}, floor: a.hlc })
  })

  it('is not consulted for a single version', () => {
    let called = false
    const resolver = createMergeResolver({
      merge: () => {
        called = true
        return {}
      },
    })
    expect(resolver.resolve(versionsOf(b)).value).toEqual({ votes: 5 })
    expect(called).toBe(false)
  })

  it('turns a throwing merge function into invalid-argument, keeping the cause', () => {
    const failure = new Error('merge exploded')
    const resolver = createMergeResolver({
      merge: () => {
        throw failure
      },
    })
    const error = expectChorusError(() => resolver.resolve(versionsOf(a, b)), ErrorCode.InvalidArgument)
    expect(error.cause).toBe(failure)
  })

  it.each([
    ['a Date inside', () => ({ at: new Date(0) }) as unknown as JsonObject],
    ['an undefined field', () => ({ votes: undefined }) as unknown as JsonObject],
    ['NaN', () => ({ votes: Number.NaN })],
    ['an array', () => [1, 2] as unknown as JsonObject],
    ['a string', () => 'votes' as unknown as JsonObject],
  ])('refuses a merge result with %s as invalid-argument', (_, merge) => {
    const resolver = createMergeResolver({ merge })
    expectChorusError(() => resolver.resolve(versionsOf(a, b)), ErrorCode.InvalidArgument)
  })
})

describe('manual resolver', () => {
  const manual = createManualResolver()
  const lww = createLwwResolver()
  const a = writeOn(undefined, lww, { type: 'put', value: { title: 'alice' } }, alice, 1, 10)
  const b = writeOn(undefined, lww, { type: 'put', value: { title: 'bob' } }, bob, 1, 30)
  const gone = writeOn(undefined, lww, { type: 'delete' }, carol, 1, 20)

  it('reads the last-write-wins pick provisionally and lists every version, a deletion as null', () => {
    const versions = versionsOf(b, gone, a)
    const resolved = manual.resolve(versions)
    const { conflict, ...provisional } = resolved
    expect(provisional).toEqual(lww.resolve(versions))
    expect(resolved.value).toEqual({ title: 'bob' })
    expect(conflict).toEqual([
      { value: { title: 'alice' }, replicaId: alice, hlc: a.hlc },
      { value: null, replicaId: carol, hlc: gone.hlc },
      { value: { title: 'bob' }, replicaId: bob, hlc: b.hlc },
    ])
  })

  it('shows a deleted provisional value when the deletion is the latest version', () => {
    const later = writeOn(undefined, lww, { type: 'delete' }, carol, 2, 40)
    const resolved = manual.resolve(versionsOf(a, later))
    expect(resolved.value).toBeUndefined()
    expect(resolved.conflict?.map((version) => version.value)).toEqual([{ title: 'alice' }, null])
  })

  it('reports no conflict for a single version', () => {
    const resolved = manual.resolve(versionsOf(a))
    expect(resolved).toEqual(lww.resolve([a]))
    expect('conflict' in resolved).toBe(false)
  })

  it('reports no conflict for concurrent versions of one value: two devices that chose the same, or both deleted', () => {
    const dave = asReplicaId('dave')
    const same = writeOn(undefined, lww, { type: 'put', value: { title: 'alice' } }, dave, 1, 60)
    const resolved = manual.resolve(versionsOf(a, same))
    expect(versionsOf(a, same)).toHaveLength(2)
    expect(resolved).toEqual(lww.resolve(versionsOf(a, same)))
    expect('conflict' in resolved).toBe(false)
    const goneToo = writeOn(undefined, lww, { type: 'delete' }, dave, 2, 70)
    expect(versionsOf(gone, goneToo)).toHaveLength(2)
    expect('conflict' in manual.resolve(versionsOf(gone, goneToo))).toBe(false)
    // A value equal to one version but not the other is still a conflict.
    expect(manual.resolve(versionsOf(a, same, b)).conflict).toHaveLength(3)
    expect(manual.resolve(versionsOf(a, gone)).conflict).toHaveLength(2)
  })

  it('reports no conflict once a write that saw every version lands', () => {
    const state = stateOf(a, b, gone)
    const choice = writeOn(state, manual, { type: 'put', value: { title: 'both' } }, alice, 2, 50)
    const settled = applyChange(state, choice).state
    expect(settled.versions).toEqual([choice])
    expect(manual.resolve(settled.versions).conflict).toBeUndefined()
  })
})

describe('resolver configuration', () => {
  it('uses lww for every collection by default', () => {
    expect(createResolverLookup()('notes').kind).toBe('lww')
    expect(createResolverLookup({ tasks: 'merge' })('notes').kind).toBe('lww')
  })

  it('maps collections to built-in names or resolver objects', () => {
    const custom: Resolver = { kind: 'custom', resolve: (versions) => createLwwResolver().resolve(versions) }
    const lookup = createResolverLookup({ tasks: 'merge', notes: 'manual', votes: custom, log: 'lww' })
    expect(lookup('tasks').kind).toBe('merge')
    expect(lookup('notes').kind).toBe('manual')
    expect(lookup('log').kind).toBe('lww')
    expect(lookup('votes')).toBe(custom)
    expect(lookup('tasks')).toBe(lookup('tasks'))
  })

  it('treats a collection named like an Object.prototype member as unconfigured', () => {
    const lookup = createResolverLookup({ tasks: 'merge' })
    expect(lookup('constructor').kind).toBe('lww')
    expect(lookup('toString').kind).toBe('lww')
  })

  it('refuses an unknown resolver name in a map when the lookup is created', () => {
    const error = expectChorusError(
      () => createResolverLookup({ notes: 'fancy' as 'lww' }),
      ErrorCode.InvalidArgument,
    )
    expect(error.message).toContain('fancy')
  })

  it('refuses something that is not a resolver in a map', () => {
    expectChorusError(
      () => createResolverLookup({ notes: { kind: 'broken' } as unknown as Resolver }),
      ErrorCode.InvalidArgument,
    )
  })

  it('asks a function config once per collection', () => {
    const asked: string[] = []
    const lookup = createResolverLookup((collection) => {
      asked.push(collection)
      return collection === 'tasks' ? 'merge' : 'manual'
    })
    expect(lookup('tasks').kind).toBe('merge')
    expect(lookup('notes').kind).toBe('manual')
    expect(lookup('tasks').kind).toBe('merge')
    expect(asked).toEqual(['tasks', 'notes'])
  })

  it('refuses an unknown name returned by a function config when that collection is looked up', () => {
    const lookup = createResolverLookup((collection) => (collection === 'odd' ? ('fancy' as 'lww') : 'lww'))
    expect(lookup('notes').kind).toBe('lww')
    expectChorusError(() => lookup('odd'), ErrorCode.InvalidArgument)
  })

  it('builds the built-ins by name and refuses others', () => {
    expect(builtInResolver('lww').kind).toBe('lww')
    expect(builtInResolver('merge').kind).toBe('merge')
    expect(builtInResolver('manual').kind).toBe('manual')
    const error = expectChorusError(() => builtInResolver('crdt'), ErrorCode.InvalidArgument)
    expect(error.message).toContain("'lww', 'merge', 'manual'")
  })
})

describe('resolveValue of the built-in resolvers', () => {
  const resolvers: Resolver[] = [
    createLwwResolver(),
    createMergeResolver(),
    createMergeResolver({ merge: (versions) => versions[0]?.value ?? null }),
    createManualResolver(),
  ]

  it('reads exactly the value of resolve, for single versions, patches, deletions and conflicts', () => {
    for (const resolver of resolvers) {
      const put = writeOn(
        undefined,
        resolver,
        { type: 'put', value: { title: 'a', body: 'b' } },
        alice,
        1,
        10,
      )
      const patch = writeOn(stateOf(put), resolver, { type: 'patch', fields: { title: 'A' } }, bob, 1, 20)
      const gone = writeOn(stateOf(put), resolver, { type: 'delete' }, carol, 1, 30)
      const rival = writeOn(undefined, resolver, { type: 'put', value: { body: 'c' } }, carol, 2, 15)
      for (const versions of [
        versionsOf(put),
        versionsOf(put, patch),
        versionsOf(put, gone),
        versionsOf(gone),
        versionsOf(put, rival),
        versionsOf(patch, rival),
        versionsOf(patch, gone, rival),
      ]) {
        expect(resolver.resolveValue?.(versions)).toEqual(resolver.resolve(versions).value)
      }
    }
  })
})
