import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { ErrorCode, isChorusError } from '../src/errors.js'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { MemoryReplicaStore } from '../src/memory-replica-store.js'
import { encodeChange, encodeChangesMessage, encodeMessage } from '../src/protocol/codec.js'
import type { ChangesMessage } from '../src/protocol/messages.js'
import { openReplicaEngine } from '../src/replica-engine.js'

/** A memory store that counts how it is written to. */
class CountingStore extends MemoryReplicaStore {
  batches: number[] = []
  singles = 0
  reads = 0

  override async commitLocal(write: Parameters<MemoryReplicaStore['commitLocal']>[0]): Promise<void> {
    this.singles++
    await super.commitLocal(write)
  }

  override async commitLocalBatch(
    batch: Parameters<MemoryReplicaStore['commitLocalBatch']>[0],
  ): Promise<void> {
    this.batches.push(batch.changes.length)
    await super.commitLocalBatch(batch)
  }
}

async function open(store: MemoryReplicaStore) {
  return openReplicaEngine({
    store,
    space: 'team',
    now: () => 1_700_000_000_000,
    createReplicaId: () => asReplicaId('alice'),
  })
}

describe('ReplicaEngine commits writes issued together in one batch', () => {
  it('writes issued in one turn share one commit, with consecutive counters, each resolving to its change', async () => {
    const store = new CountingStore()
    const replica = await open(store)
    const changes = await Promise.all([
      replica.put('notes', 'a', { n: 1 }),
      replica.put('notes', 'b', { n: 2 }),
      replica.patch('notes', 'a', { done: true }),
    ])
    expect(store.batches).toEqual([3])
    expect(store.singles).toBe(0)
    expect(changes.map((change) => change.dot[1])).toEqual([1, 2, 3])
    // The patch was made on top of the put queued before it in the same batch.
    expect(changes[2]?.context).toEqual({ alice: 1 })
    expect(await replica.get('notes', 'a')).toEqual({ n: 1, done: true })
    expect(replica.pending()).toBe(3)
    expect((await store.readOutbox(0, 10)).map((change: Change) => change.dot[1])).toEqual([1, 2, 3])
  })

  it('a batch holds at most 1,000 writes, or as many as the store asks for (maxLocalBatch)', async () => {
    const puts = (replica: Awaited<ReturnType<typeof open>>, count: number) =>
      Promise.all(Array.from({ length: count }, (_, n) => replica.put('notes', `n${n}`, { n })))
    const plain = new CountingStore()
    await puts(await open(plain), 2500)
    expect(plain.batches).toEqual([1000, 1000, 500])
    const asking = new (class extends CountingStore {
      readonly maxLocalBatch = 3
    })()
    const replica = await open(asking)
    const changes = await puts(replica, 7)
    // The seventh write is a batch of its own: a single commit.
    expect(asking.batches).toEqual([3, 3])
    expect(asking.singles).toBe(1)
    expect(changes.map((change) => change.dot[1])).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(replica.pending()).toBe(7)
  })

  it('writes awaited one by one are committed one by one', async () => {
    const store = new CountingStore()
    const replica = await open(store)
    await replica.put('notes', 'a', { n: 1 })
    await replica.put('notes', 'b', { n: 2 })
    expect(store.batches).toEqual([])
    expect(store.singles).toBe(2)
  })

  it('a batch that fails to commit rejects every write in it and stores none', async () => {
    const store = new CountingStore()
    const replica = await open(store)
    store.failNextWrite()
    const outcomes = await Promise.allSettled([
      replica.put('notes', 'a', { n: 1 }),
      replica.put('notes', 'b', { n: 2 }),
    ])
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected'])
    const reason = (outcomes[0] as PromiseRejectedResult).reason
    expect(isChorusError(reason, ErrorCode.StorageFailed)).toBe(true)
    expect(await store.outboxSize()).toBe(0)
    // The counter did not move: the next write is change 1.
    expect((await replica.put('notes', 'c', { n: 3 })).dot[1]).toBe(1)
  })

  it('a write that cannot be made is rejected alone; the rest of its batch commits', async () => {
    const store = new CountingStore()
    const replica = await open(store)
    const outcomes = await Promise.allSettled([
      replica.put('notes', 'a', { n: 1 }),
      replica.put('notes', 'b', { n: Number.NaN }),
      replica.put('notes', 'c', { n: 3 }),
    ])
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(replica.pending()).toBe(2)
  })
})

/**
 * A counting store whose reads of `bad` (every time) and of `flaky` (the first time) give a
 * record no change can be made on: its versions are not a list.
 */
class CorruptStore extends CountingStore {
  #flaky = true

  override async getRecords(
    keys: Parameters<MemoryReplicaStore['getRecords']>[0],
  ): ReturnType<MemoryReplicaStore['getRecords']> {
    const states = await super.getRecords(keys)
    return keys.map(({ id }, i) => {
      if (id === 'bad' || (id === 'flaky' && this.#flaky)) {
        if (id === 'flaky') this.#flaky = false
        return { versions: null } as never
      }
      return states[i]
    })
  }
}

describe('ReplicaEngine.write: writes that share one promise', () => {
  it('puts and deletes issued together share one promise and one commit, resolved once it is done', async () => {
    const store = new CountingStore()
    const replica = await open(store)
    await replica.put('notes', 'old', { n: 0 })
    const written = [
      replica.write('notes', 'a', 'put', { n: 1 }),
      replica.write('notes', 'b', 'put', { n: 2 }),
      replica.write('notes', 'old', 'delete'),
    ]
    expect(new Set(written).size).toBe(1)
    await expect(written[0]).resolves.toBeUndefined()
    expect(store.batches).toEqual([3])
    expect(await replica.get('notes', 'a')).toEqual({ n: 1 })
    expect(await replica.get('notes', 'old')).toBeUndefined()
    expect(replica.pending()).toBe(4)
    // The next burst is a batch of its own, with a promise of its own.
    const next = replica.write('notes', 'c', 'put', { n: 3 })
    expect(next).not.toBe(written[0])
    await next
  })

  it('a bad value rejects alone, when called; the writes issued with it commit', async () => {
    const replica = await open(new CountingStore())
    const good = replica.write('notes', 'a', 'put', { n: 1 })
    const bad = replica.write('notes', 'b', 'put', { n: Number.NaN })
    await expect(bad).rejects.toSatisfy((error) => isChorusError(error, ErrorCode.InvalidArgument))
    await good
    expect(replica.pending()).toBe(1)
  })

  it('when one of them cannot be made, all of them reject and none is stored; writes with their own promise commit', async () => {
    const store = new CorruptStore()
    const replica = await open(store)
    const outcomes = await Promise.allSettled([
      replica.put('notes', 'flaky', { n: 0 }),
      replica.write('notes', 'a', 'put', { n: 1 }),
      replica.put('notes', 'own', { n: 2 }),
      replica.write('notes', 'bad', 'put', { n: 3 }),
      replica.write('notes', 'c', 'put', { n: 4 }),
      replica.put('notes', 'later', { n: 5 }),
    ])
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'rejected',
      'rejected',
      'fulfilled',
      'rejected',
      'rejected',
      'fulfilled',
    ])
    // The shared writes all report the failure of the one that could not be made.
    expect((outcomes[1] as PromiseRejectedResult).reason).toBe((outcomes[3] as PromiseRejectedResult).reason)
    expect(store.batches).toEqual([2])
    const outbox = await store.readOutbox(0, 10)
    expect(outbox.map((change) => [change.id, change.dot[1]])).toEqual([
      ['own', 1],
      ['later', 2],
    ])
    // `flaky` failed once and was not made again (it would have succeeded): not stored.
    for (const id of ['flaky', 'a', 'c']) expect(await replica.get('notes', id)).toBeUndefined()
  })

  it('a batch that fails to commit rejects their promise, and stores none of them', async () => {
    const store = new CountingStore()
    const replica = await open(store)
    store.failNextWrite()
    const written = [
      replica.write('notes', 'a', 'put', { n: 1 }),
      replica.write('notes', 'b', 'put', { n: 2 }),
    ]
    await expect(written[0]).rejects.toSatisfy((error) => isChorusError(error, ErrorCode.StorageFailed))
    expect(await store.outboxSize()).toBe(0)
  })

  it('into a store without batches, each write commits alone with a promise of its own', async () => {
    const store = new CountingStore()
    Object.defineProperty(store, 'commitLocalBatch', { value: undefined })
    const replica = await open(store)
    store.failNextWrite()
    const outcomes = await Promise.allSettled([
      replica.write('notes', 'a', 'put', { n: 1 }),
      replica.write('notes', 'b', 'put', { n: 2 }),
    ])
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled'])
    expect(store.singles).toBe(2)
    expect(await replica.get('notes', 'b')).toEqual({ n: 2 })
  })
})

/** Fixed so runs repeat; `SEED=… pnpm test` replays the seed a failing property prints. */
const seed = Number(process.env.SEED ?? 20_240_601)

/** A memory store without `getRecords`: the engine reads each record of a batch alone. */
function withoutGetRecords<TStore extends MemoryReplicaStore>(store: TStore): TStore {
  Object.defineProperty(store, 'getRecords', { value: undefined })
  return store
}

type Write =
  | { type: 'put'; collection: string; id: string; n: number }
  | { type: 'patch'; collection: string; id: string; n: number }
  | { type: 'delete'; collection: string; id: string }

const writeArb: fc.Arbitrary<Write> = fc.record({
  type: fc.constantFrom('put' as const, 'patch' as const, 'delete' as const),
  collection: fc.constantFrom('notes', 'tags'),
  id: fc.constantFrom('a', 'b', 'c'),
  n: fc.integer({ min: 0, max: 9 }),
}) as fc.Arbitrary<Write>

function issue(replica: Awaited<ReturnType<typeof open>>, write: Write): Promise<Change> {
  if (write.type === 'delete') return replica.delete(write.collection, write.id)
  if (write.type === 'put') return replica.put(write.collection, write.id, { n: write.n })
  return replica.patch(write.collection, write.id, { [`f${write.n % 3}`]: write.n })
}

describe('a batch of writes makes what the same writes awaited one by one make', () => {
  it('over several collections, records written more than once, stored before or not, with or without getRecords', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(writeArb, { maxLength: 6 }),
        fc.array(writeArb, { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        async (before, writes, readsOneByOne) => {
          const one = new MemoryReplicaStore()
          const batched = readsOneByOne ? withoutGetRecords(new CountingStore()) : new CountingStore()
          const awaited = await open(one)
          const together = await open(batched)
          for (const write of before) {
            await issue(awaited, write)
            await issue(together, write)
          }
          const expected: Change[] = []
          for (const write of writes) expected.push(await issue(awaited, write))
          const made = await Promise.all(writes.map((write) => issue(together, write)))
          expect(made).toEqual(expected)
          if (writes.length > 1) expect(batched.batches).toEqual([writes.length])
          for (const collection of ['notes', 'tags'])
            for (const id of ['a', 'b', 'c'])
              expect(await together.record(collection, id)).toEqual(await awaited.record(collection, id))
        },
      ),
      { seed, numRuns: 200 },
    )
  })
})

describe('encodeChangesMessage', () => {
  it('gives the same text as encodeMessage, with or without head, however the changes are encoded', () => {
    const change = (n: number): Change => ({
      collection: 'notes',
      id: `n${n}` as Change['id'],
      dot: [asReplicaId('bob'), n],
      context: { alice: 2 } as Change['context'],
      hlc: `000001700000000.00000${n}@bob` as Change['hlc'],
      op: { type: 'put', value: { title: `"quoted" ${n}`, tags: ['a'] } },
    })
    const message: ChangesMessage = {
      type: 'changes',
      space: asSpaceId('team'),
      from: 3,
      to: 5,
      batch: [change(1), change(2)],
    }
    expect(encodeChangesMessage(message)).toBe(encodeMessage(message))
    expect(encodeChangesMessage({ ...message, head: 9 })).toBe(encodeMessage({ ...message, head: 9 }))
    expect(encodeChangesMessage({ ...message, batch: [] })).toBe(encodeMessage({ ...message, batch: [] }))
    const cache = new Map<Change, string>()
    const cached = (c: Change) => cache.get(c) ?? cache.set(c, encodeChange(c)).get(c) ?? ''
    expect(encodeChangesMessage(message, cached)).toBe(encodeMessage(message))
  })
})
