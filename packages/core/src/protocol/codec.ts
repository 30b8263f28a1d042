import type { Change, Op } from '../change.js'
import { ChorusError, ErrorCode, isErrorCode } from '../errors.js'
import { isHlcStamp } from '../hlc.js'
import { isName, isRecordId, isReplicaId, isSpaceId, MAX_RECORD_ID_LENGTH, type SpaceId } from '../ids.js'
import type { JsonObject } from '../json.js'
import {
  counterOf,
  type Dot,
  EMPTY_VV,
  isCounter,
  isDot,
  isVersionVector,
  type VersionVector,
} from '../version-vector.js'
import { encodeRowOp, encodeRows, readRows } from './compact-batch.js'
import {
  type ChangesMessage,
  DEFAULT_LIMITS,
  type ErrorMessage,
  Feature,
  type HelloMessage,
  MAX_PRESENCE_CHARS,
  MAX_PRESENCE_KEY_LENGTH,
  type Message,
  MessageType,
  PROTOCOL_VERSION,
  type PresenceMessage,
  type ProtocolLimits,
  type SnapshotMessage,
  type SnapshotResume,
} from './messages.js'
import {
  clip,
  describe,
  expectedReplica,
  expectedStamp,
  type Fields,
  invalid,
  objectAt,
  own,
  Rejection,
  readJsonObject,
  readOp,
  reject,
} from './read-fields.js'

export { encodeRowOp, MAX_TABLE_ENTRIES, RowOp } from './compact-batch.js'

/**
 * Longest `message` an `error` frame carries; longer ones are cut.
 *
 * A peer must not make the receiver hold or log megabytes of text through an error.
 */
export const MAX_ERROR_MESSAGE_LENGTH = 2000

/** Longest unknown error code kept when an `error` from a newer peer is read as `internal`. */
const MAX_FOREIGN_CODE_LENGTH = 64

/**
 * What {@link decodeMessage} and {@link validateMessage} make of a frame.
 *
 * On failure, `error` is ready to send back as an `error` frame (see {@link errorMessage}):
 * its code is stable and its message names the offending field and what was expected.
 */
export type DecodeResult =
  | { readonly ok: true; readonly message: Message }
  | {
      readonly ok: false
      readonly error: { readonly code: ErrorCode; readonly message: string }
      /**
       * The frame was an `error` frame, if a malformed one: it is not answered (an error frame
       * is never answered with another, or two peers could trade them for ever).
       */
      readonly ofError?: true
    }

const typeNames = Object.values(MessageType).join(', ')
const expectedSpace =
  'a space name (1–128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit)'
const expectedPosition = 'a non-negative safe integer'

function failure(error: unknown): { readonly code: ErrorCode; readonly message: string } {
  if (error instanceof Rejection) return { code: error.code, message: error.message }
  const detail = error instanceof Error ? `${error.name}: ${error.message}` : typeof error
  return { code: ErrorCode.Internal, message: clip(`validation failed unexpectedly (${detail})`, 500) }
}

/** A stream position or page number; JSON's `-0` is read as 0. */
function positionAt(fields: Fields, key: string, where: string): number {
  const value = own(fields, key)
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    invalid(`${where}.${key}`, expectedPosition, value)
  }
  return value === 0 ? 0 : value
}

function spaceAt(fields: Fields, key: string, where: string): SpaceId {
  const value = own(fields, key)
  if (!isSpaceId(value)) invalid(`${where}.${key}`, expectedSpace, value)
  return value
}

/** How {@link encodeMessage} writes a message. */
export interface EncodeOptions {
  /**
   * Write `changes` and `snapshot` batches in the compact form (see `compact-batch.ts`). Only
   * for a peer that negotiated {@link Feature.Compact}; a batch that cannot be written so is
   * written as change objects.
   */
  readonly compact?: boolean
}

/**
 * Encodes a message as JSON text for the wire.
 *
 * Only the protocol's fields are written: a store that keeps extra fields on a change (a log
 * position, a space) cannot leak them onto the wire. The message is not validated here; the
 * receiver does that.
 */
export function encodeMessage(message: Message, options: EncodeOptions = {}): string {
  if (options.compact === true) {
    if (message.type === 'changes') return encodeChangesMessage(message, { compact: true })
    if (message.type === 'snapshot') return encodeSnapshotMessage(message, { compact: true })
  }
  return JSON.stringify(wireForm(message))
}

/**
 * How {@link encodeChangesMessage} and {@link encodeSnapshotMessage} write a batch: a sender
 * that streams the same changes to many peers passes texts it computed once per change.
 */
export interface BatchTexts extends EncodeOptions {
  /** A change's JSON text, as {@link encodeChange} writes it (plain form). */
  readonly changeText?: (change: Change) => string
  /** A change's op as the compact form writes it, as {@link encodeRowOp} does (compact form). */
  readonly rowOp?: (change: Change) => string
}

/**
 * Encodes a `changes` message as {@link encodeMessage} does, byte for byte, taking each
 * change's text from `texts` — so a sender that streams the same changes to many peers can
 * encode each change once and only join texts per peer. A function is read as `changeText`.
 */
export function encodeChangesMessage(
  message: ChangesMessage,
  texts: BatchTexts | ((change: Change) => string) = {},
): string {
  const { space, from, to, batch, head, sparse, collected } = message
  const tail = `${head === undefined ? '' : `,"head":${JSON.stringify(head)}`}${sparse === true ? ',"sparse":true' : ''}${collected === undefined ? '' : `,"collected":${JSON.stringify(collected)}`}`
  return `{"type":"changes","space":${JSON.stringify(space)},"from":${JSON.stringify(from)},"to":${JSON.stringify(to)},${batchText(batch, typeof texts === 'function' ? { changeText: texts } : texts)}${tail}}`
}

/** Encodes a `snapshot` message as {@link encodeMessage} does, byte for byte (see {@link encodeChangesMessage}). */
export function encodeSnapshotMessage(message: SnapshotMessage, texts: BatchTexts = {}): string {
  const { space, cursor, page, last, batch, received } = message
  const tail = received === undefined ? '' : `,"received":${JSON.stringify(received)}`
  return `{"type":"snapshot","space":${JSON.stringify(space)},"cursor":${JSON.stringify(cursor)},"page":${JSON.stringify(page)},"last":${JSON.stringify(last)},${batchText(batch, texts)}${tail}}`
}

function batchText(batch: readonly Change[], texts: BatchTexts): string {
  if (texts.compact === true) {
    const rows = encodeRows(batch, texts.rowOp)
    if (rows !== null) return rows
  }
  return `"batch":[${batch.map(texts.changeText ?? encodeChange).join(',')}]`
}

/** One change's JSON text as it appears inside an encoded `changes` or `snapshot` batch. */
export function encodeChange(change: Change): string {
  return JSON.stringify(changeWireForm(change))
}

function wireForm(message: Message): Message {
  switch (message.type) {
    case 'hello': {
      const {
        type,
        protocol,
        replicaId,
        token,
        spaces,
        have,
        heads,
        features,
        logs,
        maxFrame,
        readOnly,
        resume,
      } = message
      return {
        type,
        protocol,
        replicaId,
        ...(token === undefined ? {} : { token }),
        spaces,
        have,
        ...(heads === undefined ? {} : { heads }),
        ...(features === undefined || features.length === 0 ? {} : { features }),
        ...(logs === undefined ? {} : { logs }),
        ...(maxFrame === undefined ? {} : { maxFrame }),
        ...(readOnly === undefined ? {} : { readOnly }),
        ...(resume === undefined ? {} : { resume }),
      }
    }
    case 'changes': {
      const { type, space, from, to, batch, head, sparse, collected } = message
      return {
        type,
        space,
        from,
        to,
        batch: batch.map(changeWireForm),
        ...(head === undefined ? {} : { head }),
        ...(sparse === true ? { sparse } : {}),
        ...(collected === undefined ? {} : { collected }),
      }
    }
    case 'ack':
      return message.resend === true
        ? {
            type: message.type,
            space: message.space,
            upTo: message.upTo,
            resend: true,
            ...(message.resume === undefined ? {} : { resume: message.resume }),
          }
        : { type: message.type, space: message.space, upTo: message.upTo }
    case 'snapshot': {
      const { type, space, cursor, page, last, batch, received } = message
      return {
        type,
        space,
        cursor,
        page,
        last,
        batch: batch.map(changeWireForm),
        ...(received === undefined ? {} : { received }),
      }
    }
    case 'error': {
      const { type, code, space, maxFrame } = message
      return {
        type,
        code,
        message: message.message,
        ...(space === undefined ? {} : { space }),
        ...(maxFrame === undefined ? {} : { maxFrame }),
      }
    }
    case 'presence': {
      const { type, space, key, state, replicaId, origin, seq } = message
      return {
        type,
        space,
        key,
        state,
        ...(replicaId === undefined ? {} : { replicaId }),
        ...(origin === undefined ? {} : { origin }),
        ...(seq === undefined ? {} : { seq }),
      }
    }
    case 'ping':
      return { type: message.type, space: message.space, id: message.id }
    case 'pong':
      return { type: message.type, space: message.space, id: message.id, head: message.head }
    default: {
      const type = (message as { readonly type: unknown }).type
      throw new ChorusError(ErrorCode.InvalidArgument, `cannot encode a message of type ${describe(type)}`)
    }
  }
}

function changeWireForm(change: Change): Change {
  const { collection, id, dot, context, hlc, op } = change
  return { collection, id, dot, context, hlc, op: opWireForm(op) }
}

function opWireForm(op: Op): Op {
  switch (op.type) {
    case 'put':
      return { type: op.type, value: op.value }
    case 'patch':
      return { type: op.type, fields: op.fields, base: op.base, stamps: op.stamps, floor: op.floor }
    case 'delete':
      return { type: op.type }
  }
}

/**
 * Decodes and validates one inbound frame. Never throws, whatever `frame` is.
 *
 * The length is checked before parsing, so an oversized frame costs no parse. The result
 * holds only the protocol's fields, rebuilt into fresh objects; unknown extra fields are
 * ignored so that a newer peer may add optional ones.
 */
export function decodeMessage(frame: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): DecodeResult {
  if (typeof frame !== 'string') {
    const kind = frame === null ? 'null' : typeof frame
    return fail(
      ErrorCode.MalformedFrame,
      `a frame must be JSON text, got ${kind === 'object' ? 'an object' : kind}; decode binary frames as UTF-8 first`,
    )
  }
  if (frame.length > limits.maxFrameBytes) {
    return fail(
      ErrorCode.FrameTooLarge,
      `the frame is ${frame.length} characters long; this side accepts at most ${limits.maxFrameBytes}`,
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(frame)
  } catch (error) {
    const detail = error instanceof Error ? error.message : typeof error
    return fail(ErrorCode.MalformedFrame, `the frame is not JSON: ${clip(detail, 200)}`)
  }
  return validateMessage(parsed, limits)
}

function fail(code: ErrorCode, message: string): DecodeResult {
  return { ok: false, error: { code, message } }
}

/**
 * Validates an already-parsed message (a structured clone from another tab, a test fixture).
 *
 * Same rules and result as {@link decodeMessage} after parsing. It never throws for data
 * values; a value whose getters throw is reported as `internal`. Objects are read through
 * their own properties only.
 */
export function validateMessage(value: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): DecodeResult {
  try {
    return { ok: true, message: readMessage(value, limits) }
  } catch (error) {
    // Read without running a getter: a hostile value may throw from one.
    const ofError =
      typeof value === 'object' &&
      value !== null &&
      Object.getOwnPropertyDescriptor(value, 'type')?.value === MessageType.Error
    return { ok: false, error: failure(error), ...(ofError ? { ofError: true } : {}) }
  }
}

/**
 * Explains why `value` is not a valid change, or returns `undefined` when it is.
 *
 * For storage layers that load changes written by another version, and for tests. The rules
 * are those a `changes` frame's batch must meet.
 */
export function validateChange(value: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): string | undefined {
  try {
    readChange(value, 'change', limits)
    return undefined
  } catch (error) {
    return failure(error).message
  }
}

/**
 * Builds an `error` frame; the message is cut to {@link MAX_ERROR_MESSAGE_LENGTH}.
 *
 * Receivers cut longer messages anyway; cutting here keeps what is sent equal to what is read.
 */
export function errorMessage(code: ErrorCode, message: string, space?: SpaceId): ErrorMessage {
  const text = clip(message, MAX_ERROR_MESSAGE_LENGTH)
  return space === undefined
    ? { type: MessageType.Error, code, message: text }
    : { type: MessageType.Error, code, message: text, space }
}

function readMessage(value: unknown, limits: ProtocolLimits): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    reject(ErrorCode.MalformedFrame, `a frame must be a JSON object with a "type", got ${describe(value)}`)
  }
  const fields = value as Fields
  const type = own(fields, 'type')
  if (typeof type !== 'string') invalid('type', `a message type (one of ${typeNames})`, type)
  switch (type) {
    case MessageType.Hello:
      return readHello(fields, limits)
    case MessageType.Changes: {
      const where = 'changes'
      const space = spaceAt(fields, 'space', where)
      const from = positionAt(fields, 'from', where)
      const to = positionAt(fields, 'to', where)
      if (to <= from) {
        reject(ErrorCode.InvalidMessage, `changes.to: expected a position after from (${from}), got ${to}`)
      }
      const batch = readAnyBatch(fields, where, limits)
      const sparse = own(fields, 'sparse')
      if (sparse !== undefined && sparse !== true) invalid('changes.sparse', 'true (or no field)', sparse)
      const plain: ChangesMessage =
        sparse === true ? { type, space, from, to, batch, sparse } : { type, space, from, to, batch }
      const collected = own(fields, 'collected')
      const message: ChangesMessage =
        collected === undefined
          ? plain
          : { ...plain, collected: readReceived(collected, 'changes.collected', limits) }
      if (own(fields, 'head') === undefined) return message
      const head = positionAt(fields, 'head', where)
      if (head < to)
        reject(ErrorCode.InvalidMessage, `changes.head: expected at least to (${to}), got ${head}`)
      return { ...message, head }
    }
    case MessageType.Ack: {
      const ack = { type, space: spaceAt(fields, 'space', 'ack'), upTo: positionAt(fields, 'upTo', 'ack') }
      const resend = own(fields, 'resend')
      const resume = own(fields, 'resume')
      if (resend === undefined) {
        if (resume !== undefined) invalid('ack.resume', 'no field without resend', resume)
        return ack
      }
      if (resend !== true) invalid('ack.resend', 'true (or no field)', resend)
      return resume === undefined
        ? { ...ack, resend }
        : { ...ack, resend, resume: readSnapshotResume(resume, 'ack.resume') }
    }
    case MessageType.Snapshot: {
      const where = 'snapshot'
      const space = spaceAt(fields, 'space', where)
      const cursor = positionAt(fields, 'cursor', where)
      const page = positionAt(fields, 'page', where)
      const last = own(fields, 'last')
      if (typeof last !== 'boolean') invalid('snapshot.last', 'true or false', last)
      const message: SnapshotMessage = {
        type,
        space,
        cursor,
        page,
        last,
        batch: readAnyBatch(fields, where, limits),
      }
      const received = own(fields, 'received')
      return received === undefined
        ? message
        : { ...message, received: readReceived(received, 'snapshot.received', limits) }
    }
    case MessageType.Error:
      return readError(fields)
    case MessageType.Presence:
      return readPresence(fields)
    case MessageType.Ping:
      return { type, space: spaceAt(fields, 'space', 'ping'), id: positionAt(fields, 'id', 'ping') }
    case MessageType.Pong:
      return {
        type,
        space: spaceAt(fields, 'space', 'pong'),
        id: positionAt(fields, 'id', 'pong'),
        head: positionAt(fields, 'head', 'pong'),
      }
    default:
      return reject(
        ErrorCode.UnknownMessage,
        `unknown message type ${describe(type)}; this side understands ${typeNames}`,
      )
  }
}

/**
 * Reads a `hello`, checking `protocol` before anything else.
 *
 * A peer on another protocol version may shape the rest differently, so it must hear
 * `unsupported-protocol`, not a complaint about a field it does not know it got wrong.
 */
function readHello(fields: Fields, limits: ProtocolLimits): HelloMessage {
  const protocol = own(fields, 'protocol')
  if (typeof protocol !== 'number' || !Number.isSafeInteger(protocol) || protocol < 1) {
    invalid('hello.protocol', 'a positive integer protocol version', protocol)
  }
  if (protocol !== PROTOCOL_VERSION) {
    reject(
      ErrorCode.UnsupportedProtocol,
      `hello.protocol: the peer speaks protocol ${protocol}, this side speaks only protocol ${PROTOCOL_VERSION}; upgrade the older side`,
    )
  }
  const replicaId = own(fields, 'replicaId')
  if (!isReplicaId(replicaId)) invalid('hello.replicaId', expectedReplica, replicaId)
  const token = own(fields, 'token')
  if (token !== undefined && typeof token !== 'string') invalid('hello.token', 'a string', token)
  if (typeof token === 'string' && token.length > limits.maxTokenLength) {
    reject(
      ErrorCode.InvalidMessage,
      `hello.token: ${token.length} characters long; this side accepts at most ${limits.maxTokenLength}`,
    )
  }
  const spaces = readSpaces(own(fields, 'spaces'), limits)
  const listed = new Set<string>(spaces)
  const have = readPositions(own(fields, 'have'), listed, 'hello.have')
  const rawHeads = own(fields, 'heads')
  const heads = rawHeads === undefined ? undefined : readPositions(rawHeads, listed, 'hello.heads')
  const features = readFeatures(own(fields, 'features'))
  const rawLogs = own(fields, 'logs')
  const logs = rawLogs === undefined ? undefined : readLogNames(rawLogs, listed)
  const maxFrame = readMaxFrame(own(fields, 'maxFrame'), 'hello.maxFrame')
  const rawReadOnly = own(fields, 'readOnly')
  const readOnly =
    rawReadOnly === undefined ? undefined : readListedSpaces(rawReadOnly, listed, 'hello.readOnly')
  const rawResume = own(fields, 'resume')
  const resume = rawResume === undefined ? undefined : readResume(rawResume, listed)
  return {
    type: MessageType.Hello,
    protocol,
    replicaId,
    ...(typeof token === 'string' ? { token } : {}),
    spaces,
    have,
    ...(heads === undefined ? {} : { heads }),
    ...(features.length === 0 ? {} : { features }),
    ...(logs === undefined ? {} : { logs }),
    ...(maxFrame === undefined ? {} : { maxFrame }),
    ...(readOnly === undefined ? {} : { readOnly }),
    ...(resume === undefined ? {} : { resume }),
  }
}

/** True for `recordKey(collection, id)` of a well-formed collection name and record id. */
function isRecordKey(value: unknown): value is string {
  if (typeof value !== 'string') return false
  const cut = value.indexOf('\u0000')
  return cut > 0 && isName(value.slice(0, cut)) && isRecordId(value.slice(cut + 1))
}

/** Reads `hello.resume`: per listed space, a snapshot position and the record key it reached. */
function readResume(value: unknown, listed: ReadonlySet<string>): Record<string, SnapshotResume> {
  const path = 'hello.resume'
  return readPerSpace(value, listed, path, 'snapshots to resume', (raw, space) =>
    readSnapshotResume(raw[space], `${path}.${space}`),
  )
}

/** Reads a {@link SnapshotResume} at `path`. */
function readSnapshotResume(value: unknown, path: string): SnapshotResume {
  const fields = objectAt(value, path, 'an object with cursor and after')
  const cursor = own(fields, 'cursor')
  if (typeof cursor !== 'number' || !Number.isSafeInteger(cursor) || cursor < 1)
    invalid(`${path}.cursor`, 'a positive whole log position', cursor)
  const after = own(fields, 'after')
  if (!isRecordKey(after)) invalid(`${path}.after`, 'a record key (collection, U+0000, id)', after)
  return { cursor, after }
}

/** Reads a list of spaces `hello.spaces` lists, each once. */
function readListedSpaces(value: unknown, listed: ReadonlySet<string>, path: string): SpaceId[] {
  if (!Array.isArray(value)) invalid(path, 'a list of spaces that hello.spaces lists', value)
  const seen = new Set<string>()
  value.forEach((space: unknown, i) => {
    if (typeof space !== 'string' || !listed.has(space)) {
      invalid(`${path}[${i}]`, 'a space that hello.spaces lists', space)
    }
    if (seen.has(space)) reject(ErrorCode.InvalidMessage, `${path}[${i}]: ${describe(space)} is listed twice`)
    seen.add(space)
  })
  return [...(value as SpaceId[])]
}

/**
 * Reads a frame size a peer says it reads (`hello.maxFrame`, `error.maxFrame`): absent, or a
 * positive whole number of bytes.
 */
function readMaxFrame(value: unknown, path: string): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    invalid(path, 'a positive whole number of bytes', value)
  return value
}

/** Longest log name `hello.logs` takes. */
const MAX_LOG_NAME = 64

function readLogNames(value: unknown, listed: ReadonlySet<string>): Record<string, string> {
  const path = 'hello.logs'
  return readPerSpace(value, listed, path, 'log names', (raw, space) => {
    const name = raw[space]
    if (typeof name !== 'string' || name === '' || name.length > MAX_LOG_NAME) {
      invalid(`${path}.${space}`, `a log name of 1 to ${MAX_LOG_NAME} characters`, name)
    }
    return name
  })
}

/** Most names in `hello.features`; a peer has no reason to offer more. */
const MAX_FEATURES = 64
const knownFeatures: ReadonlySet<string> = new Set(Object.values(Feature))

/** Reads `hello.features`: the known names, each once, in order; unknown ones are dropped. */
function readFeatures(value: unknown): Feature[] {
  if (value === undefined) return []
  const path = 'hello.features'
  if (!Array.isArray(value)) invalid(path, 'an array of feature names', value)
  if (value.length > MAX_FEATURES) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: names ${value.length} features; this side accepts at most ${MAX_FEATURES}`,
    )
  }
  const features: Feature[] = []
  for (let i = 0; i < value.length; i++) {
    const name: unknown = value[i]
    if (typeof name !== 'string') invalid(`${path}[${i}]`, 'a feature name (a string)', name)
    if (knownFeatures.has(name) && !features.includes(name as Feature)) features.push(name as Feature)
  }
  return features
}

/** Reads an object mapping spaces listed in `hello.spaces` to stream positions. */
function readPositions(value: unknown, listed: ReadonlySet<string>, path: string): Record<string, number> {
  return readPerSpace(value, listed, path, 'positions', (raw, space) => positionAt(raw, space, path))
}

/** Reads an object mapping spaces listed in `hello.spaces` to what `read` takes from each. */
function readPerSpace<TValue>(
  value: unknown,
  listed: ReadonlySet<string>,
  path: string,
  what: string,
  read: (raw: Fields, space: string) => TValue,
): Record<string, TValue> {
  const raw = objectAt(value, path, `an object mapping listed spaces to ${what}`)
  const out: Record<string, TValue> = {}
  for (const space of Object.keys(raw)) {
    if (!listed.has(space)) {
      reject(
        ErrorCode.InvalidMessage,
        `${path}: names ${describe(space)}, which hello.spaces does not list; expected only listed spaces`,
      )
    }
    out[space] = read(raw, space)
  }
  return out
}

/**
 * Reads `snapshot.received` or `changes.collected` (`path`): replica ids to counters (≥ 0),
 * at most `maxVectorEntries` of them.
 */
function readReceived(value: unknown, path: string, limits: ProtocolLimits): Record<string, number> {
  const raw = objectAt(value, path, 'an object mapping replica ids to counters')
  const replicas = Object.keys(raw)
  if (replicas.length > limits.maxVectorEntries) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: has ${replicas.length} entries; this side accepts at most ${limits.maxVectorEntries}`,
    )
  }
  const out: Record<string, number> = {}
  for (const replica of replicas) {
    if (!isReplicaId(replica)) invalid(path, `only replica ids as keys, i.e. ${expectedReplica}`, replica)
    out[replica] = positionAt(raw, replica, path)
  }
  return out
}

function readSpaces(value: unknown, limits: ProtocolLimits): SpaceId[] {
  const path = 'hello.spaces'
  if (!Array.isArray(value)) invalid(path, 'an array of space names', value)
  if (value.length === 0) reject(ErrorCode.InvalidMessage, `${path}: is empty; expected at least one space`)
  if (value.length > limits.maxSpaces) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: names ${value.length} spaces; this side accepts at most ${limits.maxSpaces}`,
    )
  }
  const spaces: SpaceId[] = []
  const seen = new Set<string>()
  for (let i = 0; i < value.length; i++) {
    const space: unknown = value[i]
    if (!isSpaceId(space)) invalid(`${path}[${i}]`, expectedSpace, space)
    if (seen.has(space)) {
      reject(
        ErrorCode.InvalidMessage,
        `${path}[${i}]: ${describe(space)} is listed twice; expected each space once`,
      )
    }
    seen.add(space)
    spaces.push(space)
  }
  return spaces
}

/**
 * Reads an `error`. An unknown code (from a newer peer) is read as `internal`, the original
 * code prefixed to the message: the error still reaches the application instead of being
 * answered with another error, which two peers could bounce back and forth.
 */
function readError(fields: Fields): ErrorMessage {
  const code = own(fields, 'code')
  if (typeof code !== 'string' || code === '')
    invalid('error.code', 'an error code such as "forbidden"', code)
  const text = own(fields, 'message')
  if (typeof text !== 'string') invalid('error.message', 'a string', text)
  const space = own(fields, 'space')
  if (space !== undefined && !isSpaceId(space)) invalid('error.space', expectedSpace, space)
  const maxFrame = readMaxFrame(own(fields, 'maxFrame'), 'error.maxFrame')
  const known = isErrorCode(code)
  const message = errorMessage(
    known ? code : ErrorCode.Internal,
    known ? text : `${clip(code, MAX_FOREIGN_CODE_LENGTH)}: ${text}`,
    space,
  )
  return maxFrame === undefined ? message : { ...message, maxFrame }
}

/** Reads a `presence`: a key, a JSON object of bounded size or null, and maybe whose it is. */
function readPresence(fields: Fields): PresenceMessage {
  const where = 'presence'
  const space = spaceAt(fields, 'space', where)
  const key = own(fields, 'key')
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_PRESENCE_KEY_LENGTH)
    invalid(`${where}.key`, `a string of 1–${MAX_PRESENCE_KEY_LENGTH} characters`, key)
  const raw = own(fields, 'state')
  let state: JsonObject | null = null
  if (raw !== null) {
    state = readJsonObject(raw, `${where}.state`)
    const length = JSON.stringify(state).length
    if (length > MAX_PRESENCE_CHARS)
      invalid(
        `${where}.state`,
        `a JSON object of at most ${MAX_PRESENCE_CHARS} characters`,
        `${length} characters`,
      )
  }
  const replicaId = own(fields, 'replicaId')
  if (replicaId !== undefined && !isReplicaId(replicaId))
    invalid(`${where}.replicaId`, expectedReplica, replicaId)
  const origin = own(fields, 'origin')
  if (
    origin !== undefined &&
    (typeof origin !== 'string' || origin.length === 0 || origin.length > MAX_PRESENCE_KEY_LENGTH)
  )
    invalid(`${where}.origin`, `a string of 1–${MAX_PRESENCE_KEY_LENGTH} characters`, origin)
  const seq = own(fields, 'seq') === undefined ? undefined : positionAt(fields, 'seq', where)
  return {
    type: MessageType.Presence,
    space,
    key,
    state,
    ...(replicaId === undefined ? {} : { replicaId }),
    ...(origin === undefined ? {} : { origin }),
    ...(seq === undefined ? {} : { seq }),
  }
}

/** Reads a batch in either form: change objects, or rows when the frame carries the tables. */
function readAnyBatch(fields: Fields, where: string, limits: ProtocolLimits): Change[] {
  if (own(fields, 'collections') === undefined && own(fields, 'replicas') === undefined) {
    return readBatch(own(fields, 'batch'), where, limits)
  }
  return readRows(fields, where, limits)
}

function readBatch(value: unknown, where: string, limits: ProtocolLimits): Change[] {
  const path = `${where}.batch`
  if (!Array.isArray(value)) invalid(path, 'an array of changes', value)
  if (value.length > limits.maxBatch) {
    reject(
      ErrorCode.BatchTooLarge,
      `${path}: holds ${value.length} changes; this side accepts at most ${limits.maxBatch} per frame`,
    )
  }
  const batch: Change[] = []
  for (let i = 0; i < value.length; i++) batch.push(readChange(value[i], `${path}[${i}]`, limits))
  return batch
}

/**
 * Reads one change. Beyond field types, two invariants every honest writer keeps: the
 * context never covers the change's own dot, and the stamp's replica is the dot's replica.
 */
function readChange(value: unknown, path: string, limits: ProtocolLimits): Change {
  const fields = objectAt(value, path, 'a change object')
  const collection = own(fields, 'collection')
  if (!isName(collection)) {
    invalid(
      `${path}.collection`,
      'a collection name (1–128 letters, digits, "_", ".", ":" or "-")',
      collection,
    )
  }
  const id = own(fields, 'id')
  if (!isRecordId(id)) {
    invalid(
      `${path}.id`,
      `a record id (a non-empty string of at most ${MAX_RECORD_ID_LENGTH} characters)`,
      id,
    )
  }
  const rawDot = own(fields, 'dot')
  if (!isDot(rawDot)) invalid(`${path}.dot`, '[replica id, counter ≥ 1]', rawDot)
  const dot: Dot = [rawDot[0], rawDot[1]]
  const context = readContext(own(fields, 'context'), `${path}.context`, limits)
  const seen = counterOf(context, dot[0])
  if (seen >= dot[1]) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}.context: covers the change's own dot [${dot[0]}, ${dot[1]}] (${dot[0]}: ${seen}); expected only what the writer had seen before`,
    )
  }
  const hlc = own(fields, 'hlc')
  if (!isHlcStamp(hlc)) invalid(`${path}.hlc`, expectedStamp, hlc)
  // A well-formed stamp holds one "@", before its replica: compared in place, not parsed.
  if (!hlc.endsWith(dot[0]) || hlc.length - dot[0].length - 1 !== hlc.indexOf('@')) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}.hlc: stamped by ${hlc.slice(hlc.indexOf('@') + 1)}, but the dot names ${dot[0]}; expected the writer's own stamp`,
    )
  }
  return { collection, id, dot, context, hlc, op: readOp(own(fields, 'op'), `${path}.op`) }
}

function readContext(value: unknown, path: string, limits: ProtocolLimits): VersionVector {
  const vv = objectAt(value, path, 'a version vector (an object mapping replica ids to counters)')
  const replicas = Object.keys(vv)
  if (replicas.length > limits.maxVectorEntries) {
    reject(
      ErrorCode.InvalidMessage,
      `${path}: has ${replicas.length} entries; this side accepts at most ${limits.maxVectorEntries}`,
    )
  }
  if (!isVersionVector(vv)) {
    for (const replica of replicas) {
      if (!isReplicaId(replica)) invalid(path, `only replica ids as keys, i.e. ${expectedReplica}`, replica)
      const counter = vv[replica]
      if (!isCounter(counter)) invalid(`${path}.${replica}`, 'a counter (a safe integer ≥ 1)', counter)
    }
    invalid(path, 'a version vector', vv)
  }
  // An empty one (every new record's) is the shared frozen one: a replica keeps its
  // records' versions, contexts and all.
  if (replicas.length === 0) return EMPTY_VV
  const context: Record<string, number> = {}
  for (const replica of replicas) context[replica] = vv[replica] as number
  return context
}
