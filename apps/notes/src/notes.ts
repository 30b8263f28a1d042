import type { Frozen, Row } from '@chorus/client'

/** A note as the `notes` collection stores it. */
export interface Note {
  title: string
  body: string
  /** Unix milliseconds. */
  createdAt: number
  /** Unix milliseconds of the last edit. */
  updatedAt: number
}

/** The name of the notes collection, and of the others a notebook keeps. */
/**
 * How many notes the list shows at first, and how many more each "Show more" adds: a list of
 * every note of a notebook of 15,000 took seconds to render, and again at each search key,
 * each note saved and each minute (its times).
 */
export const LIST_PAGE = 200

export const Collections = { notes: 'notes', devices: 'devices', meta: 'meta' } as const

/** The notebook's own record (`meta`, id `notebook`): its name. */
export interface Meta {
  name: string
}

/**
 * The title a note shows: its own, or its first line, or a placeholder. Read defensively (see
 * {@link asNote}): a record any device wrote is shown, whatever fields it lacks.
 */
export function displayTitle(note: Pick<Frozen<Note>, 'title' | 'body'>): string {
  const { title, body } = asNote(note)
  if (title.trim() !== '') return title.trim()
  const firstLine = body.trim().split('\n', 1)[0] ?? ''
  return firstLine === '' ? 'Untitled' : firstLine
}

/** The first words of the body after the line used as a title, for the list. */
export function preview(note: Pick<Frozen<Note>, 'title' | 'body'>): string {
  const { title, body: all } = asNote(note)
  const body = title.trim() === '' ? all.trim().split('\n').slice(1).join(' ') : all
  return body.replace(/\s+/g, ' ').trim().slice(0, 140)
}

/** Newest first (by creation), with ids breaking ties so every device shows the same order. */
export function newestFirst(rows: readonly Row<Note>[]): Row<Note>[] {
  const created = (row: Row<Note>) => asNote(row.value).createdAt
  return [...rows].sort((a, b) => created(b) - created(a) || (a.id < b.id ? 1 : -1))
}

/** The rows whose title or body contains every word of `query`, ignoring case and accents. */
export function search(rows: readonly Row<Note>[], query: string): readonly Row<Note>[] {
  const words = fold(query).split(/\s+/).filter(Boolean)
  if (words.length === 0) return rows
  return rows.filter((row) => {
    const { title, body } = asNote(row.value)
    const text = fold(`${title}\n${body}`)
    return words.every((word) => text.includes(word))
  })
}

function fold(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{Diacritic}/gu, '')
    .toLowerCase()
}

/**
 * A note read defensively: a version written by another build of the app may lack fields,
 * and a conflict shows every version as it is.
 */
export function asNote(value: unknown): Note {
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  const text = (field: string) => (typeof record[field] === 'string' ? (record[field] as string) : '')
  const time = (field: string) => (typeof record[field] === 'number' ? (record[field] as number) : 0)
  return {
    title: text('title'),
    body: text('body'),
    createdAt: time('createdAt'),
    updatedAt: time('updatedAt'),
  }
}
