import {
  createHubEngine,
  type HubEngine,
  MemoryReplicaStore,
  openReplicaEngine,
  type ReplicaEngine,
  type ReplicaId,
  type SyncStatus,
} from '@chorus/core'
import { MemoryHubStore } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'

let time = 1_700_000_000_000
const now = () => time++

function link(hub: HubEngine, replica: ReplicaEngine): void {
  const connection = hub.accept({
    send: (frame) => void replica.receive(frame),
    close: () => replica.detach(),
  })
  replica.attach((frame) => void connection.receive(frame))
}

async function settle(hub: HubEngine, ...replicas: ReplicaEngine[]): Promise<void> {
  for (let round = 0; round < 10; round++) await Promise.all([hub.idle(), ...replicas.map((r) => r.idle())])
}

describe('sync status, as an app shows it', () => {
  it('goes offline → connecting → synced, counts pending changes, and knows when it is behind', async () => {
    const hub = createHubEngine({ store: new MemoryHubStore(), now })
    const seen: [SyncStatus, number][] = []
    const open = (name: string, onStatus?: (status: SyncStatus, pending: number) => void) =>
      openReplicaEngine({
        store: new MemoryReplicaStore(),
        space: 'team-notes',
        now,
        createReplicaId: () => name as ReplicaId,
        ...(onStatus === undefined ? {} : { onStatus }),
      })
    const alice = await open('alice', (status, pending) => seen.push([status, pending]))
    const bob = await open('bob')

    await alice.put('notes', 'a', { title: 'offline 1' })
    await alice.put('notes', 'b', { title: 'offline 2' })
    expect(alice.status()).toBe('offline')
    expect(alice.pending()).toBe(2)

    link(hub, bob)
    await bob.put('notes', 'c', { title: 'from bob' })
    await settle(hub, bob)
    link(hub, alice)
    await settle(hub, alice, bob)

    expect(alice.status()).toBe('synced')
    expect(alice.pending()).toBe(0)
    expect(await alice.get('notes', 'c')).toEqual({ title: 'from bob' })
    expect(seen[0]).toEqual(['offline', 1])
    expect(seen).toContainEqual(['connecting', 2])
    expect(seen.at(-1)).toEqual(['synced', 0])
    // Between connecting and synced it was syncing: uploading two changes, catching up one.
    expect(seen.some(([status]) => status === 'syncing')).toBe(true)

    alice.detach()
    expect(alice.status()).toBe('offline')
    expect(seen.at(-1)).toEqual(['offline', 0])
  })
})
