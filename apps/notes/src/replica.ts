import { createReplica, deleteReplica, isChorusError, type Replica } from '@chorus/client'
import { recoverDrafts, watchDrafts } from './drafts.js'
import { newestNotes } from './newest-notes.js'
import { rememberOffline, remembersOffline } from './offline.js'

/**
 * The one place where the app opens and closes notebooks' replicas.
 *
 * Tabs of this browser that open the same notebook share its replica (the client's default
 * in browsers): one tab holds the relay connection, every tab reads and writes, and a change
 * made in one shows in the others at once.
 */

/** Resolvers per collection: notes show their conflicts; names just take the latest write. */
const resolvers = { notes: 'manual', devices: 'lww', meta: 'lww' } as const

/** The relay's sync socket on the origin that served the app: `ws(s)://<host>/sync`. */
export function relayUrl(): string {
  const url = new URL('/sync', location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.href
}

interface OpenEntry {
  readonly opened: Promise<Replica>
  users: number
  closing: ReturnType<typeof setTimeout> | null
  /** Stops writing the drafts other tabs keep as they go (see `watchDrafts`). */
  stopDrafts: () => void
}

const open = new Map<string, OpenEntry>()

/** A hold on an open notebook; `release()` lets it close once nobody else holds it. */
export interface NotebookHandle {
  readonly replica: Promise<Replica>
  release(): void
}

/**
 * Opens the notebook `space` (or joins this tab's open one). It closes a moment after its
 * last holder releases it, so a remount (React's StrictMode, a quick route change) reuses it
 * instead of racing a second open of the same database.
 */
export function openNotebook(space: string): NotebookHandle {
  let entry = open.get(space)
  if (entry === undefined) {
    const created: OpenEntry = { opened: startNotebook(space), users: 0, closing: null, stopDrafts: () => {} }
    const forget = () => {
      created.stopDrafts()
      if (open.get(space) === created) open.delete(space)
    }
    // A failed open is forgotten at once, so that trying again really tries again; so is a
    // replica that closed itself because another tab removed the notebook from this browser.
    created.opened.then((replica) => {
      created.stopDrafts = watchDrafts(replica)
      replica.on('error', (error) => {
        if (isChorusError(error, 'closed')) forget()
      })
    }, forget)
    open.set(space, created)
    entry = created
  }
  if (entry.closing !== null) clearTimeout(entry.closing)
  entry.closing = null
  entry.users++
  const held = entry
  let released = false
  return {
    replica: held.opened,
    release() {
      if (released) return
      released = true
      held.users--
      if (held.users > 0) return
      held.closing = setTimeout(() => {
        held.stopDrafts()
        if (open.get(space) === held) open.delete(space)
        held.opened.then(
          (replica) => replica.close(),
          () => undefined,
        )
      }, 1_000)
    },
  }
}

async function startNotebook(space: string): Promise<Replica> {
  // Work offline, switched on in a tab of this browser, holds across reloads.
  const replica = await createReplica({
    space,
    url: relayUrl(),
    resolvers,
    autoConnect: !remembersOffline(space),
  })
  // Its first screen is read at once. A failed read shows as the full load's failure (it
  // reads the same records), so it is not reported twice.
  newestNotes(replica).read.catch(() => undefined)
  // What was typed as this browser last left a page of it, and may not have been stored.
  void recoverDrafts(replica)
  return replica
}

/**
 * Deletes this browser's copy of notebook `space`, closing it here first if it is still open
 * (every other tab that has it open closes it too). The notebook stays on the relay and on
 * other devices. Rejects with `pending-changes`, deleting nothing, while it holds changes that
 * have not reached the relay, unless `discardPending`.
 */
export async function removeNotebookData(space: string, discardPending: boolean): Promise<void> {
  const entry = open.get(space)
  if (entry !== undefined) {
    open.delete(space)
    entry.stopDrafts()
    if (entry.closing !== null) clearTimeout(entry.closing)
    await entry.opened.then(
      (replica) => replica.close(),
      () => undefined,
    )
  }
  await deleteReplica({ space, discardPending })
  rememberOffline(space, false)
}
