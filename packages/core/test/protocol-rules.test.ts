import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import { createHubEngine } from '../src/hub-engine.js'
import { asReplicaId } from '../src/ids.js'
import { MemoryReplicaStore } from '../src/memory-replica-store.js'
import { decodeMessage } from '../src/protocol/codec.js'
import { PROTOCOL_VERSION } from '../src/protocol/messages.js'
import { openReplicaEngine } from '../src/replica-engine.js'

/** A hub engine with one connection whose sent frames and close are recorded. */
function hubConnection(relayClaim = false) {
  const hub = createHubEngine({
    store: new MemoryHubStore(),
    now: () => 1_700_000_000_000,
    authenticate: () => ({ ok: true, access: () => 'write', relay: relayClaim }),
  })
  const sent: Record<string, unknown>[] = []
  const closed: { code: string; message: string }[] = []
  const connection = hub.accept({
    send: (frame) => sent.push(JSON.parse(frame) as Record<string, unknown>),
    close: (code, message) => closed.push({ code: String(code), message: String(message) }),
  })
  return { hub, connection, sent, closed }
}

const hello = (features: string[]) =>
  JSON.stringify({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: 'relay-b',
    spaces: ['team'],
    have: { team: 0 },
    token: 't',
    features,
  })

describe('protocol rules', () => {
  it('never answers an error frame with another, even a malformed one', async () => {
    expect(decodeMessage('{"type":"error","code":"internal"}')).toMatchObject({ ok: false, ofError: true })
    expect(decodeMessage('{"type":"hello"}')).not.toHaveProperty('ofError')

    const { hub, connection, sent } = hubConnection()
    for (const frame of ['{"type":"error","code":"internal"}', '{"type":"error","code":5,"message":"x"}']) {
      await connection.receive(frame)
    }
    await hub.idle()
    expect(sent).toEqual([])
    // Any other malformed frame is answered.
    await connection.receive('{"type":"nonsense"}')
    expect(sent.map((frame) => frame.code)).toEqual(['unknown-message'])

    const frames: string[] = []
    const replica = await openReplicaEngine({
      store: new MemoryReplicaStore(),
      space: 'team',
      now: () => 1_700_000_000_000,
      createReplicaId: () => asReplicaId('alice'),
    })
    replica.attach((frame) => frames.push(frame))
    await replica.idle()
    const before = frames.length
    await replica.receive('{"type":"error","message":"no code"}')
    await replica.idle()
    expect(frames.length).toBe(before)
    await replica.receive('{"type":"nonsense"}')
    expect(frames.slice(before).map((frame) => (JSON.parse(frame) as { code: string }).code)).toEqual([
      'unknown-message',
    ])
  })

  it('refuses the relay feature offered without compact beside it', async () => {
    const alone = hubConnection(true)
    await alone.connection.receive(hello(['relay']))
    await alone.hub.idle()
    expect(alone.closed).toEqual([expect.objectContaining({ code: 'invalid-message' })])
    expect(alone.closed[0]?.message).toMatch(/only with compact/)

    const paired = hubConnection(true)
    await paired.connection.receive(hello(['relay', 'compact']))
    await paired.hub.idle()
    expect(paired.closed).toEqual([])
    expect(paired.sent[0]).toMatchObject({ type: 'hello', features: ['relay', 'compact'] })
  })
})
