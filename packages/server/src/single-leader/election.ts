import type { NodeId } from '../node-id.js'
import { becomeLeader } from './leader.js'
import { lastEpoch, lastLsn } from './log.js'
import type { SingleLeaderMessage } from './messages.js'
import { adoptEpoch, stepDown } from './roles.js'
import {
  bump,
  electionQuorum,
  leaseValid,
  type Out,
  otherMembers,
  persistTerm,
  type SingleLeaderState,
} from './state.js'

/**
 * Elections: a vote on (epoch, last entry) that needs {@link electionQuorum} votes — a
 * majority, or more in `semi-sync` with few acks (see `electionQuorumOf`).
 *
 * A member that hears no leader for an election timeout (plus a stagger that depends on its
 * position and the epoch, so members rarely stand at once) becomes a candidate: it moves to
 * the next epoch, votes for itself, persists that, and asks the others. A member grants at most
 * one vote per epoch, only to a candidate whose last entry is at least as recent as its own —
 * a later epoch, or the same epoch and an LSN at least as high — and only once it has not
 * heard from a leader for an election timeout. A candidate with the quorum leads. Because an
 * electing group shares a member with any majority, the winner's log holds every entry a
 * majority had stored, which includes every write acknowledged in `sync` or `chain` mode; in
 * `semi-sync` the quorum also meets every `acks` + 1 nodes, so the winner holds every write
 * acknowledged `replicated`. The new epoch then fences the old leader everywhere.
 */

/** When this follower or candidate stands for election next. */
export function electionDeadline(state: SingleLeaderState): number {
  const size = state.config.nodes.length
  const index = Math.max(0, state.config.nodes.indexOf(state.id))
  const timeout = state.config.electionTimeoutMs
  const stagger = ((index + state.epoch) % size) * Math.floor(timeout / size)
  const from =
    state.role === 'candidate' || state.preVotes !== null ? state.electionStartedAt : state.lastHeardAt
  return from + timeout + stagger
}

/**
 * The election timer ran out: with `preVote`, ask for pre-votes first; without, stand at once.
 */
export function electionTimedOut(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  return state.config.preVote ? startPreVote(state, out, now) : startElection(state, out, now, false)
}

/**
 * Asks the other members whether they would vote for this node in the next epoch, changing
 * nothing but this node's count of answers (a candidate whose election timed out stays a
 * candidate of its epoch meanwhile). With the election quorum's yes it stands for real.
 */
export function startPreVote(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  const next = bump({ ...state, preVotes: [state.id], electionStartedAt: now }, 'preVoteRounds')
  if (1 >= electionQuorum(next)) return startElection(next, out, now, false)
  const message: SingleLeaderMessage = {
    type: 'pre-vote-request',
    epoch: next.epoch + 1,
    lastLsn: lastLsn(next.log),
    lastEpoch: lastEpoch(next.log),
  }
  for (const node of otherMembers(next)) out.push({ type: 'send', to: node, message })
  return next
}

/**
 * Would this node vote for the sender in `epoch`? Yes when it would grant that vote: the epoch
 * is newer than its own, the sender's log is at least as up to date, and it hears no leader.
 * The answer carries this node's epoch, so a sender that is behind catches up. Nothing changes
 * here: no epoch is adopted and no vote is given.
 */
export function handlePreVoteRequest(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'pre-vote-request' }>,
  now: number,
): SingleLeaderState {
  if (!state.member || !state.config.nodes.includes(from)) return state
  const granted = message.epoch > state.epoch && !hearsLeader(state, now) && upToDate(state, message)
  out.push({
    type: 'send',
    to: from,
    message: { type: 'pre-vote', epoch: message.epoch, granted, current: state.epoch },
  })
  return state
}

/** A pre-vote came back: a newer epoch is adopted; the election quorum's yes starts an election. */
export function handlePreVote(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'pre-vote' }>,
  now: number,
): SingleLeaderState {
  if (message.current > state.epoch) return adoptEpoch(state, out, message.current, now)
  const votes = state.preVotes
  if (votes === null || !message.granted || message.epoch !== state.epoch + 1 || votes.includes(from))
    return state
  const next = { ...state, preVotes: [...votes, from] }
  return next.preVotes.length >= electionQuorum(next) ? startElection(next, out, now, false) : next
}

/** Stands for election in the next epoch; `force` marks a manual promotion. */
export function startElection(
  state: SingleLeaderState,
  out: Out,
  now: number,
  force: boolean,
): SingleLeaderState {
  let next = stepDown(state, out, now)
  next = bump(
    {
      ...next,
      epoch: next.epoch + 1,
      votedFor: next.id,
      role: 'candidate',
      leader: null,
      votes: [next.id],
      electionStartedAt: now,
      preVotes: null,
    },
    'electionsStarted',
  )
  persistTerm(next, out)
  if (next.votes.length >= electionQuorum(next)) return becomeLeader(next, out, now)
  const message: SingleLeaderMessage = {
    type: 'vote-request',
    epoch: next.epoch,
    lastLsn: lastLsn(next.log),
    lastEpoch: lastEpoch(next.log),
    force,
  }
  for (const node of otherMembers(next)) out.push({ type: 'send', to: node, message })
  return next
}

/**
 * A candidate asks for this node's vote. Ignored — not even answered — while this node still
 * hears a leader (unless the request is a manual promotion): that is the promise that keeps a
 * leader's lease safe, and it stops a node returning from a partition from deposing a healthy
 * leader.
 */
export function handleVoteRequest(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'vote-request' }>,
  now: number,
): SingleLeaderState {
  if (!state.member || !state.config.nodes.includes(from)) return state
  if (!message.force && hearsLeader(state, now)) return state
  if (message.epoch < state.epoch) {
    out.push({ type: 'send', to: from, message: { type: 'vote', epoch: state.epoch, granted: false } })
    return state
  }
  let next = adoptEpoch(state, out, message.epoch, now)
  const granted = upToDate(next, message) && (next.votedFor === null || next.votedFor === from)
  if (granted && next.votedFor !== from) {
    next = { ...next, votedFor: from, lastHeardAt: now }
    persistTerm(next, out)
  }
  out.push({ type: 'send', to: from, message: { type: 'vote', epoch: next.epoch, granted } })
  return next
}

/** A vote came back: the election quorum makes this candidate the leader. */
export function handleVote(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'vote' }>,
  now: number,
): SingleLeaderState {
  if (message.epoch > state.epoch) return adoptEpoch(state, out, message.epoch, now)
  if (state.role !== 'candidate' || message.epoch !== state.epoch || !message.granted) return state
  if (state.votes.includes(from)) return state
  const next = { ...state, votes: [...state.votes, from] }
  return next.votes.length >= electionQuorum(next) ? becomeLeader(next, out, now) : next
}

/**
 * An operator's manual failover.
 *
 * With fencing, the node runs an election at once that voters honour even while they still
 * hear the old leader; it still needs the election quorum and an up-to-date log, so a lagging
 * follower cannot be promoted over members that hold more, and the voters' new epoch fences the old
 * leader. (The old leader may answer leader reads until it hears of the new epoch: a forced
 * promotion cuts its lease short.) Without fencing, the node simply declares itself leader of
 * the next epoch — and the old leader, which ignores epochs too, keeps leading: split brain.
 */
export function promote(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  if (!state.member || state.role === 'leader') return state
  const next = bump(state, 'promotions')
  if (next.config.fencing) return startElection(next, out, now, true)
  const declared = { ...next, epoch: next.epoch + 1, votedFor: next.id }
  persistTerm(declared, out)
  return becomeLeader(declared, out, now)
}

/** True when a candidate whose last entry is (`lastEpoch`, `lastLsn`) is at least as up to date as this node. */
function upToDate(
  state: SingleLeaderState,
  candidate: { readonly lastEpoch: number; readonly lastLsn: number },
): boolean {
  const mine = lastEpoch(state.log)
  return (
    candidate.lastEpoch > mine || (candidate.lastEpoch === mine && candidate.lastLsn >= lastLsn(state.log))
  )
}

function hearsLeader(state: SingleLeaderState, now: number): boolean {
  if (state.role === 'leader') return leaseValid(state, now)
  return now - state.leaderContactAt < state.config.electionTimeoutMs
}
