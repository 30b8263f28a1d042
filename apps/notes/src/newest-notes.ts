import type { Replica, Row } from '@chorus/client'
import { Collections, type Note, newestFirst } from './notes.js'

/** How many notes show before the whole notebook is loaded: more than a screen holds. */
export const FIRST_PAGE = 100

/** A notebook's newest notes, read on their own: `rows` once read. */
export interface NewestNotes {
  rows: readonly Row<Note>[] | undefined
  readonly read: Promise<readonly Row<Note>[]>
}

const read = new WeakMap<Replica, NewestNotes>()

/**
 * The newest notes of `replica`'s notebook, read once (ids are UUID v7, so id order is
 * creation order). Called as the notebook opens, so the read is under way before the list
 * asks for every note: a notebook of thousands of notes shows its first screen without
 * waiting for all of them.
 */
export function newestNotes(replica: Replica): NewestNotes {
  let newest = read.get(replica)
  if (newest === undefined) {
    const created: NewestNotes = {
      rows: undefined,
      read: replica
        .collection<Note>(Collections.notes)
        .list({ order: 'desc', limit: FIRST_PAGE })
        .then((page) => {
          created.rows = newestFirst(page)
          return created.rows
        }),
    }
    newest = created
    read.set(replica, newest)
  }
  return newest
}
