import type { SyncStatus } from '@chorus/client'
import { plural } from './format.js'

/** What a screen reader is told of a connected notebook. */
export const CONNECTED = 'Connected'

/**
 * What the sync status says to a screen reader, given what it said last (`previous`, empty at
 * first) and `label`, what it shows: the connection changing (online, working offline, out of
 * reach), not every save's trip through syncing and synced. Connecting is said only on the way
 * from connected or at first: between two tries to reach a server that cannot be reached, the
 * app connects each time, and saying so would repeat the same news every few seconds; nor is
 * it connected until it is.
 */
export function heardSyncStatus(status: SyncStatus, label: string, previous: string): string {
  if (status === 'offline') return label
  if (status === 'syncing' || status === 'synced') return CONNECTED
  return previous === '' || previous === CONNECTED ? label : previous
}

/** How long the search waits for typing to pause before saying how many notes match. */
export const SEARCH_ANNOUNCE_MS = 800

/** What a screen reader is told of a search's results: nothing while there is no query. */
export function searchSummary(query: string, matches: number): string {
  const words = query.trim()
  if (words === '') return ''
  if (matches === 0) return `No notes match “${words}”.`
  return `${plural(matches, 'note matches', 'notes match')} “${words}”.`
}
