import { createReplica } from '@chorus/client'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { type SlowLink, slowLink } from '../../packages/relay/test/support/slow-link.js'
import { eventually, type RelayProcess, startRelay, tempDir, within } from './relay-process.js'

const SPACE = 'field-notes'
const NOTES = 100
/** 100 notes of 10 KB: 1 MB of changes, which frames of 1 MiB would carry in one. */
const BODY = 'x'.repeat(10_000)
/** The link's slow direction: one frame of 1 MiB takes over 5 s, one of 256 KiB about 1.3 s. */
const BYTES_PER_SECOND = 200_000
/** Half of it with no frame sends a ping, the other half with none hangs up. */
const SILENCE_MS = 4_000

let cleanup: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const step of cleanup.reverse()) await step()
  cleanup = []
})

async function relayBehind(
  direction: 'down' | 'up',
  bytesPerSecond = BYTES_PER_SECOND,
): Promise<{ relay: RelayProcess; link: SlowLink }> {
  const dir = tempDir('chorus-slow-link-')
  const relay = await startRelay({ dataDir: dir.path })
  const link = await slowLink(relay.url, bytesPerSecond, direction)
  cleanup.push(async () => {
    link.close()
    await relay.stop()
    dir.remove()
  })
  return { relay, link }
}

function device(options: { url?: string; indexedDB: IDBFactory; silenceMs?: number }) {
  return createReplica({
    space: SPACE,
    storage: 'indexeddb',
    indexedDB: options.indexedDB,
    WebSocket: WebSocket as never,
    reconnect: { silenceMs: options.silenceMs ?? SILENCE_MS },
    ...(options.url === undefined ? {} : { url: options.url }),
  })
}

async function writeNotes(replica: Awaited<ReturnType<typeof createReplica>>, count = NOTES) {
  await Promise.all(
    Array.from({ length: count }, (_, i) => replica.collection('notes').put(`n${i}`, { body: BODY, i })),
  )
}

// A frame arrives whole or not at all: a frame that takes longer than the silence watchdog
// allows is taken for a dead connection, and the replica starts again, for ever.
describe('a replica on a slow link', () => {
  it('downloads a space of large records on one connection', async () => {
    const { relay, link } = await relayBehind('down')
    const writer = await device({ url: relay.url, indexedDB: new IDBFactory() })
    await writeNotes(writer)
    await within(writer.synced(), 20_000, 'the writer to upload')
    await writer.close()

    const reader = await device({ url: link.url, indexedDB: new IDBFactory() })
    cleanup.push(() => reader.close())
    await eventually(
      async () => (await reader.collection('notes').list()).length === NOTES,
      'every note',
      30_000,
    )
    expect(link.connections()).toBe(1)
    expect(link.delivered()).toBeLessThan(NOTES * BODY.length * 1.2)
  }, 60_000)

  it('uploads what it wrote offline on one connection', async () => {
    const { relay, link } = await relayBehind('up')
    const indexedDB = new IDBFactory()
    const offline = await device({ indexedDB })
    await writeNotes(offline)
    await offline.close()

    const writer = await device({ url: link.url, indexedDB })
    cleanup.push(() => writer.close())
    await within(writer.synced(), 30_000, 'the writer to upload')
    expect(link.connections()).toBe(1)
    expect(link.delivered()).toBeLessThan(NOTES * BODY.length * 1.2)

    const reader = await device({ url: relay.url, indexedDB: new IDBFactory() })
    cleanup.push(() => reader.close())
    await eventually(async () => (await reader.collection('notes').list()).length === NOTES, 'every note')
  }, 60_000)

  // The relay's and the replica's buffers take in far more than the link carries in the 3 s
  // (`retransmitMs`) after which, before, each side sent again what was not acknowledged yet:
  // a download of 2 MB at 50 KB/s carried 6.3 MB, and synced() came after 127 s, not 42.
  describe('slower than the retransmit period', () => {
    const SLOW = 50_000
    const FEW = 50

    it('downloads a space once', async () => {
      const { relay, link } = await relayBehind('down', SLOW)
      const writer = await device({ url: relay.url, indexedDB: new IDBFactory() })
      await writeNotes(writer, FEW)
      await within(writer.synced(), 20_000, 'the writer to upload')
      await writer.close()

      const reader = await device({ url: link.url, indexedDB: new IDBFactory(), silenceMs: 30_000 })
      cleanup.push(() => reader.close())
      await within(reader.synced(), 40_000, 'the reader to sync')
      expect((await reader.collection('notes').list()).length).toBe(FEW)
      expect(link.delivered()).toBeLessThan(FEW * BODY.length * 1.2)
    }, 60_000)

    it('uploads what it wrote offline once', async () => {
      const { relay, link } = await relayBehind('up', SLOW)
      const indexedDB = new IDBFactory()
      const offline = await device({ indexedDB })
      await writeNotes(offline, FEW)
      await offline.close()

      const writer = await device({ url: link.url, indexedDB, silenceMs: 30_000 })
      cleanup.push(() => writer.close())
      await within(writer.synced(), 40_000, 'the writer to upload')
      expect(link.delivered()).toBeLessThan(FEW * BODY.length * 1.2)
      const reader = await device({ url: relay.url, indexedDB: new IDBFactory() })
      cleanup.push(() => reader.close())
      await eventually(async () => (await reader.collection('notes').list()).length === FEW, 'every note')
    }, 60_000)
  })

  // A frame arrives whole or not at all: where one of the relay's own size takes longer than
  // the replica waits before it takes the connection for dead, no frame ever arrived, and
  // the replica connected again and again, for good.
  it('asks for shorter frames once a download went silent, and downloads the space', async () => {
    const { relay, link } = await relayBehind('down', 50_000)
    const writer = await device({ url: relay.url, indexedDB: new IDBFactory() })
    await writeNotes(writer, 60)
    await within(writer.synced(), 20_000, 'the writer to upload')
    await writer.close()

    // 256 KiB frames take over 5 s at 50 KB/s; the replica waits 4 s.
    const reader = await device({ url: link.url, indexedDB: new IDBFactory() })
    cleanup.push(() => reader.close())
    await within(reader.synced(), 50_000, 'the reader to sync')
    expect((await reader.collection('notes').list()).length).toBe(60)
    expect(link.connections()).toBe(2)
  }, 60_000)
})
