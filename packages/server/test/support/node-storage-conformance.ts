import { describe, expect, it } from 'vitest'
import type { NodeStorage } from '../../src/storage.js'

/** A record as the machines write them: JSON objects. */
export type TestRecord = { readonly type: string; readonly n: number; readonly [field: string]: unknown }

/** What one conformance case needs: a fresh, empty storage and a way to reopen it. */
export interface NodeStorageFixture {
  readonly storage: NodeStorage<TestRecord>
  /** The same durable log through a new handle (the old one is not used again). */
  reopen(): Promise<NodeStorage<TestRecord>>
  /** Releases the storage (closes files, removes them). */
  cleanup(): Promise<void>
}

/**
 * The `NodeStorage` contract (see `storage.ts`) as tests every implementation must pass:
 * ordered durable appends, atomic batches, copies in and out, epoch fencing that survives
 * a reopen, and checkpoints (`replace`) that drop what came before them, or nothing.
 */
export function runNodeStorageConformance(name: string, open: () => Promise<NodeStorageFixture>): void {
  const withFixture = (test: (fixture: NodeStorageFixture) => Promise<void>) => async () => {
    const fixture = await open()
    try {
      await test(fixture)
    } finally {
      await fixture.cleanup()
    }
  }
  const record = (n: number, extra: Record<string, unknown> = {}): TestRecord => ({
    type: 'entry',
    n,
    ...extra,
  })

  describe(`NodeStorage conformance: ${name}`, () => {
    it(
      'starts empty and returns every appended record, in append order',
      withFixture(async ({ storage }) => {
        expect(await storage.load()).toEqual([])
        expect(await storage.append([record(1), record(2)], null)).toEqual({ ok: true })
        expect(await storage.append([], null)).toEqual({ ok: true })
        expect(await storage.append([record(3, { nested: { list: [1, 'two', null] } })], null)).toEqual({
          ok: true,
        })
        expect(await storage.load()).toEqual([
          record(1),
          record(2),
          record(3, { nested: { list: [1, 'two', null] } }),
        ])
      }),
    )

    it(
      'keeps every record across a reopen',
      withFixture(async (fixture) => {
        for (let n = 1; n <= 50; n++) await fixture.storage.append([record(n)], null)
        await fixture.storage.append(
          Array.from({ length: 500 }, (_, i) => record(51 + i)),
          null,
        )
        const again = await fixture.reopen()
        const loaded = await again.load()
        expect(loaded.map((item) => item.n)).toEqual(Array.from({ length: 550 }, (_, i) => i + 1))
      }),
    )

    it(
      'stores copies: changing a record after appending it, or after loading it, changes nothing stored',
      withFixture(async ({ storage }) => {
        const mutable = { type: 'entry', n: 1, list: [1] }
        await storage.append([mutable], null)
        mutable.list.push(2)
        const loaded = (await storage.load()) as unknown as { list: number[] }[]
        loaded[0]?.list.push(3)
        expect(await storage.load()).toEqual([{ type: 'entry', n: 1, list: [1] }])
      }),
    )

    it(
      'stores all of a batch or none of it',
      withFixture(async ({ storage }) => {
        await storage.append([record(1)], null)
        const bad = { type: 'entry', n: 3, big: 10n } as unknown as TestRecord
        const outcome = await storage.append([record(2), bad], 4)
        expect(outcome).toMatchObject({ ok: false, reason: 'failed' })
        expect(await storage.load()).toEqual([record(1)])
        // The failed append did not raise the epoch either.
        expect(await storage.append([record(2)], 3)).toEqual({ ok: true })
      }),
    )

    it(
      'fences an append from an older epoch, storing nothing, and accepts the same or a newer one',
      withFixture(async ({ storage }) => {
        expect(await storage.append([record(1)], 2)).toEqual({ ok: true })
        expect(await storage.append([record(2)], 1)).toEqual({ ok: false, reason: 'fenced', epoch: 2 })
        expect(await storage.append([record(3)], 2)).toEqual({ ok: true })
        expect(await storage.append([record(4)], null)).toEqual({ ok: true })
        expect(await storage.append([record(5)], 5)).toEqual({ ok: true })
        expect(await storage.append([record(6)], 4)).toEqual({ ok: false, reason: 'fenced', epoch: 5 })
        expect(await storage.append([record(7)], 0)).toEqual({ ok: false, reason: 'fenced', epoch: 5 })
        expect((await storage.load()).map((item) => item.n)).toEqual([1, 3, 4, 5])
      }),
    )

    it(
      'an append without an epoch is never fenced and does not lower the fence',
      withFixture(async ({ storage }) => {
        expect(await storage.append([record(1)], 7)).toEqual({ ok: true })
        expect(await storage.append([record(2)], null)).toEqual({ ok: true })
        expect(await storage.append([record(3)], 6)).toEqual({ ok: false, reason: 'fenced', epoch: 7 })
      }),
    )

    it(
      'remembers the fence across a reopen: a zombie from an older epoch stays refused',
      withFixture(async (fixture) => {
        await fixture.storage.append([record(1)], 3)
        const again = await fixture.reopen()
        expect(await again.append([record(2)], 2)).toEqual({ ok: false, reason: 'fenced', epoch: 3 })
        expect(await again.append([record(3)], 3)).toEqual({ ok: true })
        expect((await again.load()).map((item) => item.n)).toEqual([1, 3])
      }),
    )

    it(
      'a checkpoint replaces every record before it, across a reopen; a refused or failed one drops nothing',
      withFixture(async (fixture) => {
        for (let n = 1; n <= 20; n++) await fixture.storage.append([record(n)], 2)
        expect(await fixture.storage.append([record(21)], 1, true)).toEqual({
          ok: false,
          reason: 'fenced',
          epoch: 2,
        })
        const bad = { type: 'entry', n: 22, big: 10n } as unknown as TestRecord
        expect(await fixture.storage.append([record(21), bad], 2, true)).toMatchObject({
          ok: false,
          reason: 'failed',
        })
        expect((await fixture.storage.load()).map((item) => item.n)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        )
        expect(await fixture.storage.append([record(100), record(101)], 2, true)).toEqual({ ok: true })
        expect(await fixture.storage.append([record(102)], null)).toEqual({ ok: true })
        const again = await fixture.reopen()
        expect((await again.load()).map((item) => item.n)).toEqual([100, 101, 102])
        expect(await again.append([record(103)], 1)).toEqual({ ok: false, reason: 'fenced', epoch: 2 })
        expect(await again.append([record(200)], null, true)).toEqual({ ok: true })
        expect((await again.load()).map((item) => item.n)).toEqual([200])
      }),
    )

    it(
      'a group commit with a checkpoint keeps the checkpoint and what follows it, the group included',
      withFixture(async ({ storage }) => {
        if (storage.appendAll === undefined) return
        await storage.append([record(1), record(2)], null)
        expect(
          await storage.appendAll([
            { records: [record(3)], epoch: null },
            { records: [record(10)], epoch: null, replace: true },
            { records: [record(11)], epoch: null },
          ]),
        ).toEqual({ ok: true })
        expect((await storage.load()).map((item) => item.n)).toEqual([10, 11])
        // Refused as a whole: the checkpoint inside it drops nothing.
        expect(
          await storage.appendAll([
            { records: [record(20)], epoch: 5, replace: true },
            { records: [record(21)], epoch: 4 },
          ]),
        ).toEqual({ ok: false, reason: 'fenced', epoch: 5 })
        expect((await storage.load()).map((item) => item.n)).toEqual([10, 11])
      }),
    )
  })
}
