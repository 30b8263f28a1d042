import { MemoryReplicaStore } from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import type { ChorusError } from '../src/errors.js'
import { createHubEngine } from '../src/hub-engine.js'
import { asReplicaId, asSpaceId } from '../src/ids.js'
import { openReplicaEngine } from '../src/replica-engine.js'
import { settle, wireToHub } from './wire-hub.js'

const SPACE = asSpaceId('team-notes')
let time = 1_700_000_000_000
const now = () => time++

describe('a hub whose storage fails', () => {
  it('tells the writer, whose changes stay unacknowledged until a later attempt stores them', async () => {
    const store = new MemoryHubStore()
    const hub = createHubEngine({ store, now })
    const errors: ChorusError[] = []
    const replica = await openReplicaEngine({
      store: new MemoryReplicaStore(),
      space: SPACE,
      now,
      createReplicaId: () => asReplicaId('alice'),
      onError: (error) => errors.push(error),
    })
    wireToHub(hub, replica)
    await settle(hub, [replica])
    store.failNextWrite()
    await replica.put('notes', 'a', { title: 'written while the relay’s disk was full' })
    await settle(hub, [replica])
    expect(errors.map((error) => error.code)).toEqual(['storage-failed'])
    expect(errors[0]?.message).toMatch(
      /^the relay's storage failed \(.*\): what it has not acknowledged stays here and is sent again$/,
    )
    expect(replica.pending()).toBe(1)
    // The next attempt (a retransmission, at a later tick) stores it.
    time += 10_000
    await replica.tick()
    await settle(hub, [replica])
    expect(replica.pending()).toBe(0)
    expect((await store.loadSpace(SPACE)).head).toBe(1)
  })
})
