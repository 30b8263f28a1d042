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
 * What the typing of one field has seen and written: `seen`, the lines that came from
 * elsewhere (the text the typing started from, and every other device's text merged into it);
 * `typed`, the lines this editor wrote that came from nowhere else.
 */
export interface TypingLines {
  readonly seen: ReadonlySet<string>
  readonly typed: ReadonlySet<string>
  /** The line of `mine` the caret is in, while the field has focus: it is being typed. */
  readonly caretLine?: string
}

/**
 * What is being typed, with what others wrote meanwhile merged in:
 *
 * - A line of another device's text that grew from (or was cut back to) a line of theirs that
 *   `mine` holds as it came — one from elsewhere (`seen`), not typed here, and gone from their
 *   text — takes that line's place: two devices typing at once see each other's line as it
 *   grows, not every saved state of it. So does one that holds a line typed here with text
 *   they added at one place, its end or inside it (the note's first lines, typed on this
 *   device, say), unless the caret is in that line: nothing of it is lost, and the line being typed is not changed under the caret.
 * - Every other line of `others` (texts written on other devices while `mine` was typed over
 *   `base`) that neither `mine` nor `base` holds, nor this editor typed and has since changed
 *   (`typed`), nor came here before (`seen`: a line this editor changed or deleted since), is
 *   added after `mine`, in their order (blank lines aside). A line another device changed
 *   otherwise comes in changed, beside the line as it was; nothing they wrote is dropped.
 * - With `theirsFollow` (one text, written over `base`: the stored note, no conflict), a line
 *   of `base` that came from elsewhere (`seen`, not typed here), that `mine` still holds as it
 *   was, and that their text no longer holds, was deleted there: it goes from `mine` too.
 * - Of two states of one line in `others` (one starts with the other, as in two versions of a
 *   conflict saved while the line was typed), the longer is taken, once.
 */
export function mergeTyped(
  mine: string,
  base: string,
  others: readonly string[],
  history: TypingLines = { seen: new Set(base.split('\n')), typed: new Set() },
  theirsFollow = false,
): string {
  const lines = mine.split('\n')
  const known = new Set([...lines, ...base.split('\n'), ...history.typed, ...history.seen])
  const added: string[] = []
  /** The lines taken from `others` into `lines` so far (those in `added` are too). */
  const taken = new Set<string>()
  for (const text of others) {
    const theirs = text.split('\n')
    const present = new Set(theirs)
    for (const line of theirs) {
      if (line.trim() === '' || known.has(line)) continue
      known.add(line)
      // Two of their texts (the versions of a conflict) may hold two states of a line one of
      // them typed: the longer is the later, and the shorter is not added beside it.
      const sameLine = (candidate: string) => candidate.startsWith(line) || line.startsWith(candidate)
      const inLines = lines.findIndex((candidate) => taken.has(candidate) && sameLine(candidate))
      const inAdded = added.findIndex(sameLine)
      if (inLines >= 0 || inAdded >= 0) {
        const [into, at] = inLines >= 0 ? [lines, inLines] : [added, inAdded]
        if (line.length > (into[at] as string).length) {
          into[at] = line
          taken.add(line)
        }
        continue
      }
      const at = grownFrom(
        lines,
        line,
        (candidate) =>
          !present.has(candidate) &&
          (history.typed.has(candidate)
            ? candidate !== history.caretLine && grewInside(candidate, line)
            : history.seen.has(candidate)),
      )
      if (at >= 0) {
        lines[at] = line
        taken.add(line)
      } else added.push(line)
    }
  }
  if (theirsFollow && others.length === 1) {
    const theirs = new Set((others[0] as string).split('\n'))
    const started = new Set(base.split('\n'))
    const deleted = (line: string) =>
      line.trim() !== '' &&
      started.has(line) &&
      history.seen.has(line) &&
      !history.typed.has(line) &&
      !taken.has(line) &&
      !theirs.has(line)
    for (let at = lines.length - 1; at >= 0; at--) if (deleted(lines[at] as string)) lines.splice(at, 1)
  }
  const merged = lines.join('\n')
  if (added.length === 0) return merged
  return merged === '' ? added.join('\n') : `${merged.replace(/\n+$/, '')}\n${added.join('\n')}`
}

/**
 * The index of the line of `lines` that `line` was most likely typed from — one that holds the
 * other with text added at one place (its end, or inside it), or shares with it a prefix of at
 * least half the shorter — among those `eligible` allows; -1 when there is none.
 */
function grownFrom(lines: readonly string[], line: string, eligible: (candidate: string) => boolean): number {
  let best = -1
  let bestShared = 0
  lines.forEach((candidate, index) => {
    if (candidate.trim() === '' || !eligible(candidate)) return
    const prefix = commonPrefix(candidate, line)
    const shorter = Math.min(candidate.length, line.length)
    const shared = Math.min(shorter, prefix + commonSuffix(candidate, line, prefix))
    if (shared === shorter || prefix * 2 >= shorter) {
      if (shared > bestShared) {
        best = index
        bestShared = shared
      }
    }
  })
  return best
}

/** Whether `to` is `from` with text added at one place: its end, its start or inside it. */
function grewInside(from: string, to: string): boolean {
  if (to.length <= from.length) return false
  const prefix = commonPrefix(from, to)
  return prefix + commonSuffix(from, to, prefix) >= from.length
}

function commonPrefix(a: string, b: string): number {
  let at = 0
  while (at < a.length && at < b.length && a[at] === b[at]) at++
  return at
}

/** How many characters `a` and `b` end alike with, not counting into the first `skip` of either. */
function commonSuffix(a: string, b: string, skip: number): number {
  let at = 0
  while (at < a.length - skip && at < b.length - skip && a[a.length - 1 - at] === b[b.length - 1 - at]) at++
  return at
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

/**
 * Where a selection of `before` is in `after`, the same text with lines from elsewhere merged
 * in: where it was while the text up to it is unchanged (and not empty); moved by the change
 * in length while the text after it is (and not empty); else in the line it was in, found in `after` (lines added above it,
 * or the lines in another order, as another device merged them), at the same place in it;
 * else where it was.
 */
export function caretAfterMerge(
  before: string,
  after: string,
  start: number,
  end: number,
): { start: number; end: number } {
  // An empty side anchors nothing: at the very end of the text (or its start), lines merged in
  // below (or above) would otherwise take the caret along.
  if (end > 0 && after.startsWith(before.slice(0, end))) return { start, end }
  const shift = after.length - before.length
  if (start < before.length && after.endsWith(before.slice(start)) && start + shift >= 0)
    return { start: start + shift, end: end + shift }
  const lineStart = before.lastIndexOf('\n', start - 1) + 1
  const lineEnd = before.indexOf('\n', start)
  const line = before.slice(lineStart, lineEnd === -1 ? undefined : lineEnd)
  const head = before.slice(lineStart, start)
  const at = lineIn(after, line, head, lineStart)
  if (at === -1) return { start, end }
  const moved = at + head.length
  return { start: moved, end: Math.min(after.length, moved + (end - start)) }
}

/**
 * Where in `text` a line starts that is `line`, or failing that one that begins with it (text
 * was added at its end elsewhere), or one that begins with `head` (the part of it before the
 * caret), when `head` is not empty: of several, the one nearest `near`. -1 when none is.
 */
function lineIn(text: string, line: string, head: string, near: number): number {
  const found: [number, number, number] = [-1, -1, -1]
  const nearer = (rank: 0 | 1 | 2, at: number) => {
    const best = found[rank] as number
    if (best === -1 || Math.abs(at - near) < Math.abs(best - near)) found[rank] = at
  }
  let at = 0
  for (const candidate of text.split('\n')) {
    if (candidate === line) nearer(0, at)
    else if (line !== '' && candidate.startsWith(line)) nearer(1, at)
    else if (head !== '' && candidate.startsWith(head)) nearer(2, at)
    at += candidate.length + 1
  }
  return found.find((start) => start !== -1) ?? -1
}
