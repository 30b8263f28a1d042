import { MemoryReplicaStore } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { asReplicaId, type ReplicaId, type SpaceId } from '../src/ids.js'
import { decodeMessage, encodeMessage } from '../src/protocol/codec.js'
import { PROTOCOL_VERSION } from '../src/protocol/messages.js'
import { openReplicaEngine } from '../src/replica-engine.js'

const space = 'team' as SpaceId

/** A replica attached to a fake hub that answers hello with `features`; returns the frames it sent. */
async function uploadAfterHello(features: readonly string[] | undefined) {
  const replicaId: ReplicaId = asReplicaId('alice')
  const engine = await openReplicaEngine({
    store: new MemoryReplicaStore(),
    space,
    now: () => 1_700_000_000_000,
    createReplicaId: () => replicaId,
  })
  const sent: string[] = []
  engine.attach((frame) => sent.push(frame))
  await engine.idle()
  const hello = JSON.parse(sent[0] as string) as { type: string; features?: string[] }
  expect(hello.type).toBe('hello')
  expect(hello.features).toContain('compact')
  await engine.receive(
    encodeMessage({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId,
      spaces: [space],
      have: { [space]: 0 },
      ...(features === undefined ? {} : { features: features as never }),
    }),
  )
  await engine.put('notes', 'n1', { title: 'first' })
  await engine.put('notes', 'n2', { title: 'second' })
  await engine.idle()
  const uploads = sent.slice(1).filter((frame) => frame.startsWith('{"type":"changes"'))
  expect(uploads.length).toBeGreaterThan(0)
  return uploads
}

describe('replica uploads use the compact form only when the hub accepted it', () => {
  it('a hub that answers with compact gets compact batches, which decode to the same changes', async () => {
    const uploads = await uploadAfterHello(['compact'])
    for (const frame of uploads) {
      expect(frame).toContain('"collections":')
      const decoded = decodeMessage(frame)
      expect(decoded.ok).toBe(true)
      if (decoded.ok && decoded.message.type === 'changes') {
        for (const change of decoded.message.batch) expect(change.dot[0]).toBe('alice')
      }
    }
  })

  it('a hub that does not answer with compact gets plain change objects', async () => {
    for (const frame of await uploadAfterHello(undefined)) expect(frame).not.toContain('"collections":')
  })
})
