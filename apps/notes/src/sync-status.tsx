import type { SyncStatus as Status } from '@chorus/client'
import { useReplica, useSyncStatus } from '@chorus/react'
import { type ReactNode, useState } from 'react'
import { plural } from './format.js'

const labels: Record<Status, string> = {
  offline: 'Offline',
  connecting: 'Connecting…',
  syncing: 'Syncing…',
  synced: 'Synced',
}

/** Always in view: whether this notebook is in sync, and how many changes wait to upload. */
export function SyncStatus(): ReactNode {
  const { status, pending } = useSyncStatus()
  return (
    <p className={`sync-status ${status}`} role="status" data-status={status} data-pending={pending}>
      <span className="dot" aria-hidden="true" />
      <span className="sync-label">{labels[status]}</span>
      <span className="sync-separator"> · </span>
      <span className="sync-pending">
        {pending === 0 ? 'nothing to upload' : `${plural(pending, 'change', 'changes')} waiting to upload`}
      </span>
    </p>
  )
}

/** Disconnects from the relay (and back) without reloading: the offline story, on demand. */
export function OfflineSwitch(): ReactNode {
  const replica = useReplica()
  const [offline, setOffline] = useState(false)
  return (
    <label className="switch">
      <input
        type="checkbox"
        role="switch"
        aria-checked={offline}
        checked={offline}
        onChange={(event) => {
          const next = event.target.checked
          if (next) replica.disconnect()
          else replica.connect()
          setOffline(next)
        }}
      />
      <span className="switch-track" aria-hidden="true" />
      <span>Work offline</span>
    </label>
  )
}
