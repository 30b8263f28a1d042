import type { Replica, StatusEvent } from '@chorus/client'
import { useCallback, useSyncExternalStore } from 'react'
import { useReplica } from './provider.js'

const last = new WeakMap<Replica, StatusEvent>()

/** The replica's status, pending, lag, refusal, wish to connect and read-only flag, as one object that stays the same until one of them changes. */
function readStatus(replica: Replica): StatusEvent {
  const { status, pending, lag, refusal, wantsConnection, readOnly } = replica
  const previous = last.get(replica)
  if (
    previous?.status === status &&
    previous.pending === pending &&
    previous.lag === lag &&
    previous.refusal === refusal &&
    previous.wantsConnection === wantsConnection &&
    previous.readOnly === readOnly
  )
    return previous
  const next: StatusEvent = Object.freeze({ status, pending, lag, refusal, wantsConnection, readOnly })
  last.set(replica, next)
  return next
}

/**
 * `{ status, pending, lag, refusal, wantsConnection, readOnly }` of the replica: `'offline' |
 * 'connecting' | 'syncing' | 'synced'`, own changes waiting to upload, relay log positions not
 * yet applied here, the relay's final refusal (`Replica.refusal`, null while there is none),
 * whether the app wants a connection (`Replica.wantsConnection`: false after `disconnect()`
 * in any tab), and whether the relay lets the replica only read (`Replica.readOnly`).
 * Renders again only when one of them changes.
 */
export function useSyncStatus(): StatusEvent {
  const replica = useReplica()
  const subscribe = useCallback((onChange: () => void) => replica.on('status', onChange), [replica])
  const read = useCallback(() => readStatus(replica), [replica])
  return useSyncExternalStore(subscribe, read, read)
}
