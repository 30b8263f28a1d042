import { createReplica, type Replica } from '@chorus/client'

/**
 * The one place where the app opens and closes notebooks' replicas.
 *
 * Today each replica owns its IndexedDB database, and a second tab writing to the same
 * database is refused (`storage-failed`). So a notebook is open in one tab at a time: a Web
 * Lock per notebook tells a second tab to stand back, with a message, before it writes. When
 * the client can share one replica between the tabs of an origin, that option goes into
 * `createReplica` below and the lock goes away; nothing else in the app changes.
 */

/** Resolvers per collection: notes show their conflicts; names just take the latest write. */
const resolvers = { notes: 'manual', devices: 'lww', meta: 'lww' } as const

/** The relay's sync socket on the origin that served the app: `ws(s)://<host>/sync`. */
export function relayUrl(): string {
  const url = new URL('/sync', location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.href
}

/** The notebook is open in another tab of this browser. */
export class NotebookInUseError extends Error {
  override readonly name = 'NotebookInUseError'
}

interface Opened {
  readonly replica: Replica
  /** Lets go of the notebook's lock. */
  readonly unlock: () => void
}

interface OpenEntry {
  readonly opened: Promise<Opened>
  users: number
  closing: ReturnType<typeof setTimeout> | null
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
    const created: OpenEntry = { opened: startNotebook(space), users: 0, closing: null }
    // A failed open is forgotten at once, so that trying again really tries again.
    created.opened.catch(() => {
      if (open.get(space) === created) open.delete(space)
    })
    open.set(space, created)
    entry = created
  }
  if (entry.closing !== null) clearTimeout(entry.closing)
  entry.closing = null
  entry.users++
  const held = entry
  let released = false
  return {
    replica: held.opened.then((opened) => opened.replica),
    release() {
      if (released) return
      released = true
      held.users--
      if (held.users > 0) return
      held.closing = setTimeout(() => {
        if (open.get(space) === held) open.delete(space)
        held.opened.then(
          ({ replica, unlock }) => replica.close().finally(unlock),
          () => undefined,
        )
      }, 1_000)
    },
  }
}

async function startNotebook(space: string): Promise<Opened> {
  const unlock = await lockNotebook(space)
  try {
    return { replica: await createReplica({ space, url: relayUrl(), resolvers }), unlock }
  } catch (error) {
    unlock()
    throw error
  }
}

/**
 * Takes this notebook's Web Lock, held until the returned function is called; rejects with
 * {@link NotebookInUseError} when another tab holds it. Without Web Locks (an insecure
 * origin), there is nothing to take and the client's own check is the guard.
 */
function lockNotebook(space: string): Promise<() => void> {
  const locks = (navigator as Partial<Navigator>).locks
  if (locks === undefined) return Promise.resolve(() => undefined)
  return new Promise((resolve, reject) => {
    let unlock: () => void = () => undefined
    const held = new Promise<void>((release) => {
      unlock = release
    })
    locks
      .request(`chorus-notes:${space}`, { ifAvailable: true }, (lock) => {
        if (lock === null) {
          reject(new NotebookInUseError('This notebook is open in another tab of this browser.'))
          return undefined
        }
        resolve(unlock)
        return held
      })
      .catch(reject)
  })
}
