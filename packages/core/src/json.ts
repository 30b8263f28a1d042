import { ChorusError, ErrorCode } from './errors.js'

/** A value that survives `JSON.stringify` → `JSON.parse` unchanged. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject

/** A JSON object: the shape of every record value. */
export interface JsonObject {
  readonly [key: string]: JsonValue
}

/** Nesting depth beyond which a value is refused (deep values are a denial-of-service vector). */
export const MAX_JSON_DEPTH = 64

/**
 * Explains why `value` is not plain JSON, or returns `undefined` when it is.
 *
 * Plain means: `null`, booleans, finite numbers, strings, arrays and objects whose prototype is
 * `Object.prototype` or `null`, without cycles, `undefined`, functions, symbols, bigints,
 * `Date`s or class instances — anything that would not come back identical from JSON.
 * A `__proto__` key is refused too: copying such an object with `obj[key] = …` would change
 * its prototype instead of adding a field, so no value holding one is ever stored or sent.
 */
export function explainNonJson(
  value: unknown,
  path = '$',
  depth = 0,
  seen: unknown[] = [],
): string | undefined {
  if (value === null) return undefined
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot represent`
    case 'object':
      break
    default:
      return `${path} is a ${typeof value}, which JSON cannot represent`
  }
  if (depth >= MAX_JSON_DEPTH) return `${path} is nested deeper than ${MAX_JSON_DEPTH} levels`
  if (seen.includes(value)) return `${path} is a cycle back to an enclosing value`
  seen.push(value)
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        if (!(i in value)) return `${path}[${i}] is a hole in a sparse array`
        const why = explainNonJson(value[i], `${path}[${i}]`, depth + 1, seen)
        if (why !== undefined) return why
      }
      return undefined
    }
    const proto: unknown = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'unknown'
      return `${path} is a ${name} instance; only plain objects are JSON`
    }
    for (const key of Object.keys(value)) {
      if (key === '__proto__')
        return `${path} has a "__proto__" key, which Chorus refuses (it would rewrite prototypes)`
      const why = explainNonJson((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1, seen)
      if (why !== undefined) return why
    }
    return undefined
  } finally {
    seen.pop()
  }
}

/** True when `value` is plain JSON (see {@link explainNonJson}). */
export function isJsonValue(value: unknown): value is JsonValue {
  return explainNonJson(value) === undefined
}

/** True when `value` is a plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && isJsonValue(value)
}

/** Checks that an application value is a plain JSON object; throws `invalid-argument` otherwise. */
export function assertJsonObject(value: unknown, what: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${what} must be a JSON object, got ${describe(value)}`)
  }
  const why = explainNonJson(value)
  if (why !== undefined) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${what} is not JSON-serialisable: ${why}`)
  }
  return value as JsonObject
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return `a ${typeof value}`
}

/**
 * JSON text with object keys sorted, so equal values give equal strings.
 *
 * Used to compare values and to order siblings deterministically; never for the wire.
 */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map((item: JsonValue) => canonicalJson(item)).join(',')}]`
  const obj = value as JsonObject
  const keys = Object.keys(obj).sort()
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(obj[key] as JsonValue)}`).join(',')}}`
}

/** Structural equality of two JSON values (key order ignored). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bs = b as readonly JsonValue[]
    return a.length === bs.length && a.every((item: JsonValue, i) => jsonEqual(item, bs[i] as JsonValue))
  }
  const ao = a as JsonObject
  const bo = b as JsonObject
  const keys = Object.keys(ao)
  if (keys.length !== Object.keys(bo).length) return false
  return keys.every((key) => Object.hasOwn(bo, key) && jsonEqual(ao[key] as JsonValue, bo[key] as JsonValue))
}

/** A number stored under an own property of `map`, or 0: safe for keys like `constructor`. */
export function ownNumber(map: { readonly [key: string]: number }, key: string): number {
  return ownValue(map, key) ?? 0
}

/** The value under an own property of `map` (which may be absent), or undefined: as {@link ownNumber}. */
export function ownValue<TValue>(
  map: { readonly [key: string]: TValue } | undefined,
  key: string,
): TValue | undefined {
  return map !== undefined && Object.hasOwn(map, key) ? map[key] : undefined
}

/**
 * Freezes a JSON value and everything inside it, in place, and returns it.
 *
 * Chorus freezes every value it stores: an application that edits an object it read would
 * otherwise edit the stored record behind the engine's back. Copy a value to change it.
 */
export function freezeJson<TValue extends JsonValue>(value: TValue): TValue {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value
  for (const item of Object.values(value)) freezeJson(item as JsonValue)
  return Object.freeze(value)
}

/** A deep copy of a JSON value, frozen: what a write stores, taken when the write is called. */
export function snapshotJson<TValue extends JsonValue>(value: TValue): TValue {
  return freezeJson(JSON.parse(JSON.stringify(value)) as TValue)
}

/** What {@link copyJsonValue} returns for anything {@link explainNonJson} would explain. */
export const NOT_JSON: unique symbol = Symbol('not JSON')

/** What {@link copyJsonValue} returns once its copy outgrew the `budget` it was given. */
export const TOO_LONG: unique symbol = Symbol('too long')

/**
 * A deep copy of a JSON value, in one walk, or {@link NOT_JSON}: it refuses what
 * `explainNonJson` refuses (a cycle shows up as too deep). `frozen`: the copy is deep-frozen
 * and is what JSON would give back (`-0` becomes `0`, as it does through text), as a write
 * takes an application's value; otherwise numbers are copied as they are, as a decoded frame
 * already is what its text says.
 *
 * With a `budget`, each part copied takes from `budget.left` the fewest characters its JSON can
 * have (a string its length and quotes, a number one, brackets, commas, a key with its quotes
 * and colon), and the copy stops with
 * {@link TOO_LONG} once that runs out: an object that holds one object many times over is
 * small in memory but a copy the size of its JSON, which can be more than memory holds.
 */
export function copyJsonValue(
  value: unknown,
  depth: number,
  frozen: boolean,
  budget?: { left: number },
): unknown {
  if (value === null) {
    if (overspent(budget, 4)) return TOO_LONG
    return null
  }
  switch (typeof value) {
    case 'string':
      if (overspent(budget, value.length + 2)) return TOO_LONG
      return value
    case 'boolean':
      if (overspent(budget, 4)) return TOO_LONG
      return value
    case 'number':
      if (!Number.isFinite(value)) return NOT_JSON
      if (overspent(budget, 1)) return TOO_LONG
      return frozen && value === 0 ? 0 : value
    case 'object':
      break
    default:
      return NOT_JSON
  }
  if (depth >= MAX_JSON_DEPTH) return NOT_JSON
  if (Array.isArray(value)) {
    if (overspent(budget, Math.max(1, value.length + 1))) return TOO_LONG
    const items: unknown[] = []
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return NOT_JSON
      const item = copyJsonValue(value[i], depth + 1, frozen, budget)
      if (item === NOT_JSON || item === TOO_LONG) return item
      items.push(item)
    }
    return frozen ? Object.freeze(items) : items
  }
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return NOT_JSON
  const copy: Record<string, unknown> = {}
  const keys = Object.keys(value)
  if (overspent(budget, Math.max(1, keys.length + 1))) return TOO_LONG
  for (const key of keys) {
    if (key === '__proto__') return NOT_JSON
    if (overspent(budget, key.length + 3)) return TOO_LONG
    const item = copyJsonValue((value as Record<string, unknown>)[key], depth + 1, frozen, budget)
    if (item === NOT_JSON || item === TOO_LONG) return item
    copy[key] = item
  }
  return frozen ? Object.freeze(copy) : copy
}

/** Takes `chars` from `budget` (if any); true once it is spent past nothing. */
function overspent(budget: { left: number } | undefined, chars: number): boolean {
  if (budget === undefined) return false
  budget.left -= chars
  return budget.left < 0
}

/**
 * Checks an application value as {@link assertJsonObject} does and returns what
 * {@link snapshotJson} would of it — a frozen deep copy, equal to the value's JSON round trip
 * — walking it once instead of four times.
 *
 * `maxBytes` bounds the copy (see {@link copyJsonValue}): a value whose JSON is longer is
 * refused with `invalid-argument` as soon as the copy passes it. A value that throws as it is
 * read (a getter, a Proxy's trap, a revoked Proxy) is refused with `invalid-argument` too,
 * naming what it threw.
 */
export function copyJsonObject(
  value: unknown,
  what: string,
  maxBytes = Number.POSITIVE_INFINITY,
): JsonObject {
  try {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const copy = copyJsonValue(value, 0, true, { left: maxBytes })
      if (copy === TOO_LONG) {
        throw new ChorusError(
          ErrorCode.InvalidArgument,
          `${what} is more than ${maxBytes} bytes as JSON (an object it holds many times over counts each time); a change must fit one ${maxBytes}-byte frame, so split the data over several records`,
        )
      }
      if (copy !== NOT_JSON) return copy as JsonObject
    }
    // Not plain: the check explains why, as a typed error.
    return snapshotJson(assertJsonObject(value, what))
  } catch (error) {
    if (error instanceof ChorusError) throw error
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `${what} could not be read: reading it threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
    )
  }
}

/**
 * About how long `value` is as JSON: its strings' lengths plus a few characters per number,
 * key and bracket, found by a walk that allocates nothing. Escapes are not counted, so text
 * that needs many (a control character takes six) is underestimated; callers leave room for
 * that — or pass `escapes`, which measures exactly each string (or key) that needs an escape:
 * one test per string, and a `JSON.stringify` only of those.
 */
export function approximateJsonLength(value: JsonValue, escapes = false): number {
  switch (typeof value) {
    case 'string':
      return escapes ? quotedLength(value) : value.length + 2
    case 'number':
      return 12
    case 'boolean':
      return 5
    default: {
      if (value === null) return 4
      let length = 2
      if (Array.isArray(value)) {
        for (const item of value) length += approximateJsonLength(item, escapes) + 1
        return length
      }
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue
        length +=
          (escapes ? quotedLength(key) : key.length + 2) +
          2 +
          approximateJsonLength((value as JsonObject)[key] as JsonValue, escapes)
      }
      return length
    }
  }
}

/**
 * Characters JSON may write as more than themselves: quote, backslash, control characters, and
 * surrogates (a lone one is escaped; a pair is not, and measuring it exactly costs only time).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

/** `text`'s length as a JSON string, quotes and escapes included. */
function quotedLength(text: string): number {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text).length : text.length + 2
}
