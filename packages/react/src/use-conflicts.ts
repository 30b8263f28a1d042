import type { ChangeEvent, Conflict, Replica } from '@chorus/client'
import { useSyncExternalStore } from 'react'
import { reuseItems } from './json-equal.js'
import { useReplica } from './provider.js'
import { LoadFailure, type SnapshotSink, sharedSnapshot } from './shared-snapshot.js'

/**
 * The records whose resolver (`'manual'`) leaves a conflict for the user, with their versions;
 * only those of `collection` when it is given. `undefined` until the first load.
 *
 * Reloaded after remote changes, and after local ones to a record in conflict (a local write
 * covers every version it has seen, so it can settle a conflict but never start one). Changes
 * arriving during a load cost one more load, not one each.
 */
export function useConflicts(collection?: string): readonly Conflict[] | undefined {
  const replica = useReplica()
  const key = collection === undefined ? 'conflicts' : `conflicts\u0000${collection}`
  const store = sharedSnapshot<readonly Conflict[]>(replica, key, () => ({
    start: (sink) => watchConflicts(replica, collection, sink),
    reconcile: (previous, next) => reuseItems(previous, next, (item) => `${item.collection}\u0000${item.id}`),
  }))
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  if (snapshot instanceof LoadFailure) throw snapshot.error
  return snapshot
}

function watchConflicts(
  replica: Replica,
  collection: string | undefined,
  sink: SnapshotSink<readonly Conflict[]>,
): () => void {
  let current: readonly Conflict[] = []
  let loading = false
  let again = false

  const load = async (): Promise<void> => {
    if (loading) {
      again = true
      return
    }
    loading = true
    try {
      do {
        again = false
        const all = await replica.conflicts()
        current = collection === undefined ? all : all.filter((item) => item.collection === collection)
        sink.set(current)
      } while (again)
    } catch (error) {
      sink.fail(error)
    } finally {
      loading = false
    }
  }

  const concerns = (event: ChangeEvent): boolean => {
    if (collection !== undefined && event.collection !== collection) return false
    if (loading || event.origin === 'remote') return true
    return current.some(
      (item) => item.collection === event.collection && event.ids.some((id) => id === item.id),
    )
  }

  const stop = replica.on('change', (event) => {
    if (concerns(event)) void load()
  })
  void load()
  return stop
}
