import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { ErrorCode } from '../src/errors.js'
import { formatHlc, HLC_ZERO } from '../src/hlc.js'
import { createHubEngine } from '../src/hub-engine.js'
import { asRecordId, asReplicaId } from '../src/ids.js'
import { DEFAULT_LIMITS } from '../src/protocol/messages.js'
import { openReplicaEngine } from '../src/replica-engine.js'
import { wireToHub } from './wire-hub.js'

const limits = { ...DEFAULT_LIMITS, maxFrameBytes: 64 * 1024 }
const WALL = 1_700_000_000_000

/**
 * A record last written by one of 60 replicas that had each seen the others' writes: its
 * context, which every later write of it carries, is about 2 KB of JSON.
 */
function widelyEditedNote(): Change {
  const editors = Array.from({ length: 60 }, (_, n) => `editor-${String(n).padStart(3, '0')}-0197a3c2-5e1b`)
  const last = asReplicaId(editors[59] as string)
  const context: Record<string, number> = {}
  for (const editor of editors.slice(0, 59)) context[editor] = 1
  return {
    collection: 'notes',
    id: asRecordId('shared-note'),
    dot: [last, 1],
    context,
    hlc: formatHlc({ wall: WALL, counter: 0, replica: last }),
    op: { type: 'put', value: { title: 'agenda' } },
  }
}

describe('a write whose change would not fit one frame with its context', () => {
  it('is refused when made, so nothing the relay cannot take waits in the outbox; one that fits uploads', async () => {
    const store = new MemoryReplicaStore()
    const note = widelyEditedNote()
    let time = WALL + 1_000
    const now = () => time++
    const replica = await openReplicaEngine({
      store,
      space: 'team',
      now,
      createReplicaId: () => asReplicaId('writer'),
      limits,
    })
    await store.applyRemote({
      records: [{ collection: note.collection, id: note.id, state: { versions: [note] } }],
      clock: HLC_ZERO,
      cursor: null,
    })
    const hub = createHubEngine({ store: new MemoryHubStore(), now, limits })
    const refused: string[] = []
    wireToHub(hub, replica, (frame) => {
      if (frame.includes('"error"')) refused.push(frame)
    })

    // The value leaves room for the 1 KiB a frame's own fields may need and for a change's id
    // and stamps, but not for 2 KB of context as well.
    const body = 'x'.repeat(limits.maxFrameBytes - 1024 - 1000)
    await expect(replica.put('notes', 'shared-note', { body })).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: expect.stringMatching(/must fit one 65536-byte frame/),
    })
    expect(replica.pending()).toBe(0)
    expect(await replica.get('notes', 'shared-note')).toEqual({ title: 'agenda' })

    // The same value on a new record carries no context, and fits.
    await replica.put('notes', 'fresh-note', { body })
    for (let i = 0; i < 20 && replica.pending() > 0; i++) {
      await hub.idle()
      await replica.idle()
    }
    expect(refused).toEqual([])
    expect(replica.pending()).toBe(0)
  })
})
