/**
 * Reading untrusted protocol values: the primitives the decoders share.
 *
 * Every reader throws a {@link Rejection} at the first fault, with a stable code and a message
 * that names the offending path; the public entry points in `codec.ts` catch it, so it never
 * escapes the protocol module.
 */
import type { FieldStamps, Op } from '../change.js'
import { ErrorCode } from '../errors.js'
import { type HlcStamp, isHlcStamp } from '../hlc.js'
import { copyJsonValue, explainNonJson, type JsonObject, NOT_JSON } from '../json.js'

/** A decoded JSON object, read through its own properties only. */
export type Fields = { readonly [key: string]: unknown }

/** How error messages describe a replica id. */
export const expectedReplica =
  'a replica id (1–64 letters, digits, "_" or "-", starting with a letter or digit)'
/** How error messages describe a clock stamp. */
export const expectedStamp = 'a clock stamp such as "000001700000000.000000@alice"'

/**
 * Unwinds validation at the first problem found.
 *
 * Validation is deep and stops at the first fault; one private exception keeps every check a
 * single line. It is caught at each public entry point and never escapes this module.
 */
export class Rejection extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

/** Stops reading with `code` and `message`. */
export function reject(code: ErrorCode, message: string): never {
  throw new Rejection(code, message)
}

/** Stops reading: the value at `path` is missing or not what was `expected`. */
export function invalid(path: string, expected: string, got: unknown): never {
  reject(
    ErrorCode.InvalidMessage,
    got === undefined
      ? `${path}: missing; expected ${expected}`
      : `${path}: expected ${expected}, got ${describe(got)}`,
  )
}

/** Names a value for an error message without echoing more than a few dozen characters of it. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `an array of ${value.length} items`
  switch (typeof value) {
    case 'string':
      return value.length > 40
        ? `${JSON.stringify(value.slice(0, 40))}… (${value.length} characters)`
        : JSON.stringify(value)
    case 'number':
    case 'boolean':
      return String(value)
    case 'object':
      return 'an object'
    default:
      return `a ${typeof value}`
  }
}

/** Cuts `text` to at most `max` code units, never inside a surrogate pair, marking the cut. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text
  const code = text.charCodeAt(max - 2)
  const end = code >= 0xd800 && code <= 0xdbff ? max - 2 : max - 1
  return `${text.slice(0, end)}…`
}

/** Reads an own property only: a field missing from a frame must not be found on a prototype. */
export function own(fields: Fields, key: string): unknown {
  return Object.hasOwn(fields, key) ? fields[key] : undefined
}

/** The value at `path` as a plain (non-array) object, or a rejection. */
export function objectAt(value: unknown, path: string, expected: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(path, expected, value)
  return value as Fields
}

/** The value at `path` as a clock stamp, or a rejection. */
export function stampAt(value: unknown, path: string): HlcStamp {
  if (!isHlcStamp(value)) invalid(path, expectedStamp, value)
  return value
}

/** Reads a change's op: `put`, `delete`, or `patch` with its base and stamps, copied. */
export function readOp(value: unknown, path: string): Op {
  const fields = objectAt(value, path, 'an op object')
  const type = own(fields, 'type')
  switch (type) {
    case 'put':
      return { type, value: readJsonObject(own(fields, 'value'), `${path}.value`) }
    case 'delete':
      return { type }
    case 'patch': {
      const set = readJsonObject(own(fields, 'fields'), `${path}.fields`)
      const base = readJsonObject(own(fields, 'base'), `${path}.base`)
      for (const field of Object.keys(set)) {
        if (Object.hasOwn(base, field)) {
          reject(
            ErrorCode.InvalidMessage,
            `${path}.base: holds ${describe(field)}, which fields sets; expected only the fields the patch leaves alone`,
          )
        }
      }
      const rawStamps = objectAt(own(fields, 'stamps'), `${path}.stamps`, 'an object of clock stamps')
      const stamps: Record<string, HlcStamp> = {}
      for (const field of Object.keys(rawStamps)) {
        if (!Object.hasOwn(base, field)) {
          reject(
            ErrorCode.InvalidMessage,
            `${path}.stamps: stamps ${describe(field)}, which base does not hold; expected stamps of base fields only`,
          )
        }
        stamps[field] = stampAt(rawStamps[field], `${path}.stamps.${field}`)
      }
      const rawFloor = own(fields, 'floor')
      const floor = rawFloor === null ? null : stampAt(rawFloor, `${path}.floor`)
      return { type, fields: set, base, stamps: stamps as FieldStamps, floor }
    }
    default:
      return invalid(`${path}.type`, '"put", "patch" or "delete"', type)
  }
}

/**
 * Reads a record value: a plain JSON object, copied.
 *
 * `__proto__` keys are refused at any depth. `JSON.parse` makes them harmless own properties,
 * but any later `target[key] = value` copy (resolvers, application code, deep merges) would
 * set a prototype instead, or pollute `Object.prototype`. Refusing them at the boundary is
 * the one place that protects every consumer.
 *
 * The value is checked and copied in one walk that builds no paths; only a value it refuses
 * is walked again, by `explainNonJson`, to say where.
 */
export function readJsonObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    invalid(path, 'a JSON object', value)
  const copy = copyJsonValue(value, 0, false)
  if (copy !== NOT_JSON) return copy as JsonObject
  return reject(ErrorCode.InvalidMessage, explainNonJson(value, path) ?? `${path}: expected a JSON object`)
}
