import { ChorusError, ErrorCode } from './errors.js'

declare const brand: unique symbol

/** A nominal string type: `Brand<string, 'ReplicaId'>` is not assignable from plain strings. */
export type Brand<TBase, TName extends string> = TBase & { readonly [brand]: TName }

/**
 * The identity of one replica (a browser tab's database, a Node process, a relay).
 *
 * Replica ids key version vectors and appear in hybrid-clock stamps, so the alphabet is
 * restricted: letters, digits, `_` and `-`, starting with a letter or digit, at most 64
 * characters. That keeps them safe as object keys (no `__proto__`) and as stamp suffixes.
 */
export type ReplicaId = Brand<string, 'ReplicaId'>

/** The id of a record inside a collection (uuid v7 by convention; any non-empty string). */
export type RecordId = Brand<string, 'RecordId'>

/** The name of a space: the unit of sync and of permission. */
export type SpaceId = Brand<string, 'SpaceId'>

const replicaIdPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/
const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

/** Maximum length of a record id, in UTF-16 code units. */
export const MAX_RECORD_ID_LENGTH = 256

/** True when `value` is a well-formed replica id. */
export function isReplicaId(value: unknown): value is ReplicaId {
  return typeof value === 'string' && replicaIdPattern.test(value)
}

/** Checks and brands a replica id; throws `invalid-argument` when malformed. */
export function asReplicaId(value: string): ReplicaId {
  if (!isReplicaId(value)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `replica id ${JSON.stringify(value)} is invalid: use 1–64 letters, digits, '_' or '-', starting with a letter or digit`,
    )
  }
  return value
}

/** True when `value` is a well-formed space or collection name. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && namePattern.test(value)
}

/** True when `value` is a well-formed space name. */
export function isSpaceId(value: unknown): value is SpaceId {
  return isName(value)
}

/** Checks and brands a space name; throws `invalid-argument` when malformed. */
export function asSpaceId(value: string): SpaceId {
  if (!isSpaceId(value)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `space ${JSON.stringify(value)} is invalid: use 1–128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit`,
    )
  }
  return value
}

/** Checks a collection name; throws `invalid-argument` when malformed. */
export function assertCollectionName(value: string): string {
  if (!isName(value)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `collection ${JSON.stringify(value)} is invalid: use 1–128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit`,
    )
  }
  return value
}

/** True when `value` is a non-empty string of at most {@link MAX_RECORD_ID_LENGTH} units. */
export function isRecordId(value: unknown): value is RecordId {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_RECORD_ID_LENGTH
}

/** Checks and brands a record id; throws `invalid-argument` when empty or too long. */
export function asRecordId(value: string): RecordId {
  if (!isRecordId(value)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `record id must be a non-empty string of at most ${MAX_RECORD_ID_LENGTH} characters, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

/**
 * Builds a fresh replica id from caller-supplied random bytes (core has no randomness).
 *
 * 16 bytes give 128 bits: collisions across every replica that will ever exist are not a
 * practical concern. The id is lowercase base-32 so it is readable in logs.
 */
export function replicaIdFromBytes(bytes: Uint8Array): ReplicaId {
  if (bytes.length < 8) {
    throw new ChorusError(ErrorCode.InvalidArgument, 'a replica id needs at least 8 random bytes')
  }
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += alphabet[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31]
  return asReplicaId(out.slice(0, 64))
}

/**
 * A UUID version 7 as a record id: 48 bits of Unix milliseconds `nowMs`, then the version and
 * variant bits, then 74 of the random bits in `random` (16 bytes). Ids made later sort after
 * earlier ones (as text, and so in `list` order), and devices that make them offline do not
 * collide. Pure: the caller gives the time and the randomness (see the client's `newRecordId`).
 */
export function uuidV7FromBytes(nowMs: number, random: Uint8Array): RecordId {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0 || nowMs >= 2 ** 48) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `a UUID v7 needs a time of 0 to 2^48 - 1 ms, got ${nowMs}`,
    )
  }
  if (random.length < 16) {
    throw new ChorusError(ErrorCode.InvalidArgument, 'a UUID v7 needs 16 random bytes')
  }
  const bytes = Uint8Array.from(random.subarray(0, 16))
  let time = nowMs
  for (let index = 5; index >= 0; index--) {
    bytes[index] = time % 256
    time = Math.floor(time / 256)
  }
  bytes[6] = 0x70 | ((bytes[6] as number) & 0x0f)
  bytes[8] = 0x80 | ((bytes[8] as number) & 0x3f)
  let hex = ''
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0')
  return asRecordId(
    `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  )
}
