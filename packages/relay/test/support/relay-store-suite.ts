import {
  asReplicaId,
  asSpaceId,
  ErrorCode,
  isChorusError,
  type LogEntry,
  type ReplicaId,
  recordKey,
} from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { RelayStore } from '../../src/relay-store.js'
import { decodeUtf16Key, encodeUtf16Key } from '../../src/utf16-key.js'
import { makeChange, makeRun } from './fixtures.js'

/** The write transactions a relay store's fault hook can fail. */
export type RelayWrite = 'append' | 'acks' | 'compact' | 'claim' | 'delete'

/** A relay store under test, as {@link runRelayStoreSuite} receives it. */
export interface RelayStoreFixture {
  readonly store: RelayStore
  /** Another store over the same data (the suite closes the one before first). */
  reopen(): Promise<RelayStore>
  /** Makes the next commit of kind `write` fail. */
  fail(write: RelayWrite): Promise<void>
  /** Read through another connection, so only what is committed counts: the log's rows. */
  committedLogRows(): Promise<number>
  /** Read through another connection: the acknowledged position stored for `replica`. */
  committedAck(replica: ReplicaId): Promise<number | undefined>
  /** Read through another connection: how many acknowledgement rows are stored. */
  committedAckRows(): Promise<number>
  /** Commits of acknowledgements so far, where the test can see them; null where it cannot. */
  ackCommits(): number | null
  /** Removes what the fixture made (the store is closed by then). */
  cleanup(): Promise<void>
}

export const SPACE = asSpaceId('team-notes')
export const A = asReplicaId('alice')
export const B = asReplicaId('bob')
export const C = asReplicaId('carol')
export const DAY = 86_400_000
export const T0 = 1_700_000_000_000

/**
 * What every relay store must do beyond the `HubStore` contract (which testkit's
 * `runHubStoreConformance` checks): compaction and its acknowledgements, collected-deletion
 * marks, snapshots in JavaScript string order, and replica ownership.
 */
export function runRelayStoreSuite(name: string, open: () => Promise<RelayStoreFixture>): void {
  describe(`${name} beyond the HubStore contract`, () => {
    let fixture: RelayStoreFixture
    let store: RelayStore

    beforeEach(async () => {
      fixture = await open()
      store = fixture.store
    })

    afterEach(async () => {
      await store.close()
      await fixture.cleanup()
    })

    /** Closes the store and opens another over the same data. */
    async function reopen(): Promise<void> {
      await store.close()
      store = await fixture.reopen()
    }

    async function recordKeys(): Promise<string[]> {
      const page = await store.readSnapshot(SPACE, null, 1000)
      return page.changes.map((change) => recordKey(change.collection, change.id))
    }

    describe('compaction', () => {
      it('raises the floor to the lowest acknowledged position and drops the log below it', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 6))
        await store.noteAck(SPACE, A, 6, T0)
        await store.noteAck(SPACE, B, 4, T0)
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY })
        expect(result).toEqual({ floor: 4, logEntriesDeleted: 4, tombstonesDeleted: 0, replicasForgotten: 0 })
        expect(await store.loadSpace(SPACE)).toMatchObject({ head: 6, floor: 4 })
        expect((await store.readLog(SPACE, 4, 100)).map((entry) => entry.seq)).toEqual([5, 6])
        const below = await store.readLog(SPACE, 3, 100).catch((error: unknown) => error)
        expect(isChorusError(below, ErrorCode.ResyncRequired)).toBe(true)
        expect(await fixture.committedLogRows()).toBe(2)
        // Records are compacted state, not history: all six are still there for snapshots.
        expect(await recordKeys()).toHaveLength(6)
      })

      it('never lowers the floor, and with no replica known compacts up to the head', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        expect((await store.compact(SPACE, { now: T0, horizonMs: DAY })).floor).toBe(3)
        await store.append(SPACE, A, makeRun(A, 4, 5))
        await store.noteAck(SPACE, B, 1, T0)
        expect((await store.compact(SPACE, { now: T0, horizonMs: DAY })).floor).toBe(3)
        expect(await store.readLog(SPACE, 3, 100)).toHaveLength(2)
        expect(await store.compact(asSpaceId('never-written'), { now: T0, horizonMs: DAY })).toEqual({
          floor: 0,
          logEntriesDeleted: 0,
          tombstonesDeleted: 0,
          replicasForgotten: 0,
        })
      })

      it('collects a deleted record only once every known replica has acknowledged past it', async () => {
        const put = makeChange(A, 1, { id: 'gone' })
        const remove = makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null)
        const kept = makeChange(A, 3, { id: 'kept' })
        await store.append(SPACE, A, [put, remove, kept])
        await store.noteAck(SPACE, A, 3, T0)
        await store.noteAck(SPACE, B, 1, T0)
        expect((await store.compact(SPACE, { now: T0, horizonMs: DAY })).tombstonesDeleted).toBe(0)
        expect(await recordKeys()).toEqual([recordKey('notes', 'gone'), recordKey('notes', 'kept')])
        await store.noteAck(SPACE, B, 2, T0 + 1)
        const result = await store.compact(SPACE, { now: T0 + 1, horizonMs: DAY })
        expect(result).toMatchObject({ floor: 2, tombstonesDeleted: 1 })
        expect(await recordKeys()).toEqual([recordKey('notes', 'kept')])
      })

      it('takes a linked relay’s batch: one writer’s runs apart in one commit, and the relay’s position', async () => {
        // As a hub appends another relay's log: each run of a writer sparse, in log order, then
        // the other relay's position as an empty sparse append under its relay id.
        const relay = asReplicaId('relay-other')
        const results = await store.appendMany?.(SPACE, [
          { replica: A, changes: makeRun(A, 1, 2), through: 2 },
          { replica: B, changes: makeRun(B, 1, 1), through: 1 },
          { replica: A, changes: makeRun(A, 3, 4), through: 4 },
          { replica: A, changes: makeRun(A, 2, 4), through: 4 },
          { replica: relay, changes: [], through: 9 },
        ])
        if (results === undefined) return
        expect(results.map((result) => [result.head, result.received, result.appended])).toEqual([
          [2, 2, 2],
          [3, 1, 1],
          [5, 4, 2],
          [5, 4, 0],
          [5, 9, 0],
        ])
        const meta = await store.loadSpace(SPACE)
        expect(meta.received).toEqual({ [A]: 4, [B]: 1, [relay]: 9 })
        expect((await store.readLog(SPACE, 0, 100)).map((entry) => entry.change.dot.join(':'))).toEqual([
          `${A}:1`,
          `${A}:2`,
          `${B}:1`,
          `${A}:3`,
          `${A}:4`,
        ])
      })

      it('collects no deletion when told not to (a linked space), and drops the log all the same', async () => {
        const put = makeChange(A, 1, { id: 'gone' })
        const remove = makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null)
        await store.append(SPACE, A, [put, remove])
        await store.noteAck(SPACE, A, 2, T0)
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY, collect: false })
        expect(result).toEqual({ floor: 2, logEntriesDeleted: 2, tombstonesDeleted: 0, replicasForgotten: 0 })
        expect(await recordKeys()).toEqual([recordKey('notes', 'gone')])
        expect((await store.loadSpace(SPACE)).collected).toBeUndefined()
      })

      it('keeps a deletion that has a concurrent edit beside it, and a record written again', async () => {
        const base = makeChange(A, 1, { id: 'x' })
        const deleteX = makeChange(A, 2, { id: 'x', context: { [A]: 1 } }, null)
        const editX = makeChange(B, 1, { id: 'x', context: { [A]: 1 } }, { title: 'edited offline' })
        const deleteY = makeChange(A, 3, { id: 'y' }, null)
        const putY = makeChange(B, 2, { id: 'y', context: { [A]: 3 } }, { title: 'back' })
        await store.append(SPACE, A, [base, deleteX, deleteY])
        await store.append(SPACE, B, [editX, putY])
        await store.noteAck(SPACE, A, 5, T0)
        await store.noteAck(SPACE, B, 5, T0)
        expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toMatchObject({
          floor: 5,
          tombstonesDeleted: 0,
        })
        const page = await store.readSnapshot(SPACE, null, 100)
        expect(page.changes).toHaveLength(3)
      })

      it('forgets replicas not seen within the horizon; a forgotten one counts again once it acknowledges', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 10))
        await store.noteAck(SPACE, A, 10, T0 + 40 * DAY)
        await store.noteAck(SPACE, B, 2, T0)
        expect(await store.compact(SPACE, { now: T0 + 20 * DAY, horizonMs: 30 * DAY })).toMatchObject({
          floor: 2,
          replicasForgotten: 0,
        })
        expect(await store.compact(SPACE, { now: T0 + 40 * DAY, horizonMs: 30 * DAY })).toMatchObject({
          floor: 10,
          replicasForgotten: 1,
        })
        await store.append(SPACE, A, makeRun(A, 11, 12))
        await store.noteAck(SPACE, B, 11, T0 + 41 * DAY)
        expect((await store.compact(SPACE, { now: T0 + 41 * DAY, horizonMs: 30 * DAY })).floor).toBe(10)
        expect((await store.compact(SPACE, { now: T0 + 41 * DAY, horizonMs: Infinity })).floor).toBe(10)
      })

      it('keeps and counts a replica last seen exactly at the horizon’s edge', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 6))
        await store.noteAck(SPACE, A, 6, T0 + DAY)
        await store.noteAck(SPACE, B, 2, T0)
        expect(await store.compact(SPACE, { now: T0 + DAY, horizonMs: DAY })).toMatchObject({
          floor: 2,
          replicasForgotten: 0,
        })
        expect(await store.readLog(SPACE, 2, 100)).toHaveLength(4)
      })

      it('writes a forgotten replica through again, as a new one, when it is seen again', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 10))
        await store.noteAck(SPACE, A, 10, T0 + 40 * DAY)
        await store.noteAck(SPACE, B, 2, T0)
        expect(await store.compact(SPACE, { now: T0 + 40 * DAY, horizonMs: 30 * DAY })).toMatchObject({
          replicasForgotten: 1,
        })
        expect(await fixture.committedAck(B)).toBeUndefined()
        await store.noteAck(SPACE, B, 7, T0 + 41 * DAY)
        expect(await fixture.committedAck(B)).toBe(7)
      })

      it('never lowers a stored position: a late, lower acknowledgement flushed after a higher one', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 5))
        await store.noteAck(SPACE, B, 4, T0)
        expect(await fixture.committedAck(B)).toBe(4)
        await store.noteAck(SPACE, B, 3, T0 + 1)
        await store.flushAcks()
        expect(await fixture.committedAck(B)).toBe(4)
        await reopen()
        expect(await fixture.committedAck(B)).toBe(4)
      })

      it('writes a new replica through at once and buffers later progress until a flush', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 5))
        await store.noteAck(SPACE, B, 2, T0)
        expect(await fixture.committedAck(B)).toBe(2)
        await store.noteAck(SPACE, B, 4, T0 + 1)
        await store.noteAck(SPACE, B, 3, T0 + 2)
        expect(await fixture.committedAck(B)).toBe(2)
        await store.flushAcks()
        expect(await fixture.committedAck(B)).toBe(4)
        await store.noteAck(SPACE, B, 5, T0 + 3)
        await reopen()
        expect(await fixture.committedAck(B)).toBe(5)
      })

      it('writes the replicas first seen together in one commit, before any of their acks resolves', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 5))
        const readers = Array.from({ length: 20 }, (_, i) => asReplicaId(`reader-${i}`))
        const commitsBefore = fixture.ackCommits()
        await Promise.all(readers.map((reader, i) => store.noteAck(SPACE, reader, i % 5, T0)))
        expect(await fixture.committedAckRows()).toBe(20)
        // A store whose commits are not observable from here (the worker's) gives null.
        const commitsAfter = fixture.ackCommits()
        if (commitsBefore !== null && commitsAfter !== null) expect(commitsAfter - commitsBefore).toBe(1)
      })

      it('rejects the acks of first-seen replicas whose write failed, and writes them with the next flush', async () => {
        await fixture.fail('acks')
        const outcome = await store.noteAck(SPACE, B, 2, T0).catch((error: unknown) => error)
        expect(isChorusError(outcome, ErrorCode.StorageFailed)).toBe(true)
        expect(await fixture.committedAckRows()).toBe(0)
        await store.flushAcks()
        expect(await fixture.committedAck(B)).toBe(2)
      })

      it('a failing compaction changes nothing', async () => {
        const remove = makeChange(A, 1, { id: 'gone' }, null)
        await store.append(SPACE, A, [remove, ...makeRun(A, 2, 3)])
        await store.noteAck(SPACE, A, 3, T0)
        await fixture.fail('compact')
        const outcome = await store
          .compact(SPACE, { now: T0, horizonMs: DAY })
          .catch((error: unknown) => error)
        expect(isChorusError(outcome, ErrorCode.StorageFailed)).toBe(true)
        expect(await store.loadSpace(SPACE)).toMatchObject({ head: 3, floor: 0 })
        expect(await store.readLog(SPACE, 0, 100)).toHaveLength(3)
        expect(await recordKeys()).toHaveLength(3)
        expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toMatchObject({
          floor: 3,
          logEntriesDeleted: 3,
          tombstonesDeleted: 1,
        })
      })
    })

    describe('collected-deletion marks', () => {
      /** Per replica, the counter of its last change in the log at or below `floor`. */
      function lastCountersAtOrBelow(entries: readonly LogEntry[], floor: number): Record<string, number> {
        const last: Record<string, number> = {}
        for (const { seq, change } of entries) if (seq <= floor) last[change.dot[0]] = change.dot[1]
        return last
      }

      /**
       * Alice writes and deletes `gone` (positions 1 and 2) and writes `kept` (3); Bob writes a
       * record (4) and deletes `gone` too, not having seen Alice's deletion (5); Alice writes
       * and deletes `later` (6 and 7).
       */
      async function writeTwoDeletions(): Promise<void> {
        await store.append(SPACE, A, [
          makeChange(A, 1, { id: 'gone' }),
          makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null),
          makeChange(A, 3, { id: 'kept' }),
        ])
        await store.append(SPACE, B, [
          makeChange(B, 1, { id: 'bobs' }),
          makeChange(B, 2, { id: 'gone', context: { [A]: 1 } }, null),
        ])
        await store.append(SPACE, A, [
          makeChange(A, 4, { id: 'later' }),
          makeChange(A, 5, { id: 'later', context: { [A]: 4 } }, null),
        ])
      }

      /** Alice, Bob and Carol (who only reads) acknowledge `position`; the floor rises to it. */
      async function everyoneAcks(position: number, now: number): Promise<void> {
        for (const replica of [A, B, C]) await store.noteAck(SPACE, replica, position, now)
      }

      it('marks a compaction that collects a deletion at the head, with each writer’s last counter at or below the floor', async () => {
        await writeTwoDeletions()
        const history = await store.readLog(SPACE, 0, 100)
        await everyoneAcks(5, T0)
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY })
        // `gone` holds a deletion of each: Alice has changes above the floor (counters 4 and
        // 5) and Bob none, so each way of finding a writer's counter is used; Carol, who wrote
        // nothing, has no counter.
        const mark = { at: 7, received: { [A]: 3, [B]: 2 } }
        expect(result).toEqual({
          floor: 5,
          logEntriesDeleted: 5,
          tombstonesDeleted: 1,
          replicasForgotten: 0,
          collected: mark,
        })
        expect(mark.received).toEqual(lastCountersAtOrBelow(history, 5))
        expect(await store.loadSpace(SPACE)).toMatchObject({ head: 7, floor: 5, collected: mark })
        await reopen()
        expect(await store.loadSpace(SPACE)).toEqual({
          head: 7,
          floor: 5,
          received: { [A]: 5, [B]: 2 },
          log: expect.any(String),
          collected: mark,
        })
      })

      it('collects no more deletions until the floor passes the mark, and then marks them anew', async () => {
        await writeTwoDeletions()
        const history = await store.readLog(SPACE, 0, 100)
        await everyoneAcks(5, T0)
        const first = (await store.compact(SPACE, { now: T0, horizonMs: DAY })).collected
        expect(first).toEqual({ at: 7, received: { [A]: 3, [B]: 2 } })
        // `later` (deleted at 7) is at the floor now, but replicas may not have been told of
        // the first mark yet: the log goes, the tombstone stays.
        await everyoneAcks(7, T0 + 1)
        expect(await store.compact(SPACE, { now: T0 + 1, horizonMs: DAY })).toEqual({
          floor: 7,
          logEntriesDeleted: 2,
          tombstonesDeleted: 0,
          replicasForgotten: 0,
          collected: first,
        })
        expect(await recordKeys()).toContain(recordKey('notes', 'later'))
        // Nothing moved: the early return still reports the mark.
        expect(await store.compact(SPACE, { now: T0 + 1, horizonMs: DAY })).toEqual({
          floor: 7,
          logEntriesDeleted: 0,
          tombstonesDeleted: 0,
          replicasForgotten: 0,
          collected: first,
        })
        await store.append(SPACE, B, makeRun(B, 3, 3))
        history.push(...(await store.readLog(SPACE, 7, 100)))
        await everyoneAcks(8, T0 + 2)
        // Only Alice wrote what this one collects (`later`): only she is named.
        const second = { at: 8, received: { [A]: 5 } }
        expect(await store.compact(SPACE, { now: T0 + 2, horizonMs: DAY })).toEqual({
          floor: 8,
          logEntriesDeleted: 1,
          tombstonesDeleted: 1,
          replicasForgotten: 0,
          collected: second,
        })
        expect(second.received[A]).toBe(lastCountersAtOrBelow(history, 8)[A])
        expect(await recordKeys()).not.toContain(recordKey('notes', 'later'))
        expect((await store.loadSpace(SPACE)).collected).toEqual(second)
      })

      it('makes no mark when a compaction collects nothing', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        const result = await store.compact(SPACE, { now: T0, horizonMs: DAY })
        expect(result).toEqual({ floor: 3, logEntriesDeleted: 3, tombstonesDeleted: 0, replicasForgotten: 0 })
        expect(await store.loadSpace(SPACE)).not.toHaveProperty('collected')
      })
    })

    describe('record order', () => {
      // U+1F600 is the surrogate pair D83D DE00: before U+E000…U+FFFF in UTF-16 order, but
      // after them in UTF-8 byte order, which is how SQLite compares TEXT.
      const ids = [
        '\u{1F600}',
        '\uFB01x',
        'a\uFFFF',
        'a\u{1F600}',
        'z',
        'a',
        '\uE000',
        'ab\u0000c',
        '\u{10FFFF}',
      ]

      it('the chosen ids order differently in UTF-16 and UTF-8, so the test can tell', () => {
        const utf16 = [...ids].sort()
        const utf8 = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')))
        expect(utf16).not.toEqual(utf8)
        for (const id of ids) expect(decodeUtf16Key(encodeUtf16Key(id))).toBe(id)
        expect(decodeUtf16Key(encodeUtf16Key('lone \uD800 surrogate'))).toBe('lone \uD800 surrogate')
      })

      it('pages snapshots in JavaScript string order, with emoji ids, one record per page', async () => {
        await store.append(
          SPACE,
          A,
          ids.map((id, i) => makeChange(A, i + 1, { id })),
        )
        const expected = ids.map((id) => recordKey('notes', id)).sort()
        const seen: string[] = []
        let afterKey: string | null = null
        for (let page = 0; page <= ids.length; page++) {
          const result: Awaited<ReturnType<RelayStore['readSnapshot']>> = await store.readSnapshot(
            SPACE,
            afterKey,
            1,
          )
          for (const change of result.changes) seen.push(recordKey(change.collection, change.id))
          if (result.nextKey === null) break
          afterKey = result.nextKey
        }
        expect(seen).toEqual(expected)
        await reopen()
        expect(await recordKeys()).toEqual(expected)
      })
    })

    describe('deleting a space', () => {
      const OTHER = asSpaceId('other-notes')

      it("forgets the space's replicas: their positions, and their owners unless another space knows them", async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        await store.append(OTHER, B, makeRun(B, 1, 2))
        await store.noteAck(SPACE, A, 3, T0)
        await store.noteAck(SPACE, B, 3, T0)
        await store.noteAck(OTHER, B, 2, T0)
        for (const replica of [A, B]) await store.claimReplica(replica, `${replica}@example.com`)
        await store.flushAcks()

        expect(await store.deleteSpace(SPACE)).toBe(true)
        expect(await fixture.committedAck(A)).toBeUndefined()
        expect(await fixture.committedAckRows()).toBe(1)
        expect(await store.listSpaces()).toEqual([OTHER])
        expect((await store.stats()).spaces).toBe(1)
        // Alice wrote only in the deleted space: her id is free again. Bob's is still his.
        expect(await store.claimReplica(A, 'mallory')).toBe(true)
        expect(await store.claimReplica(B, 'mallory')).toBe(false)
        // An acknowledgement that comes late, buffered or not, keeps nothing of it.
        await store.noteAck(SPACE, C, 3, T0)
        await store.noteAck(SPACE, A, 3, T0)
        await store.flushAcks()
        expect(await fixture.committedAckRows()).toBe(1)
        expect(await store.compact(SPACE, { now: T0, horizonMs: DAY })).toMatchObject({
          floor: 0,
          logEntriesDeleted: 0,
        })
        await reopen()
        expect((await store.loadSpace(SPACE)).deleted).toBe(true)
        expect(await store.listSpaces()).toEqual([OTHER])
      })

      it('lists the spaces with their sizes, in name order, and no deleted one', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        await store.append(SPACE, B, makeRun(B, 1, 1))
        await store.append(OTHER, B, makeRun(B, 1, 2))
        await store.noteAck(SPACE, C, 4, T0)
        await store.noteAck(OTHER, C, 1, T0)
        await store.noteAck(OTHER, A, 2, T0)
        // A linked relay's position, and its acknowledgement, count as a link only.
        const linked = asReplicaId('relay-other-log')
        await store.append(SPACE, linked, [], undefined, 7)
        await store.noteAck(SPACE, linked, 4, T0)
        await store.compact(OTHER, { now: T0, horizonMs: DAY })
        expect(await store.describeSpaces()).toEqual([
          { space: OTHER, head: 2, logEntries: 1, writers: 1, readers: 2, links: 0 },
          { space: SPACE, head: 4, logEntries: 4, writers: 2, readers: 1, links: 1 },
        ])
        await store.deleteSpace(OTHER)
        expect((await store.describeSpaces()).map((row) => row.space)).toEqual([SPACE])
      })

      it('a failed deletion deletes nothing', async () => {
        await store.append(SPACE, A, makeRun(A, 1, 3))
        await fixture.fail('delete')
        const failed = await store.deleteSpace(SPACE).then(
          () => 'deleted',
          (error: unknown) => error,
        )
        expect(isChorusError(failed, ErrorCode.StorageFailed), `got ${String(failed)}`).toBe(true)
        expect(await fixture.committedLogRows()).toBe(3)
        expect((await store.loadSpace(SPACE)).deleted).not.toBe(true)
        expect((await store.append(SPACE, A, makeRun(A, 4, 4))).head).toBe(4)
      })
    })

    describe('replica ownership', () => {
      it('binds a replica id to its first subject, durably', async () => {
        expect(await store.claimReplica(A, 'alice@example.com')).toBe(true)
        expect(await store.claimReplica(A, 'alice@example.com')).toBe(true)
        expect(await store.claimReplica(A, 'mallory')).toBe(false)
        await reopen()
        expect(await store.claimReplica(A, 'mallory')).toBe(false)
        expect(await store.claimReplica(C, 'mallory')).toBe(true)
      })
    })
  })
}
