import { type NodeMachine, nodeInputs, type StepResult } from '../machine.js'
import { asNodeId, type NodeId } from '../node-id.js'
import type { SingleLeaderConfig } from './config.js'
import {
  electionDeadline,
  electionTimedOut,
  handlePreVote,
  handlePreVoteRequest,
  handleVote,
  handleVoteRequest,
  promote,
} from './election.js'
import { followerTick, handleAppend, handleHeartbeat, handleSnapshot } from './follower.js'
import {
  handleAppendAck,
  handleChainAck,
  handleHeartbeatAck,
  handleJoin,
  handleWrite,
  leaderTick,
  releaseHeldWrites,
} from './leader.js'
import type {
  SingleLeaderInput,
  SingleLeaderMessage,
  SingleLeaderRecord,
  SingleLeaderReply,
  SingleLeaderRequest,
} from './messages.js'
import { handleRead, serveParked } from './reads.js'
import {
  type Out,
  recoverSingleLeaderState,
  type SingleLeaderEffect,
  type SingleLeaderState,
  settleSingleLeader,
  statusOf,
} from './state.js'
import { readSingleLeaderInput } from './validate.js'

/**
 * Advances a single-leader node by one input. Pure: the same state and input always give the
 * same result, and the given state is never modified.
 *
 * Throws a `ChorusError` for a malformed input (see `readSingleLeaderInput`) before anything
 * changes, so a bad frame costs nothing but the error.
 */
export function stepSingleLeader(
  state: SingleLeaderState,
  input: SingleLeaderInput,
): StepResult<SingleLeaderState, SingleLeaderEffect> {
  const checked = readSingleLeaderInput(input)
  const out: Out = []
  const next = releaseHeldWrites(dispatch(state, out, checked), out, checked.now)
  return { state: next, effects: out }
}

function dispatch(state: SingleLeaderState, out: Out, input: SingleLeaderInput): SingleLeaderState {
  const now = input.now
  switch (input.type) {
    case 'tick':
      return tick(state, out, now)
    case 'promote':
      return promote(state, out, now)
    case 'request':
      return request(state, out, input.client, input.request, now)
    case 'message':
      return message(state, out, input.from, input.message, now)
  }
}

function tick(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  let next = state
  switch (state.role) {
    case 'leader':
      next = leaderTick(state, out, now)
      break
    case 'follower':
    case 'candidate':
      if (state.config.autoFailover && now >= electionDeadline(state))
        next = electionTimedOut(state, out, now)
      else next = followerTick(state, out, now)
      break
    case 'learner':
      if (
        (state.leader === null || now - state.lastHeardAt >= state.config.electionTimeoutMs) &&
        now - state.lastJoinAt >= state.config.resendMs
      ) {
        for (const node of state.config.nodes) out.push({ type: 'send', to: node, message: { type: 'join' } })
        next = { ...state, lastJoinAt: now }
      }
      break
  }
  return serveParked(next, out, now)
}

function request(
  state: SingleLeaderState,
  out: Out,
  client: string,
  request: SingleLeaderRequest,
  now: number,
): SingleLeaderState {
  switch (request.type) {
    case 'write':
      return handleWrite(state, out, client, request, now)
    case 'read':
      return handleRead(state, out, client, request, now)
    case 'status':
      out.push({
        type: 'reply',
        client,
        reply: { type: 'status', id: request.id, status: statusOf(state, now) },
      })
      return state
  }
}

function message(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: SingleLeaderMessage,
  now: number,
): SingleLeaderState {
  switch (message.type) {
    case 'append':
      return handleAppend(state, out, from, message, now)
    case 'snapshot':
      return handleSnapshot(state, out, from, message, now)
    case 'heartbeat':
      return handleHeartbeat(state, out, from, message, now)
    case 'append-ack':
      return handleAppendAck(state, out, from, message, now)
    case 'heartbeat-ack':
      return handleHeartbeatAck(state, out, from, message, now)
    case 'chain-ack':
      return handleChainAck(state, out, from, message, now)
    case 'vote-request':
      return handleVoteRequest(state, out, from, message, now)
    case 'vote':
      return handleVote(state, out, from, message, now)
    case 'pre-vote-request':
      return handlePreVoteRequest(state, out, from, message, now)
    case 'pre-vote':
      return handlePreVote(state, out, from, message, now)
    case 'join':
      return handleJoin(state, out, from, now)
  }
}

/** A single-leader node as a runtime drives it. */
export type SingleLeaderMachine = NodeMachine<
  SingleLeaderState,
  SingleLeaderInput,
  SingleLeaderMessage,
  SingleLeaderReply,
  SingleLeaderRecord
>

/**
 * The single-leader machine for node `id` of a cluster (a learner when `id` is not one of
 * `config.nodes`). Inputs built by `messageInput` and `requestInput` are validated by `step`.
 */
export function createSingleLeaderMachine(id: string, config: SingleLeaderConfig): SingleLeaderMachine {
  const node = asNodeId(id)
  return {
    recover: (records, now) => recoverSingleLeaderState(node, config, records, now),
    step: stepSingleLeader,
    settle: settleSingleLeader,
    ...nodeInputs<SingleLeaderInput>(),
  }
}
