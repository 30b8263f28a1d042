import type { JsonValue } from '@chorus/core'
import { isNodeId } from '../node-id.js'
import {
  arrayAt,
  booleanAt,
  countAt,
  type Fields,
  idAt,
  invalid,
  keyAt,
  keyValuePair,
  MAX_READ_WAIT_MS,
  nodeAt,
  objectAt,
  onlyFields,
  own,
  pairOfCounts,
  readNodeInput,
  stringAt,
  timeAt,
  typeAt,
  valueAt,
} from '../wire.js'
import {
  type ChainView,
  type EpochStart,
  type LogEntry,
  type SingleLeaderInput,
  type SingleLeaderMessage,
  type SingleLeaderRequest,
  singleLeaderMessageTypes,
  singleLeaderRequestTypes,
} from './messages.js'

/**
 * Checks a single-leader input and returns it with only the known fields.
 *
 * Throws a `ChorusError` (`unknown-message`, `invalid-message` or `invalid-argument`) naming the
 * first bad field; `step` calls it before touching its state.
 */
export function readSingleLeaderInput(value: unknown): SingleLeaderInput {
  return readNodeInput(value, readSingleLeaderMessage, readSingleLeaderRequest, ['promote'])
}

/** Checks a message between nodes (see {@link readSingleLeaderInput}). */
export function readSingleLeaderMessage(value: unknown, path: string): SingleLeaderMessage {
  const fields = objectAt(value, path)
  const type = typeAt(fields, singleLeaderMessageTypes, path)
  const count = (key: string) => countAt(fields, key, path)
  switch (type) {
    case 'append':
      return {
        type,
        epoch: count('epoch'),
        leader: nodeAt(fields, 'leader', path),
        prevLsn: count('prevLsn'),
        prevEpoch: count('prevEpoch'),
        entries: readEntries(fields, path),
        commitLsn: count('commitLsn'),
        sentAt: timeAt(fields, 'sentAt', path),
        ...partsAt(fields, path),
        ...optionalCounts(fields, ['view', 'chainLsn'], path),
      }
    case 'append-ack':
      return {
        type,
        epoch: count('epoch'),
        ok: booleanAt(fields, 'ok', path),
        lsn: count('lsn'),
        sentAt: timeAt(fields, 'sentAt', path),
        ...partsAt(fields, path),
        ...optionalCounts(fields, ['chainLsn'], path),
      }
    case 'snapshot':
      return {
        type,
        epoch: count('epoch'),
        leader: nodeAt(fields, 'leader', path),
        lsn: count('lsn'),
        lastEpoch: count('lastEpoch'),
        epochs: arrayAt(fields, 'epochs', path, pairOfCounts) as EpochStart[],
        data: arrayAt(fields, 'data', path, keyValuePair),
        commitLsn: count('commitLsn'),
        sentAt: timeAt(fields, 'sentAt', path),
        ...chunkAt(fields, path),
      }
    case 'heartbeat':
      return {
        type,
        epoch: count('epoch'),
        leader: nodeAt(fields, 'leader', path),
        commitLsn: count('commitLsn'),
        lastLsn: count('lastLsn'),
        lastEpoch: count('lastEpoch'),
        sentAt: timeAt(fields, 'sentAt', path),
        ...chainViewAt(fields, path),
      }
    case 'heartbeat-ack':
      return {
        type,
        epoch: count('epoch'),
        sentAt: timeAt(fields, 'sentAt', path),
        lastLsn: count('lastLsn'),
        ...optionalCounts(fields, ['view'], path),
        ...(own(fields, 'unfed') === undefined ? {} : { unfed: booleanAt(fields, 'unfed', path) }),
      }
    case 'chain-ack':
      return { type, epoch: count('epoch'), view: count('view'), lsn: count('lsn') }
    case 'vote-request':
      return {
        type,
        epoch: count('epoch'),
        lastLsn: count('lastLsn'),
        lastEpoch: count('lastEpoch'),
        force: booleanAt(fields, 'force', path),
      }
    case 'vote':
      return { type, epoch: count('epoch'), granted: booleanAt(fields, 'granted', path) }
    case 'pre-vote':
      return {
        type,
        epoch: count('epoch'),
        granted: booleanAt(fields, 'granted', path),
        current: count('current'),
      }
    case 'pre-vote-request':
      return { type, epoch: count('epoch'), lastLsn: count('lastLsn'), lastEpoch: count('lastEpoch') }
    case 'join':
      return { type }
  }
}

/** The fields of each client request; any other is refused. */
const singleLeaderRequestFields = {
  write: ['type', 'id', 'key', 'value'],
  read: ['type', 'id', 'key', 'consistency', 'minLsn', 'minEpoch', 'waitMs'],
  status: ['type', 'id'],
} as const satisfies Record<SingleLeaderRequest['type'], readonly string[]>

/** Checks a client's request (see {@link readSingleLeaderInput}). */
export function readSingleLeaderRequest(value: unknown, path: string): SingleLeaderRequest {
  const fields = objectAt(value, path)
  const type = typeAt(fields, singleLeaderRequestTypes, path)
  const id = idAt(fields, 'id', path)
  onlyFields(fields, singleLeaderRequestFields[type], path)
  switch (type) {
    case 'write':
      return { type, id, key: keyAt(fields, 'key', path), value: valueAt(fields, 'value', path) }
    case 'read': {
      const consistency = own(fields, 'consistency') ?? 'leader'
      if (consistency !== 'leader' && consistency !== 'replica') {
        invalid(`${path}.consistency`, '"leader" or "replica"', consistency)
      }
      return {
        type,
        id,
        key: keyAt(fields, 'key', path),
        consistency,
        minLsn: own(fields, 'minLsn') === undefined ? 0 : countAt(fields, 'minLsn', path),
        ...(own(fields, 'minEpoch') === undefined ? {} : { minEpoch: countAt(fields, 'minEpoch', path) }),
        waitMs: own(fields, 'waitMs') === undefined ? 0 : waitAt(fields, path),
      }
    }
    case 'status':
      return { type, id }
  }
}

function waitAt(fields: Fields, path: string): number {
  const waitMs = countAt(fields, 'waitMs', path)
  if (waitMs > MAX_READ_WAIT_MS) invalid(`${path}.waitMs`, `at most ${MAX_READ_WAIT_MS} (ms)`, waitMs)
  return waitMs
}

function readEntries(fields: Fields, path: string): LogEntry[] {
  const entries = arrayAt(fields, 'entries', path, (value, itemPath) => {
    const entry = objectAt(value, itemPath)
    const write = own(entry, 'write')
    let parsed: LogEntry['write'] = null
    if (write !== null) {
      const writeFields = objectAt(write, `${itemPath}.write`)
      parsed = {
        key: keyAt(writeFields, 'key', `${itemPath}.write`),
        value: valueAt(writeFields, 'value', `${itemPath}.write`) as JsonValue,
        id: stringAt(writeFields, 'id', `${itemPath}.write`, 300),
      }
    }
    return { lsn: countAt(entry, 'lsn', itemPath), epoch: countAt(entry, 'epoch', itemPath), write: parsed }
  })
  entries.forEach((entry, index) => {
    const previous = entries[index - 1]
    if (previous !== undefined && entry.lsn !== previous.lsn + 1) {
      invalid(`${path}.entries[${index}].lsn`, `${previous.lsn + 1} (entries must be consecutive)`, entry.lsn)
    }
  })
  const first = entries[0]
  const prevLsn = own(fields, 'prevLsn')
  if (first !== undefined && first.lsn !== (prevLsn as number) + 1) {
    invalid(`${path}.entries[0].lsn`, `prevLsn + 1 (${(prevLsn as number) + 1})`, first.lsn)
  }
  return entries
}

/** Most chunks one snapshot is sent in (at `MAX_BATCH_CHARS` each, far beyond any node's data). */
export const MAX_SNAPSHOT_CHUNKS = 4096

/** A snapshot's optional `chunk` of `chunks`: both or neither, `0 ≤ chunk < chunks`, 2 or more chunks. */
function chunkAt(fields: Fields, path: string): { readonly chunk?: number; readonly chunks?: number } {
  if (own(fields, 'chunk') === undefined && own(fields, 'chunks') === undefined) return {}
  const chunks = countAt(fields, 'chunks', path)
  if (chunks < 2 || chunks > MAX_SNAPSHOT_CHUNKS)
    invalid(`${path}.chunks`, `an integer from 2 to ${MAX_SNAPSHOT_CHUNKS}`, chunks)
  const chunk = countAt(fields, 'chunk', path)
  if (chunk >= chunks) invalid(`${path}.chunk`, `an integer below chunks (${chunks})`, chunk)
  return { chunk, chunks }
}

/** The optional `parts` of an append or its acknowledgement: a positive count, left out when 1. */
function partsAt(fields: Fields, path: string): { readonly parts?: number } {
  if (own(fields, 'parts') === undefined) return {}
  const parts = countAt(fields, 'parts', path)
  if (parts === 0) invalid(`${path}.parts`, 'a positive safe integer', parts)
  return parts === 1 ? {} : { parts }
}

/** Optional count fields: each one present is a non-negative safe integer. */
function optionalCounts<TKey extends string>(
  fields: Fields,
  keys: readonly TKey[],
  path: string,
): { [key in TKey]?: number } {
  const counts: { [key in TKey]?: number } = {}
  for (const key of keys) if (own(fields, key) !== undefined) counts[key] = countAt(fields, key, path)
  return counts
}

/** A heartbeat's optional `chain`: a view, distinct member ids, and a count of them from 1. */
function chainViewAt(fields: Fields, path: string): { readonly chain?: ChainView } {
  if (own(fields, 'chain') === undefined) return {}
  const chainPath = `${path}.chain`
  const chain = objectAt(own(fields, 'chain'), chainPath)
  const nodes = arrayAt(
    chain,
    'nodes',
    chainPath,
    (value, itemPath) => {
      if (!isNodeId(value)) invalid(itemPath, 'a node id', value)
      return value
    },
    1024,
  )
  if (nodes.length === 0 || new Set(nodes).size !== nodes.length)
    invalid(`${chainPath}.nodes`, 'a non-empty array of distinct node ids', nodes)
  const counted = countAt(chain, 'counted', chainPath)
  if (counted === 0 || counted > nodes.length)
    invalid(`${chainPath}.counted`, `an integer from 1 to ${nodes.length}`, counted)
  return { chain: { view: countAt(chain, 'view', chainPath), nodes, counted } }
}
