import type { ConflictVersion } from '@chorus/client'
import { asNote, type Note } from './notes.js'

/**
 * A starting point for merging: the newest version, plus every line of the older ones that it
 * lacks (blank lines aside), in their order. Two devices that each added a line give a note
 * with both.
 */
export function mergeDraft(versions: readonly ConflictVersion[], now: number = Date.now()): Note {
  const notes = [...versions]
    .reverse()
    .filter((version) => version.value !== null)
    .map((version) => asNote(version.value))
  const [newest, ...older] = notes
  if (newest === undefined) return { title: '', body: '', createdAt: now, updatedAt: now }
  const lines = newest.body.split('\n')
  lines.push(
    ...linesNotIn(
      older.map((note) => note.body),
      new Set(lines),
    ),
  )
  const title =
    newest.title.trim() === '' ? (older.find((note) => note.title.trim() !== '')?.title ?? '') : newest.title
  const created = notes.map((note) => note.createdAt).filter((time) => time > 0)
  return {
    title,
    body: lines.join('\n'),
    createdAt: created.length === 0 ? now : Math.min(...created),
    updatedAt: now,
  }
}

/**
 * What is being typed, with the lines that others wrote meanwhile added: every line of
 * `others` (texts written on other devices while `mine` was typed over `base`) that neither
 * `mine` nor `base` holds (blank lines aside), in their order, after `mine`. A line another
 * device changed comes in changed, beside the line as it was; nothing they wrote is dropped.
 */
export function mergeTyped(mine: string, base: string, others: readonly string[]): string {
  const added = linesNotIn(others, new Set([...mine.split('\n'), ...base.split('\n')]))
  if (added.length === 0) return mine
  return mine === '' ? added.join('\n') : `${mine.replace(/\n+$/, '')}\n${added.join('\n')}`
}

/** The lines of `texts`, in order, that `known` lacks (blank ones aside), each once; adds them to it. */
function linesNotIn(texts: readonly string[], known: Set<string>): string[] {
  const found: string[] = []
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (line.trim() === '' || known.has(line)) continue
      known.add(line)
      found.push(line)
    }
  }
  return found
}
