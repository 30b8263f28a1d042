import { type ChangeEvent, type Conflict, compareConflicts, type Replica } from '@chorus/client'
import { useSyncExternalStore } from 'react'
import { reuseItems } from './json-equal.js'
import { useReplica } from './provider.js'
import { LoadFailure, type SnapshotSink, sharedSnapshot } from './shared-snapshot.js'
import { snapshotKey } from './snapshot-key.js'

/**
 * The records whose resolver (`'manual'`) leaves a conflict for the user, with their versions,
 * in collection then id order; only those of `collection` when it is given. `undefined` until
 * the first load.
 *
 * Loaded whole once. After that, a change reads only the records it names: remote changes,
 * and local ones to a record in conflict (a local write covers every version it has seen, so
 * it can settle a conflict but never start one) — a remote change to one note in a notebook
 * of thousands costs one record's read, not a scan.
 */
export function useConflicts(collection?: string): readonly Conflict[] | undefined {
  const replica = useReplica()
  const store = sharedSnapshot<readonly Conflict[]>(replica, snapshotKey('conflicts', collection), () => ({
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
  let loaded = false
  // Loads and updates run one after another, in the order their changes happened. After a
  // failure the next change loads everything again.
  let queue: Promise<void> = Promise.resolve()
  const run = (task: () => Promise<void>): void => {
    queue = queue.then(task).catch((error: unknown) => {
      loaded = false
      sink.fail(error)
    })
  }
  const loadAll = async (): Promise<void> => {
    current = await (collection === undefined ? replica.conflicts() : replica.conflicts({ collection }))
    loaded = true
    sink.set(current)
  }

  const concerns = (event: ChangeEvent): boolean => {
    if (collection !== undefined && event.collection !== collection) return false
    // Before the first load has finished, what it read may predate this change.
    if (!loaded || event.origin === 'remote') return true
    return current.some(
      (item) => item.collection === event.collection && event.ids.some((id) => id === item.id),
    )
  }

  const stop = replica.on('change', (event) => {
    if (!concerns(event)) return
    run(async () => {
      if (!loaded) return loadAll()
      const found = await replica.conflicts({ collection: event.collection, ids: event.ids })
      const named = new Set<string>(event.ids)
      const others = current.filter((item) => item.collection !== event.collection || !named.has(item.id))
      current = [...others, ...found].sort(compareConflicts)
      sink.set(current)
    })
  })
  // Records changed that no change event named (another tab's notice was lost): read all again.
  const stopReloads = replica.on('reload', () => run(loadAll))
  run(loadAll)
  return () => {
    stop()
    stopReloads()
  }
}
