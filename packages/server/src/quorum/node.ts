import { type NodeMachine, nodeInputs, type StepResult } from '../machine.js'
import { asNodeId, type NodeId } from '../node-id.js'
import { handleDigests, handleSync, handleTree, startAntiEntropy } from './anti-entropy.js'
import type { QuorumConfig } from './config.js'
import { expireRequests, handleFetched, handleGet, handleRepaired } from './coordinator.js'
import type { QuorumInput, QuorumMessage, QuorumRecord, QuorumReply, QuorumRequest } from './messages.js'
import { handleCoordinate, handleCoordinated, handlePut, handleStored, handleStoredBatch } from './put.js'
import {
  handleFetch,
  handleHandoff,
  handleHandoffAck,
  handleRepair,
  handleStore,
  handleStoreBatch,
  offerHints,
} from './replica.js'
import {
  maybeCheckpoint,
  type QuorumEffect,
  type QuorumOut,
  type QuorumState,
  quorumStatusOf,
  recoverQuorumState,
} from './state.js'
import { readQuorumInput } from './validate.js'

/**
 * Advances a quorum node by one input. Pure, like the single-leader machine; throws a
 * `ChorusError` for a malformed input before anything changes.
 */
export function stepQuorum(state: QuorumState, input: QuorumInput): StepResult<QuorumState, QuorumEffect> {
  const checked = readQuorumInput(input)
  const out: QuorumOut = []
  let next: QuorumState
  switch (checked.type) {
    case 'tick':
      next = tick(state, out, checked.now)
      break
    case 'request':
      next = request(state, out, checked.client, checked.request, checked.now)
      break
    case 'message':
      next = message(heard(state, checked.from, checked.now), out, checked.from, checked.message, checked.now)
      break
  }
  return { state: maybeCheckpoint(next, out), effects: out }
}

/** Notes that `from` was heard at `now` (no copy when it was already: the inputs of a batch share a time). */
function heard(state: QuorumState, from: NodeId, now: number): QuorumState {
  if (!state.config.nodes.includes(from) || state.seenAt.get(from) === now) return state
  const seenAt = new Map(state.seenAt)
  seenAt.set(from, now)
  return { ...state, seenAt }
}

function tick(state: QuorumState, out: QuorumOut, now: number): QuorumState {
  let next = state
  if (now - state.lastPingAt >= state.config.pingMs) {
    for (const node of state.config.nodes) {
      if (node !== state.id) out.push({ type: 'send', to: node, message: { type: 'ping', sentAt: now } })
    }
    next = { ...next, lastPingAt: now }
  }
  next = expireRequests(next, out, now)
  next = offerHints(next, out, now)
  return startAntiEntropy(next, out, now)
}

function request(
  state: QuorumState,
  out: QuorumOut,
  client: string,
  request: QuorumRequest,
  now: number,
): QuorumState {
  switch (request.type) {
    case 'put':
      return handlePut(state, out, client, request, now)
    case 'get':
      return handleGet(state, out, client, request, now)
    case 'status':
      out.push({
        type: 'reply',
        client,
        reply: { type: 'status', id: request.id, status: quorumStatusOf(state, now) },
      })
      return state
  }
}

function message(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: QuorumMessage,
  now: number,
): QuorumState {
  switch (message.type) {
    case 'coordinate':
      return handleCoordinate(state, out, from, message, now)
    case 'coordinated':
      return handleCoordinated(state, out, from, message)
    case 'store':
      return handleStore(state, out, from, message, now)
    case 'stored':
      return handleStored(state, out, from, message.op)
    case 'store-batch':
      return handleStoreBatch(state, out, from, message, now)
    case 'stored-batch':
      return handleStoredBatch(state, out, from, message.ops)
    case 'fetch':
      return handleFetch(state, out, from, message)
    case 'fetched':
      return handleFetched(state, out, from, message.op, message.versions, now)
    case 'repair':
      return handleRepair(state, out, from, message, now)
    case 'repaired':
      return handleRepaired(state, out, from, message.op)
    case 'handoff':
      return handleHandoff(state, out, from, message, now)
    case 'handoff-ack':
      return handleHandoffAck(state, out, from, message)
    case 'ping':
      out.push({ type: 'send', to: from, message: { type: 'pong', sentAt: message.sentAt } })
      return state
    case 'pong':
      return state
    case 'ae-tree':
      return handleTree(state, out, from, message)
    case 'ae-digests':
      return handleDigests(state, out, from, message)
    case 'ae-sync':
      return handleSync(state, out, from, message, now)
  }
}

/** A quorum node as a runtime drives it. */
export type QuorumMachine = NodeMachine<QuorumState, QuorumInput, QuorumMessage, QuorumReply, QuorumRecord>

/** The quorum machine for node `id`, one of `config.nodes`. */
export function createQuorumMachine(id: string, config: QuorumConfig): QuorumMachine {
  const node = asNodeId(id)
  return {
    recover: (records, now) => recoverQuorumState(node, config, records, now),
    step: stepQuorum,
    ...nodeInputs<QuorumInput>(),
  }
}
