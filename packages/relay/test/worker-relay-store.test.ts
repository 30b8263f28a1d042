import { join } from 'node:path'
import { asReplicaId, asSpaceId, ErrorCode, isChorusError } from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { WorkerRelayStore } from '../src/worker-relay-store.js'
import { makeChange, makeRun, makeTempDir } from './support/fixtures.js'

const SPACE = asSpaceId('team-notes')
const A = asReplicaId('alice')
const B = asReplicaId('bob')
const T0 = 1_700_000_000_000

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error: unknown) => error,
  )
}

describe('WorkerRelayStore', () => {
  let temp: ReturnType<typeof makeTempDir>
  let file: string
  let store: WorkerRelayStore

  beforeEach(async () => {
    temp = makeTempDir()
    file = join(temp.dir, 'relay.db')
    store = await WorkerRelayStore.open(file)
  })

  afterEach(async () => {
    await store.close()
    temp.remove()
  })

  it('group-commits several replicas’ appends, each as append would, and stores none when the commit fails', async () => {
    expect(
      await store.appendMany(SPACE, [
        { replica: A, changes: [makeChange(A, 1), makeChange(A, 2)] },
        { replica: B, changes: [makeChange(B, 1)] },
        { replica: A, changes: [makeChange(A, 2), makeChange(A, 4)] },
      ]),
    ).toEqual([
      { head: 2, received: 2, appended: 2 },
      { head: 3, received: 1, appended: 1 },
      { head: 3, received: 2, appended: 0 },
    ])
    await store.injectFault('append')
    const failed = await rejection(
      store.appendMany(SPACE, [
        { replica: A, changes: [makeChange(A, 3)] },
        { replica: B, changes: [makeChange(B, 2)] },
      ]),
    )
    expect(isChorusError(failed, ErrorCode.StorageFailed)).toBe(true)
    expect(await store.loadSpace(SPACE)).toMatchObject({ head: 3, floor: 0, received: { [A]: 2, [B]: 1 } })
  })

  it('rejects with the same error codes as the in-thread store', async () => {
    const mismatch = await rejection(store.append(SPACE, A, [makeChange(B, 1)]))
    expect(isChorusError(mismatch, ErrorCode.ReplicaMismatch)).toBe(true)
    const badLimit = await rejection(store.readSnapshot(SPACE, null, 0))
    expect(isChorusError(badLimit, ErrorCode.InvalidArgument)).toBe(true)
    const badPosition = await rejection(store.noteAck(SPACE, A, -1, T0))
    expect(isChorusError(badPosition, ErrorCode.InvalidArgument)).toBe(true)
    const unopenable = await rejection(WorkerRelayStore.open(join(temp.dir, 'missing', 'relay.db')))
    expect(isChorusError(unopenable, ErrorCode.StorageFailed)).toBe(true)
  })

  it('close lets the calls made before it finish, and later calls reject with closed', async () => {
    const appends = [store.append(SPACE, A, makeRun(A, 1, 3)), store.append(SPACE, A, makeRun(A, 4, 6))]
    const ack = store.noteAck(SPACE, B, 2, T0)
    await store.close()
    expect(await Promise.all(appends)).toEqual([
      { head: 3, received: 3, appended: 3 },
      { head: 6, received: 6, appended: 3 },
    ])
    await ack
    const late = await rejection(store.loadSpace(SPACE))
    expect(isChorusError(late, ErrorCode.Closed)).toBe(true)
    store = await WorkerRelayStore.open(file)
    expect(await store.loadSpace(SPACE)).toMatchObject({ head: 6, received: { [A]: 6 } })
    expect(await store.compact(SPACE, { now: T0, horizonMs: Infinity })).toMatchObject({ floor: 2 })
  })

  it('hands out the same entry objects to readers of the same positions, and still rejects below the floor', async () => {
    await store.append(SPACE, A, makeRun(A, 1, 6))
    const [first, second] = await Promise.all([store.readLog(SPACE, 0, 4), store.readLog(SPACE, 0, 4)])
    const later = await store.readLog(SPACE, 2, 10)
    expect(first?.map((entry) => entry.seq)).toEqual([1, 2, 3, 4])
    expect(later.map((entry) => entry.seq)).toEqual([3, 4, 5, 6])
    expect(second?.[0]).toBe(first?.[0])
    expect(later[0]).toBe(first?.[2])
    expect(later[3]?.change).toEqual(makeChange(A, 6))
    await store.noteAck(SPACE, A, 4, T0)
    expect(await store.compact(SPACE, { now: T0, horizonMs: Infinity })).toMatchObject({ floor: 4 })
    const below = await rejection(store.readLog(SPACE, 2, 10))
    expect(isChorusError(below, ErrorCode.ResyncRequired)).toBe(true)
    expect((await store.readLog(SPACE, 4, 10)).map((entry) => entry.seq)).toEqual([5, 6])
  })

  it('hands back the collected-deletion mark of compact and loadSpace as the in-thread store makes it', async () => {
    const inThread = new SqliteRelayStore(join(temp.dir, 'in-thread.db'))
    try {
      for (const relayStore of [store, inThread]) {
        await relayStore.append(SPACE, A, [
          makeChange(A, 1, { id: 'gone' }),
          makeChange(A, 2, { id: 'gone', context: { [A]: 1 } }, null),
        ])
        await relayStore.append(SPACE, B, makeRun(B, 1, 2))
        await relayStore.noteAck(SPACE, B, 3, T0)
      }
      const compacted = await store.compact(SPACE, { now: T0, horizonMs: Infinity })
      // Only Alice wrote what was collected: only she is named.
      expect(compacted.collected).toEqual({ at: 4, received: { [A]: 2 } })
      expect(compacted).toEqual(await inThread.compact(SPACE, { now: T0, horizonMs: Infinity }))
      const { log: _, ...loaded } = await store.loadSpace(SPACE)
      const { log: __, ...expected } = await inThread.loadSpace(SPACE)
      expect(loaded).toEqual(expected)
      expect(loaded.collected).toEqual(compacted.collected)
    } finally {
      await inThread.close()
    }
  })
})
