import { ChorusError, ErrorCode, type JsonObject, MemoryReplicaStore, type RecordId } from '@chorus/core'
import { createPrng } from '@chorus/testkit'
import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import { type Collection, createReplica, type ListOptions, type Replica, type Row } from '../src/index.js'
import { LiveQuery } from '../src/live-query.js'
import { freezeRow, keepRows, patchRows, sameRows } from '../src/live-rows.js'

const row = (id: string, n: number): Row<JsonObject> => freezeRow({ id: id as RecordId, value: { n } })

describe('patchRows', () => {
  it('inserts, replaces and removes the changed rows in id order, and keeps the others as they were', () => {
    const rows = [row('b', 1), row('d', 2), row('f', 3)]
    const patched = patchRows(rows, new Set(['a', 'd', 'e', 'f', 'z', 'gone']), [
      { id: 'a' as RecordId, value: { n: 10 } },
      { id: 'd' as RecordId, value: { n: 20 } },
      { id: 'e' as RecordId, value: { n: 30 } },
      { id: 'z' as RecordId, value: { n: 40 } },
    ])
    expect(patched.map((r) => [r.id, r.value.n])).toEqual([
      ['a', 10],
      ['b', 1],
      ['d', 20],
      ['e', 30],
      ['z', 40],
    ])
    expect(patched[1]).toBe(rows[0])
    expect(Object.isFrozen(patched[0])).toBe(true)
  })

  it('keeps the row of a record written again with an equal value', () => {
    const rows = [row('b', 1), row('d', 2)]
    const patched = patchRows(rows, new Set(['b', 'd']), [
      { id: 'b' as RecordId, value: { n: 1 } },
      { id: 'd' as RecordId, value: { n: 3 } },
    ])
    expect(patched[0]).toBe(rows[0])
    expect(patched[1]).not.toBe(rows[1])
    expect(sameRows(rows, patchRows(rows, new Set(['b']), [{ id: 'b' as RecordId, value: { n: 1 } }]))).toBe(
      true,
    )
    expect(sameRows(rows, patched)).toBe(false)
    expect(sameRows(rows, [row('b', 1), row('d', 2)])).toBe(true)
    expect(sameRows(rows, [row('b', 1), row('e', 2)])).toBe(false)
    expect(sameRows(rows, rows.slice(1))).toBe(false)
  })

  it('after a whole read, keeps the rows of records not changed, or changed to an equal value', () => {
    const rows = [row('a', 1), row('b', 2), row('c', 3)]
    const fresh = [
      { id: 'a' as RecordId, value: { n: 1 } },
      { id: 'b' as RecordId, value: { n: 5 } },
      { id: 'c' as RecordId, value: { n: 3 } },
      { id: 'd' as RecordId, value: { n: 4 } },
    ]
    // Changes named: a row not named is kept without comparing.
    const named = keepRows(rows, fresh, new Set(['b', 'd']))
    expect(named[0]).toBe(rows[0])
    expect(named[1]).not.toBe(rows[1])
    expect(named[2]).toBe(rows[2])
    expect(named.map((kept) => kept.value)).toEqual([{ n: 1 }, { n: 5 }, { n: 3 }, { n: 4 }])
    expect(named.every((kept) => Object.isFrozen(kept))).toBe(true)
    // Changes unknown: a row is kept when its value is equal.
    const unknown = keepRows(rows, fresh, null)
    expect(unknown[0]).toBe(rows[0])
    expect(unknown[1]).not.toBe(rows[1])
    expect(unknown[2]).toBe(rows[2])
  })

  it('gives what a whole read gives, for any rows and any changes', () => {
    const ids = fc.constantFrom('a', 'ab', 'b', 'B', 'é', 'z', '0', 'a0', 'Ω', '')
    fc.assert(
      fc.property(
        fc.uniqueArray(ids),
        fc.array(fc.tuple(ids, fc.option(fc.integer({ min: 0, max: 9 }), { nil: null }))),
        (present, changes) => {
          const before = new Map(present.map((id, n) => [id, n]))
          const after = new Map(before)
          for (const [id, n] of changes) {
            if (n === null) after.delete(id)
            else after.set(id, n)
          }
          const sorted = (map: Map<string, number>) =>
            [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, n]) => row(id, n))
          const changed = new Set(changes.map(([id]) => id))
          const fresh = [...changed].flatMap((id) =>
            after.has(id) ? [{ id: id as RecordId, value: { n: after.get(id) as number } }] : [],
          )
          expect(patchRows(sorted(before), changed, fresh)).toEqual(sorted(after))
        },
      ),
      { seed: 20_261_124, numRuns: 500 },
    )
  })
})

/** Timers that run a timeout when the test says so. */
function manualTimers() {
  const due: (() => void)[] = []
  return {
    setTimeout: (callback: () => void) => due.push(callback),
    clearTimeout: () => undefined,
    setInterval: () => 0,
    clearInterval: () => undefined,
    async fire(): Promise<void> {
      for (const callback of due.splice(0)) callback()
      for (let i = 0; i < 10; i++) await Promise.resolve()
    },
  }
}

describe('LiveQuery with update', () => {
  it('updates from the keys changed since its last read, and loads whole on a change without keys or after a failure', async () => {
    const timers = manualTimers()
    const calls: string[] = []
    let failNext = false
    const delivered: string[] = []
    const query = new LiveQuery<string>({
      load: async () => {
        calls.push('load')
        return 'loaded'
      },
      update: async (previous, keys) => {
        calls.push(`update ${[...keys].sort().join(',')}`)
        if (failNext) {
          failNext = false
          throw new Error('read failed')
        }
        return keys.has('big') ? null : `${previous}+${[...keys].sort().join('')}`
      },
      deliver: (result) => delivered.push(result),
      onError: () => delivered.push('error'),
      timers,
    })
    query.start()
    await timers.fire()
    query.invalidate(['b'])
    query.invalidate(['a', 'b'])
    await timers.fire()
    query.invalidate()
    query.invalidate(['c'])
    await timers.fire()
    query.invalidate(['big'])
    await timers.fire()
    failNext = true
    query.invalidate(['d'])
    await timers.fire()
    query.invalidate(['e'])
    await timers.fire()
    expect(calls).toEqual(['load', 'update a,b', 'load', 'update big', 'load', 'update d', 'load'])
    // The load after `big` read what was last delivered: no second call with it.
    expect(delivered).toEqual(['loaded', 'loaded+ab', 'loaded', 'error', 'loaded'])
  })

  it('does not deliver a result the same as the last, by identity or by its `same`', async () => {
    const timers = manualTimers()
    let next = { v: 1 }
    const delivered: number[] = []
    const query = new LiveQuery<{ v: number }>({
      load: async () => next,
      update: async (previous, keys) => (keys.has('keep') ? previous : null),
      same: (a, b) => a.v === b.v,
      deliver: (result) => delivered.push(result.v),
      onError: () => undefined,
      timers,
    })
    query.start()
    await timers.fire()
    query.invalidate(['keep'])
    await timers.fire()
    next = { v: 1 }
    query.invalidate(['x'])
    await timers.fire()
    next = { v: 2 }
    query.invalidate(['x'])
    await timers.fire()
    expect(delivered).toEqual([1, 2])
  })
})

/**
 * A live query on `notes` with `options`: `seen` holds each call's rows as `id:title`, and
 * `next()` resolves at the call after it is asked.
 */
function watch(notes: Collection, options?: ListOptions) {
  const seen: string[][] = []
  const waiters: (() => void)[] = []
  const stop = notes.subscribe((rows) => {
    seen.push(rows.map((row) => `${row.id}:${String(row.value.title)}`))
    for (const wake of waiters.splice(0)) wake()
  }, options)
  return { seen, stop, next: () => new Promise<void>((resolve) => waiters.push(resolve)) }
}

/** A memory store that counts whole-collection reads. */
class CountingStore extends MemoryReplicaStore {
  pages = 0
  override async listRecordsPage(...args: Parameters<MemoryReplicaStore['listRecordsPage']>) {
    this.pages++
    return super.listRecordsPage(...args)
  }
  override async listValuesPage(...args: Parameters<MemoryReplicaStore['listValuesPage']>) {
    this.pages++
    return super.listValuesPage(...args)
  }
}

/** Subscribes to `collection`: every delivery, and a promise of the next one. */
function deliveries(collection: Collection) {
  const seen: (readonly Row[])[] = []
  const waiters: (() => void)[] = []
  const stop = collection.subscribe((rows) => {
    seen.push(rows)
    for (const wake of waiters.splice(0)) wake()
  })
  const next = () => new Promise<void>((resolve) => waiters.push(resolve))
  return { seen, next, stop }
}

describe('a live query over a replica', () => {
  it('after a write to one record of many, reads that record, not the collection', async () => {
    const store = new CountingStore()
    const replica = await createReplica({ space: 'team-notes', storage: store })
    try {
      const notes = replica.collection('notes')
      await Promise.all(
        Array.from({ length: 500 }, (_, n) => notes.put(`n${String(n).padStart(3, '0')}`, { n })),
      )
      const { seen, next, stop } = deliveries(notes)
      await next()
      const whole = store.pages
      expect(whole).toBeGreaterThan(0)
      await notes.put('n250', { n: -1 })
      await next()
      await notes.delete('n001')
      await next()
      await notes.put('n999', { n: 999 })
      await next()
      expect(store.pages).toBe(whole)
      const last = seen.at(-1) as readonly Row[]
      expect(last).toEqual(await notes.list())
      expect(last).toHaveLength(500)
      // Each delivery is an array of its own; the rows that did not change are the same objects.
      expect(last).not.toBe(seen.at(-2))
      expect(last[0]).toBe(seen[0]?.[0])
      stop()
    } finally {
      await replica.close()
    }
  })

  it('keeps the rows that did not change as the same objects when many changes make it read the collection whole', async () => {
    const store = new CountingStore()
    const replica = await createReplica({ space: 'team-notes', storage: store })
    try {
      const notes = replica.collection('notes')
      const id = (n: number) => `n${String(n).padStart(3, '0')}`
      await Promise.all(Array.from({ length: 200 }, (_, n) => notes.put(id(n), { n })))
      const { seen, next, stop } = deliveries(notes)
      await next()
      const first = seen[0] as readonly Row[]
      const pages = store.pages
      // More than LIVE_UPDATE_MIN records in one turn: the query reads the collection again.
      const changed = new Set(Array.from({ length: 65 }, (_, k) => id(k * 3)))
      await Promise.all([...changed].map((key) => notes.patch(key, { n: -1 })))
      await next()
      expect(store.pages).toBeGreaterThan(pages)
      const after = seen.at(-1) as readonly Row[]
      expect(after).toEqual(await notes.list())
      after.forEach((row, i) => {
        if (changed.has(row.id)) expect(row).not.toBe(first[i])
        else expect(row, row.id).toBe(first[i])
      })
      stop()
    } finally {
      await replica.close()
    }
  })

  it('delivers what list() reads after any sequence of writes', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const draw = createPrng(seed)
      const replica: Replica = await createReplica({ space: 'team-notes', storage: 'memory' })
      try {
        const notes = replica.collection('notes')
        let latest: readonly Row[] = []
        const stop = notes.subscribe((rows) => {
          latest = rows
        })
        for (let round = 0; round < 30; round++) {
          const writes = Array.from({ length: 1 + draw.int(0, 6) }, () => {
            const id = `k${draw.int(0, 40)}`
            return draw.next() < 0.3 ? notes.delete(id) : notes.patch(id, { n: draw.int(0, 100) })
          })
          await Promise.all(writes)
          if (draw.next() < 0.5) await new Promise((resolve) => setTimeout(resolve, 0))
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
        expect(latest, `seed ${seed}`).toEqual(await notes.list())
        stop()
      } finally {
        await replica.close()
      }
    }
  })

  it('with a page, delivers that page as list() reads it after every change, and refuses bad options at once', async () => {
    const replica = await createReplica({ space: 'team-notes', storage: 'memory' })
    try {
      const notes = replica.collection('notes')
      for (const id of ['a', 'b', 'c', 'd']) await notes.put(id, { title: id })
      const page = { order: 'desc', limit: 2 } as const
      const { seen, next, stop } = watch(notes, page)
      await next()
      expect(seen.at(-1)).toEqual(['d:d', 'c:c'])
      await notes.put('e', { title: 'e' })
      await next()
      expect(seen.at(-1)).toEqual(['e:e', 'd:d'])
      // A row leaving the page lets the next one in.
      await notes.delete('d')
      await next()
      expect(seen.at(-1)).toEqual(['e:e', 'c:c'])
      await notes.patch('c', { title: 'c, edited' })
      await next()
      expect(seen.at(-1)).toEqual((await notes.list(page)).map((row) => `${row.id}:${row.value.title}`))
      stop()
      expect(() => notes.subscribe(() => undefined, { limit: 0 })).toThrow(/limit must be a positive integer/)
      expect(() => notes.subscribe(() => undefined, { order: 'sideways' as never })).toThrow(/order/)
    } finally {
      await replica.close()
    }
  })

  it("calls a page's listener only when its rows change, and reads nothing for a write past a full page", async () => {
    const store = new CountingStore()
    const replica = await createReplica({ space: 'team-notes', storage: store })
    try {
      const notes = replica.collection('notes')
      for (const id of ['a', 'b', 'c', 'd', 'e']) await notes.put(id, { title: id })
      for (const page of [
        { order: 'desc', limit: 2 },
        { order: 'asc', limit: 2 },
        { order: 'asc', after: 'a', limit: 3 },
      ] as const) {
        const { seen, next, stop } = watch(notes, page)
        await next()
        const first = seen.at(-1) as string[]
        // A live query reads on a timer of 0 ms after a change, and the memory store answers
        // at once: a timer set after the write runs once that read is done.
        const settled = () => new Promise((resolve) => setTimeout(resolve, 0))
        // Past the page's last row (ids before it in `desc`, after it in `asc`): not read at all.
        const outside = page.order === 'desc' ? 'a' : 'e'
        let reads = store.pages
        await notes.put(outside, { title: 'moved on' })
        await settled()
        expect(store.pages - reads, `${JSON.stringify(page)}: pages read after a write past it`).toBe(0)
        // Within the page, written again as it was: read, but the same rows give no call.
        const inside = (first[0] as string).split(':')[0] as string
        reads = store.pages
        await notes.put(inside, { title: inside })
        await settled()
        expect(store.pages - reads).toBeGreaterThan(0)
        // Then a change the page shows: the next call is this one.
        await notes.patch(inside, { title: `${inside}, edited` })
        await next()
        expect(seen, JSON.stringify(page)).toEqual([
          first,
          [`${inside}:${inside}, edited`, ...first.slice(1)],
        ])
        expect(seen.at(-1)).toEqual((await notes.list(page)).map((row) => `${row.id}:${row.value.title}`))
        stop()
        await notes.put(outside, { title: outside })
        await notes.put(inside, { title: inside })
      }
    } finally {
      await replica.close()
    }
  })

  it("hands a failed read to the subscriber's onError when given, else to the replica's error event", async () => {
    const store = new CountingStore()
    const replica = await createReplica({ space: 'team-notes', storage: store })
    try {
      const notes = replica.collection('notes')
      await notes.put('a', { title: 'a' })
      const replicaErrors: string[] = []
      replica.on('error', (error) => replicaErrors.push(error.code))
      const failure = new ChorusError(ErrorCode.StorageFailed, 'the disk is gone')
      const failing = vi.spyOn(store, 'listValuesPage').mockRejectedValue(failure)
      vi.spyOn(store, 'listRecordsPage').mockRejectedValue(failure)
      const mine = await new Promise<ChorusError>((resolve) => {
        notes.subscribe(() => undefined, undefined, resolve)
      })
      expect(mine).toBe(failure)
      expect(replicaErrors).toEqual([])
      await new Promise<void>((resolve) => {
        const stop = replica.on('error', () => {
          stop()
          resolve()
        })
        notes.subscribe(() => undefined)
      })
      expect(replicaErrors).toEqual(['storage-failed'])
      // Once reads work again, a query loads as before.
      failing.mockRestore()
      vi.restoreAllMocks()
      const rows = new Promise<readonly Row[]>((resolve) => {
        notes.subscribe(resolve, undefined, () => undefined)
      })
      expect((await rows).map((row) => row.id)).toEqual(['a'])
      expect(() => notes.subscribe(() => undefined, undefined, 'loud' as never)).toThrow(
        /onError must be a function/,
      )
    } finally {
      await replica.close()
    }
  })
})
