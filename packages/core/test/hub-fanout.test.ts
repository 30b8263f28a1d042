import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { createHubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import { decodeMessage } from '../src/protocol/codec.js'
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
})
