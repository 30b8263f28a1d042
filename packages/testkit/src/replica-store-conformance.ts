import {
  applyChange,
  asRecordId,
  asReplicaId,
  asSpaceId,
  type Change,
  createLwwResolver,
  ErrorCode,
  formatHlc,
  type HlcState,
  isChorusError,
  type JsonObject,
  makeChange,
  type ReplicaId,
  type ReplicaMeta,
  type ReplicaStore,
  recordKey,
  type StoredRecord,
  type WriteIntent,
} from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { StoreFixture } from './store-fixture.js'

/** A store under test, as {@link runReplicaStoreConformance} receives it. */
export type ReplicaStoreFixture = StoreFixture<ReplicaStore>

const ME = asReplicaId('replica-me')
const PEER = asReplicaId('replica-peer')
const THIRD = asReplicaId('replica-third')
const SPACE = asSpaceId('conformance')
const META: ReplicaMeta = {
  replicaId: ME,
  space: SPACE,
  counter: 0,
  clock: { wall: 0, counter: 0 },
  cursor: 0,
}
const lww = createLwwResolver()
/** A limit above anything a test holds, and within IndexedDB's `unsigned long` counts. */
const ALL = 10_000

/** A local write as the engine prepares it: counter from the stored meta, record state applied. */
async function prepareLocal(
  store: ReplicaStore,
  collection: string,
  id: string,
  intent: WriteIntent,
): Promise<{ record: StoredRecord; change: Change; clock: HlcState }> {
  const meta = await store.loadMeta()
  if (meta === undefined) throw new Error('conformance: initMeta must run before a local write')
  const counter = meta.counter + 1
  const clock: HlcState = { wall: 1_000_000 + counter, counter: 0 }
  const recordId = asRecordId(id)
  const current = await store.getRecord(collection, recordId)
  const change = makeChange({
    collection,
    id: recordId,
    record: current,
    resolver: lww,
    intent,
    dot: [ME, counter],
    hlc: formatHlc({ ...clock, replica: ME }),
  })
  return { record: { collection, id: recordId, state: applyChange(current, change).state }, change, clock }
}

async function commit(
  store: ReplicaStore,
  collection: string,
  id: string,
  intent: WriteIntent,
): Promise<{ record: StoredRecord; change: Change; clock: HlcState }> {
  const write = await prepareLocal(store, collection, id, intent)
  await store.commitLocal(write)
  return write
}

function put(value: JsonObject): WriteIntent {
  return { type: 'put', value }
}

/** A change made by another replica on top of `record` as this store holds it. */
async function remoteChange(
  store: ReplicaStore,
  replica: ReplicaId,
  counter: number,
  collection: string,
  id: string,
  intent: WriteIntent,
): Promise<Change> {
  const recordId = asRecordId(id)
  return makeChange({
    collection,
    id: recordId,
    record: await store.getRecord(collection, recordId),
    resolver: lww,
    intent,
    dot: [replica, counter],
    hlc: formatHlc({ wall: 2_000_000 + counter, counter: 0, replica }),
  })
}

/** The records a batch of remote changes leaves, applied in order over what the store holds. */
async function remoteRecords(store: ReplicaStore, changes: readonly Change[]): Promise<StoredRecord[]> {
  const touched = new Map<string, StoredRecord>()
  for (const change of changes) {
    const key = recordKey(change.collection, change.id)
    const current = touched.get(key)?.state ?? (await store.getRecord(change.collection, change.id))
    touched.set(key, {
      collection: change.collection,
      id: change.id,
      state: applyChange(current, change).state,
    })
  }
  return [...touched.values()]
}

function byKey(records: readonly StoredRecord[]): StoredRecord[] {
  return [...records].sort((a, b) => {
    const ka = recordKey(a.collection, a.id)
    const kb = recordKey(b.collection, b.id)
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
}

/** Everything a store holds, through its own read methods. */
async function contents(store: ReplicaStore) {
  return {
    meta: await store.loadMeta(),
    records: byKey(await store.allRecords()),
    outbox: await store.readOutbox(0, ALL),
    outboxSize: await store.outboxSize(),
  }
}

async function expectStorageFailed(promise: Promise<unknown>): Promise<void> {
  const outcome = await promise.then(
    () => 'resolved',
    (error: unknown) => error,
  )
  expect(
    isChorusError(outcome, ErrorCode.StorageFailed),
    `expected a rejection with a ChorusError 'storage-failed', got ${String(outcome)}`,
  ).toBe(true)
}

function counters(changes: readonly Change[]): number[] {
  return changes.map((change) => change.dot[1])
}

const oddValue: JsonObject = {
  title: "Grüße, 世界 — “quotes” 'single' \\ back\\slash",
  emoji: '😀👩‍👩‍👧 ✓',
  controls: 'line\nbreak\ttab\r\u2028\u2029\u0001',
  empty: '',
  long: 'ab'.repeat(8_000),
  numbers: [0, -1, 1.5, -0.000_125, 1e21, 2 ** 53 - 1, -(2 ** 53 - 1), Math.PI],
  flags: [true, false, null],
  nested: { a: { b: { c: { d: { e: [1, [2, [3, { f: 'deep' }]]] } } } } },
  emptyObject: {},
  emptyArray: [],
  constructor: 'not a function',
  toString: { valueOf: 'nope' },
  hasOwnProperty: false,
  '': 'empty key',
  'dotted.key': 1,
  'spaced key': 2,
  $dollar: 3,
  ключ: 'значение',
}

const oddIds = [
  'a/b/c',
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  'with space',
  'ünïcødé-日本語',
  '😀 emoji',
  '..',
  '%2F',
  'quote\'"',
  'x'.repeat(256),
]

/**
 * Registers the {@link ReplicaStore} contract as a vitest suite, for any implementation.
 *
 * `open` is called before every test and must give a new, empty store; the suite closes it
 * (and the stores `reopen` returns) and then calls `cleanup`. Durability tests run only with
 * `reopen`, failure tests only with `failNextWrite`; otherwise they are reported as skipped.
 */
export function runReplicaStoreConformance(name: string, open: () => Promise<ReplicaStoreFixture>): void {
  describe(name, () => {
    let fixture: ReplicaStoreFixture
    let store: ReplicaStore

    beforeEach(async () => {
      fixture = await open()
      store = fixture.store
    })

    afterEach(async () => {
      await store.close()
      await fixture.cleanup?.()
    })

    /** A store with metadata, two own writes and a remote one. */
    async function seeded(): Promise<void> {
      await store.initMeta(META)
      await commit(store, 'notes', 'a', put({ title: 'a' }))
      await commit(store, 'notes', 'b', put({ title: 'b' }))
      const remote = await remoteRecords(store, [
        await remoteChange(store, PEER, 1, 'notes', 'c', put({ title: 'c' })),
      ])
      await store.applyRemote({ records: remote, clock: { wall: 2_000_001, counter: 1 }, cursor: 5 })
    }

    describe('metadata', () => {
      it('loadMeta of a new store is undefined', async () => {
        expect(await store.loadMeta()).toBeUndefined()
      })

      it('initMeta then loadMeta round-trips the metadata', async () => {
        const meta: ReplicaMeta = { ...META, clock: { wall: 1_700_000_000_123, counter: 42 } }
        await store.initMeta(meta)
        expect(await store.loadMeta()).toEqual(meta)
      })

      it('a new store holds no record and an empty outbox', async () => {
        await store.initMeta(META)
        expect(await store.getRecord('notes', asRecordId('a'))).toBeUndefined()
        expect(await store.listRecords('notes')).toEqual([])
        expect(await store.allRecords()).toEqual([])
        expect(await store.readOutbox(0, ALL)).toEqual([])
        expect(await store.outboxSize()).toBe(0)
      })
    })

    describe('commitLocal', () => {
      it('writes the record, appends the change to the outbox, and advances counter and clock', async () => {
        await store.initMeta({ ...META, cursor: 7 })
        const write = await commit(store, 'notes', 'a', put({ title: 'first' }))
        expect(await store.getRecord('notes', asRecordId('a'))).toEqual(write.record.state)
        expect(await store.readOutbox(0, ALL)).toEqual([write.change])
        expect(await store.outboxSize()).toBe(1)
        expect(await store.loadMeta()).toEqual({ ...META, cursor: 7, counter: 1, clock: write.clock })
      })

      it('replaces the record on a later write to it, and keeps every change in the outbox', async () => {
        await store.initMeta(META)
        const first = await commit(store, 'notes', 'a', put({ title: 'first' }))
        const second = await commit(store, 'notes', 'a', { type: 'patch', fields: { done: true } })
        const third = await commit(store, 'notes', 'b', put({ title: 'other' }))
        expect(second.change.context).toEqual({ [ME]: 1 })
        expect(await store.getRecord('notes', asRecordId('a'))).toEqual(second.record.state)
        expect((await store.getRecord('notes', asRecordId('a')))?.versions).toEqual([second.change])
        expect(await store.readOutbox(0, ALL)).toEqual([first.change, second.change, third.change])
        expect(await store.loadMeta()).toEqual({ ...META, counter: 3, clock: third.clock })
      })
    })

    describe('readOutbox', () => {
      it('returns the changes after `after`, in counter order, at most `limit`', async () => {
        await store.initMeta(META)
        const changes: Change[] = []
        for (const id of ['e', 'a', 'd', 'b', 'c'])
          changes.push((await commit(store, 'notes', id, put({ id }))).change)
        expect(await store.readOutbox(0, ALL)).toEqual(changes)
        expect(counters(await store.readOutbox(0, 2))).toEqual([1, 2])
        expect(counters(await store.readOutbox(2, ALL))).toEqual([3, 4, 5])
        expect(counters(await store.readOutbox(1, 2))).toEqual([2, 3])
        expect(counters(await store.readOutbox(4, 1))).toEqual([5])
        expect(await store.readOutbox(5, ALL)).toEqual([])
        expect(await store.readOutbox(99, ALL)).toEqual([])
        expect(await store.readOutbox(0, 0)).toEqual([])
      })

      it('outboxSize counts the changes held', async () => {
        await store.initMeta(META)
        for (let i = 1; i <= 4; i++) {
          await commit(store, 'notes', `n${i}`, put({ i }))
          expect(await store.outboxSize()).toBe(i)
        }
      })
    })

    describe('dropOutbox', () => {
      it('removes the changes with counter ≤ upTo and keeps the rest in order', async () => {
        await store.initMeta(META)
        for (let i = 1; i <= 5; i++) await commit(store, 'notes', `n${i}`, put({ i }))
        await store.dropOutbox(2)
        expect(counters(await store.readOutbox(0, ALL))).toEqual([3, 4, 5])
        expect(counters(await store.readOutbox(1, ALL))).toEqual([3, 4, 5])
        expect(counters(await store.readOutbox(3, 1))).toEqual([4])
        expect(await store.outboxSize()).toBe(3)
      })

      it('is idempotent, and an upTo below what was dropped removes nothing', async () => {
        await store.initMeta(META)
        for (let i = 1; i <= 5; i++) await commit(store, 'notes', `n${i}`, put({ i }))
        await store.dropOutbox(3)
        const after = await contents(store)
        await store.dropOutbox(3)
        await store.dropOutbox(1)
        await store.dropOutbox(0)
        expect(await contents(store)).toEqual(after)
        expect(counters(after.outbox)).toEqual([4, 5])
      })

      it('leaves records and counter alone, and later writes keep counting', async () => {
        await store.initMeta(META)
        for (let i = 1; i <= 3; i++) await commit(store, 'notes', `n${i}`, put({ i }))
        const records = byKey(await store.allRecords())
        await store.dropOutbox(99)
        expect(await store.outboxSize()).toBe(0)
        expect(await store.readOutbox(0, ALL)).toEqual([])
        expect(byKey(await store.allRecords())).toEqual(records)
        expect((await store.loadMeta())?.counter).toBe(3)
        const next = await commit(store, 'notes', 'n4', put({ i: 4 }))
        expect(next.change.dot).toEqual([ME, 4])
        expect(await store.readOutbox(0, ALL)).toEqual([next.change])
      })
    })

    describe('commitLocalBatch (optional)', () => {
      /** `count` puts made and committed as one batch, as the engine makes them. */
      async function commitBatch(prefix: string, count: number, value: (i: number) => JsonObject) {
        const commitBatch = store.commitLocalBatch?.bind(store)
        if (commitBatch === undefined) throw new Error('conformance: the store has no commitLocalBatch')
        const meta = await store.loadMeta()
        if (meta === undefined) throw new Error('conformance: initMeta must run before a local write')
        const changes: Change[] = []
        const batchStates: (StoredRecord['state'] | undefined)[] = []
        const states = new Map<string, StoredRecord['state'] | undefined>()
        for (let i = 0; i < count; i++) {
          const counter = meta.counter + i + 1
          // Every fifth write goes to a record written earlier in the batch; every ninth
          // deletes.
          const id = asRecordId(`${prefix}${String(i % 5 === 4 ? i - 1 : i).padStart(4, '0')}`)
          const current = states.has(id) ? states.get(id) : await store.getRecord('notes', id)
          const change = makeChange({
            collection: 'notes',
            id,
            record: current,
            resolver: lww,
            intent: i % 9 === 8 ? { type: 'delete' } : put(value(i)),
            dot: [ME, counter],
            hlc: formatHlc({ wall: 1_000_000 + counter, counter: 0, replica: ME }),
          })
          const state = applyChange(current, change).state
          states.set(id, state)
          changes.push(change)
          // A record that holds its change alone goes without its state, as the engine
          // gives it, except every seventh (the state is allowed either way).
          const alone = state.versions.length === 1 && state.versions[0] === change
          batchStates.push(alone && i % 7 !== 6 ? undefined : state)
        }
        const clock: HlcState = { wall: 1_000_000 + meta.counter + count, counter: 0 }
        await commitBatch({ changes, states: batchStates, clock })
        return { changes, states, clock }
      }

      it('stores long batches: every record, and an outbox read and dropped at any point', async (context) => {
        if (store.commitLocalBatch === undefined) return context.skip('the store has no commitLocalBatch')
        await store.initMeta(META)
        const small = (i: number) => ({ i, text: `note ${i}` })
        const first = await commitBatch('a', 300, small)
        // Values large enough that a store grouping changes by size must split often.
        const big = (i: number) => ({ i, text: 'ü'.repeat(1_500 + i) })
        const second = await commitBatch('b', 40, big)
        const changes = [...first.changes, ...second.changes]
        expect(await store.loadMeta()).toEqual({ ...META, counter: 340, clock: second.clock })
        for (const [id, state] of [...first.states, ...second.states])
          expect(await store.getRecord('notes', asRecordId(id))).toEqual(state)
        expect(await store.listRecords('notes')).toHaveLength(first.states.size + second.states.size)
        expect(await store.readOutbox(0, ALL)).toEqual(changes)
        expect(await store.outboxSize()).toBe(340)
        for (const [after, limit] of [
          [0, 1],
          [126, 5],
          [127, 130],
          [255, 2],
          [299, 3],
          [333, 100],
        ] as const)
          expect(await store.readOutbox(after, limit)).toEqual(changes.slice(after, after + limit))
        for (const upTo of [1, 127, 128, 200, 301, 315]) {
          await store.dropOutbox(upTo)
          expect(counters(await store.readOutbox(0, ALL))).toEqual(counters(changes.slice(upTo)))
          expect(await store.readOutbox(upTo + 3, 4)).toEqual(changes.slice(upTo + 3, upTo + 7))
          expect(await store.outboxSize()).toBe(340 - upTo)
        }
        const next = await commit(store, 'notes', 'after', put({ after: true }))
        expect(next.change.dot).toEqual([ME, 341])
        expect(await store.readOutbox(339, ALL)).toEqual([changes[339], next.change])
        await store.dropOutbox(341)
        expect(await store.outboxSize()).toBe(0)
        expect(await store.readOutbox(0, ALL)).toEqual([])
      })
    })

    describe('commitLocalBatch states (optional)', () => {
      it('stores the state given for a record that holds more than the change: a concurrent version kept beside it', async (context) => {
        const commitBatch = store.commitLocalBatch?.bind(store)
        if (commitBatch === undefined) return context.skip('the store has no commitLocalBatch')
        await store.initMeta(META)
        const remote = await remoteChange(store, PEER, 1, 'notes', 'x', put({ title: 'theirs' }))
        await store.applyRemote({
          records: await remoteRecords(store, [remote]),
          clock: { wall: 2_000_001, counter: 0 },
          cursor: 1,
        })
        const held = await store.getRecord('notes', asRecordId('x'))
        /** An own put of `id` made with an empty context, as by a replica that had seen nothing. */
        const blind = (id: string, counter: number, title: string) =>
          makeChange({
            collection: 'notes',
            id: asRecordId(id),
            record: undefined,
            resolver: lww,
            intent: put({ title }),
            dot: [ME, counter],
            hlc: formatHlc({ wall: 1_000_000 + counter, counter: 0, replica: ME }),
          })
        // Made without having seen the remote version: concurrent with it.
        const mine = blind('x', 1, 'mine')
        const fresh = blind('y', 2, 'y')
        const both = applyChange(held, mine).state
        expect(both.versions).toHaveLength(2)
        const clock: HlcState = { wall: 2_000_001, counter: 1 }
        await commitBatch({ changes: [mine, fresh], states: [both, undefined], clock })
        const check = async (at: ReplicaStore) => {
          expect(await at.getRecord('notes', asRecordId('x'))).toEqual(both)
          expect(await at.getRecord('notes', asRecordId('y'))).toEqual({ versions: [fresh] })
          expect(await at.readOutbox(0, ALL)).toEqual([mine, fresh])
          expect(await at.loadMeta()).toMatchObject({ counter: 2, clock })
        }
        await check(store)
        if (fixture.reopen !== undefined) {
          await store.close()
          store = await fixture.reopen()
          await check(store)
        }
      })
    })

    describe('applyRemote', () => {
      it('writes every record, the clock and the cursor, and leaves counter and outbox alone', async () => {
        await store.initMeta(META)
        const local = await commit(store, 'notes', 'mine', put({ title: 'mine' }))
        const changes = [
          await remoteChange(store, PEER, 1, 'notes', 'r1', put({ title: 'one' })),
          await remoteChange(store, PEER, 2, 'notes', 'r2', put({ title: 'two' })),
          await remoteChange(store, PEER, 3, 'lists', 'r1', put({ title: 'list' })),
        ]
        const records = await remoteRecords(store, changes)
        const clock: HlcState = { wall: 2_000_003, counter: 1 }
        await store.applyRemote({ records, clock, cursor: 3 })
        for (const record of records)
          expect(await store.getRecord(record.collection, record.id)).toEqual(record.state)
        expect(await store.getRecord('notes', asRecordId('mine'))).toEqual(local.record.state)
        expect(await store.loadMeta()).toEqual({ ...META, counter: 1, clock, cursor: 3 })
        expect(await store.readOutbox(0, ALL)).toEqual([local.change])
        expect(await store.outboxSize()).toBe(1)
      })

      it('leaves the cursor unchanged when it is null, and still stores the clock', async () => {
        await store.initMeta(META)
        await store.applyRemote({ records: [], clock: { wall: 5, counter: 0 }, cursor: 4 })
        const change = await remoteChange(store, PEER, 1, 'notes', 'a', put({ title: 'a' }))
        const records = await remoteRecords(store, [change])
        await store.applyRemote({ records, clock: { wall: 9, counter: 3 }, cursor: null })
        expect(await store.loadMeta()).toEqual({ ...META, clock: { wall: 9, counter: 3 }, cursor: 4 })
        expect(await store.getRecord('notes', asRecordId('a'))).toEqual(records[0]?.state)
      })

      it("stores the hub log's name with `log`, and then the cursor as given, even lower; later writes keep the name", async () => {
        await store.initMeta(META)
        await store.applyRemote({ records: [], clock: { wall: 5, counter: 0 }, cursor: 40, log: 'log-1' })
        expect(await store.loadMeta()).toEqual({
          ...META,
          clock: { wall: 5, counter: 0 },
          cursor: 40,
          log: 'log-1',
        })
        // A relay restored from a backup named its log anew: the replica starts over at 0.
        await store.applyRemote({ records: [], clock: { wall: 6, counter: 0 }, cursor: 0, log: 'log-2' })
        await commit(store, 'notes', 'a', put({ title: 'a' }))
        const change = await remoteChange(store, PEER, 1, 'notes', 'b', put({ title: 'b' }))
        await store.applyRemote({
          records: await remoteRecords(store, [change]),
          clock: { wall: 9, counter: 0 },
          cursor: 3,
        })
        expect(await store.loadMeta()).toMatchObject({ cursor: 3, counter: 1, log: 'log-2' })
      })

      it("stores the hub's frame limit with `maxFrame`; later writes keep it", async () => {
        await store.initMeta(META)
        expect(await store.loadMeta()).not.toHaveProperty('maxFrame')
        await store.applyRemote({ records: [], clock: { wall: 5, counter: 0 }, cursor: 4, maxFrame: 65_536 })
        await commit(store, 'notes', 'a', put({ title: 'a' }))
        await store.applyRemote({ records: [], clock: { wall: 9, counter: 0 }, cursor: 5 })
        expect(await store.loadMeta()).toMatchObject({ cursor: 5, counter: 1, maxFrame: 65_536 })
        await store.applyRemote({
          records: [],
          clock: { wall: 9, counter: 0 },
          cursor: null,
          maxFrame: 1_048_576,
        })
        expect(await store.loadMeta()).toMatchObject({ maxFrame: 1_048_576 })
      })

      it('stores the snapshot to resume with `resume`, later writes keep it, and null removes it', async () => {
        await store.initMeta(META)
        expect(await store.loadMeta()).not.toHaveProperty('resume')
        const resume = { cursor: 40, after: 'notes\u0000n-17' }
        const change = await remoteChange(store, PEER, 1, 'notes', 'n-17', put({ title: 'n-17' }))
        await store.applyRemote({
          records: await remoteRecords(store, [change]),
          clock: { wall: 5, counter: 0 },
          cursor: null,
          resume,
        })
        await commit(store, 'notes', 'a', put({ title: 'a' }))
        await store.applyRemote({ records: [], clock: { wall: 6, counter: 0 }, cursor: null })
        expect(await store.loadMeta()).toMatchObject({ cursor: 0, counter: 1, resume })
        if (fixture.reopen !== undefined) {
          await store.close()
          store = await fixture.reopen()
          expect(await store.loadMeta()).toMatchObject({ resume })
        }
        await store.applyRemote({ records: [], clock: { wall: 7, counter: 0 }, cursor: 40, resume: null })
        const meta = await store.loadMeta()
        expect(meta).toMatchObject({ cursor: 40 })
        expect(meta).not.toHaveProperty('resume')
      })

      it('removes a record given with no versions, in the same commit as the rest', async () => {
        await store.initMeta(META)
        await commit(store, 'notes', 'gone', put({ title: 'gone' }))
        await commit(store, 'notes', 'stays', put({ title: 'stays' }))
        const change = await remoteChange(store, PEER, 1, 'notes', 'new', put({ title: 'new' }))
        const records = [
          ...(await remoteRecords(store, [change])),
          { collection: 'notes', id: asRecordId('gone'), state: { versions: [] } },
          { collection: 'notes', id: asRecordId('never'), state: { versions: [] } },
        ]
        await store.applyRemote({ records, clock: { wall: 9, counter: 0 }, cursor: 7 })
        expect(await store.getRecord('notes', asRecordId('gone'))).toBeUndefined()
        expect(await store.getRecord('notes', asRecordId('never'))).toBeUndefined()
        expect((await store.listRecords('notes')).map((record) => record.id)).toEqual(['new', 'stays'])
        expect((await store.allRecords()).map((record) => record.id).sort()).toEqual(['new', 'stays'])
        expect(await store.loadMeta()).toMatchObject({ cursor: 7 })
        // The outbox is the store's own business: the change that wrote `gone` stays in it.
        expect(await store.outboxSize()).toBe(2)
      })

      it('hasRecords (optional) tells whether any record is held', async (context) => {
        if (store.hasRecords === undefined) return context.skip('the store has no hasRecords')
        await store.initMeta(META)
        expect(await store.hasRecords?.()).toBe(false)
        await commit(store, 'notes', 'a', put({ title: 'a' }))
        expect(await store.hasRecords?.()).toBe(true)
        await store.applyRemote({
          records: [{ collection: 'notes', id: asRecordId('a'), state: { versions: [] } }],
          clock: { wall: 9, counter: 0 },
          cursor: null,
        })
        expect(await store.hasRecords?.()).toBe(false)
      })

      it('replaces records the replica holds: superseded, and concurrent versions kept side by side', async () => {
        await store.initMeta(META)
        await commit(store, 'notes', 'a', put({ title: 'local a' }))
        await commit(store, 'notes', 'b', put({ title: 'local b' }))
        const supersedes = await remoteChange(store, PEER, 1, 'notes', 'a', put({ title: 'remote a' }))
        const concurrent: Change = {
          ...(await remoteChange(store, PEER, 2, 'notes', 'b', put({ title: 'remote b' }))),
          context: {},
        }
        const records = await remoteRecords(store, [supersedes, concurrent])
        await store.applyRemote({ records, clock: { wall: 2_000_002, counter: 1 }, cursor: 2 })
        expect((await store.getRecord('notes', asRecordId('a')))?.versions).toEqual([supersedes])
        const b = await store.getRecord('notes', asRecordId('b'))
        expect(b?.versions).toHaveLength(2)
        expect(b).toEqual(records[1]?.state)
      })
    })

    describe('reading records', () => {
      it('getRecord finds a record by collection and id only', async () => {
        await store.initMeta(META)
        const a = await commit(store, 'notes', 'a', put({ in: 'notes' }))
        const b = await commit(store, 'lists', 'a', put({ in: 'lists' }))
        expect(await store.getRecord('notes', asRecordId('a'))).toEqual(a.record.state)
        expect(await store.getRecord('lists', asRecordId('a'))).toEqual(b.record.state)
        expect(await store.getRecord('notes', asRecordId('b'))).toBeUndefined()
        expect(await store.getRecord('tags', asRecordId('a'))).toBeUndefined()
        expect(await store.getRecord('note', asRecordId('sa'))).toBeUndefined()
      })

      it('listRecords returns every record of one collection, in id order', async () => {
        await store.initMeta(META)
        const ids = ['m', 'b', 'Z', 'a-2', 'a', 'ab', '10', '9', 'é', '日本']
        for (const id of ids) await commit(store, 'notes', id, put({ id }))
        await commit(store, 'notes2', 'c', put({}))
        await commit(store, 'note', 'x', put({}))
        const listed = await store.listRecords('notes')
        expect(listed.map((record) => record.id)).toEqual([...ids].sort())
        for (const record of listed) {
          expect(record.collection).toBe('notes')
          expect(record.state).toEqual(await store.getRecord('notes', record.id))
        }
        expect((await store.listRecords('note')).map((record) => record.id)).toEqual(['x'])
        expect(await store.listRecords('tags')).toEqual([])
      })

      it('allRecords returns every record of every collection', async () => {
        await store.initMeta(META)
        const written: StoredRecord[] = []
        for (const [collection, id] of [
          ['notes', 'a'],
          ['notes', 'b'],
          ['lists', 'a'],
          ['tags', 'z'],
        ] as const)
          written.push((await commit(store, collection, id, put({ collection, id }))).record)
        const remote = await remoteRecords(store, [
          await remoteChange(store, PEER, 1, 'boards', 'q', put({ remote: true })),
        ])
        await store.applyRemote({ records: remote, clock: { wall: 1, counter: 0 }, cursor: 1 })
        expect(byKey(await store.allRecords())).toEqual(byKey([...written, ...remote]))
      })

      it('getRecords (optional) returns each asked record, or undefined, in the order asked', async (context) => {
        const getRecords = store.getRecords?.bind(store)
        if (getRecords === undefined) return context.skip('the store has no getRecords')
        await store.initMeta(META)
        const stored = new Map<string, StoredRecord>()
        for (const id of ['b', 'd', 'f', 'h'])
          stored.set(recordKey('notes', id), (await commit(store, 'notes', id, put({ id }))).record)
        // A span dense with records that were not asked for, and a neighbouring collection.
        for (let i = 0; i < 40; i++)
          await commit(store, 'notes', `e${String(i).padStart(2, '0')}`, put({ i }))
        stored.set(recordKey('lists', 'b'), (await commit(store, 'lists', 'b', put({ in: 'lists' }))).record)
        const keys = [
          ['notes', 'h'],
          ['notes', 'a'],
          ['lists', 'b'],
          ['notes', 'b'],
          ['notes', 'c'],
          ['lists', 'd'],
          ['notes', 'z'],
          ['notes', 'f'],
          ['notes', 'f'],
        ] as const
        const found = await getRecords(keys.map(([collection, id]) => ({ collection, id: asRecordId(id) })))
        expect(found).toEqual(keys.map(([collection, id]) => stored.get(recordKey(collection, id))?.state))
        const few = [
          ['notes', 'c'],
          ['notes', 'd'],
          ['notes', 'b'],
        ] as const
        expect(await getRecords(few.map(([collection, id]) => ({ collection, id: asRecordId(id) })))).toEqual(
          few.map(([collection, id]) => stored.get(recordKey(collection, id))?.state),
        )
        expect(await getRecords([])).toEqual([])
      })

      it('listRecordsPage (optional) returns a page in id order or its reverse, after an id, at most a limit', async (context) => {
        const listPage = store.listRecordsPage?.bind(store)
        if (listPage === undefined) return context.skip('the store has no listRecordsPage')
        await store.initMeta(META)
        const ids = ['m', 'b', 'Z', 'a-2', 'a', 'ab', '10', '9', 'é', '日本']
        for (const id of ids) await commit(store, 'notes', id, put({ id }))
        await commit(store, 'notes2', 'c', put({}))
        await commit(store, 'note', 'x', put({}))
        const asc = [...ids].sort()
        const desc = [...asc].reverse()
        const page = async (options: Parameters<typeof listPage>[1]) =>
          (await listPage('notes', options)).map((record) => record.id)
        expect(await page({ order: 'asc' })).toEqual(asc)
        expect(await page({ order: 'desc' })).toEqual(desc)
        expect(await page({ order: 'asc', limit: 3 })).toEqual(asc.slice(0, 3))
        expect(await page({ order: 'desc', limit: 3 })).toEqual(desc.slice(0, 3))
        expect(await page({ order: 'asc', after: asRecordId('ab'), limit: 2 })).toEqual(['b', 'm'])
        expect(await page({ order: 'desc', after: asRecordId('ab') })).toEqual(['a-2', 'a', 'Z', '9', '10'])
        // `after` need not be a stored id; past the end is an empty page.
        expect(await page({ order: 'asc', after: asRecordId('c') })).toEqual(['m', 'é', '日本'])
        expect(await page({ order: 'desc', after: asRecordId('0') })).toEqual([])
        expect(await page({ order: 'asc', after: asRecordId('日本') })).toEqual([])
        const listed = await listPage('notes', { order: 'desc', limit: 2 })
        for (const record of listed) {
          expect(record.collection).toBe('notes')
          expect(record.state).toEqual(await store.getRecord('notes', record.id))
        }
        expect((await listPage('note', { order: 'desc' })).map((record) => record.id)).toEqual(['x'])
        expect(await listPage('tags', { order: 'asc', limit: 5 })).toEqual([])
      })

      it('listValuesPage (optional) pages as listRecordsPage, a single put as its value alone or whole, any other record whole', async (context) => {
        const listValues = store.listValuesPage?.bind(store)
        if (listValues === undefined) return context.skip('the store has no listValuesPage')
        await store.initMeta(META)
        const ids = ['m', 'b', 'Z', 'a', '日本']
        for (const id of ids) await commit(store, 'notes', id, put({ id, nested: { list: [1, 'two'] } }))
        // Records that are not one put: a patch, a tombstone, and siblings of a conflict.
        await commit(store, 'notes', 'patched', { type: 'patch', fields: { done: true } })
        await commit(store, 'notes', 'gone', put({ id: 'gone' }))
        await commit(store, 'notes', 'gone', { type: 'delete' })
        const theirs = await remoteChange(store, PEER, 1, 'notes', 'both', put({ by: 'them' }))
        await commit(store, 'notes', 'both', put({ by: 'me' }))
        const records = await remoteRecords(store, [theirs])
        await store.applyRemote({ records, clock: { wall: 9, counter: 0 }, cursor: null })
        await commit(store, 'lists', 'a', put({}))
        const all = [...ids, 'patched', 'gone', 'both'].sort()
        const listed = await listValues('notes', { order: 'asc' })
        expect(listed.map((record) => record.id)).toEqual(all)
        for (const record of listed) {
          const state = await store.getRecord('notes', record.id)
          const only = state?.versions.length === 1 ? state.versions[0] : undefined
          // A single put may come whole too (a store that reads whole records anyway).
          if (only?.op.type === 'put' && record.state === undefined) {
            expect('value' in record && record.value).toEqual(only.op.value)
          } else {
            expect(record.state).toEqual(state)
            expect(record.state?.versions.length).toBe(record.id === 'both' ? 2 : 1)
          }
        }
        const page = async (options: Parameters<typeof listValues>[1]) =>
          (await listValues('notes', options)).map((record) => record.id)
        expect(await page({ order: 'desc', limit: 3 })).toEqual([...all].reverse().slice(0, 3))
        expect(await page({ order: 'asc', after: asRecordId('a'), limit: 2 })).toEqual(all.slice(2, 4))
        expect(await page({ order: 'desc', after: asRecordId('a') })).toEqual(['Z'])
        expect(await listValues('tags', { order: 'asc' })).toEqual([])
      })
    })

    describe('values', () => {
      it('round-trips nested JSON, unicode and odd record ids deep-equal', async () => {
        await store.initMeta(META)
        const local: StoredRecord[] = []
        for (const [i, id] of oddIds.entries())
          local.push((await commit(store, 'notes', id, put({ ...oddValue, i }))).record)
        const changes: Change[] = []
        for (const [i, id] of oddIds.entries())
          changes.push(await remoteChange(store, PEER, i + 1, 'a.b:c-d_e', id, put({ ...oddValue, i })))
        const remote = await remoteRecords(store, changes)
        await store.applyRemote({ records: remote, clock: { wall: 3, counter: 0 }, cursor: 1 })
        for (const record of [...local, ...remote])
          expect(await store.getRecord(record.collection, record.id)).toEqual(record.state)
        expect(byKey(await store.listRecords('notes'))).toEqual(byKey(local))
        expect(byKey(await store.listRecords('a.b:c-d_e'))).toEqual(byKey(remote))
        expect(byKey(await store.allRecords())).toEqual(byKey([...local, ...remote]))
        expect(await store.readOutbox(0, ALL)).toEqual(
          local.map((record) => record.state.versions[0] as Change),
        )
      })

      it('round-trips every kind of version: patches with stamps, tombstones, siblings, wide contexts', async () => {
        await store.initMeta(META)
        const patchNew = await commit(store, 'notes', 'p', { type: 'patch', fields: { a: 1 } })
        expect(patchNew.change.op).toMatchObject({ type: 'patch', floor: null })
        await commit(store, 'notes', 'q', put({ a: 1, b: { c: [1, 2] } }))
        const patch = await commit(store, 'notes', 'q', { type: 'patch', fields: { a: 2 } })
        expect(patch.change.op).toMatchObject({ type: 'patch', base: { b: { c: [1, 2] } } })
        await commit(store, 'notes', 'd', put({ gone: 'soon' }))
        const tombstone = await commit(store, 'notes', 'd', { type: 'delete' })
        const wide: Change = {
          ...(await remoteChange(store, PEER, 9, 'notes', 's', put({ side: 'peer' }))),
          context: { [THIRD]: 12, [ME]: 99, constructor: 3 },
        }
        const concurrent = await remoteChange(store, THIRD, 13, 'notes', 's', put({ side: 'third' }))
        const remote = await remoteRecords(store, [wide, concurrent])
        expect(remote[0]?.state.versions).toHaveLength(2)
        await store.applyRemote({ records: remote, clock: { wall: 4, counter: 0 }, cursor: 2 })
        expect(await store.getRecord('notes', asRecordId('p'))).toEqual(patchNew.record.state)
        expect(await store.getRecord('notes', asRecordId('q'))).toEqual(patch.record.state)
        expect(await store.getRecord('notes', asRecordId('d'))).toEqual(tombstone.record.state)
        expect(await store.getRecord('notes', asRecordId('s'))).toEqual(remote[0]?.state)
      })
    })

    describe('durability', () => {
      it('keeps everything across close and reopen', async (context) => {
        const { reopen } = fixture
        if (reopen === undefined) return context.skip('no reopen given')
        await store.initMeta(META)
        for (let i = 1; i <= 4; i++) await commit(store, 'notes', `n${i}`, put({ i, text: 'ünïcødé' }))
        await commit(store, 'notes', 'n1', { type: 'patch', fields: { i: 10 } })
        await store.dropOutbox(2)
        const remote = await remoteRecords(store, [
          await remoteChange(store, PEER, 1, 'lists', 'l', put({ remote: true })),
          await remoteChange(store, PEER, 2, 'notes', 'n3', put({ remote: true })),
        ])
        await store.applyRemote({
          records: remote,
          clock: { wall: 2_000_002, counter: 4 },
          cursor: 17,
          log: 'log-1',
        })
        const before = await contents(store)
        expect(before.meta?.log).toBe('log-1')
        await store.close()
        store = await reopen()
        expect(await contents(store)).toEqual(before)
        expect(await store.listRecords('notes')).toEqual(
          before.records.filter((record) => record.collection === 'notes'),
        )
        const next = await commit(store, 'notes', 'n9', put({ after: 'reopen' }))
        expect(next.change.dot).toEqual([ME, 6])
        expect(counters(await store.readOutbox(0, ALL))).toEqual([3, 4, 5, 6])
      })

      it('a reopened store that was only initialised still has its metadata', async (context) => {
        const { reopen } = fixture
        if (reopen === undefined) return context.skip('no reopen given')
        await store.initMeta(META)
        await store.close()
        store = await reopen()
        expect(await store.loadMeta()).toEqual(META)
        expect(await store.outboxSize()).toBe(0)
      })
    })

    describe('destroy', () => {
      /** Calls the store's `destroy` (a test of a store without one is skipped before). */
      function destroy(): Promise<void> {
        return (store.destroy as () => Promise<void>).call(store)
      }

      it('deletes everything: opened again, the store is new and empty', async (context) => {
        if (store.destroy === undefined) return context.skip('the store has no destroy')
        const { reopen } = fixture
        if (reopen === undefined) return context.skip('no reopen given')
        await seeded()
        await destroy()
        store = await reopen()
        expect(await contents(store)).toEqual({ meta: undefined, records: [], outbox: [], outboxSize: 0 })
        expect(await store.listRecords('notes')).toEqual([])
        // A new replica starts there from counter 1.
        await store.initMeta(META)
        const write = await prepareLocal(store, 'notes', 'a', put({ title: 'again' }))
        expect(write.change.dot).toEqual([ME, 1])
      })

      it('deletes a store that was closed first', async (context) => {
        if (store.destroy === undefined) return context.skip('the store has no destroy')
        const { reopen } = fixture
        if (reopen === undefined) return context.skip('no reopen given')
        await seeded()
        await store.close()
        await destroy()
        store = await reopen()
        expect(await store.loadMeta()).toBeUndefined()
        expect(await store.allRecords()).toEqual([])
      })

      it('closes the store: later calls reject with closed', async (context) => {
        if (store.destroy === undefined) return context.skip('the store has no destroy')
        await seeded()
        await destroy()
        const outcome = await store.loadMeta().then(
          () => 'resolved',
          (error: unknown) => error,
        )
        expect(isChorusError(outcome, ErrorCode.Closed), `got ${String(outcome)}`).toBe(true)
      })
    })

    describe('failures', () => {
      it('a failing commitLocal rejects with storage-failed and changes nothing', async (context) => {
        const { failNextWrite } = fixture
        if (failNextWrite === undefined) return context.skip('no failNextWrite given')
        await seeded()
        const before = await contents(store)
        const write = await prepareLocal(store, 'notes', 'a', put({ title: 'a, edited' }))
        failNextWrite()
        await expectStorageFailed(store.commitLocal(write))
        expect(await contents(store)).toEqual(before)
        const fresh = await prepareLocal(store, 'notes', 'new', put({ title: 'new' }))
        failNextWrite()
        await expectStorageFailed(store.commitLocal(fresh))
        expect(await contents(store)).toEqual(before)
        expect(await store.getRecord('notes', asRecordId('new'))).toBeUndefined()
        await store.commitLocal(write)
        expect(await store.getRecord('notes', asRecordId('a'))).toEqual(write.record.state)
        expect((await store.loadMeta())?.counter).toBe(3)
      })

      it('a failing applyRemote rejects with storage-failed and changes nothing', async (context) => {
        const { failNextWrite } = fixture
        if (failNextWrite === undefined) return context.skip('no failNextWrite given')
        await seeded()
        const before = await contents(store)
        const records = await remoteRecords(store, [
          await remoteChange(store, PEER, 2, 'notes', 'a', put({ title: 'a, remote' })),
          await remoteChange(store, PEER, 3, 'notes', 'd', put({ title: 'd' })),
          await remoteChange(store, PEER, 4, 'lists', 'e', put({ title: 'e' })),
        ])
        const batch = { records, clock: { wall: 2_000_004, counter: 0 }, cursor: 9 }
        failNextWrite()
        await expectStorageFailed(store.applyRemote(batch))
        expect(await contents(store)).toEqual(before)
        expect(await store.listRecords('lists')).toEqual([])
        await store.applyRemote(batch)
        expect(await store.loadMeta()).toEqual({ ...before.meta, clock: batch.clock, cursor: 9 })
      })
    })
  })
}
