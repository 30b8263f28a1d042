import { type Conflict, createReplica, type Replica } from '@chorus/client'
import type { ResolverKind } from '@chorus/core'
import { type IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { WebSocket } from 'ws'
import type { TestHub } from './test-hub.js'

/**
 * Replicas on fake-indexeddb databases, connected to a test hub: replicas opened on one
 * factory and one `dbName` share a database, as tabs of one origin do. `closeAll` closes them.
 */
export function idbReplicas(hub: () => TestHub, resolver: ResolverKind) {
  const open: Replica[] = []
  return {
    async open(space: string, indexedDB: IDBFactory, dbName: string): Promise<Replica> {
      const opened = await createReplica({
        space,
        url: hub().url,
        WebSocket,
        storage: 'indexeddb',
        indexedDB,
        IDBKeyRange,
        dbName,
        resolvers: { notes: resolver },
        reconnect: { baseMs: 20, maxMs: 200 },
        networkEvents: null,
        tickMs: 50,
      })
      open.push(opened)
      return opened
    },
    async closeAll(): Promise<void> {
      await Promise.all(open.splice(0).map((replica) => replica.close()))
    },
  }
}

/** Re-checks `check` every 10 ms until it holds; rejects after `ms`, naming what it waited for. */
export async function poll(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** What a replica shows of each of `ids` in `notes`: its versions as `conflicts()` lists them, or its value. */
export async function shown(replica: Replica, ids: readonly string[]): Promise<Record<string, string[]>> {
  const conflicts = await replica.conflicts()
  const out: Record<string, string[]> = {}
  for (const id of ids) {
    const conflict = conflicts.find((c: Conflict) => c.id === id)
    if (conflict !== undefined) {
      out[id] = conflict.versions.map((v) => `${v.replicaId}@${v.hlc}=${JSON.stringify(v.value)}`).sort()
    } else {
      const value = await replica.collection('notes').get(id)
      out[id] = value === undefined ? [] : [JSON.stringify(value)]
    }
  }
  return out
}
