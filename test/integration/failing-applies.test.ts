import { createReplica } from '@chorus/client'
import { ChorusError, ErrorCode, MemoryReplicaStore } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { eventually, type RelayProcess, startRelay, tempDir, within } from './relay-process.js'

const SPACE = 'failing-disk'
const NOTES = 600

let cleanup: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const step of cleanup.reverse()) await step()
  cleanup = []
})

/** A memory store whose applies of remote changes fail (as on a full disk) while `failing` says so. */
class FailingApplies extends MemoryReplicaStore {
  failing = false
  failures = 0

  override applyRemote(batch: Parameters<MemoryReplicaStore['applyRemote']>[0]): Promise<void> {
    if (!this.failing) return super.applyRemote(batch)
    this.failures += 1
    return Promise.reject(new ChorusError(ErrorCode.StorageFailed, 'the disk is full'))
  }
}

/** A memory store every `every`th apply of remote changes of which fails, as a flaky disk's. */
class EveryNthApplyFails extends MemoryReplicaStore {
  applies = 0
  failures = 0

  constructor(readonly every: number) {
    super()
  }

  override applyRemote(batch: Parameters<MemoryReplicaStore['applyRemote']>[0]): Promise<void> {
    this.applies += 1
    if (this.applies % this.every !== 0) return super.applyRemote(batch)
    this.failures += 1
    return Promise.reject(new ChorusError(ErrorCode.StorageFailed, 'the disk failed'))
  }
}

/** A WebSocket that counts the frames its replica sends. */
function countingWebSocket(counts: { sent: number }) {
  return class extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args)
      const send = this.send.bind(this)
      this.send = ((data: string) => {
        counts.sent += 1
        send(data)
      }) as WebSocket['send']
    }
  }
}

async function relayWithNotes(): Promise<RelayProcess> {
  const dir = tempDir('chorus-failing-applies-')
  const relay = await startRelay({ dataDir: dir.path })
  cleanup.push(async () => {
    await relay.stop()
    dir.remove()
  })
  await writeNotes(relay.url, 'n', { body: 'x'.repeat(500) })
  return relay
}

/** `NOTES` notes `<prefix><i>` written by a replica of their own, uploaded, and it closed. */
async function writeNotes(url: string, prefix: string, fields: Record<string, string> = {}): Promise<void> {
  const writer = await createReplica({ space: SPACE, url, storage: 'memory', WebSocket: WebSocket as never })
  await Promise.all(
    Array.from({ length: NOTES }, (_, i) =>
      writer.collection('notes').put(`${prefix}${i}`, { i, ...fields }),
    ),
  )
  await within(writer.synced(), 20_000, 'the writer to upload')
  await writer.close()
}

// Over a WebSocket the relay sends nothing again for silence alone: the replica asks for what
// it could not store. While every apply fails, it asks once a retransmit period, not at every
// failure: before, the two sent a window back and forth as fast as the link went, until the
// relay's rate limit dropped the ask, and then nothing moved again.
describe('a replica whose storage fails applying what the relay sends', () => {
  it.each(['log', 'snapshot'] as const)(
    'catches up once it works again, without a storm (%s)',
    async (path) => {
      const relay = await relayWithNotes()
      const store = new FailingApplies()
      const counts = { sent: 0 }
      const errors: unknown[] = []
      const reader = await createReplica({
        space: SPACE,
        url: relay.url,
        storage: store,
        WebSocket: countingWebSocket(counts) as never,
        autoConnect: path === 'log',
      })
      reader.on('error', (error) => errors.push(error))
      cleanup.push(() => reader.close())
      if (path === 'log') {
        // A cursor past 0 first, so what follows comes from the log.
        await within(reader.synced(), 20_000, 'the first sync')
        reader.disconnect()
        await writeNotes(relay.url, 'm')
      }
      store.failing = true
      const before = counts.sent
      reader.connect()
      await eventually(() => store.failures >= 2, 'applies to fail', 10_000)
      // Four seconds of a full disk.
      await new Promise((resolve) => setTimeout(resolve, 4_000))
      const duringFailure = counts.sent - before
      store.failing = false
      await within(reader.synced(), 20_000, 'the reader to catch up')
      expect((await reader.collection('notes').list()).length).toBe(path === 'log' ? 2 * NOTES : NOTES)
      // A few asks and acks while it failed, not hundreds.
      expect(duringFailure).toBeLessThan(100)
      expect(errors.length).toBeGreaterThan(0)
    },
    60_000,
  )

  // The relay's snapshot of the 600 notes takes three pages, and each ask to send again
  // started it over from its first: with every other apply failing, it never ended.
  it('takes in a snapshot of many pages when every other apply fails', async () => {
    const relay = await relayWithNotes()
    const store = new EveryNthApplyFails(2)
    const reader = await createReplica({
      space: SPACE,
      url: relay.url,
      storage: store,
      WebSocket: WebSocket as never,
    })
    reader.on('error', () => undefined)
    cleanup.push(() => reader.close())
    await within(reader.synced(), 20_000, 'the reader to take in the snapshot')
    expect((await reader.collection('notes').list()).length).toBe(NOTES)
    expect(store.failures).toBeGreaterThan(1)
  }, 60_000)
})
