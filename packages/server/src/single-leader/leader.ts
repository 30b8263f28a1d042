import type { NodeId } from '../node-id.js'
import { chainCommitBound, countCaughtUp, initialChain, recordChainAck, reviseChain } from './chain.js'
import { appendEntries, lastEpoch, lastLsn } from './log.js'
import type { LogEntry, SingleLeaderMessage, SingleLeaderRequest } from './messages.js'
import { serveParked } from './reads.js'
import { maybeCompact, onStreamAck, replicate, resendStale, withProgress } from './replication.js'
import { adoptEpoch, stepDown } from './roles.js'
import {
  bump,
  epochOf,
  fenceEpoch,
  type HeldWrite,
  leaseExpiry,
  leaseValid,
  majority,
  type Out,
  otherMembers,
  type PendingWrite,
  refuseNotLeader,
  type SingleLeaderEffect,
  type SingleLeaderState,
} from './state.js'

type WriteRequest = Extract<SingleLeaderRequest, { type: 'write' }>

/**
 * Takes over as leader: every other member starts unknown, and a no-op entry of the new epoch
 * is appended. Once that entry commits, every entry before it is committed too (whatever
 * earlier leaders managed), which is when the leader starts serving linearizable reads.
 */
export function becomeLeader(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  const noop: LogEntry = { lsn: lastLsn(state.log) + 1, epoch: state.epoch, write: null }
  const progress = new Map(
    otherMembers(state).map((node) => [
      node,
      {
        next: noop.lsn,
        match: 0,
        lastSentAt: Number.NEGATIVE_INFINITY,
        ackedSentAt: Number.NEGATIVE_INFINITY,
        inFlight: 0,
      },
    ]),
  )
  out.push({ type: 'persist', records: [{ type: 'entries', entries: [noop] }], epoch: fenceEpoch(state) })
  let next: SingleLeaderState = {
    ...state,
    role: 'leader',
    leader: state.id,
    log: appendEntries(state.log, [noop]),
    progress,
    learners: [],
    pending: [],
    votes: [],
    noopLsn: noop.lsn,
    becameLeaderAt: now,
    lastHeartbeatAt: now,
    chain: initialChain(state),
    chainAcks: new Map(),
  }
  next = bump(next, 'becameLeader')
  next = sendHeartbeats(next, out, now)
  next = replicate(next, out, now)
  return advanceCommit(next, out, now)
}

/**
 * Appends a client's write and replicates it; the reply waits for the replication mode's
 * condition (see `ReplicationMode`). Refused with `not-leader` when this node does not lead
 * or (with fencing) its lease has lapsed, so a deposed leader that does not know it yet
 * accepts nothing.
 *
 * When the acknowledgement waits for followers (`semi-sync`, `sync`, `chain`), the entry is
 * sent to them as an *early* send, ahead of the leader's own append and of any append a runtime
 * is still committing for the writes batched with this one, so their commits overlap the
 * leader's instead of following it. That is safe: a follower holding an entry its leader lost
 * in a crash holds an uncommitted entry, which any log may; the message carries no commit point
 * beyond what the leader knows is on its disk (`durableLsn`), so no follower serves an entry
 * before the leader has it (it learns the new commit point with a later append or heartbeat);
 * and nothing is acknowledged before the leader's append is durable, because the reply follows
 * it. In `async` the reply waits for the leader alone, so the entry follows the append and
 * carries the commit point that includes it.
 */
export function handleWrite(
  state: SingleLeaderState,
  out: Out,
  client: string,
  request: WriteRequest,
  now: number,
): SingleLeaderState {
  const lapsed = state.role === 'leader' && state.config.fencing && !leaseValid(state, now)
  if (state.role !== 'leader' || (lapsed && state.held.length >= MAX_HELD_WRITES)) {
    refuseNotLeader(state, out, client, request.id, 0)
    return state
  }
  if (lapsed) return holdWrite(state, out, { client, request }, now)
  const entry: LogEntry = {
    lsn: lastLsn(state.log) + 1,
    epoch: state.epoch,
    write: { key: request.key, value: request.value, id: writeIdOf(client, request.id) },
  }
  const pending: PendingWrite = { lsn: entry.lsn, client, requestId: request.id, appendedAt: now }
  let next: SingleLeaderState = {
    ...state,
    log: appendEntries(state.log, [entry]),
    pending: [...state.pending, pending],
  }
  const persist: SingleLeaderEffect = {
    type: 'persist',
    records: [{ type: 'entries', entries: [entry] }],
    epoch: fenceEpoch(state),
  }
  next = bump(next, 'writesAccepted')
  if (state.config.replication.mode === 'async') {
    out.push(persist)
    next = advanceCommit(next, out, now)
    return replicate(next, out, now)
  }
  next = replicate(next, out, now, true)
  out.push(persist)
  return advanceCommit(next, out, now)
}

/** The id a write's log entry carries: its client and request id, unique per client. */
export function writeIdOf(client: string, requestId: string): string {
  return `${client}/${requestId}`
}

/**
 * Moves the commit point as far as the replication mode allows, acknowledges the writes it
 * covers, and answers reads waiting on it.
 *
 * In `sync` and `chain` modes only an entry of the leader's own epoch is committed by
 * counting copies; earlier entries commit with it. (An entry of an older epoch on a majority
 * can still be overwritten by a leader elected without it, so counting it would be unsafe.)
 */
export function advanceCommit(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  const mode = state.config.replication
  const last = lastLsn(state.log)
  let candidate = last
  if (mode.mode === 'sync') {
    const matches = [last, ...otherMembers(state).map((node) => state.progress.get(node)?.match ?? 0)]
    matches.sort((a, b) => b - a)
    candidate = matches[majority(state) - 1] as number
  } else if (mode.mode === 'chain') {
    candidate = Math.min(last, chainCommitBound(state))
  }
  let next = state
  if (
    candidate > state.commitLsn &&
    (mode.mode === 'async' || mode.mode === 'semi-sync' || epochOf(state, candidate) === state.epoch)
  ) {
    next = { ...next, commitLsn: candidate }
  }
  next = acknowledgeWrites(next, out, now)
  next = serveParked(next, out, now)
  return maybeCompact(next, out)
}

function acknowledgeWrites(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  if (state.pending.length === 0) return state
  const mode = state.config.replication
  const voters = otherMembers(state)
  let acknowledged = 0
  let fallbacks = 0
  const kept: PendingWrite[] = []
  for (const write of state.pending) {
    let durability: 'leader' | 'replicated' | null = null
    if (mode.mode === 'async') durability = 'leader'
    else if (mode.mode === 'semi-sync') {
      const copies = voters.filter((node) => (state.progress.get(node)?.match ?? 0) >= write.lsn).length
      if (copies >= mode.acks) durability = 'replicated'
      else if (now - write.appendedAt >= mode.timeoutMs) {
        durability = 'leader'
        fallbacks++
      }
    } else if (write.lsn <= state.commitLsn) durability = 'replicated'
    if (durability === null) {
      kept.push(write)
      continue
    }
    acknowledged++
    out.push({
      type: 'reply',
      client: write.client,
      reply: { type: 'write-ok', id: write.requestId, lsn: write.lsn, epoch: state.epoch, durability },
    })
  }
  if (acknowledged === 0) return state
  const next = bump(
    bump({ ...state, pending: kept }, 'writesAcknowledged', acknowledged),
    'semiSyncFallbacks',
    fallbacks,
  )
  return next
}

/** The most writes a leader holds while its lease is renewed; later ones are refused. */
const MAX_HELD_WRITES = 10_000

/**
 * A write that came while this leader's lease had lapsed: its followers' answers came late,
 * because a burst of requests kept this node busy for longer than the lease, or because it is
 * cut off from them. Refusing it as `not-leader` would send its client looking for another
 * leader where there is none, so the write waits here (`state.held`), and heartbeats go out at
 * once for the answers that renew the lease. {@link releaseHeldWrites} then handles it as if it
 * came just then, or refuses it, naming the leader it follows if it knows one, once this node
 * has stepped down (which a leader does after an election timeout without a majority's answer).
 * Up to `MAX_HELD_WRITES` (`handleWrite` refuses more at once).
 */
function holdWrite(state: SingleLeaderState, out: Out, write: HeldWrite, now: number): SingleLeaderState {
  let next: SingleLeaderState = bump({ ...state, held: [...state.held, write] }, 'writesHeld')
  if (now - state.lastHeartbeatAt >= state.config.heartbeatMs / 4) next = sendHeartbeats(next, out, now)
  return next
}

/**
 * Handles the writes this node held (see {@link holdWrite}) once it may: as a leader whose
 * lease holds again, or refused as `not-leader` (naming the leader it follows) once it no longer
 * leads. Run after every input.
 */
export function releaseHeldWrites(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  if (state.held.length === 0) return state
  if (state.role === 'leader' && !leaseValid(state, now)) return state
  let next: SingleLeaderState = { ...state, held: [] }
  for (const { client, request } of state.held) next = handleWrite(next, out, client, request, now)
  return next
}

/** Sends a heartbeat to every other member and learner. */
export function sendHeartbeats(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  const message: SingleLeaderMessage = {
    type: 'heartbeat',
    epoch: state.epoch,
    leader: state.id,
    commitLsn: state.commitLsn,
    lastLsn: lastLsn(state.log),
    lastEpoch: lastEpoch(state.log),
    sentAt: now,
  }
  const chain = state.chain
  for (const node of [...otherMembers(state), ...state.learners]) {
    // The chain goes to a member until it answers that it holds this view.
    const held = chain === null || state.progress.get(node)?.chainView === chain.view
    out.push({ type: 'send', to: node, message: held ? message : { ...message, chain } })
  }
  return { ...state, lastHeartbeatAt: now }
}

/**
 * A leader's timer: heartbeats, probes of stalled streams, semi-sync timeouts, and — with
 * fencing — stepping down once no majority has answered for a whole election timeout.
 */
export function leaderTick(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  const config = state.config
  if (config.fencing && now - Math.max(leaseExpiry(state), state.becameLeaderAt) > config.electionTimeoutMs) {
    return stepDown(state, out, now)
  }
  const revised = reviseChain(state, now)
  let next = revised.state
  if (revised.changed || now - state.lastHeartbeatAt >= config.heartbeatMs)
    next = sendHeartbeats(next, out, now)
  next = resendStale(next, out, now)
  return advanceCommit(next, out, now)
}

/** An answer to an append or snapshot this node streamed. */
export function handleAppendAck(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'append-ack' }>,
  now: number,
): SingleLeaderState {
  if (state.config.fencing) {
    if (message.epoch > state.epoch) return adoptEpoch(state, out, message.epoch, now)
    if (message.epoch < state.epoch) return state
  }
  const next = onStreamAck(state, out, from, message, now)
  return next.role === 'leader' ? advanceCommit(next, out, now) : next
}

/** A follower heard a heartbeat: it counts for the lease. */
export function handleHeartbeatAck(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'heartbeat-ack' }>,
  now: number,
): SingleLeaderState {
  if (state.config.fencing) {
    if (message.epoch > state.epoch) return adoptEpoch(state, out, message.epoch, now)
    if (message.epoch < state.epoch) return state
  }
  const progress = state.progress.get(from)
  if (state.role !== 'leader' || progress === undefined) return state
  return withProgress(state, from, {
    ...progress,
    ackedSentAt: Math.max(progress.ackedSentAt, message.sentAt),
    heardLsn: message.lastLsn,
    // 0: it holds none (it restarted, say), so the next heartbeat carries the chain again.
    chainView: message.view ?? 0,
    unfed: message.unfed === true,
  })
}

/**
 * The chain's tail, or a member catching up behind it, reports how far it and every node before
 * it hold the log: that much is on every counted node, so it commits (see `chain.ts`).
 */
export function handleChainAck(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'chain-ack' }>,
  now: number,
): SingleLeaderState {
  if (state.config.fencing && message.epoch > state.epoch) return adoptEpoch(state, out, message.epoch, now)
  if (state.role !== 'leader' || message.epoch !== state.epoch) return state
  const next = advanceCommit(recordChainAck(state, from, message), out, now)
  return countCaughtUp(next)
}

/** A learner asks to follow: stream the log (or a snapshot) to it from now on. */
export function handleJoin(state: SingleLeaderState, out: Out, from: NodeId, now: number): SingleLeaderState {
  if (state.role !== 'leader' || state.config.nodes.includes(from)) return state
  let next = state
  if (!state.learners.includes(from)) {
    next = withProgress({ ...state, learners: [...state.learners, from] }, from, {
      next: lastLsn(state.log) + 1,
      match: 0,
      lastSentAt: Number.NEGATIVE_INFINITY,
      ackedSentAt: Number.NEGATIVE_INFINITY,
      inFlight: 0,
    })
  }
  return resendStale(next, out, now)
}
