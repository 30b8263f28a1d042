import {
  type Change,
  ChorusError,
  type Dot,
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
 * How {@link IdbReplicaStore} lays data out in IndexedDB (schema version 3), and the
 * conversions to and from it.
 *
 * IndexedDB's cost is per request, per key it compares and per object and byte it
 * structured-clones, on both sides of the browser's process boundary. So a record is one
 * string under one string key: the key is core's `recordKey(collection, id)` (collection,
 * U+0000, id — collection names have no U+0000, so one collection is one contiguous run of
 * keys, ids in order), and the value is the JSON text `[id, version, …]` of its id and its
 * versions as compact tuples. The id is in the value although the key has it: reading a
 * collection is then one `getAll` of values, where a second `getAllKeys` would cost
 * Chromium about a fifth more than the values themselves. The collection is not repeated.
 * The outbox holds changes in chunks, one entry per run of consecutive counters instead of
 * one per change.
 *
 * A version is the tuple `[replica, counter, hlc, context, type, ...payload]`: `put` adds the
 * value; `patch` adds fields, base, stamps and floor; `delete` adds nothing. Its `hlc` leaves
 * out `@replica` when that is the dot's replica, as it is for every change made by a replica.
 */

/**
 * A `records` entry of schema versions 1 and 2, keyed by `[collection, id]` inside it: in
 * version 2 `versions` is JSON text of version tuples (as {@link encodeRecord} writes them
 * after the id); in version 1 the record held its `state` as plain objects instead. Read
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
 * A chunk is closed once its text is this long. Chromium moves values over 64 KiB out of
 * the database into a file of their own, which costs far more than a second entry.
 */
export const CHUNK_CHARS = 24_000

/**
 * The JSON text of one version tuple: one `JSON.stringify` of the whole tuple, which costs
 * less than stringifying its parts and joining them.
 */
export function encodeVersion(change: Change): string {
  const { dot, hlc, context, op } = change
  const replica = dot[0]
  // Drop `@replica` from the stamp without building that suffix to compare with.
  const cut = hlc.length - replica.length - 1
  const stamp = cut >= 0 && hlc.charCodeAt(cut) === AT && hlc.endsWith(replica) ? hlc.slice(0, cut) : hlc
  switch (op.type) {
    case 'put':
      return JSON.stringify([replica, dot[1], stamp, context, 'put', op.value])
    case 'patch':
      return JSON.stringify([
        replica,
        dot[1],
        stamp,
        context,
        'patch',
        op.fields,
        op.base,
        op.stamps,
        op.floor,
      ])
    case 'delete':
      return JSON.stringify([replica, dot[1], stamp, context, 'delete'])
  }
}

/** `@`, between a stamp and its replica id. */
const AT = 0x40

/**
 * A record as stored: the JSON text `[id, version, …]`, `known` (the text of one of the
 * versions) reused.
 */
export function encodeRecord(
  id: string,
  versions: readonly Change[],
  known?: { change: Change; text: string },
): string {
  let text = `[${JSON.stringify(id)}`
  for (const version of versions)
    text += `,${known !== undefined && version === known.change ? known.text : encodeVersion(version)}`
  return `${text}]`
}

/** The outbox triple of a change whose version text is `version`. */
export function encodeOutboxItem(change: Change, version: string): string {
  return `[${JSON.stringify(change.collection)},${JSON.stringify(change.id)},${version}]`
}

/**
 * Encodes a batch of local writes as {@link encodeRecord} and {@link encodeOutboxItem}
 * would, each text made once: the version's for both the record and the outbox, the id's
 * JSON for both, the collection's once per run of writes to it.
 */
export function createLocalWriteEncoder(): (
  record: { readonly id: string; readonly state: { readonly versions: readonly Change[] } },
  change: Change,
) => { readonly record: string; readonly outbox: string } {
  let collection: string | null = null
  let quotedCollection = ''
  return (record, change) => {
    const version = encodeVersion(change)
    const quotedId = JSON.stringify(change.id)
    if (change.collection !== collection) {
      collection = change.collection
      quotedCollection = JSON.stringify(collection)
    }
    const { versions } = record.state
    const text =
      versions.length === 1 && versions[0] === change && record.id === change.id
        ? `[${quotedId},${version}]`
        : encodeRecord(record.id, versions, { change, text: version })
    return { record: text, outbox: `[${quotedCollection},${quotedId},${version}]` }
  }
}

/**
 * Groups the outbox triples of consecutive changes into chunks as they come (see
 * {@link CHUNK_CHANGES}, {@link CHUNK_CHARS}): `add` each in counter order, then `close`;
 * `store` receives each chunk with the counter it is stored under, as soon as it is full.
 */
export function createOutboxChunker(store: (key: number, chunk: OutboxChunk) => void): {
  add(counter: number, text: string): void
  close(): void
} {
  let open = ''
  let count = 0
  let first = 0
  let last = 0
  const close = () => {
    if (count === 0) return
    store(last, { first, changes: `${open}]` })
    open = ''
    count = 0
  }
  return {
    add(counter, text) {
      if (count === 0) {
        first = counter
        open = `[${text}`
      } else open += `,${text}`
      count += 1
      last = counter
      if (count >= CHUNK_CHANGES || open.length >= CHUNK_CHARS) close()
    },
    close,
  }
}

/** Deep-freezes what `JSON.parse` just made: nothing in it can be frozen or shared yet. */
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
  const stamp = tuple[2] as string
  const hlc = (stamp.includes('@') ? stamp : `${stamp}@${replica}`) as HlcStamp
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

/** A stored record of `collection` (its value `text`) back as a frozen {@link StoredRecord}. */
export function decodeRecord(collection: string, text: unknown): StoredRecord {
  return recordFrom(collection, parseRecord(collection, text))
}

/**
 * A stored record as a list reads it (see `ListedRecord`): a record whose only version is a
 * put gives its id and frozen value, without the version objects `decodeRecord` builds; any
 * other record is decoded whole.
 */
export function decodeListed(collection: string, text: unknown): ListedRecord {
  const parsed = parseRecord(collection, text)
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
