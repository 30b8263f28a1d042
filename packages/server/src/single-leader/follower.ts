import type { NodeId } from '../node-id.js'
import { adoptChain, chainAnswer, chainLsnAfterAppend, checkFed, reportChain } from './chain.js'
import {
  appendEntries,
  EMPTY_LOG,
  epochAt,
  epochRunStart,
  installSnapshot,
  lastLsn,
  type ReplicationLog,
  truncateAfter,
} from './log.js'
import type { LogEntry, SingleLeaderMessage, SingleLeaderRecord } from './messages.js'
import { serveParked } from './reads.js'
import { maybeCompact, replicate, resendStale } from './replication.js'
import { followLeader } from './roles.js'
import {
  bump,
  checkpoint,
  fenceEpoch,
  type Out,
  type SingleLeaderState,
  type SnapshotChunks,
} from './state.js'

type Append = Extract<SingleLeaderMessage, { type: 'append' }>
type Snapshot = Extract<SingleLeaderMessage, { type: 'snapshot' }>
type Heartbeat = Extract<SingleLeaderMessage, { type: 'heartbeat' }>

/**
 * Refuses a message from an older epoch (with fencing), answering with ours so the sender
 * learns it was deposed; with fencing off, a leader ignores another leader's stream instead
 * (two leaders side by side: split brain). Returns true when the message must be dropped.
 */
function refuse(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Append | Snapshot | Heartbeat,
): boolean {
  if (state.config.fencing) {
    if (message.epoch >= state.epoch) return false
    out.push({
      type: 'send',
      to: from,
      message:
        message.type === 'heartbeat'
          ? { type: 'heartbeat-ack', epoch: state.epoch, sentAt: message.sentAt, lastLsn: lastLsn(state.log) }
          : {
              type: 'append-ack',
              epoch: state.epoch,
              ok: false,
              lsn: lastLsn(state.log),
              sentAt: message.sentAt,
            },
    })
    return true
  }
  return state.role === 'leader' && message.leader !== state.id
}

/**
 * Entries from the leader (or, in a chain, from the predecessor).
 *
 * The receiver must hold `prevLsn` with epoch `prevEpoch`, or it answers where to resume (the
 * start of its conflicting epoch, so a whole divergent epoch is skipped in one round trip). An
 * entry that conflicts with one it holds — same LSN, other epoch — removes that entry and
 * everything after it: those were never committed. The receiver acknowledges only after the
 * entries are persisted, and commits no further than its log verifiably matches the leader's.
 * With fencing off, epochs are not compared at all: entries are taken by position, so two
 * leaders' writes can silently overwrite each other's slots.
 */
export function handleAppend(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Append,
  now: number,
): SingleLeaderState {
  if (refuse(state, out, from, message)) {
    return state.config.fencing ? bump(state, 'staleEpochRefused') : state
  }
  let next = followLeader(state, out, message.epoch, message.leader, now)
  const fencing = next.config.fencing
  const ack = (ok: boolean, lsn: number) =>
    out.push({
      type: 'send',
      to: from,
      message: {
        type: 'append-ack',
        epoch: next.epoch,
        ok,
        lsn,
        sentAt: message.sentAt,
        ...(message.parts === undefined ? {} : { parts: message.parts }),
        ...chainAnswer(next),
      },
    })
  let log = next.log
  if (message.prevLsn > lastLsn(log)) {
    ack(false, lastLsn(log))
    return next
  }
  if (fencing && epochAt(log, message.prevLsn) !== message.prevEpoch) {
    if (message.prevLsn <= log.base.lsn) {
      next = resetLog(next, out)
      ack(false, 0)
      return next
    }
    ack(false, Math.max(log.base.lsn, epochRunStart(log, message.prevLsn) - 1))
    return next
  }
  const records: SingleLeaderRecord[] = []
  const fresh: LogEntry[] = []
  let commitLsn = next.commitLsn
  let durableLsn = next.durableLsn
  let matchedLsn = next.matchedLsn
  let chainLsn = next.chainLsn
  let truncated = 0
  for (const entry of message.entries) {
    if (entry.lsn <= log.base.lsn) continue
    if (fresh.length === 0 && entry.lsn <= lastLsn(log)) {
      if (!fencing || epochAt(log, entry.lsn) === entry.epoch) continue
      truncated += lastLsn(log) - (entry.lsn - 1)
      log = truncateAfter(log, entry.lsn - 1)
      records.push({ type: 'truncate', after: entry.lsn - 1 })
      commitLsn = Math.min(commitLsn, entry.lsn - 1)
      durableLsn = Math.min(durableLsn, entry.lsn - 1)
      matchedLsn = Math.min(matchedLsn, entry.lsn - 1)
      chainLsn = Math.min(chainLsn, entry.lsn - 1)
    }
    fresh.push(entry)
  }
  if (fresh.length > 0) {
    log = appendEntries(log, fresh)
    records.push({ type: 'entries', entries: fresh })
  }
  if (records.length > 0) out.push({ type: 'persist', records, epoch: fenceEpoch(next) })
  const matched = message.prevLsn + message.entries.length
  matchedLsn = Math.max(matchedLsn, Math.min(matched, lastLsn(log)))
  chainLsn = chainLsnAfterAppend({ ...next, chainLsn }, from, message, Math.min(matched, lastLsn(log)))
  next = {
    ...next,
    log,
    matchedLsn,
    chainLsn,
    durableLsn,
    commitLsn: Math.max(commitLsn, Math.min(message.commitLsn, matchedLsn)),
    leaderCommitLsn: Math.max(next.leaderCommitLsn, message.commitLsn),
  }
  if (truncated > 0) next = bump(next, 'entriesTruncated', truncated)
  if (fresh.length > 0 && message.epoch < next.epoch) next = bump(next, 'staleEpochAccepted', fresh.length)
  ack(true, matched)
  return afterProgress(next, out, now)
}

/**
 * A snapshot from a sender whose log no longer holds what this node needs. If this node's log
 * already has the snapshot's last entry, the entries after it stay; otherwise the whole log is
 * replaced.
 */
export function handleSnapshot(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Snapshot,
  now: number,
): SingleLeaderState {
  if (refuse(state, out, from, message)) {
    return state.config.fencing ? bump(state, 'staleEpochRefused') : state
  }
  let next = followLeader(state, out, message.epoch, message.leader, now)
  if (message.chunks !== undefined) {
    // A chunk: kept until every chunk of its sending is here; only then is the whole installed.
    const chunks = gatherChunk(next.snapshotChunks, from, message)
    if (chunks.received < chunks.data.length) return { ...next, snapshotChunks: chunks }
    next = { ...next, snapshotChunks: null }
    return installWhole(next, out, from, { ...message, data: chunks.data.flat() as Snapshot['data'] }, now)
  }
  return installWhole(next, out, from, message, now)
}

/**
 * Adds a snapshot chunk to those gathered from its sending; a chunk of another sending (another
 * sender, epoch, `lsn` or `sentAt`: a resend) starts over. A chunk already held changes nothing.
 */
function gatherChunk(gathered: SnapshotChunks | null, from: NodeId, message: Snapshot): SnapshotChunks {
  const count = message.chunks ?? 1
  const same =
    gathered !== null &&
    gathered.from === from &&
    gathered.epoch === message.epoch &&
    gathered.lsn === message.lsn &&
    gathered.sentAt === message.sentAt &&
    gathered.data.length === count
  const base: SnapshotChunks = same
    ? gathered
    : {
        from,
        epoch: message.epoch,
        lsn: message.lsn,
        sentAt: message.sentAt,
        data: new Array(count).fill(undefined),
        received: 0,
      }
  const chunk = message.chunk ?? 0
  if (base.data[chunk] !== undefined) return base
  const data = [...base.data]
  data[chunk] = message.data
  return { ...base, data, received: base.received + 1 }
}

/** Installs a whole snapshot (one message, or every chunk of one sending) and acknowledges it. */
function installWhole(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Snapshot,
  now: number,
): SingleLeaderState {
  let next = state
  const ack = () =>
    out.push({
      type: 'send',
      to: from,
      message: {
        type: 'append-ack',
        epoch: next.epoch,
        ok: true,
        lsn: message.lsn,
        sentAt: message.sentAt,
        ...chainAnswer(next),
      },
    })
  const keepSuffix = epochAt(next.log, message.lsn) === message.lastEpoch
  if (keepSuffix && message.lsn <= next.log.base.lsn) {
    ack()
    return next
  }
  const log = installSnapshot(
    next.log,
    { lsn: message.lsn, lastEpoch: message.lastEpoch, epochs: message.epochs, data: new Map(message.data) },
    keepSuffix,
  )
  out.push(checkpoint(next, log))
  const matchedLsn = keepSuffix ? Math.max(next.matchedLsn, message.lsn) : message.lsn
  next = bump(
    {
      ...next,
      log,
      checkpointLsn: log.base.lsn,
      matchedLsn,
      chainLsn: keepSuffix ? next.chainLsn : Math.min(next.chainLsn, message.lsn),
      durableLsn: keepSuffix ? next.durableLsn : 0,
      commitLsn: keepSuffix ? Math.max(next.commitLsn, message.lsn) : message.lsn,
      leaderCommitLsn: Math.max(next.leaderCommitLsn, message.commitLsn),
    },
    'snapshotsInstalled',
  )
  ack()
  return afterProgress(next, out, now)
}

/** A leader's heartbeat: renews the election timer, carries the commit point, feeds the lease. */
export function handleHeartbeat(
  state: SingleLeaderState,
  out: Out,
  from: NodeId,
  message: Heartbeat,
  now: number,
): SingleLeaderState {
  if (refuse(state, out, from, message)) {
    return state.config.fencing ? bump(state, 'staleEpochRefused') : state
  }
  let next = followLeader(state, out, message.epoch, message.leader, now)
  const chainBefore = next.chain
  next = adoptChain(next, message.chain)
  const matchedLsn =
    epochAt(next.log, message.lastLsn) === message.lastEpoch
      ? Math.max(next.matchedLsn, message.lastLsn)
      : next.matchedLsn
  next = {
    ...next,
    matchedLsn,
    commitLsn: Math.max(next.commitLsn, Math.min(message.commitLsn, matchedLsn)),
    leaderCommitLsn: Math.max(next.leaderCommitLsn, message.commitLsn),
  }
  const fed = checkFed(next, message.lastLsn, now)
  next = fed.state
  out.push({
    type: 'send',
    to: from,
    message: {
      type: 'heartbeat-ack',
      epoch: next.epoch,
      sentAt: message.sentAt,
      lastLsn: lastLsn(next.log),
      ...(next.chain === null ? {} : { view: next.chain.view }),
      ...(fed.unfed ? { unfed: true } : {}),
    },
  })
  // Repeated on every heartbeat: a lost chain-ack would otherwise stall the leader's commit.
  reportChain(next, out)
  // A new view may give this node a new successor: probe it at once.
  if (next.chain?.view !== chainBefore?.view) next = resendStale(next, out, now)
  next = serveParked(next, out, now)
  return maybeCompact(next, out)
}

/** After this node's log or commit moved: forward along the chain, report as tail, serve reads. */
function afterProgress(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  let next = replicate(state, out, now)
  reportChain(next, out)
  next = serveParked(next, out, now)
  return maybeCompact(next, out)
}

/** A follower's or chain member's timer: probe a stalled successor. */
export function followerTick(state: SingleLeaderState, out: Out, now: number): SingleLeaderState {
  return resendStale(state, out, now)
}

/**
 * Drops a log whose compacted part disagrees with the leader's (only possible after an
 * asynchronous leader lost entries): the sender then streams a snapshot.
 */
function resetLog(state: SingleLeaderState, out: Out): SingleLeaderState {
  const log: ReplicationLog = EMPTY_LOG
  out.push(checkpoint(state, log))
  const removed = lastLsn(state.log)
  return bump(
    { ...state, log, checkpointLsn: 0, commitLsn: 0, durableLsn: 0, matchedLsn: 0, chainLsn: 0 },
    'entriesTruncated',
    removed,
  )
}
