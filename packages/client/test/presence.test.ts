import { ErrorCode, isChorusError, type PresencePeer, type Replica } from '@chorus/client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { poll } from './helpers/idb-replicas.js'
import { replicaPool } from './helpers/replicas.js'
import { startTestHub, type TestHub } from './helpers/test-hub.js'

let hub: TestHub
const pool = replicaPool(20_261_125)

beforeEach(async () => {
  hub = await startTestHub()
})

afterEach(async () => {
  await pool.closeAll()
  await hub.close()
  expect(hub.errors()).toEqual([])
})

/** What `replica` shows of the others' presence: replica id and state, per entry. */
function shown(replica: Replica): [string, unknown][] {
  return replica.presence.map((peer: PresencePeer) => [peer.replicaId, peer.state])
}

describe('presence between replicas, through a relay over real sockets', () => {
  it('shows each replica the others’ state, follows its changes, and drops it while apart', async () => {
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    await Promise.all([alice.synced(), bob.synced()])
    const events: (readonly PresencePeer[])[] = []
    bob.on('presence', (peers) => events.push(peers))

    alice.setPresence({ name: 'Alice', note: 'n1' })
    await poll(() => bob.presence.length === 1, 'bob to see alice')
    expect(shown(bob)).toEqual([[alice.replicaId, { name: 'Alice', note: 'n1' }]])
    expect(events.at(-1)).toBe(bob.presence)
    expect(Object.isFrozen(bob.presence[0]?.state)).toBe(true)
    expect(alice.presence).toEqual([])

    alice.setPresence({ name: 'Alice', note: 'n2' })
    bob.setPresence({ name: 'Bob' })
    await poll(
      () => JSON.stringify(shown(bob)).includes('n2') && alice.presence.length === 1,
      'both to see the other',
    )
    expect(shown(alice)).toEqual([[bob.replicaId, { name: 'Bob' }]])

    // Bob goes offline: he hears nothing, and alice no longer sees him.
    bob.disconnect()
    await poll(() => bob.presence.length === 0 && alice.presence.length === 0, 'the two to lose each other')
    // Back online, each shows the other again, bob's state sent again without being set again.
    bob.connect()
    await poll(
      () => bob.presence.length === 1 && alice.presence.length === 1,
      'the two to see each other again',
    )
    expect(shown(alice)).toEqual([[bob.replicaId, { name: 'Bob' }]])

    alice.setPresence(null)
    await poll(() => bob.presence.length === 0, 'alice’s presence to be cleared')
    await alice.close()
    expect(() => alice.setPresence({ name: 'late' })).toThrow(
      expect.objectContaining({ code: ErrorCode.Closed }),
    )
  })

  it('sends a burst of changes as at most two frames, the last state winning', async () => {
    const alice = await pool.create(hub)
    const bob = await pool.create(hub)
    await Promise.all([alice.synced(), bob.synced()])
    const seen: unknown[] = []
    bob.on('presence', (peers) => seen.push(peers[0]?.state))
    // A pointer moving: fifty changes in one go.
    for (let n = 0; n < 50; n++) alice.setPresence({ x: n })
    await poll(() => JSON.stringify(bob.presence[0]?.state) === '{"x":49}', 'bob to see the last state')
    expect(seen).toEqual([{ x: 0 }, { x: 49 }])
  })

  it('refuses a state that is not a small JSON object', async () => {
    const alice = await pool.create(null)
    for (const bad of [{ big: 'x'.repeat(5000) }, { when: new Date() }, [1, 2], 'text'] as unknown[]) {
      let caught: unknown
      try {
        alice.setPresence(bad as never)
      } catch (error) {
        caught = error
      }
      expect(isChorusError(caught, ErrorCode.InvalidArgument)).toBe(true)
    }
    // Offline, it is kept, and sent once a relay is reached.
    alice.setPresence({ name: 'Alice' })
    expect(alice.presence).toEqual([])
  })
})
