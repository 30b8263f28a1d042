import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import type { HubStore } from '../src/storage.js'
import { wireToHub } from './wire-hub.js'

const SPACE = asSpaceId('team')
let time = 1_700_000_000_000
const now = () => time++

/** A replica named `name`, connected to `hub`. */
async function replicaOn(hub: HubEngine, name: string): Promise<ReplicaEngine> {
  const engine = await openReplicaEngine({
    store: new MemoryReplicaStore(),
    space: SPACE,
    now,
    createReplicaId: () => asReplicaId(name),
  })
  wireToHub(hub, engine)
  return engine
}

/** Lets every hub and replica finish what it is doing. */
async function settle(hubs: readonly HubEngine[], replicas: readonly ReplicaEngine[]): Promise<void> {
  for (let round = 0; round < 5; round++) {
    await Promise.all(hubs.map((hub) => hub.idle()))
    await Promise.all(replicas.map((replica) => replica.idle()))
  }
}

async function ids(replica: ReplicaEngine): Promise<string[]> {
  return (await replica.list('notes')).map((row) => row.id).sort()
}

/**
 * Two hubs over `store`: a writer on the first has stored ten notes, which the second, with a
 * reader on it, has not heard of.
 */
async function tenNotesUnheard(store: HubStore) {
  const first = createHubEngine({ store, now })
  const second = createHubEngine({ store, now })
  const writer = await replicaOn(first, 'writer')
  const reader = await replicaOn(second, 'reader')
  await settle([first, second], [writer, reader])
  await Promise.all(Array.from({ length: 10 }, (_, i) => writer.put('notes', `n${i}`, { i })))
  await settle([first, second], [writer, reader])
  expect(writer.pending()).toBe(0)
  // The second hub has not heard of the appends: its reader has nothing yet.
  expect(await ids(reader)).toEqual([])
  return { first, second, writer, reader }
}

describe('hubs sharing one store', () => {
  it('stream another hub’s appends to their connections once told of them, and not before', async () => {
    const store = new MemoryHubStore()
    const { first, second, writer, reader } = await tenNotesUnheard(store)
    const meta = await store.loadSpace(SPACE)
    await second.advanced(SPACE, meta.head, meta.received)
    await settle([first, second], [writer, reader])
    expect(await ids(reader)).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort())
    expect(second.sessions().find((info) => info.replicaId === 'reader')?.spaces[0]).toMatchObject({
      head: 10,
      acked: 10,
    })
  })

  it('ignore news of a space nobody uses here, and news older than what they know', async () => {
    const store = new MemoryHubStore()
    const hub = createHubEngine({ store, now })
    await hub.advanced(asSpaceId('elsewhere'), 5, { someone: 5 })
    expect(hub.cachedSpaces()).toBe(0)
    expect(hub.spacesInUse()).toEqual([])
    const writer = await replicaOn(hub, 'writer')
    await settle([hub], [writer])
    expect(hub.spacesInUse()).toEqual([SPACE])
    await Promise.all([writer.put('notes', 'a', {}), writer.put('notes', 'b', {})])
    await settle([hub], [writer])
    await hub.advanced(SPACE, 1, { writer: 1 })
    expect(hub.sessions()[0]?.spaces[0]).toMatchObject({ head: 2, received: 2 })
  })

  it('never move a head back when their own append returns after news of later ones, and send a writer what its append jumped over', async () => {
    const shared = new MemoryHubStore()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let gated = 0
    // The first hub's store: its append commits at once, and its result comes back only later.
    const slow: HubStore = {
      loadSpace: (space) => shared.loadSpace(space),
      append: async (...args) => {
        const result = await shared.append(...args)
        gated++
        await gate
        return result
      },
      readLog: (space, after, limit) => shared.readLog(space, after, limit),
      readSnapshot: (...args) => shared.readSnapshot(...args),
      close: () => shared.close(),
    }
    const first = createHubEngine({ store: slow, now })
    const second = createHubEngine({ store: shared, now })
    const writer = await replicaOn(first, 'writer')
    const reader = await replicaOn(first, 'reader')
    const other = await replicaOn(second, 'other')
    await settle([second], [writer, reader, other])
    const written = writer.put('notes', 'w', {})
    for (let turn = 0; turn < 100 && gated === 0; turn++)
      await new Promise((resolve) => setImmediate(resolve))
    expect(gated).toBe(1)
    // The second hub appends after the first one's commit, and the first hears of it first.
    await Promise.all([other.put('notes', 'o1', {}), other.put('notes', 'o2', {})])
    await settle([second], [other])
    const meta = await shared.loadSpace(SPACE)
    expect(meta.head).toBe(3)
    await first.advanced(SPACE, meta.head, meta.received)
    release()
    await written
    await settle([first, second], [writer, reader, other])
    const heads = first.sessions().map((info) => info.spaces[0]?.head)
    expect(heads).toEqual([3, 3])
    expect(await ids(reader)).toEqual(['o1', 'o2', 'w'])
    // The second hub's append moved the log past its own changes (over the first hub's):
    // its writer is sent what it jumped over, though nobody told the second hub of it.
    expect(await ids(other)).toEqual(['o1', 'o2', 'w'])
  })
  it('apply news that arrives while the space is being loaded, from a read made before it', async () => {
    const shared = new MemoryHubStore()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let loads = 0
    // The first hub's store reads a space's facts at once and hands them over only later.
    const slow: HubStore = {
      loadSpace: async (space) => {
        const meta = await shared.loadSpace(space)
        loads++
        await gate
        return meta
      },
      append: (...args) => shared.append(...args),
      readLog: (space, after, limit) => shared.readLog(space, after, limit),
      readSnapshot: (...args) => shared.readSnapshot(...args),
      close: () => shared.close(),
    }
    const first = createHubEngine({ store: slow, now })
    const second = createHubEngine({ store: shared, now })
    const reader = await replicaOn(first, 'reader')
    const writer = await replicaOn(second, 'writer')
    for (let turn = 0; turn < 100 && loads === 0; turn++)
      await new Promise((resolve) => setImmediate(resolve))
    expect(loads).toBe(1)
    await writer.put('notes', 'w', {})
    await settle([second], [writer])
    const meta = await shared.loadSpace(SPACE)
    expect(meta.head).toBe(1)
    const told = first.advanced(SPACE, meta.head, meta.received)
    release()
    await told
    await settle([first, second], [reader, writer])
    expect(await ids(reader)).toEqual(['w'])
  })

  it('do not spin reading when news runs ahead of the store, and stream once the store has the entries', async () => {
    const store = new MemoryHubStore()
    const hub = createHubEngine({ store, now })
    const reader = await replicaOn(hub, 'reader')
    const writer = await replicaOn(hub, 'writer')
    await writer.put('notes', 'w1', {})
    await settle([hub], [reader, writer])
    expect(await ids(reader)).toEqual(['w1'])
    // News of a head this store does not have (the store was put back under the hub, say):
    // every read past the reader's position finds nothing. Settling must end all the same,
    // rather than read again and again at once.
    let reads = 0
    const reading = store.readLog.bind(store)
    store.readLog = (...args) => {
      reads++
      return reading(...args)
    }
    await hub.advanced(SPACE, 4)
    await settle([hub], [reader, writer])
    expect(reads).toBeLessThan(10)
    // The store gets there: the reader is sent what it holds at the next tick.
    await writer.put('notes', 'w2', {})
    await writer.put('notes', 'w3', {})
    await writer.put('notes', 'w4', {})
    await hub.tick()
    await settle([hub], [reader, writer])
    expect(await ids(reader)).toEqual(['w1', 'w2', 'w3', 'w4'])
  })
})

describe('a hello answered while another connection on its space closes', () => {
  it('still reads the space’s head, counters and log name', async () => {
    const store = new MemoryHubStore({ log: 'the-log' })
    let letIn: (() => void) | null = null
    const hub = createHubEngine({
      store,
      now,
      // The second hello's last step (binding its id, say) waits until the test lets it in:
      // its spaces are loaded by then.
      authenticate: (_token, replica) => ({
        ok: true,
        access: () => 'write',
        ...(replica === 'late'
          ? { confirm: () => new Promise<undefined>((resolve) => (letIn = () => resolve(undefined))) }
          : {}),
      }),
    })
    const writer = await openReplicaEngine({
      store: new MemoryReplicaStore(),
      space: SPACE,
      now,
      createReplicaId: () => asReplicaId('writer'),
    })
    const writerConnection = wireToHub(hub, writer)
    await Promise.all(Array.from({ length: 3 }, (_, i) => writer.put('notes', `n${i}`, { i })))
    await settle([hub], [writer])
    const answers: string[] = []
    const late = hub.accept({ send: (frame) => answers.push(frame), close: () => {} })
    const hello = { type: 'hello', protocol: 1, replicaId: 'late', spaces: [SPACE], have: { [SPACE]: 0 } }
    const received = late.receive(JSON.stringify(hello))
    while (letIn === null) await new Promise((resolve) => setTimeout(resolve, 1))
    // The only connection streaming the space goes away while the hello is being authenticated.
    writer.detach()
    await writerConnection.closed()
    ;(letIn as () => void)()
    await received
    await hub.idle()
    const answer = JSON.parse(answers[0] ?? '{}')
    expect(answer).toMatchObject({ type: 'hello', heads: { [SPACE]: 3 }, logs: { [SPACE]: 'the-log' } })
  })
})

/** A store other hubs append to too, which says its head as stored (as a shared database does). */
class SharedStore extends MemoryHubStore {
  async readHead(space: Parameters<MemoryHubStore['loadSpace']>[0]): Promise<number> {
    return (await this.loadSpace(space)).head
  }
}

describe('a ping to a hub that has not heard of another hub’s appends', () => {
  async function unheard(store: MemoryHubStore) {
    const { first, second, writer, reader } = await tenNotesUnheard(store)
    const ask = reader.ping()
    await settle([first, second], [writer, reader])
    expect(reader.session().syncAnswered).toBe(ask)
    expect(reader.status()).toBe('synced')
    return reader
  }

  it('is answered with the stored head over a store that says it, and streams what it had not heard of', async () => {
    const reader = await unheard(new SharedStore())
    expect(reader.session().hubHead).toBe(10)
    expect(await ids(reader)).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort())
  })

  it('is answered with the head the hub keeps over a store that does not (a store of its own)', async () => {
    const reader = await unheard(new MemoryHubStore())
    expect(reader.session().hubHead).toBe(0)
    expect(await ids(reader)).toEqual([])
  })
})

describe('a ping from a writer whose own changes end the log', () => {
  it('is answered, and the writer passes its own changes at once, not at the next tick', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const writer = await replicaOn(hub, 'writer')
    await settle([hub], [writer])
    await writer.put('notes', 'n1', { n: 1 })
    await settle([hub], [writer])
    expect(writer.pending()).toBe(0)
    const ask = writer.ping()
    await settle([hub], [writer])
    expect(writer.session()).toMatchObject({ syncAnswered: ask, hubHead: 1, cursor: 1 })
    expect(writer.status()).toBe('synced')
  })
})
