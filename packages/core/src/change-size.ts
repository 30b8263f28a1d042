import type { Change } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import { approximateJsonLength, type JsonValue } from './json.js'
import { encodeChange } from './protocol/codec.js'

/** Room a `changes` frame needs beyond its changes' text: its own fields and brackets. */
const FRAME_ENVELOPE = 1024

/**
 * About how long a change is on the wire: its op's value (or a patch's fields and base), its
 * context, its id and collection, and the rest of its metadata (see `approximateJsonLength`,
 * which counts escapes only with `escapes`: the id and collection are counted as their length
 * either way, and are short).
 */
export function approximateChangeLength(change: Change, escapes = false): number {
  const op = change.op
  const body =
    op.type === 'put'
      ? approximateJsonLength(op.value, escapes)
      : op.type === 'patch'
        ? approximateJsonLength(op.fields, escapes) +
          approximateJsonLength(op.base, escapes) +
          64 * Object.keys(op.stamps).length
        : 0
  return body + approximateHeadLength(change)
}

/**
 * About how long a change is on the wire without its op's payload: its context, id,
 * collection and the rest of its metadata. Six times this bounds their UTF-8 JSON: a replica
 * id is at most 64 ASCII characters, so a context entry is under 48 × 6.
 */
function approximateHeadLength(change: Change): number {
  let entries = 0
  for (const _ in change.context) entries++
  return 48 * entries + change.id.length + change.collection.length + 160
}

/** The length of `text` in UTF-8 bytes, counted without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

/**
 * Refuses a value that could never be sent: a change travels whole in one frame of at most
 * `maxFrameBytes`, so a larger one would be refused by every receiver, and every later change
 * would wait behind it. Cheap for the values most writes carry: only one whose estimate,
 * allowing six bytes for each character counted, could come near the limit is encoded to be
 * measured. Returns a bound of the value's UTF-8 JSON length: that estimate × 6, or the
 * length measured.
 */
export function assertValueFits(value: JsonValue, maxFrameBytes: number, what: string): number {
  const estimate = approximateJsonLength(value)
  if (estimate * 6 + FRAME_ENVELOPE <= maxFrameBytes) return estimate * 6
  const bytes = utf8Length(JSON.stringify(value))
  if (bytes + FRAME_ENVELOPE > maxFrameBytes) throw tooLarge(what, bytes, maxFrameBytes)
  return bytes
}

/**
 * As {@link assertChangeFits}, for a put whose value {@link assertValueFits} passed and
 * bounded by `valueBytes`. The value left room for a frame's own fields, but the change also
 * carries the record's context — an entry for every replica that wrote it — which that room
 * may not hold. Cheap for nearly every put: the value is not walked again unless the value
 * and six times the rest could come near the limit.
 */
export function assertPutFits(change: Change, valueBytes: number, maxFrameBytes: number): void {
  if (valueBytes + approximateHeadLength(change) * 6 + FRAME_ENVELOPE <= maxFrameBytes) return
  assertChangeFits(change, maxFrameBytes)
}

/** As {@link assertValueFits}, for a whole change (a patch carries the record's other fields). */
export function assertChangeFits(change: Change, maxFrameBytes: number): void {
  if (approximateChangeLength(change) * 6 + FRAME_ENVELOPE <= maxFrameBytes) return
  const bytes = utf8Length(encodeChange(change))
  if (bytes + FRAME_ENVELOPE > maxFrameBytes)
    throw tooLarge(`the ${change.op.type} of ${change.id}`, bytes, maxFrameBytes)
}

function tooLarge(what: string, bytes: number, maxFrameBytes: number): ChorusError {
  return new ChorusError(
    ErrorCode.InvalidArgument,
    `${what} is ${bytes} bytes as JSON; a change must fit one ${maxFrameBytes}-byte frame with room to spare, so split the data over several records`,
  )
}
