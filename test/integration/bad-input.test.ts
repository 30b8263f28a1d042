import {
  type AuthResult,
  type Change,
  ChorusError,
  createHubEngine,
  ErrorCode,
  encodeMessage,
  formatHlc,
  type HubConnection,
  MemoryReplicaStore,
  type Message,
  openReplicaEngine,
  PROTOCOL_VERSION,
  type ReplicaId,
  type SpaceId,
} from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'

const space = 'team-notes' as SpaceId
let clock = 1_700_000_000_000
const now = () => clock++

function hubWithPeer(authenticate?: (token: string | undefined) => AuthResult) {
  const store = new MemoryHubStore()
  const errors: ChorusError[] = []
  const hub = createHubEngine({
    store,
    now,
    ...(authenticate === undefined ? {} : { authenticate }),
    limits: { maxFrameBytes: 10_000, maxBatch: 10, maxSpaces: 4, maxTokenLength: 100, maxVectorEntries: 16 },
    onError: (error) => errors.push(error),
  })
  const received: Message[] = []
  let closed = false
  const connection: HubConnection = hub.accept({
    send: (frame) => received.push(JSON.parse(frame) as Message),
    close: () => {
      closed = true
    },
  })
  return { hub, store, connection, received, errors, isClosed: () => closed }
}

function hello(replicaId: string, token?: string): string {
  return encodeMessage({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: replicaId as ReplicaId,
    ...(token === undefined ? {} : { token }),
    spaces: [space],
    have: { [space]: 0 },
  })
}

function change(replica: string, counter: number, value: Record<string, string> = { title: 'x' }): Change {
  return {
    collection: 'notes',
    id: `note-${counter}` as Change['id'],
    dot: [replica as ReplicaId, counter],
    context: {},
    hlc: formatHlc({ wall: 1_700_000_000_000 + counter, counter: 0, replica: replica as ReplicaId }),
    op: { type: 'put', value },
  }
}

function changesFrame(replica: string, from: number, to: number): string {
  const batch = Array.from({ length: to - from }, (_, i) => change(replica, from + i + 1))
  return encodeMessage({ type: 'changes', space, from, to, batch })
}

function codes(messages: readonly Message[]): string[] {
  return messages.flatMap((message) => (message.type === 'error' ? [message.code] : []))
}

describe('the hub refuses bad input with a code and keeps serving', () => {
  it('answers every malformed frame with its error code, stores nothing and stays open', async () => {
    const { hub, connection, received, store, isClosed } = hubWithPeer()
    const frames = [
      'not json at all',
      '{"type":',
      'null',
      '[1,2,3]',
      '42',
      '{}',
      '{"type":"gossip"}',
      `{"type":"ack","space":"${space}","upTo":"seven"}`,
      'x'.repeat(20_000),
      changesFrame('alice', 0, 11),
    ]
    for (const frame of frames) await connection.receive(frame)
    expect(codes(received)).toEqual([
      ErrorCode.MalformedFrame,
      ErrorCode.MalformedFrame,
      ErrorCode.MalformedFrame,
      ErrorCode.MalformedFrame,
      ErrorCode.MalformedFrame,
      ErrorCode.InvalidMessage,
      ErrorCode.UnknownMessage,
      ErrorCode.InvalidMessage,
      ErrorCode.FrameTooLarge,
      ErrorCode.BatchTooLarge,
    ])
    expect(isClosed()).toBe(false)
    expect((await store.loadSpace(space)).head).toBe(0)

    // The same connection still works for a well-behaved peer.
    await connection.receive(hello('alice'))
    await connection.receive(changesFrame('alice', 0, 2))
    await hub.idle()
    expect(received.filter((m) => m.type === 'ack')).toContainEqual({ type: 'ack', space, upTo: 2 })
    expect((await store.loadSpace(space)).head).toBe(2)
  })

  it('requires hello before changes', async () => {
    const { connection, received, store } = hubWithPeer()
    await connection.receive(changesFrame('alice', 0, 1))
    expect(codes(received)).toEqual([ErrorCode.HelloRequired])
    expect((await store.loadSpace(space)).head).toBe(0)
  })

  it('closes a session that speaks another protocol version', async () => {
    const { connection, received, isClosed } = hubWithPeer()
    await connection.receive(hello('alice').replace(`"protocol":${PROTOCOL_VERSION}`, '"protocol":99'))
    expect(codes(received)).toEqual([ErrorCode.UnsupportedProtocol])
    expect(isClosed()).toBe(true)
  })

  it('binds a connection to its replica id: changes under another id are refused and nothing is stored', async () => {
    const { connection, received, store, isClosed } = hubWithPeer()
    await connection.receive(hello('alice'))
    await connection.receive(changesFrame('mallory', 0, 1))
    expect(codes(received)).toEqual([ErrorCode.ReplicaMismatch])
    expect(isClosed()).toBe(true)
    expect((await store.loadSpace(space)).head).toBe(0)
  })

  it('refuses a bad token before any data flows, and a read-only writer per change', async () => {
    const auth = (token: string | undefined): AuthResult => {
      if (token === 'reader') return { ok: true, access: () => 'read' }
      return { ok: false, code: ErrorCode.Unauthenticated, message: 'bad token' }
    }
    const refused = hubWithPeer(auth)
    await refused.store.append(space, 'bob' as ReplicaId, [change('bob', 1)])
    await refused.connection.receive(hello('alice', 'forged'))
    expect(refused.received.map((m) => m.type)).toEqual(['error'])
    expect(codes(refused.received)).toEqual([ErrorCode.Unauthenticated])
    expect(refused.isClosed()).toBe(true)

    const reader = hubWithPeer(auth)
    await reader.connection.receive(hello('alice', 'reader'))
    await reader.connection.receive(changesFrame('alice', 0, 1))
    expect(codes(reader.received)).toEqual([ErrorCode.Forbidden])
    expect((await reader.store.loadSpace(space)).head).toBe(0)
  })

  it('loads nothing for a refused hello, and forgets a space when its last connection closes', async () => {
    const refusing = hubWithPeer(() => ({ ok: false, code: ErrorCode.Unauthenticated, message: 'no' }))
    const many = Array.from({ length: 4 }, (_, i) => `space-${i}`)
    await refusing.connection.receive(
      encodeMessage({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        replicaId: 'mallory' as ReplicaId,
        spaces: many as SpaceId[],
        have: {},
      }),
    )
    expect(codes(refusing.received)).toEqual([ErrorCode.Unauthenticated])
    expect(refusing.hub.cachedSpaces()).toBe(0)

    const open = hubWithPeer()
    await open.connection.receive(hello('alice'))
    await open.connection.receive(changesFrame('alice', 0, 1))
    await open.hub.idle()
    expect(open.hub.cachedSpaces()).toBe(1)
    await open.connection.closed()
    expect(open.hub.cachedSpaces()).toBe(0)
    expect((await open.store.loadSpace(space)).head).toBe(1)
  })

  it('does not acknowledge changes its store failed to write, and takes them once the disk is back', async () => {
    const { hub, connection, received, store, errors } = hubWithPeer()
    await connection.receive(hello('alice'))
    store.failWrites = true
    await connection.receive(changesFrame('alice', 0, 2))
    await hub.idle()
    expect(received.filter((m) => m.type === 'ack' && m.upTo > 0)).toEqual([])
    expect(errors.map((e) => e.code)).toContain(ErrorCode.StorageFailed)

    store.failWrites = false
    await connection.receive(changesFrame('alice', 0, 2))
    await hub.idle()
    expect(received).toContainEqual({ type: 'ack', space, upTo: 2 })
    expect((await store.loadSpace(space)).received).toEqual({ alice: 2 })
  })
})

describe('a replica refuses bad input', () => {
  async function replica(store = new MemoryReplicaStore()) {
    const sent: Message[] = []
    const engine = await openReplicaEngine({
      store,
      space,
      now,
      createReplicaId: () => 'alice' as ReplicaId,
      resolvers: { notes: 'manual' },
    })
    engine.attach((frame) => sent.push(JSON.parse(frame) as Message))
    await engine.idle()
    return { engine, sent, store }
  }

  it('answers garbage frames with error codes and changes nothing', async () => {
    const { engine, sent } = await replica()
    await engine.put('notes', 'n1', { title: 'kept' })
    for (const frame of ['{{', '{"type":"changes"}', JSON.stringify({ type: 'hello', protocol: 1 })]) {
      await engine.receive(frame)
    }
    expect(codes(sent)).toEqual([
      ErrorCode.MalformedFrame,
      ErrorCode.InvalidMessage,
      ErrorCode.InvalidMessage,
    ])
    expect(await engine.list('notes')).toEqual([{ id: 'n1', value: { title: 'kept' } }])
  })

  it('rejects values that are not JSON, empty ids and bad collection names, writing nothing', async () => {
    const { engine, store } = await replica()
    const attempts: (() => Promise<unknown>)[] = [
      () => engine.put('notes', 'a', { when: new Date(0) } as never),
      () => engine.put('notes', 'a', { n: Number.NaN }),
      () => engine.put('notes', 'a', { f: (() => 1) as never }),
      () => engine.put('notes', 'a', [1, 2] as never),
      () => engine.put('notes', '', { title: 'no id' }),
      () => engine.put('', 'a', { title: 'no collection' }),
      () => engine.patch('notes', 'a', { nested: { deeper: undefined } } as never),
    ]
    for (const attempt of attempts) {
      await expect(attempt()).rejects.toMatchObject({ name: 'ChorusError', code: ErrorCode.InvalidArgument })
    }
    expect(await store.outboxSize()).toBe(0)
    expect(await store.allRecords()).toEqual([])
  })

  it('rejects an unknown resolver name when the replica opens', async () => {
    await expect(
      openReplicaEngine({
        store: new MemoryReplicaStore(),
        space,
        now,
        createReplicaId: () => 'alice' as ReplicaId,
        resolvers: { notes: 'newest' as never },
      }),
    ).rejects.toMatchObject({ code: ErrorCode.InvalidArgument })
  })

  it('surfaces a full disk as storage-failed and never queues the write', async () => {
    const { engine, store } = await replica()
    store.failWrites = true
    await expect(engine.put('notes', 'n1', { title: 'lost?' })).rejects.toMatchObject({
      code: ErrorCode.StorageFailed,
    })
    store.failWrites = false
    expect(await store.outboxSize()).toBe(0)
    expect(engine.pending()).toBe(0)
    await engine.put('notes', 'n1', { title: 'written' })
    expect(await engine.get('notes', 'n1')).toEqual({ title: 'written' })
    expect((await store.readOutbox(0, 10)).map((c) => c.dot[1])).toEqual([1])
  })

  it('is an error of the ChorusError type with a stable code', () => {
    const error = new ChorusError(ErrorCode.Forbidden, 'no')
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('forbidden')
  })
})
