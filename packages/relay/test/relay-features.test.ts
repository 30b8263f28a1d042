import { asReplicaId, decodeMessage, Feature, type Message } from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { makeRun } from './support/fixtures.js'
import { startTestRelay, type TestRelay } from './support/harness.js'
import { changes, connectClient, hello, is } from './support/test-client.js'

const SPACE = 'team-notes'
const A = asReplicaId('alice')

/** Opens a bare socket that records every frame's raw text. */
async function rawFrames(url: string, first: Message): Promise<{ frames: string[]; socket: WebSocket }> {
  const socket = new WebSocket(url)
  const frames: string[] = []
  socket.on('message', (data) => frames.push(String(data)))
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  socket.send(JSON.stringify(first))
  return { frames, socket }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

describe('optional features through the relay', () => {
  let relay: TestRelay

  beforeEach(async () => {
    relay = await startTestRelay({ compaction: { intervalMs: 0 } })
  })

  afterEach(async () => {
    await relay.stop()
    expect(relay.errors).toEqual([])
  })

  it('sends compact batches to a replica that offers them, change objects to one that does not', async () => {
    const alice = await connectClient(relay.url)
    alice.send(hello('alice', { [SPACE]: 0 }))
    await alice.waitFor(is.hello, "the relay's hello")
    alice.send(changes(SPACE, 0, makeRun(A, 1, 3)))
    await alice.waitFor(is.ack(3), 'the ack of changes 1–3')

    const modern = await rawFrames(relay.url, {
      ...hello('bob', { [SPACE]: 0 }),
      features: [Feature.Compact],
    } as Message)
    const legacy = await rawFrames(relay.url, hello('carol', { [SPACE]: 0 }))
    await until(
      () =>
        [modern, legacy].every(({ frames }) =>
          frames.some((frame) => frame.startsWith('{"type":"snapshot"')),
        ),
      'a snapshot on both connections',
    )
    const [modernHello, modernSnapshot] = modern.frames.map(
      (frame) => JSON.parse(frame) as Record<string, unknown>,
    )
    const [legacyHello, legacySnapshot] = legacy.frames.map(
      (frame) => JSON.parse(frame) as Record<string, unknown>,
    )
    expect(modernHello).toMatchObject({ type: 'hello', features: [Feature.Compact] })
    expect(legacyHello).not.toHaveProperty('features')
    expect(modernSnapshot).toMatchObject({ collections: ['notes'], replicas: ['alice'] })
    expect(legacySnapshot).not.toHaveProperty('replicas')

    // Both decode to the same changes; the compact frame is the smaller one.
    const modernText = modern.frames[1] as string
    const legacyText = legacy.frames[1] as string
    expect(modernText.length).toBeLessThan(legacyText.length * 0.8)
    expect(decodeMessage(modernText)).toStrictEqual(decodeMessage(legacyText))

    // Later changes stream in the negotiated form too.
    alice.send(changes(SPACE, 3, makeRun(A, 4, 4)))
    await until(
      () => modern.frames.some((frame) => frame.startsWith('{"type":"changes"')),
      'change 4 for bob',
    )
    await until(
      () => legacy.frames.some((frame) => frame.startsWith('{"type":"changes"')),
      'change 4 for carol',
    )
    const modernChanges = modern.frames.find((frame) => frame.startsWith('{"type":"changes"')) as string
    const legacyChanges = legacy.frames.find((frame) => frame.startsWith('{"type":"changes"')) as string
    expect(JSON.parse(modernChanges)).toHaveProperty('replicas')
    expect(JSON.parse(legacyChanges)).not.toHaveProperty('replicas')
    expect(decodeMessage(modernChanges)).toStrictEqual(decodeMessage(legacyChanges))

    for (const { socket } of [modern, legacy]) socket.terminate()
    await alice.close()
  })
})
