import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import { createHubEngine, type HubEngine } from '../src/hub-engine.js'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'
import { settle } from './wire-hub.js'

const SPACE = asSpaceId('doomed')
const OTHER = asSpaceId('kept')
let time = 1_700_000_000_000
const now = () => time++

/** A replica of `space` named `name`, connected to `hub`; its failures are collected. */
async function replicaOn(hub: HubEngine, name: string, space = SPACE) {
  const errors: string[] = []
  const engine: ReplicaEngine = await openReplicaEngine({
    store: new MemoryReplicaStore(),
    space,
    now,
    createReplicaId: () => asReplicaId(name),
    onError: (error) => errors.push(error.code),
  })
  const closes: (string | undefined)[] = []
  const connection = hub.accept({
    send: (frame) => void engine.receive(frame),
    close: (code) => {
      closes.push(code)
      engine.detach()
    },
  })
  engine.attach((frame) => void connection.receive(frame))
  return { engine, errors, closes }
}

describe('a hub deleting a space', () => {
  it('ends every session on it with space-deleted, keeps other spaces going, and refuses it from then on', async () => {
    const store = new MemoryHubStore()
    const hub = createHubEngine({ store, now })
    const writer = await replicaOn(hub, 'writer')
    const reader = await replicaOn(hub, 'reader')
    const bystander = await replicaOn(hub, 'bystander', OTHER)
    await writer.engine.put('notes', 'a', { title: 'gone soon' })
    await bystander.engine.put('notes', 'b', { title: 'stays' })
    await settle(hub, [writer.engine, reader.engine, bystander.engine])
    expect(await reader.engine.list('notes')).toHaveLength(1)

    expect(await hub.deleteSpace(SPACE)).toBe(true)
    await settle(hub, [writer.engine, reader.engine, bystander.engine])
    for (const replica of [writer, reader]) {
      expect(replica.closes).toEqual([ErrorCode.SpaceDeleted])
      expect(replica.errors).toContain(ErrorCode.SpaceDeleted)
      expect(replica.engine.session().fatal?.code).toBe(ErrorCode.SpaceDeleted)
      expect(replica.engine.status()).toBe('offline')
    }
    expect(bystander.closes).toEqual([])
    expect(hub.spacesInUse()).toEqual([OTHER])
    expect(hub.sessions().map((session) => session.replicaId)).toEqual(['bystander'])

    // A replica that still holds the space, and a new one, are refused at hello.
    const late = await replicaOn(hub, 'late')
    await settle(hub, [late.engine])
    expect(late.closes).toEqual([ErrorCode.SpaceDeleted])
    expect(late.engine.session().fatal?.code).toBe(ErrorCode.SpaceDeleted)
    expect(hub.cachedSpaces()).toBe(1)
    expect(await hub.deleteSpace(SPACE)).toBe(false)

    await bystander.engine.put('notes', 'c', { title: 'still syncing' })
    await settle(hub, [bystander.engine])
    expect(bystander.engine.pending()).toBe(0)
  })

  it('takes no append to a space deleted while it waited, and reports no failure for it', async () => {
    const store = new MemoryHubStore()
    const failures: string[] = []
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    // The append waits at the store until the deletion is through.
    const append = store.append.bind(store)
    store.append = async (...args) => {
      await gate
      return append(...args)
    }
    const hub = createHubEngine({ store, now, onError: (error) => failures.push(error.code) })
    const writer = await replicaOn(hub, 'writer')
    await settle(hub, [writer.engine])
    void writer.engine.put('notes', 'a', { title: 'too late' })
    await writer.engine.idle()
    const deleting = hub.deleteSpace(SPACE)
    release()
    await deleting
    await settle(hub, [writer.engine])
    expect(writer.engine.pending()).toBe(1)
    expect(writer.closes).toEqual([ErrorCode.SpaceDeleted])
    expect((await store.loadSpace(SPACE)).deleted).toBe(true)
    expect(failures).toEqual([])
  })

  it('refuses a hello whose load of the space read it before the deletion and finished after', async () => {
    const store = new MemoryHubStore()
    const gates: (() => void)[] = []
    const load = store.loadSpace.bind(store)
    // A load reads the store at once, then takes its time to come back.
    store.loadSpace = async (space) => {
      const meta = await load(space)
      await new Promise<void>((resolve) => gates.push(resolve))
      return meta
    }
    const hub = createHubEngine({ store, now })
    const late = await replicaOn(hub, 'late')
    while (gates.length === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    const deleting = hub.deleteSpace(SPACE)
    for (const open of gates.splice(0)) open()
    await deleting
    await settle(hub, [late.engine])
    expect(late.closes).toEqual([ErrorCode.SpaceDeleted])
    expect(late.engine.session().fatal?.code).toBe(ErrorCode.SpaceDeleted)
    expect(hub.cachedSpaces()).toBe(0)
    expect(hub.sessions()).toEqual([])
  })

  it('says so over a store that cannot delete', async () => {
    const store = new MemoryHubStore()
    Object.defineProperty(store, 'deleteSpace', { value: undefined })
    const hub = createHubEngine({ store, now })
    await expect(hub.deleteSpace(SPACE)).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
  })
})
