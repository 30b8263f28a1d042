/**
 * Short labels for messages on the wire (`append 4`, `ack 4`, `vote?`, `put x`, `changes 2`),
 * read from the frames the nodes actually send. A frame the lab does not know is labelled by
 * its `type`, so nothing is hidden.
 */

type Frame = { readonly [field: string]: unknown }

function parse(text: string): Frame | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Frame) : undefined
  } catch {
    return undefined
  }
}

function count(value: unknown): number {
  return Array.isArray(value) ? value.length : 0
}

function shown(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === null || value === undefined) return '∅'
  if (typeof value === 'object' && 'value' in value) return shown((value as { value: unknown }).value)
  return JSON.stringify(value)
}

function typeOf(frame: Frame | undefined): string {
  return typeof frame?.type === 'string' ? frame.type : 'frame'
}

/** A single-leader frame: node messages, client requests and replies. */
export function singleLeaderLabel(text: string): string {
  const frame = parse(text)
  const type = typeOf(frame)
  switch (type) {
    case 'append': {
      const entries = Array.isArray(frame?.entries) ? (frame.entries as { lsn?: unknown }[]) : []
      const first = entries[0]?.lsn
      const last = entries.at(-1)?.lsn
      if (entries.length === 0) return `append (commit ${String(frame?.commitLsn)})`
      return first === last ? `append ${String(first)}` : `append ${String(first)}-${String(last)}`
    }
    case 'append-ack':
      return `${frame?.ok === true ? 'ack' : 'nack'} ${String(frame?.lsn)}`
    case 'heartbeat':
      return 'heartbeat'
    case 'heartbeat-ack':
      return 'heartbeat ack'
    case 'snapshot':
      return typeof frame?.chunks === 'number'
        ? `snapshot ${String(frame?.lsn)} (${Number(frame?.chunk) + 1}/${frame.chunks})`
        : `snapshot ${String(frame?.lsn)}`
    case 'chain-ack':
      return `chain ack ${String(frame?.lsn)}`
    case 'vote-request':
      return frame?.force === true ? 'vote? (promote)' : 'vote?'
    case 'vote':
      return frame?.granted === true ? 'vote yes' : 'vote no'
    case 'pre-vote-request':
      return 'pre-vote?'
    case 'pre-vote':
      return frame?.granted === true ? 'pre-vote yes' : 'pre-vote no'
    case 'write':
      return `write ${String(frame?.key)}=${shown(frame?.value)}`
    case 'read':
      return `read ${String(frame?.key)}`
    case 'write-ok':
      return `ok ${String(frame?.lsn)}`
    case 'read-ok':
      return `= ${shown(frame?.value)}`
    case 'rejected':
      return `rejected: ${String(frame?.reason)}`
    default:
      return type
  }
}

/** A quorum frame: node messages, client requests and replies. */
export function quorumLabel(text: string): string {
  const frame = parse(text)
  const type = typeOf(frame)
  switch (type) {
    case 'coordinate': {
      const request = frame?.request as Frame | undefined
      return `coordinate ${String(request?.key)}`
    }
    case 'store':
    case 'fetch':
    case 'repair':
      return `${type} ${String(frame?.key)}`
    case 'fetched':
      return `fetched ${String(frame?.key)} (${count(frame?.versions)})`
    case 'store-batch':
      return `store ×${count(frame?.items)}`
    case 'stored-batch':
      return `stored ×${count(frame?.ops)}`
    case 'handoff':
      return `handoff ${count(frame?.items)}`
    case 'put':
      return `put ${String(frame?.key)}=${shown(frame?.value)}`
    case 'get':
      return `get ${String(frame?.key)}`
    case 'put-ok':
      return 'put ok'
    case 'get-ok':
      return count(frame?.values) > 1 ? `= ${count(frame?.values)} siblings` : `= ${shown(frame?.value)}`
    case 'rejected':
      return `rejected: ${String(frame?.reason)}`
    default:
      return type
  }
}

/** A multi-leader sync frame between a replica and the relay. */
export function multiLeaderLabel(text: string): string {
  const frame = parse(text)
  const type = typeOf(frame)
  switch (type) {
    case 'changes':
      return `changes ${count(frame?.batch)}`
    case 'snapshot':
      return `snapshot ${count(frame?.batch)}`
    case 'ack':
      return `ack ${String(frame?.upTo)}`
    default:
      return type
  }
}
