import { splitWithinBudget } from '../message-budget.js'
import type { NodeId } from '../node-id.js'
import { chainFields, chainLsnOf, chainSuccessor, isChainMode } from './chain.js'
import { compact, entriesBetween, epochAt, epochsThrough, lastLsn } from './log.js'
import {
  checkpoint,
  type FollowerProgress,
  type Out,
  otherMembers,
  readableLsn,
  type SingleLeaderState,
} from './state.js'

/**
 * The stream of log entries from one node to another.
 *
 * A leader streams to every other member (or, in chain mode, to its successor) and to its
 * learners; a chain member streams to its successor whatever its own log verifiably shares
 * with the leader's. Sends are pipelined up to {@link MAX_IN_FLIGHT} unacknowledged appends per
 * target; beyond that, entries wait and go together in the next append, sent as soon as an
 * acknowledgement arrives (or, if they were lost, after `resendMs`), so a busy leader sends a
 * few messages per round trip, not one per entry. An acknowledgement that reports a mismatch
 * moves `next` back. After `resendMs` without progress
 * the sender probes with an empty append at its own last LSN, and the answer says where to
 * resume.
 */

/**
 * Most appends (or snapshots) a node has in flight to one target, counted per part when a
 * runtime joins them (`batchSingleLeaderMessages`), when a client's answer waits for the
 * followers (`semi-sync`, `sync`, `chain`): enough that the writes of a runtime's batch — as
 * many as its clients have outstanding — each go out at once and, joined, reach a follower as
 * one message. Entries appended while the pipe is full share the next message.
 */
export const MAX_IN_FLIGHT = 64

/**
 * The same limit in `async`, where no answer waits for a follower, so the pipe need not hold a
 * whole batch: entries appended while it is full travel together in the next append.
 */
export const MAX_IN_FLIGHT_ASYNC = 4

function inFlightLimit(state: SingleLeaderState): number {
  return state.config.replication.mode === 'async' ? MAX_IN_FLIGHT_ASYNC : MAX_IN_FLIGHT
}

/** Whom this node streams to. */
export function replicationTargets(state: SingleLeaderState): NodeId[] {
  if (state.role === 'leader') {
    const successor = isChainMode(state) ? [chainSuccessor(state)] : otherMembers(state)
    return [...successor.filter((node): node is NodeId => node !== undefined), ...state.learners]
  }
  const successor = chainSuccessor(state)
  return successor === undefined ? [] : [successor]
}

/** The last LSN this node may stream: a leader its whole log, a chain member what it verified. */
export function streamLimit(state: SingleLeaderState): number {
  return state.role === 'leader' ? lastLsn(state.log) : Math.min(state.matchedLsn, lastLsn(state.log))
}

/** The stream state for `target`, starting at the end of our log when we know nothing yet. */
export function progressOf(state: SingleLeaderState, target: NodeId): FollowerProgress {
  return (
    state.progress.get(target) ?? {
      next: streamLimit(state) + 1,
      match: 0,
      lastSentAt: Number.NEGATIVE_INFINITY,
      ackedSentAt: Number.NEGATIVE_INFINITY,
      inFlight: 0,
    }
  )
}

/** Replaces `target`'s stream state. */
export function withProgress(
  state: SingleLeaderState,
  target: NodeId,
  progress: FollowerProgress,
): SingleLeaderState {
  const map = new Map(state.progress)
  map.set(target, progress)
  return { ...state, progress: map }
}

/**
 * Sends `target` the next batch from its `next` LSN (possibly none: a probe), or a snapshot
 * when that LSN has been compacted away.
 *
 * `early` marks the append an early send (see `NodeEffect`): the runtime may send it before
 * this node's pending persists are durable, so it carries no commit point beyond the log this
 * node knows durable (`durableLsn`). A follower holding entries its leader then loses in a
 * crash holds uncommitted entries, which any log may; nothing it was told is false.
 */
export function sendTo(
  state: SingleLeaderState,
  out: Out,
  target: NodeId,
  now: number,
  early = false,
): SingleLeaderState {
  const progress = progressOf(state, target)
  const limit = streamLimit(state)
  const leader = state.role === 'leader' ? state.id : state.leader
  if (leader === null) return state
  const log = state.log
  const next = Math.min(progress.next, limit + 1)
  if (next <= log.base.lsn) {
    const snapshot = {
      type: 'snapshot',
      epoch: state.epoch,
      leader,
      lsn: log.base.lsn,
      lastEpoch: log.base.epoch,
      epochs: epochsThrough(log, log.base.lsn),
      commitLsn: state.commitLsn,
      sentAt: now,
    } as const
    // Data longer than one message carries goes in chunks (see the `snapshot` message).
    const chunks = splitWithinBudget([...log.base.data], Number.POSITIVE_INFINITY)
    if (chunks.length <= 1) {
      out.push({ type: 'send', to: target, message: { ...snapshot, data: chunks[0] ?? [] } })
    } else {
      chunks.forEach((data, chunk) => {
        out.push({ type: 'send', to: target, message: { ...snapshot, data, chunk, chunks: chunks.length } })
      })
    }
    const sent = withProgress(state, target, {
      ...progress,
      next: log.base.lsn + 1,
      lastSentAt: now,
      inFlight: progress.inFlight + 1,
    })
    return { ...sent, stats: { ...sent.stats, snapshotsSent: sent.stats.snapshotsSent + 1 } }
  }
  const entries = entriesBetween(log, next, limit, state.config.maxBatch)
  const prevLsn = next - 1
  out.push({
    type: 'send',
    to: target,
    message: {
      type: 'append',
      epoch: state.epoch,
      leader,
      prevLsn,
      prevEpoch: epochAt(log, prevLsn) ?? 0,
      entries,
      commitLsn: early ? Math.min(state.commitLsn, state.durableLsn) : state.commitLsn,
      sentAt: now,
      ...chainFields(state),
    },
    ...(early ? { early: true } : {}),
  })
  return withProgress(state, target, {
    ...progress,
    next: next + entries.length,
    lastSentAt: now,
    inFlight: progress.inFlight + 1,
  })
}

/**
 * Streams whatever each target has not been sent yet, to every target whose pipe has room
 * (`early`: as early sends, see {@link sendTo}).
 */
export function replicate(state: SingleLeaderState, out: Out, now: number, early = false): SingleLeaderState {
  let next = state
  const limit = streamLimit(state)
  for (const target of replicationTargets(state)) {
    const progress = progressOf(next, target)
    if (progress.next <= limit && progress.inFlight < inFlightLimit(next))
      next = sendTo(next, out, target, now, early)
    else if (progress.inFlight === 0 && lacksChainLsn(next, target, progress))
      next = sendTo(next, out, target, now, early)
  }
  return next
}

/**
 * True when `target` is this node's chain successor, holds the log as far as this node's
 * `chainLsn` reaches (or its match, if less), and answered with a lower `chainLsn` of its own:
 * its predecessor's figure never reached it (say the entries came before it heard the view),
 * and an append with no entries carries it.
 */
function lacksChainLsn(state: SingleLeaderState, target: NodeId, progress: FollowerProgress): boolean {
  if (target !== chainSuccessor(state)) return false
  return (progress.chainLsn ?? 0) < Math.min(chainLsnOf(state), progress.match)
}

/** Probes every target that is behind and has made no progress for `resendMs`. */
export function resendStale(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  let next = state
  const limit = streamLimit(state)
  for (const target of replicationTargets(state)) {
    const progress = progressOf(next, target)
    const behind = progress.match < limit || lacksChainLsn(next, target, progress)
    if (behind && now - progress.lastSentAt >= state.config.resendMs) {
      // What was in flight for so long is taken as lost: the probe starts the pipe afresh.
      next = sendTo(
        withProgress(next, target, { ...progress, next: limit + 1, inFlight: 0 }),
        out,
        target,
        now,
      )
    }
  }
  return next
}

/**
 * Applies a stream acknowledgement from `from`: on success the follower matches through
 * `lsn`; otherwise it asks to resume after `lsn`. Either way the stream continues at once.
 */
export function onStreamAck(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  ack: {
    readonly ok: boolean
    readonly lsn: number
    readonly sentAt: number
    readonly parts?: number
    readonly chainLsn?: number
  },
  now: number,
): SingleLeaderState {
  const progress = state.progress.get(from)
  if (progress === undefined) return state
  const ackedSentAt = Math.max(progress.ackedSentAt, ack.sentAt)
  const answered = ack.chainLsn === undefined ? {} : { chainLsn: ack.chainLsn }
  const updated: FollowerProgress = ack.ok
    ? {
        ...progress,
        ...answered,
        match: Math.max(progress.match, ack.lsn),
        next: Math.max(progress.next, ack.lsn + 1),
        ackedSentAt,
        inFlight: Math.max(0, progress.inFlight - (ack.parts ?? 1)),
      }
    : {
        ...progress,
        ...answered,
        match: Math.min(progress.match, ack.lsn),
        next: ack.lsn + 1,
        ackedSentAt,
        inFlight: 0,
      }
  const next = withProgress(state, from, updated)
  if (!ack.ok || updated.next <= streamLimit(next)) return sendTo(next, out, from, now)
  return next
}

/**
 * Folds applied entries into the log's base once `compactEvery` of them follow it. Only readable
 * (committed) entries are folded, and none that a target this node streams to still lacks
 * unless it lags more than `compactEvery` behind: a follower that keeps up is sent entries,
 * never a snapshot of the whole data.
 *
 * Folding is in memory. The base reaches the disk as a checkpoint (see `checkpoint`), which
 * rewrites the whole data and lets storage drop every older record, once the entries since the
 * last checkpoint number at least as many as the keys (and `compactEvery`): writing checkpoints
 * then costs about one entry's worth per entry, however large the data, and a node's storage
 * holds about twice its data at most. Until then a restart replays those entries.
 */
export function maybeCompact(state: SingleLeaderState, out: Out): SingleLeaderState {
  const readable = readableLsn(state)
  let slowest = readable
  for (const target of replicationTargets(state)) slowest = Math.min(slowest, progressOf(state, target).match)
  const through = Math.max(slowest, readable - state.config.compactEvery)
  if (through - state.log.base.lsn < state.config.compactEvery) return state
  const log = compact(state.log, through)
  if (through - state.checkpointLsn < Math.max(state.config.compactEvery, log.base.data.size))
    return { ...state, log }
  out.push(checkpoint(state, log))
  return { ...state, log, checkpointLsn: log.base.lsn }
}
