/**
 * The notes the browser benchmark writes and reads: the notes app's shape (`title`, `body`,
 * `createdAt`, `updatedAt`) with about 200 characters of English prose in title and body,
 * under UUID v7 ids made from `createdAt`, so id order is creation order, as in the app.
 * Seeded: every run, and Chorus and Dexie alike, get the same notes.
 */

/** A note as the notes app stores it. */
export interface NoteValue {
  readonly title: string
  readonly body: string
  readonly createdAt: number
  readonly updatedAt: number
}

/** A note with its id, as Dexie stores it (`id` is the primary key). */
export interface NoteRow extends NoteValue {
  readonly id: string
}

const START = Date.UTC(2025, 0, 6, 8, 0, 0)
const WORDS = (
  'the a to and of in for on with at from by about after before over into this that our your ' +
  'meeting notes plan draft call email review budget trip list ideas garden kitchen school ' +
  'project release design team client invoice report week morning afternoon evening weekend ' +
  'tomorrow friday monday book order pick up check send ask remember finish start move fix ' +
  'write read buy bring share print update schedule confirm cancel prepare clean paint water ' +
  'groceries bread coffee milk tickets train flat landlord boiler dentist doctor bank tax ' +
  'slides agenda summary question answer deadline budget quote contract photo recipe ' +
  'birthday present party dinner lunch walk run bike car keys window door shelf lamp desk'
).split(' ')

/** A seeded PRNG (mulberry32): the same seed always gives the same draws in [0, 1). */
function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function sentence(draw: () => number, words: number): string {
  const picked: string[] = []
  for (let i = 0; i < words; i++) picked.push(WORDS[Math.floor(draw() * WORDS.length)] as string)
  const text = picked.join(' ')
  return text.charAt(0).toUpperCase() + text.slice(1)
}

/** Prose of about `length` characters: sentences of 6 to 14 words. */
function prose(draw: () => number, length: number): string {
  let text = ''
  while (text.length < length) text += `${sentence(draw, 6 + Math.floor(draw() * 9))}. `
  return text.trimEnd()
}

/** A UUID v7 whose time is `ms`, with seeded bits after it. */
function uuidV7(ms: number, draw: () => number): string {
  let hex = ms.toString(16).padStart(12, '0')
  for (let i = 0; i < 20; i++) hex += Math.floor(draw() * 16).toString(16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${hex.slice(12, 15)}-8${hex.slice(15, 18)}-${hex.slice(18, 30)}`
}

/** Note `n` (0 is the oldest; one note a minute). */
export function note(n: number): NoteRow {
  const draw = prng(n * 7919 + 17)
  const createdAt = START + n * 60_000
  return {
    id: uuidV7(createdAt, draw),
    title: sentence(draw, 3 + Math.floor(draw() * 4)),
    body: prose(draw, 150 + Math.floor(draw() * 40)),
    createdAt,
    updatedAt: createdAt + Math.floor(draw() * 3_600_000),
  }
}

/** Notes 0 to `count` − 1. */
export function notes(count: number): NoteRow[] {
  return Array.from({ length: count }, (_, n) => note(n))
}

/** The value Chorus stores for a note: the row without its id (the id is the record's key). */
export function noteValue({ id: _, ...value }: NoteRow): NoteValue {
  return value
}
