/**
 * The compact form of a `changes` or `snapshot` batch (the `compact` feature).
 *
 * A change object spends most of its overhead on names that repeat in every change of a frame
 * (`"collection":"notes"`, the writer's id in its dot, its stamp and its context) and on keys.
 * The compact form says each collection name and replica id once per frame, in two tables, and
 * writes each change as one array of positional fields:
 *
 * ```
 * [collection, id, replica, counter, [replica, counter, …], wall, tick, opCode, …op]
 * ```
 *
 * A frame holds its batch in this form when it carries the tables (`collections` and
 * `replicas`): `batch` is then an array of rows, so it still counts the frame's changes.
 *
 * `collection` and `replica` index the frame's tables; the context is a flat list of
 * (replica index, counter) pairs; `wall` and `tick` are the stamp's wall-clock milliseconds,
 * counted from the frame's `wall` (the earliest in the batch, so a few digits instead of 13),
 * and its counter, its replica being the dot's (a rule every change keeps anyway); `opCode` is
 * 0 `put` (then the value), 1 `delete` (nothing), 2 `patch` (then fields, base, stamps, floor).
 * Decoding yields exactly the change objects of the plain form, checked by the same rules.
 */
import type { Change, Op } from '../change.js'
import { ErrorCode } from '../errors.js'
import { formatHlc } from '../hlc.js'
import { isName, isRecordId, isReplicaId, MAX_RECORD_ID_LENGTH, type ReplicaId } from '../ids.js'
import { counterOf, EMPTY_VV, isCounter, type VersionVector } from '../version-vector.js'
import type { ProtocolLimits } from './messages.js'
import {
  describe,
  expectedReplica,
  type Fields,
  invalid,
  own,
  readJsonObject,
  readOp,
  reject,
} from './read-fields.js'

/**
 * Most entries in one table of a compact frame. A batch that would need more is sent as
 * change objects instead; a frame with more is refused (`invalid-message`).
 */
export const MAX_TABLE_ENTRIES = 65_536

/** The op codes of a compact row. */
export const RowOp = { Put: 0, Delete: 1, Patch: 2 } as const

/** Items in a row per op code: the seven fixed fields, the code, and the op's own. */
const rowLength: readonly number[] = [9, 8, 12]

/** Largest wall-clock value and counter of a stamp (15 and 6 decimal digits; see `hlc.ts`). */
const MAX_WALL = 999_999_999_999_999
const MAX_TICK = 999_999

/** The stamp's layout: 15 digits of wall time, `.`, 6 digits of counter, `@`, replica id. */
const WALL_END = 15
const TICK_START = 16
const TICK_END = 22

/**
 * The op part of a change's row: its code and arguments, e.g. `0,{"title":"x"}`.
 *
 * It holds nearly all of a row's bytes and does not depend on the frame's tables, so a sender
 * that streams one change to many peers can compute it once (see {@link encodeRows}).
 */
export function encodeRowOp(op: Op): string {
  switch (op.type) {
    case 'put':
      return `${RowOp.Put},${JSON.stringify(op.value)}`
    case 'delete':
      return `${RowOp.Delete}`
    case 'patch':
      return `${RowOp.Patch},${JSON.stringify(op.fields)},${JSON.stringify(op.base)},${JSON.stringify(op.stamps)},${JSON.stringify(op.floor)}`
  }
}

/** Returns the index of `key` in `table`, adding it at the end when new. */
function indexIn(table: Map<string, number>, key: string): number {
  let index = table.get(key)
  if (index === undefined) {
    index = table.size
    table.set(key, index)
  }
  return index
}

/**
 * The compact fields of a batch — `"collections":[…],"replicas":[…],"wall":…,"batch":[…rows]` — or null
 * when the batch cannot be written so: a stamp not taken by the dot's replica (a change no
 * decoder accepts, which the plain form at least reports faithfully) or a table that would
 * pass {@link MAX_TABLE_ENTRIES}.
 *
 * With `rowOp`, each row's op is that text (computed once per change by a sender that streams
 * it to many peers); without, the op is written from the change, in one `JSON.stringify`.
 * Both give the same text.
 */
export function encodeRows(batch: readonly Change[], rowOp?: (change: Change) => string): string | null {
  const collections = new Map<string, number>()
  const replicas = new Map<string, number>()
  const rows: unknown[] = []
  let base = Number.POSITIVE_INFINITY
  for (const { dot, hlc } of batch) {
    const replica = dot[0]
    if (hlc.length !== TICK_END + 1 + replica.length || !hlc.endsWith(`@${replica}`)) return null
    base = Math.min(base, Number(hlc.slice(0, WALL_END)))
  }
  if (batch.length === 0) base = 0
  for (const change of batch) {
    const { dot, hlc, context } = change
    const replica = dot[0]
    const pairs: number[] = []
    for (const other of Object.keys(context)) pairs.push(indexIn(replicas, other), context[other] as number)
    const head: unknown[] = [
      indexIn(collections, change.collection),
      change.id,
      indexIn(replicas, replica),
      dot[1],
      pairs,
      Number(hlc.slice(0, WALL_END)) - base,
      Number(hlc.slice(TICK_START, TICK_END)),
    ]
    if (rowOp === undefined) rows.push(head.concat(opItems(change.op)))
    else rows.push(new RawRow(`${JSON.stringify(head).slice(0, -1)},${rowOp(change)}]`))
  }
  if (collections.size > MAX_TABLE_ENTRIES || replicas.size > MAX_TABLE_ENTRIES) return null
  const tables = `"collections":${JSON.stringify([...collections.keys()])},"replicas":${JSON.stringify([...replicas.keys()])},"wall":${base}`
  if (rowOp === undefined) return `${tables},"batch":${JSON.stringify(rows)}`
  return `${tables},"batch":[${rows.map((row) => (row as RawRow).text).join(',')}]`
}

/** A row already written as text. */
class RawRow {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

/** The op part of a row as items: what {@link encodeRowOp} writes as text. */
function opItems(op: Op): unknown[] {
  switch (op.type) {
    case 'put':
      return [RowOp.Put, op.value]
    case 'delete':
      return [RowOp.Delete]
    case 'patch':
      return [RowOp.Patch, op.fields, op.base, op.stamps, op.floor]
  }
}

/** Reads a table of distinct names, each passing `valid`. */
function readTable(
  value: unknown,
  path: string,
  valid: (name: unknown) => boolean,
  expected: string,
): string[] {
  if (!Array.isArray(value)) invalid(path, `an array of ${expected}s`, value)
  if (value.length > MAX_TABLE_ENTRIES) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: has ${value.length} entries; this side accepts at most ${MAX_TABLE_ENTRIES}`,
    )
  }
  const seen = new Set<string>()
  for (let i = 0; i < value.length; i++) {
    const name: unknown = value[i]
    if (!valid(name)) invalid(`${path}[${i}]`, expected, name)
    const text = name as string
    if (seen.has(text)) {
      reject(ErrorCode.InvalidMessage, `${path}[${i}]: ${describe(text)} is listed twice; expected each once`)
    }
    seen.add(text)
  }
  return value as string[]
}

function entryAt(table: readonly string[], value: unknown, path: string, name: string): string {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= table.length) {
    invalid(
      path,
      table.length === 0
        ? `an index into ${name}, which is empty`
        : `an index into ${name} (0–${table.length - 1})`,
      value,
    )
  }
  return table[value] as string
}

function integerAt(value: unknown, path: string, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    invalid(path, `an integer from 0 to ${max}`, value)
  }
  return value === 0 ? 0 : value
}

/**
 * Reads the compact form of a batch: the frame's `collections` and `replicas` tables, its base
 * `wall` time and its `batch` of rows.
 *
 * The rules are those of change objects (see `readChange` in `codec.ts`): names and ids well
 * formed, the context never covering the change's own dot, op values plain JSON objects.
 */
export function readRows(fields: Fields, where: string, limits: ProtocolLimits): Change[] {
  const rows = own(fields, 'batch')
  if (!Array.isArray(rows)) invalid(`${where}.batch`, 'an array of change rows', rows)
  if (rows.length > limits.maxBatch) {
    reject(
      ErrorCode.BatchTooLarge,
      `${where}.batch: holds ${rows.length} changes; this side accepts at most ${limits.maxBatch} per frame`,
    )
  }
  const collections = readTable(own(fields, 'collections'), `${where}.collections`, isName, 'collection name')
  const replicas = readTable(own(fields, 'replicas'), `${where}.replicas`, isReplicaId, 'replica id')
  const base = integerAt(own(fields, 'wall'), `${where}.wall`, MAX_WALL)
  const batch: Change[] = []
  for (let i = 0; i < rows.length; i++) {
    batch.push(readRow(rows[i], `${where}.batch[${i}]`, collections, replicas as ReplicaId[], base, limits))
  }
  return batch
}

function readRow(
  value: unknown,
  path: string,
  collections: readonly string[],
  replicas: readonly ReplicaId[],
  base: number,
  limits: ProtocolLimits,
): Change {
  if (!Array.isArray(value)) invalid(path, 'a change row (an array)', value)
  const row = value as readonly unknown[]
  const code = row[7]
  const length = typeof code === 'number' ? rowLength[code] : undefined
  if (length === undefined) invalid(`${path}[7]`, 'an op code: 0 put, 1 delete or 2 patch', code)
  if (row.length !== length) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: has ${row.length} items; expected ${length} for op code ${code}`,
    )
  }
  const collection = entryAt(collections, row[0], `${path}[0]`, 'collections')
  const id = row[1]
  if (!isRecordId(id)) {
    invalid(
      `${path}[1]`,
      `a record id (a non-empty string of at most ${MAX_RECORD_ID_LENGTH} characters)`,
      id,
    )
  }
  const replica = entryAt(replicas, row[2], `${path}[2]`, 'replicas') as ReplicaId
  const counter = row[3]
  if (!isCounter(counter)) invalid(`${path}[3]`, 'a counter (a safe integer ≥ 1)', counter)
  const context = readPairs(row[4], `${path}[4]`, replicas, limits)
  const seen = counterOf(context, replica)
  if (seen >= counter) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}[4]: covers the change's own dot [${replica}, ${counter}] (${replica}: ${seen}); expected only what the writer had seen before`,
    )
  }
  const wall = base + integerAt(row[5], `${path}[5]`, MAX_WALL - base)
  const tick = integerAt(row[6], `${path}[6]`, MAX_TICK)
  const hlc = formatHlc({ wall, counter: tick, replica })
  return { collection, id, dot: [replica, counter], context, hlc, op: readRowOp(row, path) }
}

function readPairs(
  value: unknown,
  path: string,
  replicas: readonly ReplicaId[],
  limits: ProtocolLimits,
): VersionVector {
  if (!Array.isArray(value) || value.length % 2 !== 0) {
    invalid(
      path,
      `a context: a flat list of (index into replicas, counter) pairs, i.e. ${expectedReplica} indexes`,
      value,
    )
  }
  const pairs = value as readonly unknown[]
  if (pairs.length / 2 > limits.maxVectorEntries) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: has ${pairs.length / 2} entries; this side accepts at most ${limits.maxVectorEntries}`,
    )
  }
  // An empty one (every new record's) is the shared frozen one, as in a change object.
  if (pairs.length === 0) return EMPTY_VV
  const context: Record<string, number> = {}
  for (let i = 0; i < pairs.length; i += 2) {
    const replica = entryAt(replicas, pairs[i], `${path}[${i}]`, 'replicas')
    const counter = pairs[i + 1]
    if (!isCounter(counter)) invalid(`${path}[${i + 1}]`, 'a counter (a safe integer ≥ 1)', counter)
    if (Object.hasOwn(context, replica)) {
      reject(
        ErrorCode.InvalidMessage,
        `${path}[${i}]: names ${describe(replica)} twice; expected each replica once`,
      )
    }
    context[replica] = counter
  }
  return context
}

function readRowOp(row: readonly unknown[], path: string): Op {
  switch (row[7]) {
    case RowOp.Put:
      return { type: 'put', value: readJsonObject(row[8], `${path}[8]`) }
    case RowOp.Delete:
      return { type: 'delete' }
    default:
      return readOp(
        { type: 'patch', fields: row[8], base: row[9], stamps: row[10], floor: row[11] },
        `${path}.op`,
      )
  }
}
