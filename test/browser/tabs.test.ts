import { createReplica, deleteReplica, type Replica } from '@chorus/client'
import { afterEach, describe, expect, inject, it } from 'vitest'

// Two replicas on one database in one page are two tabs as far as IndexedDB, Web Locks and
// BroadcastChannel are concerned: each has its own connection, lock requests and channel.

const url = inject('relayUrl')
let run = 0
const open: Replica[] = []

function unique(prefix: string): string {
  run += 1
  return `${prefix}-${Date.now().toString(36)}-${run}`
}

async function tab(space: string, dbName: string): Promise<Replica> {
  const replica = await createReplica({ space, url, dbName, resolvers: { notes: 'lww' } })
  open.push(replica)
  return replica
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Two tabs of one replica on a new space — the first connected and synced — and another device on it. */
async function twoTabsAndADevice(
  prefix: string,
): Promise<{ first: Replica; second: Replica; device: Replica }> {
  const space = unique(prefix)
  const db = unique('db')
  const first = await tab(space, db)
  await first.synced()
  const second = await tab(space, db)
  const device = await tab(space, unique('other-device'))
  return { first, second, device }
}

/** Calls `call` until it rejects with `code`. */
function untilRefused(call: () => Promise<unknown>, code: string, what: string): Promise<void> {
  return until(
    () =>
      call().then(
        () => false,
        (error: unknown) => (error as { code?: string }).code === code,
      ),
    what,
  )
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((replica) => replica.close()))
})

describe('tabs that share one replica (real Chromium: IndexedDB, Web Locks, BroadcastChannel)', () => {
  it('one tab connects; a write in the other is uploaded through it and shows in both at once', async () => {
    const { first, second, device } = await twoTabsAndADevice('tabs')
    expect(second.replicaId).toBe(first.replicaId)

    const seenByFirst: string[][] = []
    first.collection('notes').subscribe((rows) => seenByFirst.push(rows.map((row) => row.id)))
    await second.collection('notes').put('from-second', { title: 'written in the second tab' })
    await until(() => seenByFirst.some((ids) => ids.includes('from-second')), 'the first tab to see it')
    await until(
      async () => (await device.collection('notes').get('from-second')) !== undefined,
      'the other device to receive it',
    )
    await second.synced()
    expect(second.pending).toBe(0)
    expect(first.status).toBe('synced')
    expect(second.status).toBe('synced')
  })

  it('when the connected tab closes, the other takes over and keeps syncing', async () => {
    const { first, second, device } = await twoTabsAndADevice('takeover')
    await first.collection('notes').put('before', { n: 1 })
    await first.synced()

    await first.close()
    await second.collection('notes').put('after', { n: 2 })
    await until(
      async () => (await device.collection('notes').get('after')) !== undefined,
      'the write after the takeover to reach the other device',
    )
    await device.collection('notes').put('back', { n: 3 })
    await until(
      async () => (await second.collection('notes').get('back')) !== undefined,
      'the reply to arrive',
    )
    await second.synced()
    expect(second.status).toBe('synced')
  })

  it("synced() in the tab without the connection holds what another device's synced() put on the relay", async () => {
    const { second, device } = await twoTabsAndADevice('synced')
    await Promise.all([second.synced(), device.synced()])
    for (let round = 0; round < 10; round++) {
      await device.collection('notes').put(`n${round}`, { round })
      await device.synced()
      // Asked of the connected tab over the channel, which asks the relay.
      await second.synced()
      expect(await second.collection('notes').get(`n${round}`)).toEqual({ round })
    }
  })

  it('Work offline in one tab holds the shared connection; both tabs show offline, and online again', async () => {
    const space = unique('offline')
    const db = unique('db')
    const first = await tab(space, db)
    await first.synced()
    const second = await tab(space, db)
    await until(() => second.status === 'synced', 'the second tab to hear the leader')

    second.disconnect()
    await until(() => first.status === 'offline' && second.status === 'offline', 'both tabs offline')
    await second.collection('notes').put('offline-write', { n: 1 })
    await until(() => first.pending === 1, 'the pending count in the connected tab')
    second.connect()
    await second.synced()
    expect(first.pending).toBe(0)
  })

  it('on read-only access, a write in the tab without the connection is refused too; both tabs keep receiving', async () => {
    // The space the setup minted its tokens for (`READ_ONLY_SPACE` in relay-setup.ts).
    const space = 'read-only-tabs'
    const authUrl = inject('authRelayUrl')
    const errors: string[] = []
    const reader = async (dbName: string) => {
      const replica = await createReplica({
        space,
        url: authUrl,
        dbName,
        token: inject('readToken'),
        resolvers: { notes: 'lww' },
      })
      replica.on('error', (error) => errors.push(error.code))
      return replica
    }
    const db = unique('db')
    // A note written on this device before it ever connected: it can never be uploaded.
    const offline = await createReplica({ space, dbName: db, tabs: false })
    await offline.collection('notes').put('written-offline', { n: 0 })
    await offline.close()
    const first = await reader(db)
    open.push(first)
    await expect(first.synced()).rejects.toMatchObject({ code: 'forbidden' })
    expect(errors).toEqual(['forbidden'])
    const second = await reader(db)
    open.push(second)
    const writer = await createReplica({
      space,
      url: authUrl,
      dbName: unique('writer'),
      token: inject('writeToken'),
      resolvers: { notes: 'lww' },
    })
    open.push(writer)

    await expect(first.collection('notes').put('no', { n: 1 })).rejects.toMatchObject({ code: 'forbidden' })
    // The connected tab tells the other with its next report (every 500 ms).
    await untilRefused(
      () => second.collection('notes').delete('never-written'),
      'forbidden',
      'the second tab to refuse writes',
    )
    await expect(second.collection('notes').put('no', { n: 2 })).rejects.toMatchObject({ code: 'forbidden' })
    // Nor does the tab without the connection wait forever for what cannot sync.
    await expect(second.synced()).rejects.toMatchObject({ code: 'forbidden' })
    expect(first.pending).toBeGreaterThanOrEqual(1)

    await writer.collection('notes').put('from-writer', { n: 3 })
    for (const tab of [first, second]) {
      await until(
        async () => (await tab.collection('notes').get('from-writer')) !== undefined,
        'both tabs to receive the writer’s note',
      )
    }
  })

  it('tabs: false: a replica opened later on the database takes it over, and the earlier one is refused loudly', async () => {
    const space = unique('exclusive')
    const db = unique('db')
    const a = await createReplica({ space, url, dbName: db, tabs: false })
    open.push(a)
    await a.collection('notes').put('x', { n: 1 })
    const b = await createReplica({ space, url, dbName: db, tabs: false })
    open.push(b)
    await b.collection('notes').put('y', { n: 2 })
    await expect(a.collection('notes').put('z', { n: 3 })).rejects.toMatchObject({ code: 'storage-failed' })
    await b.synced()
    expect(await b.collection('notes').get('z')).toBeUndefined()
  })

  it("destroy in one tab deletes the database: the other tab's replica closes and says why, and the space comes back from the relay", async () => {
    const space = unique('destroy')
    const db = unique('db')
    const first = await tab(space, db)
    const second = await tab(space, db)
    await second.collection('notes').put('kept', { n: 1 })
    await until(() => first.pending === 0 && second.pending === 0, 'the write to be uploaded')
    const errors: { code: string; message: string }[] = []
    second.on('error', (error) => errors.push(error))
    const names = async () => (await indexedDB.databases()).map((entry) => entry.name)
    expect(await names()).toContain(db)

    await first.destroy()
    expect(await names()).not.toContain(db)
    await until(() => errors.length > 0, 'the other tab to close')
    expect(errors[0]?.code).toBe('closed')
    await expect(second.collection('notes').get('kept')).rejects.toMatchObject({ code: 'closed' })

    const again = await tab(space, db)
    expect(again.replicaId).not.toBe(first.replicaId)
    await again.synced()
    expect(await again.collection('notes').get('kept')).toEqual({ n: 1 })
  })

  it('deleteReplica refuses while a tab holds unsynced changes, then deletes with discardPending', async () => {
    const space = unique('delete')
    const db = unique('db')
    const opened = await tab(space, db)
    opened.disconnect()
    await opened.collection('notes').put('local', { n: 1 })
    await expect(deleteReplica({ space, dbName: db })).rejects.toMatchObject({ code: 'pending-changes' })
    expect(await opened.collection('notes').get('local')).toEqual({ n: 1 })

    await deleteReplica({ space, dbName: db, discardPending: true })
    expect((await indexedDB.databases()).map((entry) => entry.name)).not.toContain(db)
    await untilRefused(() => opened.collection('notes').get('local'), 'closed', 'the open tab to close')
  })
})
