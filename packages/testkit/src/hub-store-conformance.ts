import {
  asRecordId,
  asReplicaId,
  asSpaceId,
  type Change,
  compareVersions,
  ErrorCode,
  formatHlc,
  type HubStore,
  isChorusError,
  type JsonObject,
  type LogEntry,
  type ReplicaId,
  recordKey,
  type SpaceId,
  type SpaceMeta,
  type VersionVector,
} from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { StoreFixture } from './store-fixture.js'

/** A store under test, as {@link runHubStoreConformance} receives it. */
export type HubStoreFixture = StoreFixture<HubStore>

const A = asReplicaId('replica-a')
const B = asReplicaId('replica-b')
const C = asReplicaId('replica-c')
const SPACE = asSpaceId('space-one')
const OTHER = asSpaceId('space-two')
/** A limit above anything a test holds. */
const ALL = 10_000

/** A hand-built change: a put of `value`, or a delete when `value` is null. */
function change(
  replica: ReplicaId,
  counter: number,
  where: { readonly collection?: string; readonly id?: string; readonly context?: VersionVector } = {},
  value: JsonObject | null = { by: replica, n: counter },
): Change {
  return {
    collection: where.collection ?? 'notes',
    id: asRecordId(where.id ?? `${replica}-${counter}`),
    dot: [replica, counter],
    context: where.context ?? {},
    hlc: formatHlc({ wall: 1_000_000 + counter, counter: 0, replica }),
    op: value === null ? { type: 'delete' } : { type: 'put', value },
  }
}

/** Changes `from`..`to` of one replica, each to its own record. */
function run(replica: ReplicaId, from: number, to: number): Change[] {
  const out: Change[] = []
  for (let counter = from; counter <= to; counter++) out.push(change(replica, counter))
  return out
}

/** The space's metadata with "received 0" entries dropped: absent and 0 mean the same. */
/**
 * What `loadSpace` says of a space, without replicas at counter 0 and without the log's name
 * (optional; when given, a non-empty string that every space of the store shares across
 * appends, here checked).
 */
async function meta(store: HubStore, space: SpaceId): Promise<SpaceMeta> {
  const loaded = await store.loadSpace(space)
  if (loaded.log !== undefined) {
    expect(typeof loaded.log === 'string' && loaded.log !== '', 'a log name is a non-empty string').toBe(true)
    expect((await store.loadSpace(space)).log, 'the log keeps its name').toBe(loaded.log)
  }
  const received: Record<string, number> = {}
  for (const [replica, counter] of Object.entries(loaded.received))
    if (counter !== 0) received[replica] = counter
  return { head: loaded.head, floor: loaded.floor, received }
}

function sortVersions(changes: readonly Change[]): Change[] {
  return [...changes].sort(compareVersions)
}

function keyOf(change: Change): string {
  return recordKey(change.collection, change.id)
}

/** Every page of a snapshot, checking the paging rules on the way. */
async function snapshotPages(store: HubStore, space: SpaceId, limit: number): Promise<Change[][]> {
  const pages: Change[][] = []
  let afterKey: string | null = null
  for (;;) {
    const page: { readonly changes: Change[]; readonly nextKey: string | null } = await store.readSnapshot(
      space,
      afterKey,
      limit,
    )
    const keys = new Set(page.changes.map(keyOf))
    expect(keys.size, 'a page holds at most `limit` records').toBeLessThanOrEqual(limit)
    pages.push(page.changes)
    if (page.nextKey === null) return pages
    expect(keys.size, 'a page before the last is full').toBe(limit)
    expect(pages.length, 'paging ends').toBeLessThan(ALL)
    afterKey = page.nextKey
  }
}

/** The whole snapshot, grouped per record key (in the order the pages gave them). */
async function snapshot(store: HubStore, space: SpaceId, limit = ALL): Promise<Map<string, Change[]>> {
  const records = new Map<string, Change[]>()
  let previous: string | null = null
  for (const page of await snapshotPages(store, space, limit)) {
    for (const version of page) {
      const key = keyOf(version)
      if (key !== previous) {
        expect(records.has(key), `record ${JSON.stringify(key)} appears once, its versions together`).toBe(
          false,
        )
        if (previous !== null) expect(key > previous, 'records come in key order').toBe(true)
        records.set(key, [])
        previous = key
      }
      records.get(key)?.push(version)
    }
  }
  for (const [key, versions] of records) records.set(key, sortVersions(versions))
  return records
}

/** Everything a store holds for a space, through its own read methods. */
async function contents(store: HubStore, space: SpaceId) {
  return {
    meta: await meta(store, space),
    log: await store.readLog(space, 0, ALL),
    snapshot: await snapshot(store, space),
  }
}

function seqs(entries: readonly LogEntry[]): number[] {
  return entries.map((entry) => entry.seq)
}

function dots(entries: readonly LogEntry[]): string[] {
  return entries.map((entry) => `${entry.change.dot[0]}:${entry.change.dot[1]}`)
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

/**
 * Registers the {@link HubStore} contract as a vitest suite, for any implementation.
 *
 * `open` is called before every test and must give a new, empty store; the suite closes it
 * (and the stores `reopen` returns) and then calls `cleanup`. Durability tests run only with
 * `reopen`, failure tests only with `failNextWrite`; otherwise they are reported as skipped.
 * A replica the space has stored nothing from may be reported as received 0 or left out.
 */
export function runHubStoreConformance(name: string, open: () => Promise<HubStoreFixture>): void {
  describe(name, () => {
    let fixture: HubStoreFixture
    let store: HubStore

    beforeEach(async () => {
      fixture = await open()
      store = fixture.store
    })

    afterEach(async () => {
      await store.close()
      await fixture.cleanup?.()
    })

    describe('loadSpace', () => {
      it('of a space never written: head 0, floor 0, nothing received', async () => {
        expect(await meta(store, SPACE)).toEqual({ head: 0, floor: 0, received: {} })
        expect(await store.readLog(SPACE, 0, ALL)).toEqual([])
        expect(await store.readSnapshot(SPACE, null, ALL)).toEqual({ changes: [], nextKey: null })
      })
    })

    describe('append', () => {
      it('stores a gap-free run and reports head, received and appended', async () => {
        const changes = run(A, 1, 3)
        expect(await store.append(SPACE, A, changes)).toEqual({ head: 3, received: 3, appended: 3 })
        expect(await meta(store, SPACE)).toEqual({ head: 3, floor: 0, received: { [A]: 3 } })
        expect(await store.readLog(SPACE, 0, ALL)).toEqual(
          changes.map((stored, i) => ({ seq: i + 1, change: stored })),
        )
      })

      it('skips the changes it already holds', async () => {
        await store.append(SPACE, A, run(A, 1, 2))
        expect(await store.append(SPACE, A, run(A, 1, 4))).toEqual({ head: 4, received: 4, appended: 2 })
        expect(await store.append(SPACE, A, run(A, 1, 4))).toEqual({ head: 4, received: 4, appended: 0 })
        expect(await store.append(SPACE, A, run(A, 3, 3))).toEqual({ head: 4, received: 4, appended: 0 })
        expect(dots(await store.readLog(SPACE, 0, ALL))).toEqual([`${A}:1`, `${A}:2`, `${A}:3`, `${A}:4`])
        expect(await meta(store, SPACE)).toEqual({ head: 4, floor: 0, received: { [A]: 4 } })
      })

      it('stops at a gap and keeps what came before it', async () => {
        const batch = [...run(A, 1, 2), ...run(A, 4, 5)]
        expect(await store.append(SPACE, A, batch)).toEqual({ head: 2, received: 2, appended: 2 })
        expect(await store.append(SPACE, A, run(A, 4, 5))).toEqual({ head: 2, received: 2, appended: 0 })
        expect(await store.append(SPACE, A, run(A, 3, 5))).toEqual({ head: 5, received: 5, appended: 3 })
        expect(dots(await store.readLog(SPACE, 0, ALL))).toEqual([1, 2, 3, 4, 5].map((n) => `${A}:${n}`))
      })

      it('stores nothing from a batch that starts with a gap, or an empty one', async () => {
        await store.append(SPACE, A, run(A, 1, 1))
        expect(await store.append(SPACE, B, run(B, 2, 3))).toEqual({ head: 1, received: 0, appended: 0 })
        expect(await store.append(SPACE, C, [])).toEqual({ head: 1, received: 0, appended: 0 })
        expect(await store.append(SPACE, A, [])).toEqual({ head: 1, received: 1, appended: 0 })
        expect(await meta(store, SPACE)).toEqual({ head: 1, floor: 0, received: { [A]: 1 } })
        expect(dots(await store.readLog(SPACE, 0, ALL))).toEqual([`${A}:1`])
      })

      it('takes a sparse batch in rising order and counts every counter up to `through` as received', async () => {
        await store.append(SPACE, A, run(A, 1, 2))
        const sparse = [...run(A, 2, 2), ...run(A, 5, 5), ...run(A, 7, 7)]
        expect(await store.append(SPACE, A, sparse, undefined, 9)).toEqual({
          head: 4,
          received: 9,
          appended: 2,
        })
        expect(dots(await store.readLog(SPACE, 0, ALL))).toEqual([`${A}:1`, `${A}:2`, `${A}:5`, `${A}:7`])
        // The stream goes on after `through`, gap-free again.
        expect(await store.append(SPACE, A, run(A, 10, 11))).toEqual({ head: 6, received: 11, appended: 2 })
        // A sparse batch of changes all gone moves only the received counter.
        expect(await store.append(SPACE, B, [], undefined, 4)).toEqual({ head: 6, received: 4, appended: 0 })
        // Nothing past `through` is taken.
        expect(await store.append(SPACE, C, run(C, 1, 3), undefined, 2)).toEqual({
          head: 8,
          received: 2,
          appended: 2,
        })
        expect(await meta(store, SPACE)).toEqual({ head: 8, floor: 0, received: { [A]: 11, [B]: 4, [C]: 2 } })
        expect([...(await snapshot(store, SPACE)).keys()]).toHaveLength(8)
        if (store.appendMany !== undefined) {
          expect(
            await store.appendMany(SPACE, [
              { replica: B, changes: run(B, 6, 6), through: 6 },
              { replica: C, changes: run(C, 3, 3) },
            ]),
          ).toEqual([
            { head: 9, received: 6, appended: 1 },
            { head: 10, received: 3, appended: 1 },
          ])
        }
      })

      it('numbers entries 1, 2, 3… in append order, across replicas', async () => {
        await store.append(SPACE, A, run(A, 1, 2))
        await store.append(SPACE, B, run(B, 1, 1))
        await store.append(SPACE, A, run(A, 3, 3))
        expect(await store.append(SPACE, C, run(C, 1, 2))).toEqual({ head: 6, received: 2, appended: 2 })
        const log = await store.readLog(SPACE, 0, ALL)
        expect(seqs(log)).toEqual([1, 2, 3, 4, 5, 6])
        expect(dots(log)).toEqual([`${A}:1`, `${A}:2`, `${B}:1`, `${A}:3`, `${C}:1`, `${C}:2`])
        expect(await meta(store, SPACE)).toEqual({ head: 6, floor: 0, received: { [A]: 3, [B]: 1, [C]: 2 } })
      })

      it('keeps spaces apart: positions, received counters and records', async () => {
        await store.append(SPACE, A, run(A, 1, 2))
        expect(await store.append(OTHER, A, run(A, 1, 1))).toEqual({ head: 1, received: 1, appended: 1 })
        await store.append(OTHER, B, run(B, 1, 2))
        await store.append(SPACE, A, run(A, 3, 3))
        expect(seqs(await store.readLog(SPACE, 0, ALL))).toEqual([1, 2, 3])
        expect(seqs(await store.readLog(OTHER, 0, ALL))).toEqual([1, 2, 3])
        expect(dots(await store.readLog(OTHER, 0, ALL))).toEqual([`${A}:1`, `${B}:1`, `${B}:2`])
        expect(await meta(store, SPACE)).toEqual({ head: 3, floor: 0, received: { [A]: 3 } })
        expect(await meta(store, OTHER)).toEqual({ head: 3, floor: 0, received: { [A]: 1, [B]: 2 } })
        expect([...(await snapshot(store, SPACE)).keys()]).toHaveLength(3)
        expect([...(await snapshot(store, OTHER)).keys()]).toHaveLength(3)
        expect(await meta(store, asSpaceId('space-three'))).toEqual({ head: 0, floor: 0, received: {} })
      })
    })

    describe('readLog', () => {
      it('returns the entries after `after`, in order, at most `limit`', async () => {
        await store.append(SPACE, A, run(A, 1, 3))
        await store.append(SPACE, B, run(B, 1, 3))
        const all = await store.readLog(SPACE, 0, ALL)
        expect(seqs(all)).toEqual([1, 2, 3, 4, 5, 6])
        expect(await store.readLog(SPACE, 0, 2)).toEqual(all.slice(0, 2))
        expect(await store.readLog(SPACE, 2, 3)).toEqual(all.slice(2, 5))
        expect(await store.readLog(SPACE, 4, ALL)).toEqual(all.slice(4))
        expect(await store.readLog(SPACE, 5, 1)).toEqual(all.slice(5))
        expect(await store.readLog(SPACE, 6, ALL)).toEqual([])
        expect(await store.readLog(SPACE, 0, 0)).toEqual([])
        expect(await store.readLog(OTHER, 0, ALL)).toEqual([])
      })
    })

    describe('readSnapshot', () => {
      const layout = [
        ['notes', 'b'],
        ['notes', 'a/b'],
        ['lists', 'z'],
        ['a.b:c-d_e', 'constructor'],
        ['notes', 'ünïcødé'],
        ['notes2', 'a'],
        ['note', 'sa'],
      ] as const

      async function appendLayout(): Promise<Change[]> {
        const changes = layout.map(([collection, id], i) => change(A, i + 1, { collection, id }))
        await store.append(SPACE, A, changes)
        return changes
      }

      it('pages through every record in key order, nextKey null on the last page', async () => {
        const changes = await appendLayout()
        const expected = new Map(
          [...changes].sort((x, y) => (keyOf(x) < keyOf(y) ? -1 : 1)).map((c) => [keyOf(c), [c]]),
        )
        for (const limit of [1, 2, 3, 7, 100]) expect(await snapshot(store, SPACE, limit)).toEqual(expected)
        expect(await snapshotPages(store, SPACE, 3)).toHaveLength(3)
        const whole = await store.readSnapshot(SPACE, null, 100)
        expect(whole.nextKey).toBeNull()
        expect(whole.changes.map(keyOf)).toEqual([...expected.keys()])
      })

      it('starts after `afterKey`', async () => {
        await appendLayout()
        const keys = [...(await snapshot(store, SPACE)).keys()]
        const third = keys[2] as string
        const rest = await store.readSnapshot(SPACE, third, ALL)
        expect(rest.changes.map(keyOf)).toEqual(keys.slice(3))
        expect(rest.nextKey).toBeNull()
        expect((await store.readSnapshot(SPACE, keys[keys.length - 1] as string, ALL)).changes).toEqual([])
      })

      it('shows a superseded change only through the change that superseded it', async () => {
        const x = { id: 'x' }
        const y = { id: 'y' }
        await store.append(SPACE, A, [change(A, 1, x)])
        const overX = change(B, 1, { ...x, context: { [A]: 1 } })
        const overY = change(B, 2, { ...y, context: { [A]: 2 } })
        await store.append(SPACE, B, [overX, overY])
        await store.append(SPACE, A, [change(A, 2, y)])
        const records = await snapshot(store, SPACE)
        expect(records.get(recordKey('notes', 'x'))).toEqual([overX])
        expect(records.get(recordKey('notes', 'y'))).toEqual([overY])
        expect(records.size).toBe(2)
        expect(seqs(await store.readLog(SPACE, 0, ALL))).toEqual([1, 2, 3, 4])
      })

      it('keeps concurrent versions side by side until a change covers them all', async () => {
        const z = { id: 'z' }
        const fromA = change(A, 1, z, { title: 'from a' })
        const fromB = change(B, 1, z, { title: 'from b' })
        const fromC = change(C, 1, z, null)
        await store.append(SPACE, A, [fromA])
        await store.append(SPACE, B, [fromB])
        await store.append(SPACE, C, [fromC])
        const key = recordKey('notes', 'z')
        expect((await snapshot(store, SPACE)).get(key)).toEqual(sortVersions([fromA, fromB, fromC]))
        const page = await store.readSnapshot(SPACE, null, 1)
        expect(sortVersions(page.changes)).toEqual(sortVersions([fromA, fromB, fromC]))
        expect(page.nextKey).toBeNull()
        const settle = change(A, 2, { ...z, context: { [A]: 1, [B]: 1 } })
        await store.append(SPACE, A, [settle])
        expect((await snapshot(store, SPACE)).get(key)).toEqual(sortVersions([fromC, settle]))
        const all = change(B, 2, { ...z, context: { [A]: 2, [B]: 1, [C]: 1 } })
        await store.append(SPACE, B, [all])
        expect((await snapshot(store, SPACE)).get(key)).toEqual([all])
      })
    })

    describe('deleteSpace', () => {
      it('deletes everything of the space and only of it; the name stays deleted', async (context) => {
        if (store.deleteSpace === undefined) return context.skip('the store has no deleteSpace')
        await store.append(SPACE, A, run(A, 1, 3))
        await store.append(SPACE, B, [change(B, 1, { id: `${A}-1`, context: { [A]: 1 } })])
        await store.append(OTHER, B, run(B, 1, 2))
        const other = await contents(store, OTHER)

        expect(await store.deleteSpace(SPACE)).toBe(true)
        const loaded = await store.loadSpace(SPACE)
        expect(loaded.deleted).toBe(true)
        expect({ head: loaded.head, floor: loaded.floor, received: loaded.received }).toEqual({
          head: 0,
          floor: 0,
          received: {},
        })
        expect(await contents(store, OTHER)).toEqual(other)
        expect((await store.loadSpace(OTHER)).deleted).not.toBe(true)
        expect(await store.deleteSpace(SPACE)).toBe(false)

        const refused = await store.append(SPACE, A, run(A, 4, 4)).then(
          () => 'stored',
          (error: unknown) => error,
        )
        expect(isChorusError(refused, ErrorCode.SpaceDeleted), `got ${String(refused)}`).toBe(true)
        expect((await store.loadSpace(SPACE)).head).toBe(0)
        // Its log and records read as deleted, not as empty: an empty page read as the deletion
        // commits must not pass for a bootstrap's last page or a caught-up log.
        for (const read of [store.readLog(SPACE, 0, 10), store.readSnapshot(SPACE, null, 10)]) {
          const outcome = await read.then(
            () => 'read',
            (error: unknown) => error,
          )
          expect(isChorusError(outcome, ErrorCode.SpaceDeleted), `got ${String(outcome)}`).toBe(true)
        }
        // A space never written can be deleted too, and is then refused the same way.
        expect(await store.deleteSpace(asSpaceId('never-written'))).toBe(true)
        expect((await store.loadSpace(asSpaceId('never-written'))).deleted).toBe(true)
      })

      it('a deleted space stays deleted across close and reopen', async (context) => {
        const { reopen } = fixture
        if (store.deleteSpace === undefined) return context.skip('the store has no deleteSpace')
        if (reopen === undefined) return context.skip('no reopen given')
        await store.append(SPACE, A, run(A, 1, 2))
        await store.deleteSpace(SPACE)
        await store.close()
        store = await reopen()
        expect((await store.loadSpace(SPACE)).deleted).toBe(true)
        expect((await store.loadSpace(SPACE)).head).toBe(0)
      })
    })

    describe('durability', () => {
      it('keeps log, received counters and records across close and reopen', async (context) => {
        const { reopen } = fixture
        if (reopen === undefined) return context.skip('no reopen given')
        await store.append(SPACE, A, run(A, 1, 3))
        await store.append(SPACE, B, [change(B, 1, { id: `${A}-1`, context: { [A]: 1 } })])
        await store.append(SPACE, C, [change(C, 1, { id: `${A}-2` })])
        await store.append(OTHER, B, run(B, 1, 2))
        const before = await contents(store, SPACE)
        const other = await contents(store, OTHER)
        await store.close()
        store = await reopen()
        expect(await contents(store, SPACE)).toEqual(before)
        expect(await contents(store, OTHER)).toEqual(other)
        expect(await store.append(SPACE, A, run(A, 1, 4))).toEqual({ head: 6, received: 4, appended: 1 })
        expect(await store.append(OTHER, B, run(B, 3, 3))).toEqual({ head: 3, received: 3, appended: 1 })
      })
    })

    describe('failures', () => {
      it('a failing append rejects with storage-failed and changes nothing', async (context) => {
        const { failNextWrite } = fixture
        if (failNextWrite === undefined) return context.skip('no failNextWrite given')
        await store.append(SPACE, A, run(A, 1, 2))
        await store.append(SPACE, B, run(B, 1, 1))
        const before = await contents(store, SPACE)
        const batch = [...run(A, 2, 4), change(A, 5, { id: `${B}-1`, context: { [B]: 1 } })]
        failNextWrite()
        await expectStorageFailed(store.append(SPACE, A, batch))
        expect(await contents(store, SPACE)).toEqual(before)
        failNextWrite()
        await expectStorageFailed(store.append(OTHER, C, run(C, 1, 2)))
        expect(await contents(store, OTHER)).toEqual({
          meta: { head: 0, floor: 0, received: {} },
          log: [],
          snapshot: new Map(),
        })
        expect(await store.append(SPACE, A, batch)).toEqual({ head: 6, received: 5, appended: 3 })
      })
    })
  })
}
