import { join } from 'node:path'
import { createReplica } from '@chorus/client'
import type { SpaceId } from '@chorus/core'
import { DATABASE_FILE, type RunningRelay, SqliteRelayStore, startRelay } from '@chorus/relay'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { eventually, restoreBackup, tempDir, within } from './relay-process.js'

const SPACE = 'team-notes'
const WAIT_MS = 20_000

type Replica = Awaited<ReturnType<typeof createReplica>>

function device(url: string): Promise<Replica> {
  return createReplica({
    space: SPACE,
    url,
    WebSocket: WebSocket as never,
    storage: 'indexeddb',
    indexedDB: new IDBFactory(),
    resolvers: { notes: 'manual' },
  })
}

/** A relay on `dir`'s SQLite file, compacting only when asked. */
function relayOn(dir: string, port = 0): Promise<RunningRelay> {
  return startRelay({ dataDir: dir, port, host: '127.0.0.1', heartbeatMs: 0, compaction: { intervalMs: 0 } })
}

describe('a relay restored from a copy made before it collected a deletion', () => {
  const cleanup: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step()
  })

  it('a note its writer deleted, saw collected and wrote again is that one version on every device, with no conflict', async () => {
    const data = tempDir('chorus-restore-collected-')
    const saved = tempDir('chorus-restore-collected-copy-')
    cleanup.push(data.remove, saved.remove)
    const copy = join(saved.path, 'relay-backup.db')
    let relay = await relayOn(data.path)
    cleanup.push(() => relay.close())
    const alice = await device(relay.url)
    cleanup.push(() => alice.close())
    const bob = await device(relay.url)
    cleanup.push(() => bob.close())
    const notes = (replica: Replica) => replica.collection('notes')

    await notes(alice).put('plan', { title: 'first draft' })
    await within(alice.synced(), WAIT_MS, 'alice to upload the note')
    await eventually(async () => (await notes(bob).get('plan')) !== undefined, 'bob to hold the note')
    const store = relay.store
    if (!(store instanceof SqliteRelayStore)) throw new Error('expected the relay on its SQLite file')
    await store.backup(copy)

    // After the copy: alice deletes the note, and once both devices have seen the deletion
    // the relay collects it. Bob's next note carries the collection to alice, who drops the
    // deletion too: the note is gone from her records, not kept as a deletion.
    await notes(alice).delete('plan')
    await eventually(async () => (await notes(bob).get('plan')) === undefined, 'bob to see the deletion')
    let collected = 0
    await eventually(async () => {
      collected += (await relay.relay.compact()).get(SPACE as SpaceId)?.tombstonesDeleted ?? 0
      return collected >= 1
    }, 'the relay to collect the deletion')
    await notes(bob).put('agenda', { title: 'after the collection' })
    await eventually(async () => (await notes(alice).get('agenda')) !== undefined, 'alice to hold bob’s note')

    // Alice writes the note again. Her change names nothing of the deletion or of the first
    // draft: she holds neither any more.
    await notes(alice).put('plan', { title: 'second draft' })
    await within(alice.synced(), WAIT_MS, 'alice to upload the new draft')
    await eventually(
      async () => (await notes(bob).get('plan'))?.title === 'second draft',
      'bob to hold the new draft',
    )

    // The operator restores the copy, which holds the first draft and not the deletion.
    for (const replica of [alice, bob]) replica.disconnect()
    const port = relay.port
    await relay.close()
    restoreBackup(copy, join(data.path, DATABASE_FILE))
    relay = await relayOn(data.path, port)
    alice.connect()
    bob.connect()
    await within(
      Promise.all([alice.synced(), bob.synced()]),
      WAIT_MS,
      'both devices to sync with the restored relay',
    )
    const carol = await device(relay.url)
    cleanup.push(() => carol.close())
    await within(carol.synced(), WAIT_MS, 'a new device to sync')

    // Alice's new draft came after her first: it replaces it on the relay and on every device,
    // the new one included, which reads both from the restored relay.
    for (const replica of [alice, bob, carol]) {
      await eventually(
        async () => (await notes(replica).get('plan'))?.title === 'second draft',
        'every device to show the new draft',
      )
      expect(await replica.conflicts()).toEqual([])
    }
    // The relay holds the new draft alone (alice's third change: put, delete, put).
    const page = await relay.store.readSnapshot(SPACE as SpaceId, null, 100)
    const held = page.changes.filter((change) => change.id === 'plan')
    expect(held.map((change) => change.dot)).toEqual([[alice.replicaId, 3]])
  }, 60_000)
})
