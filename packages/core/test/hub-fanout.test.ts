import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { formatHlc } from '../src/hlc.js'
import { createHubEngine } from '../src/hub-engine.js'
import { asRecordId, asReplicaId, asSpaceId } from '../src/ids.js'
import { decodeMessage, encodeMessage } from '../src/protocol/codec.js'
import { DEFAULT_LIMITS, PROTOCOL_VERSION } from '../src/protocol/messages.js'
import { openReplicaEngine, type ReplicaEngine } from '../src/replica-engine.js'

describe('hub fan-out', () => {
  it('sends each peer every change of the shared entries except its own', async () => {
    let time = 1_700_000_000_000
    const now = () => time++
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const names = ['writer-a', 'writer-b', 'reader-c', 'reader-d']
    const received = new Map<string, Change[]>(names.map((name) => [name, []]))
    const engines: ReplicaEngine[] = []
    for (const name of names) {
      const engine = await openReplicaEngine({
        store: new MemoryReplicaStore(),
        space: 'team',
        now,
        createReplicaId: () => asReplicaId(name),
      })
      const connection = hub.accept({
        send: (frame) => {
          const decoded = decodeMessage(frame)
          if (decoded.ok && decoded.message.type === 'changes') {
            received.get(name)?.push(...decoded.message.batch)
          }
          void engine.receive(frame)
        },
        close: () => engine.detach(),
      })
      engine.attach((frame) => void connection.receive(frame))
      engines.push(engine)
    }
    const [a, b] = engines as [ReplicaEngine, ReplicaEngine]
    const writes: Promise<unknown>[] = []
    for (let i = 0; i < 30; i++) {
      writes.push(a.put('notes', `a-${i}`, { i }))
      writes.push(b.put('notes', `b-${i}`, { i }))
    }
    await Promise.all(writes)
    for (let round = 0; round < 50; round++) {
      await hub.idle()
      await Promise.all(engines.map((engine) => engine.idle()))
      if (engines.every((engine) => engine.pending() === 0) && (received.get('reader-d')?.length ?? 0) >= 60)
        break
    }
    const ids = (name: string) => (received.get(name) ?? []).map((change) => change.id).sort()
    const from = (prefix: string) => Array.from({ length: 30 }, (_, i) => `${prefix}-${i}`).sort()
    expect(ids('writer-a')).toEqual(from('b'))
    expect(ids('writer-b')).toEqual(from('a'))
    expect(ids('reader-c')).toEqual([...from('a'), ...from('b')].sort())
    expect(ids('reader-d')).toEqual(ids('reader-c'))
    for (const engine of engines) expect(await engine.list('notes')).toHaveLength(60)
  })

  it('reports acknowledged positions from an authenticated hello and from acks, once each', async () => {
    const space = asSpaceId('team')
    const writer = asReplicaId('writer')
    const reader = asReplicaId('reader')
    const acked: [string, string, number][] = []
    const hub = createHubEngine({
      store: new MemoryHubStore(),
      now: () => 1_700_000_000_000,
      onAcked: (ackedSpace, replica, position) => acked.push([ackedSpace, replica, position]),
    })
    const changes: Change[] = Array.from({ length: 5 }, (_, i) => ({
      collection: 'notes',
      id: asRecordId(`n${i}`),
      dot: [writer, i + 1],
      context: {},
      hlc: formatHlc({ wall: 1_700_000_000_000 + i, counter: 0, replica: writer }),
      op: { type: 'put', value: { i } },
    }))
    const hello = (replicaId: string, have: number) =>
      encodeMessage({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        replicaId: asReplicaId(replicaId),
        spaces: [space],
        have: { [space]: have },
      })
    const frames: string[] = []
    const writing = hub.accept({ send: () => undefined, close: () => undefined })
    await writing.receive(hello('writer', 0))
    await writing.receive(encodeMessage({ type: 'changes', space, from: 0, to: 5, batch: changes }))
    await hub.idle()
    const reading = hub.accept({ send: (frame) => frames.push(frame), close: () => undefined })
    await reading.receive(hello('reader', 2))
    await hub.idle()
    expect(frames.some((frame) => frame.includes('"to":5'))).toBe(true)
    await reading.receive(encodeMessage({ type: 'ack', space, upTo: 5 }))
    await hub.idle()
    expect(acked).toEqual([
      [space, reader, 2],
      [space, reader, 5],
    ])
  })

  it('reports each commit of appends once, with its duration by the elapsed clock, and no failed one', async () => {
    const space = asSpaceId('team')
    const writer = asReplicaId('writer')
    const commits: [string, number, number][] = []
    let clock = 0
    const store = new MemoryHubStore()
    const hub = createHubEngine({
      store,
      now: () => 1_700_000_000_000,
      // Each reading moves the clock on by 3 ms: a commit read twice took 3 ms.
      elapsed: () => (clock += 3),
      onCommitted: (committedSpace, appends, ms) => commits.push([committedSpace, appends, ms]),
    })
    const change = (counter: number): Change => ({
      collection: 'notes',
      id: asRecordId(`n${counter}`),
      dot: [writer, counter],
      context: {},
      hlc: formatHlc({ wall: 1_700_000_000_000 + counter, counter: 0, replica: writer }),
      op: { type: 'put', value: { counter } },
    })
    const connection = hub.accept({ send: () => undefined, close: () => undefined })
    await connection.receive(
      encodeMessage({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        replicaId: writer,
        spaces: [space],
        have: { [space]: 0 },
      }),
    )
    await connection.receive(
      encodeMessage({ type: 'changes', space, from: 0, to: 2, batch: [change(1), change(2)] }),
    )
    await hub.idle()
    expect(commits).toEqual([[space, 1, 3]])
    store.failNextWrite()
    await connection.receive(encodeMessage({ type: 'changes', space, from: 2, to: 3, batch: [change(3)] }))
    await hub.idle()
    expect(commits).toHaveLength(1)
  })

  describe('log entries kept in memory', () => {
    const space = asSpaceId('team')
    const writer = asReplicaId('writer')

    /** A store that counts the log reads a hub makes beyond its one-entry floor checks. */
    class CountingStore extends MemoryHubStore {
      pageReads = 0
      override readLog(...args: Parameters<MemoryHubStore['readLog']>) {
        if (args[2] > 1) this.pageReads++
        return super.readLog(...args)
      }
    }

    function note(counter: number, chars: number): Change {
      return {
        collection: 'notes',
        id: asRecordId(`n${counter}`),
        dot: [writer, counter],
        context: {},
        hlc: formatHlc({ wall: 1_700_000_000_000 + counter, counter: 0, replica: writer }),
        op: { type: 'put', value: { text: 'x'.repeat(chars) } },
      }
    }

    /**
     * Writes `count` changes through a hub, then streams them to a reader that has the first;
     * `otherSpaces` more spaces are held in use meanwhile by another connection.
     */
    async function writeThenRead(
      count: number,
      chars: number,
      perFrame: number,
      options: { readonly recentChars?: number; readonly otherSpaces?: number } = {},
    ) {
      const store = new CountingStore()
      const hub = createHubEngine({
        store,
        now: () => 1_700_000_000_000,
        ...(options.recentChars === undefined ? {} : { recentChars: options.recentChars }),
      })
      if ((options.otherSpaces ?? 0) > 0) {
        const others = Array.from({ length: options.otherSpaces ?? 0 }, (_, i) => asSpaceId(`other-${i}`))
        const idle = hub.accept({ send: () => undefined, close: () => undefined })
        await idle.receive(
          encodeMessage({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            replicaId: asReplicaId('idle'),
            spaces: others,
            have: Object.fromEntries(others.map((other) => [other, 0])),
          }),
        )
        await hub.idle()
      }
      const hello = (replicaId: string) =>
        encodeMessage({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          replicaId: asReplicaId(replicaId),
          spaces: [space],
          have: { [space]: 1 },
        })
      const writing = hub.accept({ send: () => undefined, close: () => undefined })
      await writing.receive(hello('writer'))
      for (let from = 0; from < count; from += perFrame) {
        const batch = Array.from({ length: Math.min(perFrame, count - from) }, (_, i) =>
          note(from + i + 1, chars),
        )
        await writing.receive(encodeMessage({ type: 'changes', space, from, to: from + batch.length, batch }))
        await hub.idle()
      }
      let streamed = 1
      const reading = hub.accept({
        send: (frame) => {
          const decoded = decodeMessage(frame, { ...DEFAULT_LIMITS, maxFrameBytes: 1e9 })
          if (decoded.ok && decoded.message.type === 'changes') {
            streamed = decoded.message.to
            void reading.receive(encodeMessage({ type: 'ack', space, upTo: streamed }))
          }
        },
        close: () => undefined,
      })
      await reading.receive(hello('reader'))
      for (let round = 0; round < 1000 && streamed < count; round++) await hub.idle()
      expect(streamed).toBe(count)
      return store.pageReads
    }

    it('serves a reader 12,000 positions behind the head from memory', async () => {
      expect(await writeThenRead(12_000, 20, 1000)).toBe(0)
    })

    it('keeps at most about 16M characters of change text per space', async () => {
      // 40 changes of 1M characters: the oldest are read from the store again.
      expect(await writeThenRead(40, 1_000_000, 2)).toBeGreaterThan(0)
    })

    it('splits the hub-wide budget between the spaces in use', async () => {
      // 40 changes of 10,000 characters: 400,000 fit a budget of 1M for one space…
      expect(await writeThenRead(40, 10_000, 2, { recentChars: 1_000_000 })).toBe(0)
      // …but not the quarter of it that each of four spaces in use gets.
      expect(await writeThenRead(40, 10_000, 2, { recentChars: 1_000_000, otherSpaces: 3 })).toBeGreaterThan(
        0,
      )
    })
  })
})
