import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { ChorusError, ErrorCode } from '../src/errors.js'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import { MemoryReplicaStore } from '../src/memory-replica-store.js'
import { decodeMessage } from '../src/protocol/codec.js'
import type { Message } from '../src/protocol/messages.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { settle, wireToHub } from './wire-hub.js'

const WALL = 1_700_000_000_000
const ids = Array.from({ length: 10 }, (_, i) => `n${i}`)

/**
 * A hub whose snapshots take three records a page (on a `reliable` transport: see
 * `HubSessionConfig.reliable`), and a space of ten records written to it.
 */
async function spaceOfTen(reliable = false): Promise<{ hub: HubEngine; writer: ReplicaEngine }> {
  const hub = createHubEngine({
    store: new MemoryHubStore({ log: 'log-1' }),
    now: () => WALL,
    session: { snapshotPage: 3, reliable },
  })
  const writer = await replica('writer')
  wireToHub(hub, writer)
  for (const id of ids) await writer.put('notes', id, { id })
  await settle(hub, [writer])
  return { hub, writer }
}

function replica(name: string, store = new MemoryReplicaStore()): Promise<ReplicaEngine> {
  return openReplicaEngine({
    store,
    space: 'team',
    now: () => WALL,
    createReplicaId: () => asReplicaId(name),
  })
}

/**
 * Connects `reader` to `hub`; the hub's frames after the `cutAfter`th snapshot page do not
 * reach it (the connection is lost), and every snapshot page sent is noted in `pages`.
 */
function connect(
  hub: HubEngine,
  reader: ReplicaEngine,
  pages: Message[],
  cutAfter = Number.POSITIVE_INFINITY,
) {
  let seen = 0
  const connection = hub.accept({
    send: (frame) => {
      const decoded = decodeMessage(frame)
      if (decoded.ok && decoded.message.type === 'snapshot') {
        pages.push(decoded.message)
        seen += 1
        if (seen > cutAfter) return
      }
      if (seen <= cutAfter) void reader.receive(frame)
    },
    close: () => reader.detach(),
  })
  reader.attach((frame) => void connection.receive(frame))
  return connection
}

const firstKey = (page: Message) =>
  page.type === 'snapshot' && page.batch[0] !== undefined ? page.batch[0].id : undefined

describe('a snapshot cut off part way', () => {
  it('goes on, on the next connection, from the record after the last one stored whole', async () => {
    const { hub } = await spaceOfTen()
    const reader = await replica('reader')
    const first: Message[] = []
    const lost = connect(hub, reader, first, 2)
    await settle(hub, [reader])
    // Pages of n0–n2 and n3–n5 were stored; n5, the last, may have been cut inside.
    expect(first.slice(0, 2).map(firstKey)).toEqual(['n0', 'n3'])
    reader.detach()
    await lost.closed()
    const second: Message[] = []
    connect(hub, reader, second)
    await settle(hub, [reader])
    expect(second.map(firstKey)).toEqual(['n5', 'n8'])
    expect(second[0]).not.toHaveProperty('received')
    expect(reader.session()).toMatchObject({ cursor: 10, phase: 'ready' })
    expect((await reader.list('notes')).map(({ id }) => id)).toEqual(ids)
  })

  it('goes on after the replica restarted meanwhile, from where its store says it got to', async () => {
    const { hub } = await spaceOfTen()
    const store = new MemoryReplicaStore()
    const reader = await replica('reader', store)
    const lost = connect(hub, reader, [], 2)
    await settle(hub, [reader])
    // Dropped, as a process that ends is: a new engine opens the same store.
    reader.detach()
    await lost.closed()
    const again = await replica('reader', store)
    const second: Message[] = []
    connect(hub, again, second)
    await settle(hub, [again])
    expect(second.map(firstKey)).toEqual(['n5', 'n8'])
    expect((await again.list('notes')).map(({ id }) => id)).toEqual(ids)
    expect(await store.loadMeta()).not.toHaveProperty('resume')
  })

  it('is asked for again from where it got to when storing a page fails', async () => {
    const { hub } = await spaceOfTen(true)
    let applies = 0
    const store = new (class extends MemoryReplicaStore {
      override applyRemote(batch: Parameters<MemoryReplicaStore['applyRemote']>[0]): Promise<void> {
        // The third page's records (the first applies store the hub's log name and frame size).
        if (batch.records.length > 0) applies += 1
        if (applies === 3 && batch.records.length > 0)
          return Promise.reject(new ChorusError(ErrorCode.StorageFailed, 'the disk failed'))
        return super.applyRemote(batch)
      }
    })()
    const reader = await openReplicaEngine({
      store,
      space: 'team',
      now: () => WALL,
      createReplicaId: () => asReplicaId('reader'),
      reliableTransport: true,
      onError: () => undefined,
    })
    const pages: Message[] = []
    connect(hub, reader, pages)
    await settle(hub, [reader])
    // Pages n0–n2 and n3–n5 stored, n6–n8 failed: the rest goes again from n5, not n0.
    expect(pages.map(firstKey)).toEqual(['n0', 'n3', 'n6', 'n9', 'n5', 'n8'])
    expect(reader.session()).toMatchObject({ cursor: 10 })
    expect((await reader.list('notes')).map(({ id }) => id)).toEqual(ids)
  })
})
