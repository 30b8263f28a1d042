import type { Frozen, JsonObject } from '@chorus/client'
import { useSyncExternalStore } from 'react'
import { jsonEqual } from './json-equal.js'
import { useReplica } from './provider.js'
import { LoadFailure, sharedSnapshot } from './shared-snapshot.js'
import { snapshotKey } from './snapshot-key.js'
import { watchRecord } from './watch-record.js'

/**
 * The value of record `id` in collection `collection`, as its resolver reads it: `undefined`
 * until loaded, `null` when there is no such record (never written, or deleted).
 *
 * It is read again only when a change touches this record, and a read that finds the same
 * data as before renders nothing.
 */
export function useRecord<TValue extends object = JsonObject>(
  collection: string,
  id: string,
): Frozen<TValue> | null | undefined {
  const replica = useReplica()
  const store = sharedSnapshot<Frozen<TValue> | null>(replica, snapshotKey('record', collection, id), () => ({
    start: (sink) => {
      const records = replica.collection<TValue>(collection)
      return watchRecord(replica, collection, id, async () => (await records.get(id)) ?? null, sink)
    },
    reconcile: (previous, next) => (jsonEqual(previous, next) ? previous : next),
  }))
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  if (snapshot instanceof LoadFailure) throw snapshot.error
  return snapshot
}
