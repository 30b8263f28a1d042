import { createReplica, type Replica } from '@chorus/client'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { type SlowLink, slowLink } from '../../packages/relay/test/support/slow-link.js'
import { eventually, type RelayProcess, startRelay, tempDir, within } from './relay-process.js'

const SPACE = 'field-notes'
const NOTES = 120
/** 120 notes of 10 KB: 1.2 MB of changes, five snapshot pages of 256 KiB. */
const BODY = 'x'.repeat(10_000)
const PAYLOAD = NOTES * BODY.length
/** The link's relay-to-client direction: the snapshot takes about 6 s. */
const BYTES_PER_SECOND = 200_000

let cleanup: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const step of cleanup.reverse()) await step()
  cleanup = []
})

function device(url: string, indexedDB: IDBFactory): Promise<Replica> {
  return createReplica({
    space: SPACE,
    url,
    storage: 'indexeddb',
    indexedDB,
    WebSocket: WebSocket as never,
    reconnect: { baseMs: 50, maxMs: 200 },
  })
}

/**
 * A relay (a process on a data dir of its own), a link to it whose relay-to-client direction
 * is slow, and `NOTES` notes uploaded to it by a writer on `writerDb`, which is closed.
 */
async function relayWithNotes(writerDb: IDBFactory): Promise<{ relay: RelayProcess; link: SlowLink }> {
  const dir = tempDir('chorus-resume-')
  const relay = await startRelay({ dataDir: dir.path })
  const link = await slowLink(relay.url, BYTES_PER_SECOND, 'down')
  cleanup.push(async () => {
    link.close()
    await relay.stop()
    dir.remove()
  })
  const writer = await device(relay.url, writerDb)
  await Promise.all(
    Array.from({ length: NOTES }, (_, i) =>
      notes(writer).put(`n${String(i).padStart(3, '0')}`, { body: BODY, i }),
    ),
  )
  await within(writer.synced(), 20_000, 'the writer to upload')
  await writer.close()
  return { relay, link }
}

const notes = (replica: Replica) => replica.collection('notes')

/**
 * A new replica's download cut off part way: it used to start the snapshot again from its
 * first page on the next connection, so a link that drops more often than a download takes
 * never finished one.
 */
describe('a snapshot cut off part way', () => {
  it('goes on from where it stopped on the next connection, and takes in what changed meanwhile', async () => {
    const writerDb = new IDBFactory()
    const { relay, link } = await relayWithNotes(writerDb)

    const reader = await device(link.url, new IDBFactory())
    cleanup.push(() => reader.close())
    await eventually(async () => (await notes(reader).list()).length >= NOTES / 2, 'half the notes', 30_000)
    link.cut()
    // Meanwhile a note the reader holds changes, another goes, and one is added.
    const writer = await device(relay.url, writerDb)
    await notes(writer).put('n000', { body: 'changed', i: 0 })
    await notes(writer).delete('n001')
    await notes(writer).put('n999', { body: 'new', i: 999 })
    await within(writer.synced(), 20_000, 'the writer to upload its changes')

    await within(reader.synced(), 30_000, 'the reader to sync')
    const held = await notes(reader).list()
    expect(held).toEqual(await notes(writer).list())
    expect(held).toHaveLength(NOTES)
    expect(await notes(reader).get('n000')).toEqual({ body: 'changed', i: 0 })
    expect(await notes(reader).get('n001')).toBeUndefined()
    expect(link.connections()).toBeGreaterThan(1)
    // The pages before the cut are not sent again: starting over carried at least 1.5 times
    // the notes.
    expect(link.delivered()).toBeLessThan(PAYLOAD * 1.2)
    await writer.close()
  }, 90_000)

  it('goes on after the replica was closed and opened again, as a reloaded tab is', async () => {
    const writerDb = new IDBFactory()
    const { relay, link } = await relayWithNotes(writerDb)

    const indexedDB = new IDBFactory()
    const first = await device(link.url, indexedDB)
    await eventually(async () => (await notes(first).list()).length >= NOTES / 2, 'half the notes', 30_000)
    // A reloaded tab's socket is gone with it: what the relay had queued for it goes nowhere.
    await first.close()
    link.cut()
    const before = link.delivered()
    const reader = await device(link.url, indexedDB)
    cleanup.push(() => reader.close())
    await within(reader.synced(), 30_000, 'the reopened reader to sync')
    // It had stored half the notes or more: the reopened replica is sent the rest, not all.
    expect(link.delivered() - before).toBeLessThan(PAYLOAD * 0.6)
    const writer = await device(relay.url, writerDb)
    expect(await notes(reader).list()).toEqual(await notes(writer).list())
    await writer.close()
  }, 90_000)
})
