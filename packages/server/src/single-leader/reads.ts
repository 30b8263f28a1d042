import { epochAt, readAt } from './log.js'
import type { SingleLeaderRequest } from './messages.js'
import { bump, leaseValid, type Out, readableLsn, refuseNotLeader, type SingleLeaderState } from './state.js'

type ReadRequest = Extract<SingleLeaderRequest, { type: 'read' }>

/**
 * Answers a read, parks it, or refuses it.
 *
 * A `leader` read is linearizable: only a leader holding its lease (no other node can have
 * been elected since a majority last heard it), whose own epoch is committed (so every
 * acknowledged write of earlier leaders is in its readable state), answers. A `replica` read
 * is answered by any node that has reached the client's token, `minLsn` (and, with
 * `minEpoch`, holds that entry's epoch or a newer one there); a node behind it parks the read
 * up to `waitMs`, then answers `not-yet`.
 */
export function handleRead(
  state: SingleLeaderState,
  out: Out,
  client: string,
  request: ReadRequest,
  now: number,
): SingleLeaderState {
  if (request.consistency === 'leader' && !canServeLeaderRead(state, now)) {
    refuseNotLeader(state, out, client, request.id, readableLsn(state))
    return state
  }
  if (reachesToken(state, request)) return serve(state, out, client, request)
  if (request.waitMs > 0) {
    return { ...state, parked: [...state.parked, { client, request, deadline: now + request.waitMs }] }
  }
  return notYet(state, out, client, request)
}

/**
 * True when this node's readable state includes the client's token, or a history that
 * replaced it.
 *
 * Without `minEpoch`: it reaches `minLsn`. With it, the token is the entry (`minLsn`,
 * `minEpoch`), whose history has no epoch above `minEpoch` up to `minLsn`. So where this
 * node's readable entries reach (`minLsn` or its last readable one, whichever is lower):
 * - an entry of a newer epoch means a later leader's history replaced the token's (its entry
 *   was a fallback, lost): served, since nothing will ever hold the token;
 * - at `minLsn`, an entry of the token's epoch is the token's entry: served;
 * - an entry of an older epoch at `minLsn` is of a history the token's replaced (a deposed
 *   leader's, to be truncated), and a node short of `minLsn` is behind: not yet.
 */
function reachesToken(state: SingleLeaderState, request: ReadRequest): boolean {
  const readable = readableLsn(state)
  if (request.minEpoch === undefined || request.minLsn === 0) return readable >= request.minLsn
  const epoch = epochAt(state.log, Math.min(request.minLsn, readable)) ?? 0
  if (epoch > request.minEpoch) return true
  return readable >= request.minLsn && epoch === request.minEpoch
}

/** True when this node may answer a linearizable read now. */
export function canServeLeaderRead(state: SingleLeaderState, now: number): boolean {
  if (state.role !== 'leader') return false
  if (state.config.fencing && !leaseValid(state, now)) return false
  return state.commitLsn >= state.noopLsn
}

/** Answers every parked read this node can now serve, and refuses the expired ones. */
export function serveParked(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  if (state.parked.length === 0) return state
  let next: SingleLeaderState = { ...state, parked: [] }
  const kept = []
  for (const parked of state.parked) {
    const leaderOnly = parked.request.consistency === 'leader'
    if (reachesToken(state, parked.request) && (!leaderOnly || canServeLeaderRead(state, now))) {
      next = serve(next, out, parked.client, parked.request)
    } else if (now >= parked.deadline) {
      next = notYet(next, out, parked.client, parked.request)
    } else {
      kept.push(parked)
    }
  }
  return { ...next, parked: kept }
}

function serve(state: SingleLeaderState, out: Out, client: string, request: ReadRequest): SingleLeaderState {
  const lsn = readableLsn(state)
  out.push({
    type: 'reply',
    client,
    reply: {
      type: 'read-ok',
      id: request.id,
      value: readAt(state.log, request.key, lsn) ?? null,
      lsn,
      lsnEpoch: epochAt(state.log, lsn) ?? 0,
      epoch: state.epoch,
      role: state.role,
      lagLsn: state.role === 'leader' ? 0 : Math.max(0, state.leaderCommitLsn - lsn),
    },
  })
  return bump(state, 'readsServed')
}

function notYet(state: SingleLeaderState, out: Out, client: string, request: ReadRequest): SingleLeaderState {
  out.push({
    type: 'reply',
    client,
    reply: {
      type: 'rejected',
      id: request.id,
      reason: 'not-yet',
      leader: state.role === 'leader' ? state.id : state.leader,
      maybeApplied: false,
      lsn: readableLsn(state),
    },
  })
  return bump(state, 'readsNotYet')
}
