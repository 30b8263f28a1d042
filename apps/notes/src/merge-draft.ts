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
  const seen = new Set(lines)
  for (const note of older) {
    for (const line of note.body.split('\n')) {
      if (line.trim() === '' || seen.has(line)) continue
      seen.add(line)
      lines.push(line)
    }
  }
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
  const known = new Set([...mine.split('\n'), ...base.split('\n')])
  const added: string[] = []
  for (const text of others) {
    for (const line of text.split('\n')) {
      if (line.trim() === '' || known.has(line)) continue
      known.add(line)
      added.push(line)
    }
  }
  if (added.length === 0) return mine
  return mine === '' ? added.join('\n') : `${mine.replace(/\n+$/, '')}\n${added.join('\n')}`
}
