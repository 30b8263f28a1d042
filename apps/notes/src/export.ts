import type { Row } from '@chorus/client'
import { plural } from './format.js'
import { displayTitle, type Note, newestFirst } from './notes.js'

/** A time as `2026-11-25 08:40 UTC`: the same on every device, whatever its time zone. */
function utc(time: number): string {
  return `${new Date(time).toISOString().slice(0, 16).replace('T', ' ')} UTC`
}

/**
 * Text as a Markdown heading shows it: on one line, with the characters Markdown would take
 * for markup (emphasis, links, code, HTML, a closing run of `#`) escaped.
 */
function headingText(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/[\\`*_[\]<>#~|&]/g, '\\$&')
}

/**
 * A notebook as one Markdown document: its name as the heading, then each note, newest
 * first, under its title, with when it was written and last edited. Names and titles are
 * escaped to read as typed; a note's body is the user's own text and goes in as it is, from
 * its first line that is not blank (indented lines keep their indent: code stays code).
 */
export function notebookMarkdown(name: string, rows: readonly Row<Note>[], now: number): string {
  const title = name.trim() === '' ? 'Untitled notebook' : name.trim()
  const parts = [
    `# ${headingText(title)}`,
    `Exported on ${utc(now)}: ${plural(rows.length, 'note', 'notes')}.`,
  ]
  for (const { value } of newestFirst(rows)) {
    const edited = value.updatedAt > value.createdAt ? `, edited ${utc(value.updatedAt)}` : ''
    const lines = [`## ${headingText(displayTitle(value))}`, `_Written ${utc(value.createdAt)}${edited}_`]
    const body = value.body.replace(/^(?:[^\S\n]*\n)+/, '').trimEnd()
    if (body !== '') lines.push(body)
    parts.push(lines.join('\n\n'))
  }
  return `${parts.join('\n\n')}\n`
}

/** A file name for the notebook's export: its name in lower case, runs of anything but letters and digits as `-`. */
export function exportFileName(name: string): string {
  const slug = name
    .normalize('NFC')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '')
  // At most 60 characters (code points, so that no pair is cut in two).
  const short = [...slug].slice(0, 60).join('').replace(/-+$/, '')
  return `${short === '' ? 'notebook' : short}.md`
}

/** Has the browser save `text` as the file `name`. */
export function download(name: string, text: string, type = 'text/markdown;charset=utf-8'): void {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const link = document.createElement('a')
  link.href = url
  link.download = name
  link.hidden = true
  document.body.append(link)
  link.click()
  link.remove()
  // After the click the browser holds the file: the URL is no longer needed.
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}
