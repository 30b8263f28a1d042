import type { JsonObject, RecordRead } from '@chorus/client'
import { useSyncExternalStore } from 'react'
import { jsonEqual } from './json-equal.js'
import { useReplica } from './provider.js'
import { LoadFailure, sharedSnapshot } from './shared-snapshot.js'
import { snapshotKey } from './snapshot-key.js'
import { watchRecord } from './watch-record.js'

/**
 * Record `id` of `collection` and its open conflict, read together (`Collection.read`):
 * `value` as {@link useRecord} reads it (`undefined` when there is no such record),
 * `conflict` the versions to choose between (empty when there is none). `undefined` until
 * loaded. Each of `value` and `conflict` keeps its identity from one render to the next while
 * its data is the same.
 *
 * The two always agree. {@link useRecord} and {@link useConflicts} read apart, so between
 * two renders one may show a remote change that the other does not yet: the value can be
 * another device's version of a conflict that is not listed yet. An editor that shows the
 * record and its conflict together, or decides what to show from both, reads them here.
 */
export function useRecordWithConflict<TValue extends object = JsonObject>(
  collection: string,
  id: string,
): RecordRead<TValue> | undefined {
  const replica = useReplica()
  const store = sharedSnapshot<RecordRead<TValue>>(
    replica,
    snapshotKey('record-conflict', collection, id),
    () => ({
      start: (sink) => {
        const records = replica.collection<TValue>(collection)
        return watchRecord(replica, collection, id, () => records.read(id), sink)
      },
      // Each part keeps its identity while its data is the same (a hook or memo that depends
      // on `conflict` alone does not run again when only the value changed).
      reconcile: (previous, next) => {
        const value = jsonEqual(previous.value, next.value) ? previous.value : next.value
        const conflict = jsonEqual(previous.conflict, next.conflict) ? previous.conflict : next.conflict
        if (value === previous.value && conflict === previous.conflict) return previous
        return value === next.value && conflict === next.conflict ? next : { value, conflict }
      },
    }),
  )
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  if (snapshot instanceof LoadFailure) throw snapshot.error
  return snapshot
}
