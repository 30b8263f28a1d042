import { type Dot, isDot, isErrorCode, isHlcStamp } from '@chorus/core'
import type { ErrorReply } from '../machine.js'
import {
  arrayAt,
  assertKey,
  assertValue,
  booleanAt,
  countAt,
  type Fields,
  idAt,
  invalid,
  keyAt,
  MAX_ID_LENGTH,
  nodeOrNullAt,
  objectAt,
  onlyFields,
  own,
  pairOfCounts,
  readNodeInput,
  stringAt,
  timeAt,
  typeAt,
  valueAt,
  vectorAt,
} from '../wire.js'
import { MAX_MESSAGE_BATCH } from './batch.js'
import type { ReadRepairMode } from './config.js'
import {
  type PutReply,
  type QuorumInput,
  type QuorumMessage,
  type QuorumRequest,
  quorumMessageTypes,
  quorumRequestTypes,
} from './messages.js'
import type { Version } from './versions.js'

/** Longest error message a home replica's refusal of a hand-over may carry. */
const MAX_ERROR_MESSAGE = 1_000

/**
 * Checks a quorum input and returns it with only the known fields; throws a `ChorusError`
 * (`unknown-message`, `invalid-message` or `invalid-argument`) naming the first bad field.
 */
export function readQuorumInput(value: unknown): QuorumInput {
  return readNodeInput(value, readQuorumMessage, readQuorumRequest)
}

/** Checks a message between quorum nodes. */
export function readQuorumMessage(value: unknown, path: string): QuorumMessage {
  const fields = objectAt(value, path)
  const type = typeAt(fields, quorumMessageTypes, path)
  const op = () => idAt(fields, 'op', path)
  const key = () => keyAt(fields, 'key', path)
  switch (type) {
    case 'coordinate': {
      const request = readQuorumRequest(own(fields, 'request'), `${path}.request`)
      if (request.type !== 'put') invalid(`${path}.request.type`, '"put"', request.type)
      return { type, op: op(), client: idAt(fields, 'client', path), request }
    }
    case 'coordinated':
      return { type, op: op(), reply: readCoordinatedReply(own(fields, 'reply'), `${path}.reply`) }
    case 'store':
      return {
        type,
        op: op(),
        key: key(),
        versions: arrayAt(fields, 'versions', path, readVersion),
        hintFor: nodeOrNullAt(fields, 'hintFor', path),
      }
    case 'store-batch':
      return {
        type,
        items: arrayAt(
          fields,
          'items',
          path,
          (item, itemPath) => {
            const entry = objectAt(item, itemPath)
            return {
              op: idAt(entry, 'op', itemPath),
              key: keyAt(entry, 'key', itemPath),
              versions: arrayAt(entry, 'versions', itemPath, readVersion),
              hintFor: nodeOrNullAt(entry, 'hintFor', itemPath),
            }
          },
          MAX_MESSAGE_BATCH,
        ),
      }
    case 'stored-batch':
      return {
        type,
        ops: arrayAt(fields, 'ops', path, opOf, MAX_MESSAGE_BATCH),
      }
    case 'stored':
    case 'repaired':
      return { type, op: op() }
    case 'fetch':
      return { type, op: op(), key: key() }
    case 'fetched':
      return { type, op: op(), key: key(), versions: arrayAt(fields, 'versions', path, readVersion) }
    case 'repair':
      return {
        type,
        op: own(fields, 'op') === null ? null : op(),
        key: key(),
        versions: arrayAt(fields, 'versions', path, readVersion),
      }
    case 'handoff':
      return {
        type,
        items: arrayAt(fields, 'items', path, (item, itemPath) => {
          const entry = objectAt(item, itemPath)
          return {
            hint: stringAt(entry, 'hint', itemPath, 400),
            key: keyAt(entry, 'key', itemPath),
            versions: arrayAt(entry, 'versions', itemPath, readVersion),
          }
        }),
      }
    case 'handoff-ack':
      return { type, hints: arrayAt(fields, 'hints', path, (hint, hintPath) => stringOf(hint, hintPath)) }
    case 'ping':
    case 'pong':
      return { type, sentAt: timeAt(fields, 'sentAt', path) }
    case 'ae-tree':
      return {
        type,
        level: countAt(fields, 'level', path),
        nodes: arrayAt(fields, 'nodes', path, (item, itemPath) =>
          pairOfCounts(item, itemPath, 'a [index, hash] pair'),
        ),
      }
    case 'ae-digests':
      return {
        type,
        leaves: arrayAt(fields, 'leaves', path, (item, itemPath) => {
          const leaf = objectAt(item, itemPath)
          return {
            index: countAt(leaf, 'index', itemPath),
            keys: arrayAt(leaf, 'keys', itemPath, (pair, pairPath) => {
              if (!Array.isArray(pair) || pair.length !== 2) invalid(pairPath, 'a [key, digest] pair', pair)
              const [itemKey, digest] = pair as unknown[]
              if (typeof digest !== 'number' || !Number.isSafeInteger(digest) || digest < 0) {
                invalid(`${pairPath}[1]`, 'a digest (non-negative integer)', digest)
              }
              return [assertKey(itemKey, `${pairPath}[0]`), digest] as const
            }),
          }
        }),
      }
    case 'ae-sync':
      return {
        type,
        items: arrayAt(fields, 'items', path, (item, itemPath) => {
          if (!Array.isArray(item) || item.length !== 2) invalid(itemPath, 'a [key, versions] pair', item)
          const [itemKey, versions] = item as unknown[]
          return [
            assertKey(itemKey, `${itemPath}[0]`),
            arrayAt({ versions }, 'versions', itemPath, readVersion),
          ] as const
        }),
        want: arrayAt(fields, 'want', path, (item, itemPath) => assertKey(item, itemPath)),
      }
  }
}

/** The fields of each client request; any other is refused. */
const quorumRequestFields = {
  put: ['type', 'id', 'key', 'value', 'context', 'w', 'sloppy'],
  get: ['type', 'id', 'key', 'r', 'repair'],
  status: ['type', 'id'],
} as const satisfies Record<QuorumRequest['type'], readonly string[]>

/** Checks a client's request. */
export function readQuorumRequest(value: unknown, path: string): QuorumRequest {
  const fields = objectAt(value, path)
  const type = typeAt(fields, quorumRequestTypes, path)
  const id = idAt(fields, 'id', path)
  onlyFields(fields, quorumRequestFields[type], path)
  switch (type) {
    case 'put':
      return {
        type,
        id,
        key: keyAt(fields, 'key', path),
        value: valueAt(fields, 'value', path),
        context: own(fields, 'context') === undefined ? {} : vectorAt(fields, 'context', path),
        w: optionalCount(fields, 'w', path),
        sloppy: optionalBoolean(fields, 'sloppy', path),
      }
    case 'get': {
      const repair = own(fields, 'repair') ?? null
      if (repair !== null && repair !== 'off' && repair !== 'async' && repair !== 'blocking') {
        invalid(`${path}.repair`, '"off", "async", "blocking" or null', repair)
      }
      return {
        type,
        id,
        key: keyAt(fields, 'key', path),
        r: optionalCount(fields, 'r', path),
        repair: repair as ReadRepairMode | null,
      }
    }
    case 'status':
      return { type, id }
  }
}

/** Checks a home replica's answer to a put it was handed (relayed to a client as it is). */
export function readPutReply(value: unknown, path: string): PutReply {
  const fields = objectAt(value, path)
  const type = typeAt(fields, ['put-ok', 'rejected'] as const, path)
  const id = idAt(fields, 'id', path)
  if (type === 'rejected') {
    const reason = own(fields, 'reason')
    if (reason !== 'unavailable' && reason !== 'timeout' && reason !== 'too-large') {
      invalid(`${path}.reason`, '"unavailable", "timeout" or "too-large"', reason)
    }
    return { type, id, reason, maybeApplied: booleanAt(fields, 'maybeApplied', path) }
  }
  return {
    type,
    id,
    dot: readDot(own(fields, 'dot'), `${path}.dot`),
    context: vectorAt(fields, 'context', path),
    values: arrayAt(fields, 'values', path, (item, itemPath) => assertValue(item, itemPath)),
    dots: arrayAt(fields, 'dots', path, readDot),
    sloppy: booleanAt(fields, 'sloppy', path),
  }
}

/** Checks a home replica's answer to a hand-over: a put's answer, or its refusal of the request. */
function readCoordinatedReply(value: unknown, path: string): PutReply | ErrorReply {
  const fields = objectAt(value, path)
  if (own(fields, 'type') !== 'error') return readPutReply(value, path)
  const code = own(fields, 'code')
  if (!isErrorCode(code)) invalid(`${path}.code`, 'an error code', code)
  return {
    type: 'error',
    id: idAt(fields, 'id', path),
    code,
    message: stringAt(fields, 'message', path, MAX_ERROR_MESSAGE),
  }
}

/** Checks a version from the wire. */
export function readVersion(value: unknown, path: string): Version {
  const fields = objectAt(value, path)
  const dot = readDot(own(fields, 'dot'), `${path}.dot`)
  const stamp = own(fields, 'stamp')
  if (!isHlcStamp(stamp)) invalid(`${path}.stamp`, 'a clock stamp', stamp)
  return {
    dot,
    context: vectorAt(fields, 'context', path),
    stamp,
    value: valueAt(fields, 'value', path),
  }
}

/** A dot, copied so that no extra array fields come along. */
function readDot(value: unknown, path: string): Dot {
  if (!isDot(value)) invalid(path, 'a dot [nodeId, counter]', value)
  return [value[0], value[1]] as Dot
}

function optionalCount(fields: Fields, key: string, path: string): number | null {
  const value = own(fields, key)
  if (value === undefined || value === null) return null
  const count = countAt(fields, key, path)
  if (count < 1) invalid(`${path}.${key}`, 'a positive integer or null', value)
  return count
}

function optionalBoolean(fields: Fields, key: string, path: string): boolean | null {
  const value = own(fields, key)
  if (value === undefined || value === null) return null
  if (typeof value !== 'boolean') invalid(`${path}.${key}`, 'a boolean or null', value)
  return value
}

function opOf(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH)
    invalid(path, `a non-empty string of at most ${MAX_ID_LENGTH} characters`, value)
  return value
}

function stringOf(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length > 400)
    invalid(path, 'a string of at most 400 characters', value)
  return value
}
