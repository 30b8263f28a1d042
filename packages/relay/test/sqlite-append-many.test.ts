import { join } from 'node:path'
import {
  asReplicaId,
  asSpaceId,
  type Change,
  createHubEngine,
  encodeChange,
  encodeMessage,
} from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { makeChange, makeTempDir } from './support/fixtures.js'

const SPACE = asSpaceId('team-notes')
const A = asReplicaId('alice')
const B = asReplicaId('bob')

function openStore(options: { failAppend?: () => boolean } = {}) {
  const temp = makeTempDir()
  const store = new SqliteRelayStore(join(temp.dir, 'relay.db'), {
    beforeCommit: (write) => {
      if (write === 'append' && options.failAppend?.()) throw new Error('disk full (simulated)')
    },
  })
  return { store, temp }
}

describe('SqliteRelayStore.appendMany', () => {
  it('stores several replicas’ appends in one commit, each as append would, in order', async () => {
    const { store, temp } = openStore()
    const results = await store.appendMany(SPACE, [
      { replica: A, changes: [makeChange(A, 1), makeChange(A, 2)] },
      { replica: B, changes: [makeChange(B, 1)] },
      // A duplicate and a gap: skipped and stopped at, as `append` does.
      { replica: A, changes: [makeChange(A, 2), makeChange(A, 4)] },
    ])
    expect(results).toEqual([
      { head: 2, received: 2, appended: 2 },
      { head: 3, received: 1, appended: 1 },
      { head: 3, received: 2, appended: 0 },
    ])
    const log = await store.readLog(SPACE, 0, 10)
    expect(log.map((entry) => [entry.seq, entry.change.dot])).toEqual([
      [1, [A, 1]],
      [2, [A, 2]],
      [3, [B, 1]],
    ])
    await store.close()
    temp.remove()
  })

  it('writes and reads more rows than one statement takes, records updated by later changes included', async () => {
    const { store, temp } = openStore()
    const texts = new Map<Change, string>()
    const text = (change: Change): string => {
      expect(texts.has(change)).toBe(false)
      const json = encodeChange(change)
      texts.set(change, json)
      return json
    }
    // 250 new records from A in two appends; then B, having seen them, overwrites 150 (one a delete).
    const puts = Array.from({ length: 250 }, (_, i) => makeChange(A, i + 1, { id: `note-${i}` }))
    await store.appendMany(
      SPACE,
      [
        { replica: A, changes: puts.slice(0, 120) },
        { replica: A, changes: puts.slice(120) },
      ],
      text,
    )
    const overwrites = Array.from({ length: 150 }, (_, i) =>
      makeChange(B, i + 1, { id: `note-${i + 50}`, context: { [A]: 250 } }, i === 0 ? null : { n: -i }),
    )
    expect(await store.append(SPACE, B, overwrites, text)).toEqual({
      head: 400,
      received: 150,
      appended: 150,
    })
    expect(texts.size).toBe(400)
    const read = new Map<Change, string>()
    const log = await store.readLog(SPACE, 0, 400, (change, json) => read.set(change, json))
    expect(log.map((entry) => entry.change)).toEqual([...puts, ...overwrites])
    expect([...read.values()]).toEqual([...puts, ...overwrites].map((change) => encodeChange(change)))
    const snapshot = await store.readSnapshot(SPACE, null, 1000)
    const latest = new Map<string, Change>()
    for (const change of [...puts, ...overwrites]) latest.set(change.id, change)
    expect(snapshot.changes).toHaveLength(250)
    expect(new Set(snapshot.changes)).toEqual(new Set(latest.values()))
    // The delete left a tombstone, which compaction collects once every replica is past it.
    await store.noteAck(SPACE, A, 400, 0)
    expect(await store.compact(SPACE, { now: 0, horizonMs: Number.POSITIVE_INFINITY })).toMatchObject({
      floor: 400,
      tombstonesDeleted: 1,
    })
    await store.close()
    temp.remove()
  })

  it('stores none of them when the commit fails', async () => {
    const { store, temp } = openStore({ failAppend: () => true })
    await expect(
      store.appendMany(SPACE, [
        { replica: A, changes: [makeChange(A, 1)] },
        { replica: B, changes: [makeChange(B, 1)] },
      ]),
    ).rejects.toMatchObject({ code: 'storage-failed' })
    expect(await store.loadSpace(SPACE)).toMatchObject({ head: 0, floor: 0, received: {} })
    await store.close()
    temp.remove()
  })
})

describe('the hub commits appends that queue up together in one transaction', () => {
  it('two replicas’ batches received before the store runs share one appendMany, and both are acknowledged', async () => {
    const { store, temp } = openStore()
    const calls: string[] = []
    const append = store.append.bind(store)
    const appendMany = store.appendMany.bind(store)
    store.append = (space, replica, changes) => {
      calls.push(`append ${replica}`)
      return append(space, replica, changes)
    }
    store.appendMany = (space, appends) => {
      calls.push(`appendMany ${appends.map((one) => one.replica).join(' ')}`)
      return appendMany(space, appends)
    }
    let release: () => void = () => undefined
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const hub = createHubEngine({ store, now: () => 0, defer: (task) => void gate.then(task) })
    const frames = new Map<string, string[]>()
    const connect = async (replica: typeof A) => {
      const sent: string[] = []
      frames.set(replica, sent)
      const connection = hub.accept({ send: (frame) => sent.push(frame), close: () => undefined })
      await connection.receive(
        encodeMessage({
          type: 'hello',
          protocol: 1,
          replicaId: replica,
          spaces: [SPACE],
          have: { [SPACE]: 0 },
        }),
      )
      return connection
    }
    const alice = await connect(A)
    const bob = await connect(B)
    const batch = (replica: typeof A): Change[] => [makeChange(replica, 1), makeChange(replica, 2)]
    await alice.receive(encodeMessage({ type: 'changes', space: SPACE, from: 0, to: 2, batch: batch(A) }))
    await bob.receive(encodeMessage({ type: 'changes', space: SPACE, from: 0, to: 2, batch: batch(B) }))
    release()
    await hub.idle()
    expect(calls).toEqual([`appendMany ${A} ${B}`])
    for (const replica of [A, B]) {
      expect(frames.get(replica)).toContain(encodeMessage({ type: 'ack', space: SPACE, upTo: 2 }))
    }
    expect((await store.loadSpace(SPACE)).head).toBe(4)
    await store.close()
    temp.remove()
  })
})
