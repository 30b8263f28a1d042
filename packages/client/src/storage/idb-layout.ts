import {
  type Change,
  ChorusError,
  type Dot,
  EMPTY_VV,
  ErrorCode,
  type FieldStamps,
  type HlcStamp,
  type JsonObject,
  type JsonValue,
  type ListedRecord,
  type Op,
  type RecordId,
  type ReplicaId,
  type StoredRecord,
  type VersionVector,
} from '@chorus/core'

/**
 * How {@link IdbReplicaStore} lays data out in IndexedDB (schema version 4), and the
 * conversions to and from it.
 *
 * IndexedDB's cost is per request, per key it compares and per object and byte it
 * structured-clones, on both sides of the browser's process boundary. So a record is one
 * entry under one string key: the key is core's `recordKey(collection, id)` (collection,
 * U+0000, id — collection names have no U+0000, so one collection is one contiguous run of
 * keys, ids in order). The entry takes one of two forms (see {@link RecordEntry}):
 *
 * - a record whose only version is a `put` — nearly every record — is the flat array
 *   {@link PutEntry} `[id, replica, counter, hlc, value]` (`context` appended when it is not
 *   empty), the value as itself. A list hands that value out as the browser's structured
 *   clone made it (frozen, see `decodeListed`): as JSON text it also cost a `JSON.parse` of
 *   the whole record and the garbage of its version head, which made a cold read of 10k
 *   notes in Chromium take about a tenth longer. The array is flat because every nested
 *   array or object costs deserialisation time. A value is plain JSON (writes and remote
 *   changes refuse anything else), so its clone reads back as the same JSON its text did.
 * - any other record (siblings of a conflict, a patch, a tombstone) is the JSON text
 *   `[id, version, …]` of its id and its versions as compact tuples, as schema version 3
 *   stored every record.
 *
 * The id is in the entry although the key has it: reading a collection is then one `getAll`
 * of values, where a second `getAllKeys` would cost Chromium about a fifth more than the
 * values themselves. The collection is not repeated. The outbox holds changes in chunks,
 * one entry per run of consecutive counters instead of one per change.
 *
 * A version is the tuple `[replica, counter, hlc, context, type, ...payload]`: `put` adds the
 * value; `patch` adds fields, base, stamps and floor; `delete` adds nothing. Its `hlc` leaves
 * out `@replica` when that is the dot's replica, as it is for every change made by a replica.
 */

/**
 * A `records` entry whose only version is a put: id, the version's replica, counter and hlc
 * (without `@replica` when that is the replica), the value, and the context only when it has
 * entries (a new record's is empty).
 */
export type PutEntry =
  | readonly [RecordId, ReplicaId, number, string, JsonObject]
  | readonly [RecordId, ReplicaId, number, string, JsonObject, VersionVector]

/** A `records` entry: a {@link PutEntry}, or the JSON text of any record (see above). */
export type RecordEntry = PutEntry | string

/**
 * A `records` entry of schema versions 1 and 2, keyed by `[collection, id]` inside it: in
 * version 2 `versions` is JSON text of version tuples (as {@link encodeRecordText} writes
 * them after the id); in version 1 the record held its `state` as plain objects instead. Read
 * only by the migration.
 */
export interface LegacyRecordEntry {
  readonly collection: string
  readonly id: RecordId
  readonly versions?: unknown
  readonly state?: unknown
}

/**
 * An `outbox` entry, stored under the counter of its last change: changes `first` to that
 * counter, as JSON text of `[collection, id, version]` triples in counter order.
 */
export interface OutboxChunk {
  readonly first: number
  readonly changes: string
}

/** The smallest key of `collection`'s records: every one is after it. */
export function collectionStart(collection: string): string {
  return `${collection}\u0000`
}

/** The key just past `collection`'s records: every one is before it. */
export function collectionEnd(collection: string): string {
  return `${collection}\u0001`
}

/** Most changes in one outbox chunk. */
export const CHUNK_CHANGES = 128
/**
 * Most characters in one outbox chunk's text, unless it holds a single change. Chromium moves
 * values over 64 KiB out of the database into a file of their own, which costs far more than
 * a second entry (and a character may take two bytes).
 */
export const CHUNK_CHARS = 24_000
/**
 * The length a chunk is aimed at: each chunk's number of changes is reckoned from the length
 * per change of the chunk before, and this margin keeps one that comes out longer than
 * {@link CHUNK_CHARS}, and is then made again with fewer, rare.
 */
const CHUNK_AIM = 20_000

/**
 * A change's hlc as stored: without `@replica` when that is its dot's replica (checked without
 * building that suffix to compare with).
 */
function storedStamp(change: Change): string {
  const { dot, hlc } = change
  const replica = dot[0]
  const cut = hlc.length - replica.length - 1
  return cut >= 0 && hlc.charCodeAt(cut) === AT && hlc.endsWith(replica) ? hlc.slice(0, cut) : hlc
}

/** A change's version tuple (see above), for `JSON.stringify`. */
function versionTuple(change: Change): readonly unknown[] {
  const { dot, context, op } = change
  const replica = dot[0]
  const stamp = storedStamp(change)
  switch (op.type) {
    case 'put':
      return [replica, dot[1], stamp, context, 'put', op.value]
    case 'patch':
      return [replica, dot[1], stamp, context, 'patch', op.fields, op.base, op.stamps, op.floor]
    case 'delete':
      return [replica, dot[1], stamp, context, 'delete']
  }
}

/**
 * The JSON text of one version tuple: one `JSON.stringify` of the whole tuple, which costs
 * less than stringifying its parts and joining them.
 */
export function encodeVersion(change: Change): string {
  return JSON.stringify(versionTuple(change))
}

/** `@`, between a stamp and its replica id. */
const AT = 0x40

/** A record as JSON text `[id, version, …]`: the form of a record that is not one put (see {@link RecordEntry}). */
export function encodeRecordText(id: string, versions: readonly Change[]): string {
  const tuples: unknown[] = [id]
  for (const version of versions) tuples.push(versionTuple(version))
  return JSON.stringify(tuples)
}

/** A record as stored: a {@link PutEntry} when its only version is a put, else its JSON text. */
export function encodeRecord(id: RecordId, versions: readonly Change[]): RecordEntry {
  const only = versions.length === 1 ? versions[0] : undefined
  if (only === undefined || only.op.type !== 'put') return encodeRecordText(id, versions)
  return encodeSoleVersion(only)
}

/** The record of `change`'s id whose only version is `change`, as stored (see {@link encodeRecord}). */
export function encodeSoleVersion(change: Change): RecordEntry {
  const { id, dot, op, context } = change
  if (op.type !== 'put') return encodeRecordText(id, [change])
  const stamp = storedStamp(change)
  for (const _ in context) return [id, dot[0], dot[1], stamp, op.value, context]
  return [id, dot[0], dot[1], stamp, op.value]
}

/** The outbox triple of a change whose version text is `version`. */
export function encodeOutboxItem(change: Change, version: string): string {
  return `[${JSON.stringify(change.collection)},${JSON.stringify(change.id)},${version}]`
}

/**
 * Stores `changes` (consecutive counters, in order) as outbox chunks: `store` receives each
 * chunk with the counter it is stored under. Each chunk's text is one `JSON.stringify` of its
 * `[collection, id, version]` triples — what {@link encodeOutboxItem} would make of each,
 * joined — which costs far less than a text per change joined. A chunk holds at most
 * {@link CHUNK_CHANGES}, and its text at most {@link CHUNK_CHARS} characters unless it holds
 * one change: how many it holds is reckoned from the length per change of the chunk before
 * (see {@link CHUNK_AIM}); one that comes out too long is made again with fewer.
 */
export function encodeOutbox(
  changes: readonly Change[],
  store: (key: number, chunk: OutboxChunk) => void,
): void {
  let size = CHUNK_CHANGES
  let start = 0
  while (start < changes.length) {
    const end = Math.min(changes.length, start + size)
    const items: unknown[] = []
    for (let i = start; i < end; i++) {
      const change = changes[i] as Change
      items.push([change.collection, change.id, versionTuple(change)])
    }
    const text = JSON.stringify(items)
    const count = end - start
    if (text.length > CHUNK_CHARS && count > 1) {
      size = Math.max(1, Math.floor((count * CHUNK_CHARS) / text.length))
      continue
    }
    store((changes[end - 1] as Change).dot[1], { first: (changes[start] as Change).dot[1], changes: text })
    start = end
    size = Math.min(CHUNK_CHANGES, Math.max(1, Math.floor((count * CHUNK_AIM) / text.length)))
  }
}

/**
 * Deep-freezes what `JSON.parse` or IndexedDB's structured clone just made: nothing in it can
 * be frozen or shared yet.
 */
function freezeParsed(value: unknown): void {
  if (typeof value !== 'object' || value === null) return
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      if (typeof item === 'object') freezeParsed(item)
    }
  } else {
    for (const key in value) {
      const item = (value as Record<string, unknown>)[key]
      if (typeof item === 'object') freezeParsed(item)
    }
  }
  Object.freeze(value)
}

function corrupt(what: string): ChorusError {
  return new ChorusError(
    ErrorCode.StorageFailed,
    `reading ${what} failed: it is not in the layout this version of Chorus stores. The database may have been written by other code; pass another dbName, or clear this site's data.`,
  )
}

/** A stored hlc back whole: `@replica` added when it was left out. */
function storedHlc(stamp: string, replica: ReplicaId): HlcStamp {
  return (stamp.includes('@') ? stamp : `${stamp}@${replica}`) as HlcStamp
}

/** A version tuple back as a frozen change of `collection` and `id`. */
function decodeVersion(collection: string, id: RecordId, tuple: unknown): Change {
  if (
    !Array.isArray(tuple) ||
    typeof tuple[0] !== 'string' ||
    typeof tuple[1] !== 'number' ||
    typeof tuple[2] !== 'string' ||
    typeof tuple[3] !== 'object' ||
    tuple[3] === null
  )
    throw corrupt(`record ${JSON.stringify(id)} of ${JSON.stringify(collection)}`)
  const replica = tuple[0] as ReplicaId
  const hlc = storedHlc(tuple[2] as string, replica)
  // A version vector holds only numbers: freezing it is freezing it deeply.
  const context = Object.freeze(tuple[3] as VersionVector)
  let op: Op
  switch (tuple[4]) {
    case 'put': {
      const value = tuple[5] as JsonObject
      freezeParsed(value)
      op = Object.freeze({ type: 'put', value })
      break
    }
    case 'patch': {
      const [, , , , , fields, base, stamps, floor] = tuple as [
        unknown,
        unknown,
        unknown,
        unknown,
        unknown,
        JsonObject,
        JsonObject,
        FieldStamps,
        HlcStamp | null,
      ]
      freezeParsed(fields)
      freezeParsed(base)
      freezeParsed(stamps)
      op = Object.freeze({ type: 'patch', fields, base, stamps, floor })
      break
    }
    case 'delete':
      op = Object.freeze({ type: 'delete' })
      break
    default:
      throw corrupt(`record ${JSON.stringify(id)} of ${JSON.stringify(collection)}`)
  }
  const dot = Object.freeze<Dot>([replica, tuple[1] as number])
  return Object.freeze({ collection, id, dot, context, hlc, op })
}

/** A stored record of `collection` (its {@link RecordEntry}) back as a frozen {@link StoredRecord}. */
export function decodeRecord(collection: string, entry: unknown): StoredRecord {
  if (Array.isArray(entry)) return decodePutEntry(collection, entry)
  return recordFrom(collection, parseRecord(collection, entry))
}

/**
 * A stored record as a list reads it (see `ListedRecord`): a record whose only version is a
 * put gives its id and frozen value, without the version objects `decodeRecord` builds; any
 * other record is decoded whole. The value is the one IndexedDB just deserialised for this
 * read, so handing it out shares nothing with the store or with another read.
 */
export function decodeListed(collection: string, entry: unknown): ListedRecord {
  if (Array.isArray(entry)) {
    // A list reads thousands of these: the entry checked in place, nothing else allocated.
    if (!isPutEntry(entry)) throw corrupt(`a record of ${JSON.stringify(collection)}`)
    const value = entry[4] as JsonObject
    freezeParsed(value)
    return { id: entry[0] as RecordId, value }
  }
  const parsed = parseRecord(collection, entry)
  const only: unknown = parsed.length === 2 ? parsed[1] : undefined
  if (
    Array.isArray(only) &&
    only[4] === 'put' &&
    typeof only[0] === 'string' &&
    typeof only[1] === 'number' &&
    typeof only[2] === 'string' &&
    typeof only[3] === 'object' &&
    only[3] !== null &&
    typeof only[5] === 'object' &&
    only[5] !== null
  ) {
    const value = only[5] as JsonObject
    freezeParsed(value)
    return { id: parsed[0] as RecordId, value }
  }
  return recordFrom(collection, parsed)
}

function parseRecord(collection: string, text: unknown): unknown[] {
  const parsed: unknown = typeof text === 'string' ? JSON.parse(text) : undefined
  if (!Array.isArray(parsed) || typeof parsed[0] !== 'string')
    throw corrupt(`a record of ${JSON.stringify(collection)}`)
  return parsed
}

function recordFrom(collection: string, parsed: unknown[]): StoredRecord {
  const id = parsed[0] as RecordId
  const versions: Change[] = []
  for (let i = 1; i < parsed.length; i++) versions.push(decodeVersion(collection, id, parsed[i]))
  return Object.freeze({ collection, id, state: Object.freeze({ versions: Object.freeze(versions) }) })
}

/** Whether a stored array is a {@link PutEntry}. */
function isPutEntry(entry: readonly unknown[]): boolean {
  const value = entry[4]
  return (
    typeof entry[0] === 'string' &&
    typeof entry[1] === 'string' &&
    typeof entry[2] === 'number' &&
    typeof entry[3] === 'string' &&
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    (entry.length === 5 || (entry.length === 6 && typeof entry[5] === 'object' && entry[5] !== null))
  )
}

/** A {@link PutEntry} back as a frozen record. */
function decodePutEntry(collection: string, entry: readonly unknown[]): StoredRecord {
  if (!isPutEntry(entry)) throw corrupt(`a record of ${JSON.stringify(collection)}`)
  const [id, replica, counter, stamp, value, context] = entry as readonly [
    RecordId,
    ReplicaId,
    number,
    string,
    JsonObject,
    VersionVector?,
  ]
  freezeParsed(value)
  const change: Change = Object.freeze({
    collection,
    id,
    dot: Object.freeze<Dot>([replica, counter]),
    // A version vector holds only numbers: freezing it is freezing it deeply.
    context: context === undefined ? EMPTY_VV : Object.freeze(context),
    hlc: storedHlc(stamp, replica),
    op: Object.freeze({ type: 'put', value }),
  })
  return Object.freeze({ collection, id, state: Object.freeze({ versions: Object.freeze([change]) }) })
}

/** The collection of a `records` key (see {@link collectionStart}). */
export function keyCollection(key: IDBValidKey): string {
  const end = typeof key === 'string' ? key.indexOf('\u0000') : -1
  if (end < 0) throw corrupt('a record key')
  return (key as string).slice(0, end)
}

/** An outbox chunk's changes, frozen, in counter order. */
export function decodeOutboxChunk(chunk: OutboxChunk): Change[] {
  if (typeof chunk?.changes !== 'string') throw corrupt('the outbox')
  const changes: Change[] = []
  for (const item of JSON.parse(chunk.changes) as unknown[]) {
    const [collection, id, tuple] = item as [string, RecordId, JsonValue]
    changes.push(decodeVersion(collection, id, tuple))
  }
  return changes
}
