import { createReplica, type Replica, type ReplicaOptions } from '@chorus/client'
import { createPrng } from '@chorus/testkit'
import { WebSocket } from 'ws'
import type { TestHub } from './test-hub.js'

/** Opens replicas on a test hub and closes them all at the end of a test. */
export function replicaPool(seed: number) {
  const open: Replica[] = []
  const prng = createPrng(seed)
  return {
    async create(hub: TestHub | null, options: Partial<ReplicaOptions> = {}): Promise<Replica> {
      const random = prng.fork(`replica-${open.length}`)
      const replica = await createReplica({
        space: 'team-notes',
        storage: 'memory',
        ...(hub === null ? {} : { url: hub.url, WebSocket }),
        random: () => random.next(),
        reconnect: { baseMs: 20, maxMs: 200 },
        networkEvents: null,
        ...options,
      })
      open.push(replica)
      return replica
    },
    async closeAll(): Promise<void> {
      await Promise.all(open.splice(0).map((replica) => replica.close()))
    },
  }
}
