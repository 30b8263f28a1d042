import type { JsonObject, ListOptions, Row } from '@chorus/client'
import { useSyncExternalStore } from 'react'
import { reuseItems } from './json-equal.js'
import { useReplica } from './provider.js'
import { LoadFailure, sharedSnapshot } from './shared-snapshot.js'
import { listOptionsKey, snapshotKey } from './snapshot-key.js'

/**
 * The rows of collection `name`, kept current through `collection.subscribe`: `undefined`
 * until the first load, then every record in id order — or, with `options`, that page of them
 * (`{ order: 'desc', limit: 100 }`: a live first screen that reads only its own records).
 *
 * Components reading one collection share one live query. A change that leaves the rows as
 * they were (same ids, equal values) renders nothing, and unchanged rows keep their identity
 * from one result to the next, so `memo` components skip them.
 */
export function useCollection<TValue extends object = JsonObject>(
  name: string,
  options?: ListOptions,
): readonly Row<TValue>[] | undefined {
  const replica = useReplica()
  const store = sharedSnapshot<readonly Row<TValue>[]>(
    replica,
    snapshotKey('collection', name, listOptionsKey(options)),
    () => ({
      start: (sink) =>
        replica.collection<TValue>(name).subscribe(
          (rows) => sink.set(rows),
          options,
          (error) => sink.fail(error),
        ),
      reconcile: (previous, next) => reuseItems(previous, next, (row) => row.id),
    }),
  )
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  if (snapshot instanceof LoadFailure) throw snapshot.error
  return snapshot
}
