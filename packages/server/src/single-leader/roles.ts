import type { NodeId } from '../node-id.js'
import { type Out, persistTerm, type SingleLeaderState } from './state.js'

/**
 * Stops leading or campaigning: every pending write is answered `deposed` (it is in this
 * node's log and may survive or not, so the client must treat it as unknown), leader-only
 * reads are refused, and the election timer restarts.
 */
export function stepDown(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  if (state.role !== 'leader' && state.role !== 'candidate') return state
  for (const write of state.pending) {
    out.push({
      type: 'reply',
      client: write.client,
      reply: {
        type: 'rejected',
        id: write.requestId,
        reason: 'deposed',
        leader: null,
        maybeApplied: true,
        lsn: 0,
      },
    })
  }
  const parked = state.parked.filter((read) => {
    if (read.request.consistency === 'replica') return true
    out.push({
      type: 'reply',
      client: read.client,
      reply: {
        type: 'rejected',
        id: read.request.id,
        reason: 'not-leader',
        leader: null,
        maybeApplied: false,
        lsn: 0,
      },
    })
    return false
  })
  return {
    ...state,
    role: state.member ? 'follower' : 'learner',
    leader: null,
    progress: new Map(),
    learners: [],
    pending: [],
    parked,
    votes: [],
    matchedLsn: 0,
    chain: null,
    chainAcks: new Map(),
    chainLsn: 0,
    chainFed: null,
    lastHeardAt: now,
  }
}

/** Moves to a newer epoch, forgetting the vote, and steps down; the new term is persisted. */
export function adoptEpoch(
  state: SingleLeaderState,
  out: Out,
  epoch: number,
  now: number,
): SingleLeaderState {
  if (epoch <= state.epoch) return state
  // A chain, and what a node knew of it, hold for one leader in one epoch.
  const next = stepDown(
    { ...state, epoch, votedFor: null, preVotes: null, chain: null, chainLsn: 0, chainFed: null },
    out,
    now,
  )
  persistTerm(next, out)
  return next
}

/**
 * Accepts `leader` (at `epoch`) as the current leader: adopts a newer epoch, steps down from a
 * candidacy, and restarts the election timer. Returns the state to continue with.
 */
export function followLeader(
  state: SingleLeaderState,
  out: Out,
  epoch: number,
  leader: NodeId,
  now: number,
): SingleLeaderState {
  let next = adoptEpoch(state, out, epoch, now)
  if (next.role === 'candidate' || (next.role === 'leader' && leader !== next.id))
    next = stepDown(next, out, now)
  if (next.leader !== leader)
    next = { ...next, leader, matchedLsn: 0, progress: new Map(), chain: null, chainLsn: 0, chainFed: null }
  return { ...next, lastHeardAt: now, leaderContactAt: now, preVotes: null }
}
