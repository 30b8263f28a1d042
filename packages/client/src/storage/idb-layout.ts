import {
  type Change,
  ChorusError,
  type Dot,
  ErrorCode,
  type FieldStamps,
  type HlcStamp,
  type JsonObject,
  type JsonValue,
  type Op,
  type RecordId,
  type ReplicaId,
  type StoredRecord,
  type VersionVector,
} from '@chorus/core'

/**
 * How {@link IdbReplicaStore} lays data out in IndexedDB (schema version 2), and the
 * conversions to and from it.
 *
 * IndexedDB's cost is per object and per byte it structured-clones, on both sides of the
 * browser's process boundary. So a record holds its versions as one JSON text of compact
 * tuples — one string to clone instead of a tree of a dozen objects — and the outbox holds
 * changes in chunks, one entry per run of consecutive counters instead of one per change.
 *
 * A version is the tuple `[replica, counter, hlc, context, type, ...payload]`: `put` adds the
 * value; `patch` adds fields, base, stamps and floor; `delete` adds nothing. Its `hlc` leaves
 * out `@replica` when that is the dot's replica, as it is for every change made by a replica.
 */

/** A `records` entry: the key (`[collection, id]`) and the versions as JSON text of tuples. */
export interface RecordEntry {
  readonly collection: string
  readonly id: RecordId
  readonly versions: string
}

/**
 * An `outbox` entry, stored under the counter of its last change: changes `first` to that
 * counter, as JSON text of `[collection, id, version]` triples in counter order.
 */
export interface OutboxChunk {
  readonly first: number
  readonly changes: string
}

/** Most changes in one outbox chunk. */
export const CHUNK_CHANGES = 128
/**
 * A chunk is closed once its text is this long. Chromium moves values over 64 KiB out of
 * the database into a file of their own, which costs far more than a second entry.
 */
export const CHUNK_CHARS = 24_000

/** The JSON text of one version tuple. */
export function encodeVersion(change: Change): string {
  const { dot, hlc, context, op } = change
  const replica = dot[0]
  const stamp = hlc.endsWith(`@${replica}`) ? hlc.slice(0, hlc.length - replica.length - 1) : hlc
  const head = `${JSON.stringify(replica)},${dot[1]},${JSON.stringify(stamp)},${JSON.stringify(context)}`
  switch (op.type) {
    case 'put':
      return `[${head},"put",${JSON.stringify(op.value)}]`
    case 'patch':
      return `[${head},"patch",${JSON.stringify(op.fields)},${JSON.stringify(op.base)},${JSON.stringify(op.stamps)},${JSON.stringify(op.floor)}]`
    case 'delete':
      return `[${head},"delete"]`
  }
}

/** A record as stored: its versions encoded, `known` (the text of one of them) reused. */
export function encodeRecord(record: StoredRecord, known?: { change: Change; text: string }): RecordEntry {
  const versions = record.state.versions
  let text = '['
  for (let i = 0; i < versions.length; i++) {
    const version = versions[i] as Change
    if (i > 0) text += ','
    text += known !== undefined && version === known.change ? known.text : encodeVersion(version)
  }
  return { collection: record.collection, id: record.id, versions: `${text}]` }
}

/** The outbox triple of a change whose version text is `version`. */
export function encodeOutboxItem(change: Change, version: string): string {
  return `[${JSON.stringify(change.collection)},${JSON.stringify(change.id)},${version}]`
}

/**
 * Groups the outbox triples of consecutive changes into chunks (see {@link CHUNK_CHANGES},
 * {@link CHUNK_CHARS}), each with the counter it is stored under.
 */
export function chunkOutbox(
  items: readonly { readonly counter: number; readonly text: string }[],
): { readonly key: number; readonly chunk: OutboxChunk }[] {
  const chunks: { key: number; chunk: OutboxChunk }[] = []
  let open: string[] = []
  let chars = 0
  let first = 0
  let last = 0
  const close = () => {
    if (open.length === 0) return
    chunks.push({ key: last, chunk: { first, changes: `[${open.join(',')}]` } })
    open = []
    chars = 0
  }
  for (const { counter, text } of items) {
    if (open.length === 0) first = counter
    open.push(text)
    chars += text.length
    last = counter
    if (open.length >= CHUNK_CHANGES || chars >= CHUNK_CHARS) close()
  }
  close()
  return chunks
}

/** Deep-freezes what `JSON.parse` just made: nothing in it can be frozen or shared yet. */
function freezeParsed(value: unknown): void {
  if (typeof value !== 'object' || value === null) return
  if (Array.isArray(value)) {
    for (const item of value) if (typeof item === 'object') freezeParsed(item)
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
  if (!Array.isArray(tuple) || typeof tuple[0] !== 'string' || typeof tuple[1] !== 'number')
    throw corrupt(`record ${JSON.stringify(id)} of ${JSON.stringify(collection)}`)
  const replica = tuple[0] as ReplicaId
  const stamp = tuple[2] as string
  const hlc = (stamp.includes('@') ? stamp : `${stamp}@${replica}`) as HlcStamp
  const context = tuple[3] as VersionVector
  freezeParsed(context)
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

/** A stored record back as a frozen {@link StoredRecord}. */
export function decodeRecord(entry: RecordEntry): StoredRecord {
  const { collection, id } = entry
  if (typeof entry.versions !== 'string')
    throw corrupt(`record ${JSON.stringify(id)} of ${JSON.stringify(collection)}`)
  const tuples = JSON.parse(entry.versions) as unknown[]
  const versions: Change[] = []
  for (const tuple of tuples) versions.push(decodeVersion(collection, id, tuple))
  return Object.freeze({ collection, id, state: Object.freeze({ versions: Object.freeze(versions) }) })
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
