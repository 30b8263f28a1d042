/**
 * The records and changes the sync benchmark writes, and the small statistics it reports.
 *
 * Every record is a note of about 150 bytes of JSON (`{ title, body, done }`) under a
 * uuid-shaped id, so sizes compare across runs and with the core benchmark.
 */
import {
  asRecordId,
  asReplicaId,
  type Change,
  createLwwResolver,
  formatHlc,
  type JsonObject,
  makeChange,
  type ReplicaId,
} from '@chorus/core'

/** The space and collection every benchmark writes to. */
export const SPACE = 'bench'
export const COLLECTION = 'notes'

const WALL = 1_750_000_000_000
const lww = createLwwResolver()
const SYLLABLES =
  'ba be bi bo ca ce co da de di do el en er fa fe fi ga ge go ha he hi ka ke ki la le li lo ma me mi mo na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa'.split(
    ' ',
  )

/** A seeded PRNG (mulberry32): the same `seed` always gives the same draws in [0, 1). */
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

/**
 * `length` characters of made-up words (two to four syllables from 50), about as
 * compressible as prose (deflate shrinks it roughly 2–3×, not 10× like repeated text).
 */
function words(draw: () => number, length: number): string {
  let text = ''
  while (text.length < length) {
    const syllables = 2 + Math.floor(draw() * 3)
    for (let i = 0; i < syllables; i++) text += SYLLABLES[Math.floor(draw() * SYLLABLES.length)]
    text += draw() < 0.1 ? '. ' : ' '
  }
  return text.slice(0, length)
}

/** The id of note `n` of writer `prefix`: uuid v7-shaped (36 characters), random after a time prefix. */
/** Matches the ids {@link noteId} makes, wherever they appear in a frame's text. */
export const NOTE_IDS = /0197a3c2-[0-9a-f]{4}-7[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}/g

export function noteId(n: number, prefix = 0): string {
  const draw = prng(n * 7919 + prefix * 104_729 + 1)
  let hex = ''
  for (let i = 0; i < 20; i++) hex += Math.floor(draw() * 16).toString(16)
  return `0197a3c2-${(0x5e1b + (n >>> 12)).toString(16).slice(-4)}-7${hex.slice(0, 3)}-8${hex.slice(3, 6)}-${hex.slice(8, 20)}`
}

/** The value of note `n`: about 150 bytes of JSON (a title, a 100-character body, a flag). */
export function noteValue(n: number): JsonObject {
  const draw = prng(n + 1)
  return { title: words(draw, 16 + Math.floor(draw() * 12)), body: words(draw, 100), done: draw() < 0.3 }
}

/** A record as an app would fetch it from a plain JSON API: what "the JSON payload" counts. */
export function recordJson(id: string, value: JsonObject): string {
  return JSON.stringify({ id, value })
}

/**
 * The bytes of `records` as one JSON array of `{ id, value }` (UTF-8): the payload a plain
 * REST endpoint would send, with no sync metadata at all.
 */
export function jsonPayloadBytes(records: readonly { id: string; value: JsonObject }[]): number {
  return Buffer.byteLength(JSON.stringify(records.map(({ id, value }) => ({ id, value }))))
}

/** A put of note `n` by `replica` as its `counter`-th change, made as a replica makes it. */
export function putChange(replica: ReplicaId, counter: number, n: number, prefix = 0): Change {
  return makeChange({
    collection: COLLECTION,
    id: asRecordId(noteId(n, prefix)),
    record: undefined,
    resolver: lww,
    intent: { type: 'put', value: noteValue(n) },
    dot: [replica, counter],
    hlc: formatHlc({ wall: WALL + counter, counter: 0, replica }),
  })
}

/** A replica id for benchmark writer `n`. */
export function writerId(n: number): ReplicaId {
  return asReplicaId(`bench-writer-${n}`)
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** The `p`-th percentile (0–100) by the nearest-rank method. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1] as number
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves when `check()` holds, re-checking every millisecond; rejects after `ms`. */
export async function until(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = performance.now() + ms
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(1)
  }
}
