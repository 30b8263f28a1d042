import type { Replica } from '@chorus/client'
import type { SnapshotSink } from './shared-snapshot.js'

/**
 * Reads record `id` of `collection` with `read` at once, and again whenever a change names it
 * or the replica reloads, handing each result to `sink`. Returns the function that stops it.
 */
export function watchRecord<TValue>(
  replica: Replica,
  collection: string,
  id: string,
  read: () => Promise<TValue>,
  sink: SnapshotSink<TValue>,
): () => void {
  // Reads queue behind writes in the replica, so they finish in order: the last one wins.
  let latest = 0
  const load = (): void => {
    const mine = ++latest
    read().then(
      (value) => {
        if (mine === latest) sink.set(value)
      },
      (error: unknown) => sink.fail(error),
    )
  }
  const stopChanges = replica.on('change', (event) => {
    if (event.collection === collection && event.ids.some((changed) => changed === id)) load()
  })
  // Records changed that no change event named (another tab's notice was lost).
  const stopReloads = replica.on('reload', load)
  load()
  return () => {
    stopChanges()
    stopReloads()
  }
}
