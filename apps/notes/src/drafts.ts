import type { Replica } from '@chorus/client'
import { Collections, type Note } from './notes.js'
import { notifyFailure } from './notices.js'

/**
 * What was typed into a note and not yet stored when the page went away.
 *
 * Leaving the page (a reload, closing the tab, following a link) starts the save of the
 * note's last edit, but the browser may end the page before the write commits: IndexedDB
 * gives no way to wait. So the edit is also kept here, in `localStorage`, whose writes are
 * done when the call returns, and the next time this browser opens the notebook it writes
 * whatever the note does not hold yet.
 */
export type DraftFields = Partial<Pick<Note, 'title' | 'body'>>

interface StashedDraft {
  readonly fields: DraftFields
  /** When it was typed (the note's `updatedAt` once written). */
  readonly at: number
}

const prefix = 'chorus-notes:draft:'

function keyOf(space: string, id: string): string {
  return `${prefix}${JSON.stringify([space, id])}`
}

/** Keeps `fields` of note `id`, typed at `at`, until {@link dropDraft} or the notebook opens again. */
export function stashDraft(space: string, id: string, fields: DraftFields, at: number): void {
  try {
    localStorage.setItem(keyOf(space, id), JSON.stringify({ fields, at } satisfies StashedDraft))
  } catch {
    // Storage full or refused: the save already under way is all there is.
  }
}

/** Forgets the draft of note `id`: it is stored in the notebook. */
export function dropDraft(space: string, id: string): void {
  try {
    localStorage.removeItem(keyOf(space, id))
  } catch {
    // Nothing was kept.
  }
}

/** The drafts kept for `space`, by note id; malformed ones are dropped. */
function draftsOf(space: string): Map<string, StashedDraft> {
  const drafts = new Map<string, StashedDraft>()
  for (let index = localStorage.length - 1; index >= 0; index--) {
    const key = localStorage.key(index)
    if (key === null || !key.startsWith(prefix)) continue
    try {
      const [owner, id] = JSON.parse(key.slice(prefix.length)) as unknown[]
      if (owner !== space) continue
      const draft = JSON.parse(localStorage.getItem(key) ?? 'null') as StashedDraft | null
      const fields = draft?.fields
      const valid =
        typeof id === 'string' &&
        typeof draft?.at === 'number' &&
        typeof fields === 'object' &&
        fields !== null &&
        (fields.title === undefined || typeof fields.title === 'string') &&
        (fields.body === undefined || typeof fields.body === 'string')
      if (valid) drafts.set(id, draft)
      else localStorage.removeItem(key)
    } catch {
      localStorage.removeItem(key)
    }
  }
  return drafts
}

/**
 * Writes the drafts kept for the notebook `replica` opens into its notes, where the note does
 * not hold them yet, and forgets them. A draft of a note deleted since is dropped.
 */
export async function recoverDrafts(replica: Replica): Promise<void> {
  const notes = replica.collection<Note>(Collections.notes)
  for (const [id, { fields, at }] of draftsOf(replica.space)) {
    try {
      const stored = await notes.get(id)
      const missing = (Object.keys(fields) as (keyof DraftFields)[]).some(
        (field) => fields[field] !== stored?.[field],
      )
      if (stored !== undefined && missing) await notes.patch(id, { ...fields, updatedAt: at })
      dropDraft(replica.space, id)
    } catch (error) {
      notifyFailure('Saving what you typed before leaving failed', error)
    }
  }
}
