import {
  ChorusError,
  ErrorCode,
  explainNonJson,
  isCounter,
  isVersionVector,
  type JsonValue,
  type VersionVector,
} from '@chorus/core'
import type { NodeInput } from './machine.js'
import { isNodeId, type NodeId } from './node-id.js'

/**
 * Validation of node inputs, shared by both designs.
 *
 * A node's `step` validates every input before it changes anything, so a malformed message or
 * request is refused with a `ChorusError` and the state it was given stays as it was. Codes:
 * `unknown-message` for a `type` the node does not know, `invalid-message` for a known message
 * with missing or mistyped fields, `invalid-argument` for a bad key or a value that is not JSON.
 */

/** Longest key a node accepts, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 256

/**
 * Longest a request may ask its node to wait (a replica read's `waitMs`): a node keeps a
 * waiting read in its state until it is served or its wait ends, so a wait far past any
 * client's patience would only pile reads up.
 */
export const MAX_READ_WAIT_MS = 60_000

/** Longest client id or request id a node accepts. */
export const MAX_ID_LENGTH = 128

/** An object's own fields, read without touching its prototype. */
export type Fields = { readonly [key: string]: unknown }

/** Reads an own property only: a field missing from a frame must not be found on a prototype. */
export function own(fields: Fields, key: string): unknown {
  return Object.hasOwn(fields, key) ? fields[key] : undefined
}

/** Names a value for an error message without echoing more than a few dozen characters of it. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `an array of ${value.length} items`
  switch (typeof value) {
    case 'string':
      return value.length > 40 ? `${JSON.stringify(value.slice(0, 40))}…` : JSON.stringify(value)
    case 'number':
    case 'boolean':
      return String(value)
    case 'object':
      return 'an object'
    default:
      return `a ${typeof value}`
  }
}

/** Throws `invalid-message` for `path`, saying what was expected and what came. */
export function invalid(path: string, expected: string, got: unknown): never {
  throw new ChorusError(
    ErrorCode.InvalidMessage,
    got === undefined
      ? `${path}: missing; expected ${expected}`
      : `${path}: expected ${expected}, got ${describeValue(got)}`,
  )
}

/**
 * Refuses a field not in `known` (`invalid-message`): a client's misspelt option (`consistancy`)
 * would otherwise be dropped unseen, and the request served with the default.
 */
export function onlyFields(fields: Fields, known: readonly string[], path: string): void {
  for (const key of Object.keys(fields)) {
    if (!known.includes(key)) {
      throw new ChorusError(
        ErrorCode.InvalidMessage,
        `${path}.${key}: not a field of this request; its fields are ${known.join(', ')}`,
      )
    }
  }
}

/**
 * Refuses, for an operator's command `what` (a control route), the fields not in `known`
 * (`invalid-argument`), naming those it takes: a misspelt one would otherwise be ignored and
 * the command carried out with a default.
 */
export function onlyCommandFields(fields: Fields, known: readonly string[], what: string): void {
  const unknown = Object.keys(fields).filter((field) => !known.includes(field))
  if (unknown.length === 0) return
  throw new ChorusError(
    ErrorCode.InvalidArgument,
    `${what} takes ${known.length === 0 ? 'no fields' : known.join(', ')}; not ${unknown.map((field) => JSON.stringify(field)).join(', ')}`,
  )
}

/** The value as an object (not null, not an array), or `invalid-message`. */
export function objectAt(value: unknown, path: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(path, 'an object', value)
  return value as Fields
}

/** The `type` field of a message, checked against the known types, or `unknown-message`. */
export function typeAt<TType extends string>(fields: Fields, known: readonly TType[], path: string): TType {
  const type = own(fields, 'type')
  if (typeof type !== 'string') invalid(`${path}.type`, 'a message type string', type)
  if (!(known as readonly string[]).includes(type)) {
    throw new ChorusError(
      ErrorCode.UnknownMessage,
      `${path}.type: ${describeValue(type)} is not a known message; expected one of ${known.join(', ')}`,
    )
  }
  return type as TType
}

/** A non-negative safe integer field (a position, an epoch, a count). */
export function countAt(fields: Fields, key: string, path: string): number {
  const value = own(fields, key)
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    invalid(`${path}.${key}`, 'a non-negative safe integer', value)
  }
  return value === 0 ? 0 : value
}

/** A finite number field (a virtual or wall-clock time). */
export function timeAt(fields: Fields, key: string, path: string): number {
  const value = own(fields, key)
  if (typeof value !== 'number' || !Number.isFinite(value))
    invalid(`${path}.${key}`, 'a finite number', value)
  return value
}

/** A boolean field. */
export function booleanAt(fields: Fields, key: string, path: string): boolean {
  const value = own(fields, key)
  if (typeof value !== 'boolean') invalid(`${path}.${key}`, 'a boolean', value)
  return value
}

/** A node id field. */
export function nodeAt(fields: Fields, key: string, path: string): NodeId {
  const value = own(fields, key)
  if (!isNodeId(value)) invalid(`${path}.${key}`, 'a node id', value)
  return value
}

/** A node id field that may be null. */
export function nodeOrNullAt(fields: Fields, key: string, path: string): NodeId | null {
  return own(fields, key) === null ? null : nodeAt(fields, key, path)
}

/** A client or request id: a non-empty string of at most {@link MAX_ID_LENGTH} characters. */
export function idAt(fields: Fields, key: string, path: string): string {
  const value = own(fields, key)
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH) {
    invalid(`${path}.${key}`, `a non-empty string of at most ${MAX_ID_LENGTH} characters`, value)
  }
  return value
}

/** A string field of any length up to `max`. */
export function stringAt(fields: Fields, key: string, path: string, max = MAX_KEY_LENGTH): string {
  const value = own(fields, key)
  if (typeof value !== 'string' || value.length > max) {
    invalid(`${path}.${key}`, `a string of at most ${max} characters`, value)
  }
  return value
}

/** Checks a key from an application: throws `invalid-argument` unless it is a usable string. */
export function assertKey(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_LENGTH) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `${path}: a key must be a non-empty string of at most ${MAX_KEY_LENGTH} characters, got ${describeValue(value)}`,
    )
  }
  return value
}

/** Checks a value from an application: throws `invalid-argument` unless it is plain JSON. */
export function assertValue(value: unknown, path: string): JsonValue {
  if (value === undefined) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${path}: a value is required (use null for "nothing")`)
  }
  const why = explainNonJson(value, path)
  if (why !== undefined) throw new ChorusError(ErrorCode.InvalidArgument, `${why}; values must be plain JSON`)
  return value as JsonValue
}

/** A key field; a bad key is the application's mistake, so it is `invalid-argument`. */
export function keyAt(fields: Fields, key: string, path: string): string {
  return assertKey(own(fields, key), `${path}.${key}`)
}

/** A JSON value field. */
export function valueAt(fields: Fields, key: string, path: string): JsonValue {
  return assertValue(own(fields, key), `${path}.${key}`)
}

/**
 * A version vector field. A bad one is refused naming its first bad entry: "got an object"
 * would not say which of a context's entries was at fault.
 */
export function vectorAt(fields: Fields, key: string, path: string): VersionVector {
  const value = own(fields, key)
  if (isVersionVector(value)) return value
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalid(`${path}.${key}`, 'a version vector ({ nodeId: counter })', value)
  }
  for (const [node, counter] of Object.entries(value)) {
    if (!isNodeId(node)) invalid(`${path}.${key}`, 'node ids as the keys of a version vector', node)
    if (!isCounter(counter)) invalid(`${path}.${key}.${node}`, 'a counter (a positive safe integer)', counter)
  }
  // Not reached: `isVersionVector` refuses only what the loop above names.
  invalid(`${path}.${key}`, 'a version vector ({ nodeId: counter })', value)
}

/** An array field, each item read by `item`. */
export function arrayAt<TItem>(
  fields: Fields,
  key: string,
  path: string,
  item: (value: unknown, itemPath: string) => TItem,
  max = 100_000,
): TItem[] {
  const value = own(fields, key)
  if (!Array.isArray(value) || value.length > max)
    invalid(`${path}.${key}`, `an array of at most ${max} items`, value)
  return value.map((entry, index) => item(entry, `${path}.${key}[${index}]`))
}

/** A `[number, number]` pair of non-negative integers; `expected` names it in the error for a non-pair. */
export function pairOfCounts(
  value: unknown,
  path: string,
  expected = 'a pair of non-negative integers',
): readonly [number, number] {
  if (!Array.isArray(value) || value.length !== 2) invalid(path, expected, value)
  const [a, b] = value as unknown[]
  if (typeof a !== 'number' || !Number.isSafeInteger(a) || a < 0)
    invalid(`${path}[0]`, 'a non-negative integer', a)
  if (typeof b !== 'number' || !Number.isSafeInteger(b) || b < 0)
    invalid(`${path}[1]`, 'a non-negative integer', b)
  return [a, b]
}

/** A `[key, value]` pair of a snapshot or a sync. */
export function keyValuePair(value: unknown, path: string): readonly [string, JsonValue] {
  if (!Array.isArray(value) || value.length !== 2) invalid(path, 'a [key, value] pair', value)
  const [key, item] = value as unknown[]
  return [assertKey(key, `${path}[0]`), assertValue(item, `${path}[1]`)]
}

const nodeInputTypes = ['message', 'request', 'tick'] as const

/**
 * Checks a node input and returns it with only the known fields, reading its message or
 * request with the design's own reader. `operatorTypes` are the design's inputs that carry
 * nothing but `now` (the single-leader `promote`).
 */
export function readNodeInput<TMessage, TRequest, TOperator extends string = never>(
  value: unknown,
  readMessage: (value: unknown, path: string) => TMessage,
  readRequest: (value: unknown, path: string) => TRequest,
  operatorTypes: readonly TOperator[] = [],
): NodeInput<TMessage, TRequest> | { readonly type: 'tick' | NoInfer<TOperator>; readonly now: number } {
  const fields = objectAt(value, 'input')
  const type: string = typeAt(fields, [...nodeInputTypes, ...operatorTypes], 'input')
  const now = timeAt(fields, 'now', 'input')
  if (type === 'message') {
    return {
      type,
      now,
      from: nodeAt(fields, 'from', 'input'),
      message: readMessage(own(fields, 'message'), 'message'),
    }
  }
  if (type === 'request') {
    return {
      type,
      now,
      client: idAt(fields, 'client', 'input'),
      request: readRequest(own(fields, 'request'), 'request'),
    }
  }
  // `typeAt` let through only the known types: what is left is a tick or an operator's input.
  return { type: type as 'tick' | TOperator, now }
}
