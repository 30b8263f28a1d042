import type { SyncStatus as Status } from '@chorus/client'
import { useReplica, useSyncStatus } from '@chorus/react'
import { type ReactNode, useEffect, useRef } from 'react'
import { heardSyncStatus } from './announce.js'
import { plural } from './format.js'
import { rememberOffline } from './offline.js'

const labels: Record<Status, string> = {
  offline: 'Offline',
  connecting: 'Connecting…',
  syncing: 'Syncing…',
  synced: 'Synced',
}

/**
 * Always in view: whether this notebook is in sync, and how many changes wait to upload.
 * Offline, it says why: the user chose to work offline (in this tab or another), the server
 * cannot be reached and the app keeps trying, or the server refused this notebook for good
 * (deleted there, say: the notebook screen explains).
 */
export function SyncStatus(): ReactNode {
  const { status, pending, wantsConnection, refusal } = useSyncStatus()
  const label =
    status !== 'offline'
      ? labels[status]
      : refusal !== null
        ? 'Not syncing'
        : wantsConnection
          ? 'Can’t reach the server, retrying'
          : 'Working offline'
  // Screen readers hear the connection change (online, working offline, out of reach), not
  // every save's trip through syncing and synced, nor the count of changes going up and down,
  // nor each try to reach a server out of reach (see `heardSyncStatus`).
  const lastHeard = useRef('')
  const heard = heardSyncStatus(status, label, lastHeard.current)
  useEffect(() => {
    lastHeard.current = heard
  }, [heard])
  return (
    <p
      className={`sync-status ${status}`}
      data-status={status}
      data-pending={pending}
      data-wants-connection={wantsConnection}
    >
      <span className="visually-hidden" role="status">
        {heard}
      </span>
      <span className="dot" aria-hidden="true" />
      <span className="sync-label">{label}</span>
      <span className="sync-separator"> · </span>
      <span className="sync-pending">
        {pending === 0 ? 'nothing to upload' : `${plural(pending, 'change', 'changes')} waiting to upload`}
      </span>
    </p>
  )
}

/**
 * Disconnects from the relay (and back) without reloading: the offline story, on demand. The
 * tabs of this browser that have the notebook open share its connection, so the switch shows
 * the setting of the last tab that changed it, in every tab; and it is remembered, so that a
 * reload keeps it.
 */
export function OfflineSwitch(): ReactNode {
  const replica = useReplica()
  const offline = !useSyncStatus().wantsConnection
  return (
    <label className="switch">
      <input
        type="checkbox"
        role="switch"
        aria-checked={offline}
        checked={offline}
        onChange={(event) => {
          rememberOffline(replica.space, event.target.checked)
          if (event.target.checked) replica.disconnect()
          else replica.connect()
        }}
      />
      <span className="switch-track" aria-hidden="true" />
      <span>Work offline</span>
    </label>
  )
}
