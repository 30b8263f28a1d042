import { ErrorCode, isChorusError, type Replica } from '@chorus/client'
import { Collections, type Note } from './notes.js'
import { notify, notifyFailure } from './notices.js'

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

/**
 * This page's name among the tabs of this browser. Each page keeps its own drafts: a note
 * saved in another tab must not drop the draft this one kept as it went (the words typed
 * last would be lost with it).
 */
const page = crypto.randomUUID()

function keyOf(space: string, id: string, owner = page): string {
  return `${prefix}${JSON.stringify([space, id, owner])}`
}

/** Keeps `fields` of note `id`, typed at `at`, until {@link dropDraft} or the notebook opens again. */
export function stashDraft(space: string, id: string, fields: DraftFields, at: number): void {
  try {
    localStorage.setItem(keyOf(space, id), JSON.stringify({ fields, at } satisfies StashedDraft))
  } catch {
    // Storage full or refused: the save already under way is all there is.
  }
}

/** Forgets this page's draft of note `id`: it is stored in the notebook. */
export function dropDraft(space: string, id: string): void {
  try {
    localStorage.removeItem(keyOf(space, id))
  } catch {
    // Nothing was kept.
  }
}

/** Which draft a localStorage key names, or null for another key (or a malformed one). */
function draftKey(key: string): { space: string; id: string; owner: string } | null {
  if (!key.startsWith(prefix)) return null
  try {
    const [space, id, owner = ''] = JSON.parse(key.slice(prefix.length)) as unknown[]
    // Kept by a build that did not name the page: owner ''.
    if (typeof space !== 'string' || typeof id !== 'string' || typeof owner !== 'string') return null
    return { space, id, owner }
  } catch {
    return null
  }
}

/** The drafts other pages kept for `space`, by their keys; malformed ones are dropped. */
function draftsOf(space: string): Map<string, { id: string; draft: StashedDraft }> {
  const drafts = new Map<string, { id: string; draft: StashedDraft }>()
  for (let index = localStorage.length - 1; index >= 0; index--) {
    const key = localStorage.key(index)
    if (key === null || !key.startsWith(prefix)) continue
    const named = draftKey(key)
    if (named === null) {
      localStorage.removeItem(key)
      continue
    }
    if (named.space !== space || named.owner === page) continue
    try {
      const draft = JSON.parse(localStorage.getItem(key) ?? 'null') as StashedDraft | null
      const fields = draft?.fields
      const valid =
        typeof draft?.at === 'number' &&
        typeof fields === 'object' &&
        fields !== null &&
        (fields.title === undefined || typeof fields.title === 'string') &&
        (fields.body === undefined || typeof fields.body === 'string')
      if (valid) drafts.set(key, { id: named.id, draft })
      else localStorage.removeItem(key)
    } catch {
      localStorage.removeItem(key)
    }
  }
  return drafts
}

/**
 * Writes the drafts other pages kept for the notebook `replica` opens into its notes, where
 * the note does not hold them yet, and forgets them. A draft of a note deleted since is
 * dropped. Drafts are written in the order they were typed.
 */
export async function recoverDrafts(replica: Replica): Promise<void> {
  const notes = replica.collection<Note>(Collections.notes)
  const kept = [...draftsOf(replica.space)].sort(([, a], [, b]) => a.draft.at - b.draft.at)
  for (const [key, { id, draft }] of kept) {
    const { fields, at } = draft
    try {
      const stored = await notes.get(id)
      const missing = (Object.keys(fields) as (keyof DraftFields)[]).some(
        (field) => fields[field] !== stored?.[field],
      )
      if (stored !== undefined && missing) await patchOrTitle(replica, id, fields, at)
      localStorage.removeItem(key)
    } catch (error) {
      notifyFailure('Saving what you typed before leaving failed', error)
    }
  }
}

/**
 * Writes a draft into note `id`. A body too long to sync (a note's patch must fit one frame
 * to the relay, and the client refuses one that does not with `invalid-argument`) cannot be
 * written now or ever: the title typed with it is, and the user is told the body is lost,
 * rather than being told of the same failure each time the notebook opens.
 */
async function patchOrTitle(replica: Replica, id: string, fields: DraftFields, at: number): Promise<void> {
  const notes = replica.collection<Note>(Collections.notes)
  try {
    await notes.patch(id, { ...fields, updatedAt: at })
  } catch (error) {
    if (!isChorusError(error, ErrorCode.InvalidArgument) || fields.body === undefined) throw error
    if (fields.title !== undefined) await notes.patch(id, { title: fields.title, updatedAt: at })
    const megabytes = (new Blob([fields.body]).size / 1_048_576).toFixed(1)
    notify({
      tone: 'error',
      message: `What you typed into a note before leaving was too long to save (${megabytes} MB), and is lost${fields.title === undefined ? '' : ` (its title, “${fields.title}”, is saved)`}.`,
    })
  }
}

/**
 * How long after another tab kept a draft as it went this one writes it: long enough for that
 * tab's own save to have committed if it was going to, so that the note usually holds it
 * already and nothing is written twice.
 */
const RECOVER_AFTER_MS = 2_000

/**
 * Writes the drafts other tabs keep for `replica`'s notebook as they go, while this tab has
 * the notebook open, so that what a closed tab typed last shows here without opening the
 * notebook again. Returns the function that stops it.
 */
export function watchDrafts(replica: Replica): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null
  const heard = (event: StorageEvent): void => {
    if (event.key === null || event.newValue === null) return
    const named = draftKey(event.key)
    if (named === null || named.space !== replica.space || named.owner === page) return
    if (timer !== null) return
    timer = setTimeout(() => {
      timer = null
      void recoverDrafts(replica)
    }, RECOVER_AFTER_MS)
  }
  window.addEventListener('storage', heard)
  return () => {
    window.removeEventListener('storage', heard)
    if (timer !== null) clearTimeout(timer)
    timer = null
  }
}
