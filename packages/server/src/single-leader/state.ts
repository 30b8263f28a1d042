import type { JsonValue } from '@chorus/core'
import type { NodeEffect } from '../machine.js'
import { majorityOf, type NodeId } from '../node-id.js'
import { electionQuorumOf, type SingleLeaderConfig } from './config.js'
import {
  appendEntries,
  EMPTY_LOG,
  epochAt,
  epochsThrough,
  installSnapshot,
  lastLsn,
  type ReplicationLog,
  truncateAfter,
} from './log.js'
import type {
  ChainView,
  LogEntry,
  SingleLeaderMessage,
  SingleLeaderRecord,
  SingleLeaderReply,
  SingleLeaderRequest,
  SingleLeaderRole,
  SingleLeaderStats,
  SingleLeaderStatus,
} from './messages.js'

/** What a leader (or a chain member, for its successor) knows of one follower's log. */
export interface FollowerProgress {
  /** The next LSN to send. */
  readonly next: number
  /** The follower's log matches ours through this LSN. */
  readonly match: number
  readonly lastSentAt: number
  /** The latest `sentAt` the follower echoed in this epoch: it heard us then (lease timing). */
  readonly ackedSentAt: number
  /**
   * Appends and snapshots sent to the follower that await their acknowledgement, counted per
   * part of a joined append (`parts`). At `MAX_IN_FLIGHT` new entries wait rather than going out
   * one message each: everything appended meanwhile travels in the next append.
   */
  readonly inFlight: number
  /** Chain mode: the `chainLsn` the target last answered with (see `chain.ts`); unknown at first. */
  readonly chainLsn?: number
  /** Chain mode, on a leader: the chain view the member last said it holds. */
  readonly chainView?: number
  /** Chain mode, on a leader: the member said, in `chainView`, that its predecessor does not feed it. */
  readonly unfed?: boolean
  /**
   * The end of the follower's log, as its latest `heartbeat-ack` in this epoch said. In chain
   * mode the leader sends appends to its successor alone, so `match` stands still for the
   * members after it: their lag is measured from this.
   */
  readonly heardLsn?: number
}

/** A write appended by the leader and not yet acknowledged to its client. */
export interface PendingWrite {
  readonly lsn: number
  readonly client: string
  readonly requestId: string
  readonly appendedAt: number
}

/** A client's write a leader holds until its lease is renewed (see `holdWrite`). */
export interface HeldWrite {
  readonly client: string
  readonly request: Extract<SingleLeaderRequest, { type: 'write' }>
}

/** A read waiting for this node to reach the client's token. */
export interface ParkedRead {
  readonly client: string
  readonly request: Extract<SingleLeaderRequest, { type: 'read' }>
  readonly deadline: number
}

/**
 * The whole state of a single-leader node: immutable, replaced by every step.
 *
 * Durable parts (epoch, vote, log) are rebuilt from storage by `recover`; everything else is
 * volatile and starts afresh after a crash, as it would in a real process.
 */
export interface SingleLeaderState {
  readonly id: NodeId
  readonly config: SingleLeaderConfig
  /** False for a learner: a node outside `config.nodes` that follows without voting. */
  readonly member: boolean
  readonly role: SingleLeaderRole
  readonly epoch: number
  readonly votedFor: NodeId | null
  readonly leader: NodeId | null
  readonly log: ReplicationLog
  /**
   * The base LSN of the last checkpoint this node persisted (see `maybeCompact`): its storage
   * holds that snapshot and the records after it, nothing older.
   */
  readonly checkpointLsn: number
  /**
   * The LSN through which this node's log is known committed and may be read: on a leader,
   * per the replication mode; on a follower, the leader's commit as far as its own log is
   * verified to match the leader's.
   */
  readonly commitLsn: number
  /**
   * The LSN through which this node's log, as it is now, is known to be on its disk: set when
   * the runtime reports its persists durable (`settleSingleLeader`), lowered at once when the
   * log loses entries. A leader's early appends (sent before its own append is durable) carry
   * no commit point beyond it.
   */
  readonly durableLsn: number
  /** Follower: the leader's commit LSN as last heard (for lag). */
  readonly leaderCommitLsn: number
  /** Follower: our log matches the current leader's through this LSN. */
  readonly matchedLsn: number
  /** The election timer's start: last contact from a current leader, a vote granted, or the start. */
  readonly lastHeardAt: number
  /**
   * Last contact from a current leader (or the start): for one election timeout after it, this
   * node ignores vote requests, which is the promise a leader's lease rests on.
   */
  readonly leaderContactAt: number
  readonly electionStartedAt: number
  /**
   * A member asking for pre-votes (see `preVote`): those that would vote for it in the next
   * epoch, itself included; null when it is not asking.
   */
  readonly preVotes: readonly NodeId[] | null
  readonly votes: readonly NodeId[]
  /** Leader: every other member and every learner. Chain follower: its successor only. */
  readonly progress: ReadonlyMap<NodeId, FollowerProgress>
  /** Leader: learners that asked to join. */
  readonly learners: readonly NodeId[]
  readonly pending: readonly PendingWrite[]
  /** Leader: writes that came while its lease had lapsed, oldest first (see `holdWrite`). */
  readonly held: readonly HeldWrite[]
  readonly parked: readonly ParkedRead[]
  /** Leader: the LSN of the no-op that opened its epoch; reads wait until it commits. */
  readonly noopLsn: number
  readonly becameLeaderAt: number
  readonly lastHeartbeatAt: number
  /**
   * Chain mode: a leader's chain; a follower's, as last heard from its leader (null until
   * then). See `chain.ts`.
   */
  readonly chain: ChainView | null
  /** Leader in chain mode: the LSN each member at or behind the tail reported in this view. */
  readonly chainAcks: ReadonlyMap<NodeId, number>
  /**
   * Follower in chain mode: how far this node and every node before it in `chain` hold the
   * leader's log, as its predecessor's appends in that view said.
   */
  readonly chainLsn: number
  /**
   * Follower in chain mode: the view and `chainLsn` its last heartbeat saw, and since when it
   * has held that `chainLsn` while lacking entries the leader holds (the last heartbeat's time
   * when it lacked none). See `unfedIn` in `chain.ts`.
   */
  readonly chainFed: { readonly view: number; readonly lsn: number; readonly since: number } | null
  /** Learner: last time it asked to join. */
  readonly lastJoinAt: number
  /** The chunks of a snapshot being received, until it holds them all (see `handleSnapshot`). */
  readonly snapshotChunks: SnapshotChunks | null
  readonly stats: SingleLeaderStats
}

/** A chunked snapshot's chunks received so far, from one sending. */
export interface SnapshotChunks {
  readonly from: NodeId
  readonly epoch: number
  readonly lsn: number
  readonly sentAt: number
  readonly data: readonly (readonly (readonly [string, JsonValue])[] | undefined)[]
  readonly received: number
}

/** Effects of a single-leader node. */
export type SingleLeaderEffect = NodeEffect<SingleLeaderMessage, SingleLeaderReply, SingleLeaderRecord>

/** Collects the effects of one step, in order. */
export type Out = SingleLeaderEffect[]

const zeroStats: SingleLeaderStats = {
  writesAccepted: 0,
  writesAcknowledged: 0,
  semiSyncFallbacks: 0,
  electionsStarted: 0,
  preVoteRounds: 0,
  becameLeader: 0,
  promotions: 0,
  staleEpochRefused: 0,
  staleEpochAccepted: 0,
  entriesTruncated: 0,
  snapshotsSent: 0,
  snapshotsInstalled: 0,
  readsServed: 0,
  readsNotYet: 0,
  writesHeld: 0,
  chainMembersRemoved: 0,
  chainMembersRestored: 0,
}

/**
 * Rebuilds a node from its durable records: epoch and vote, log entries, truncations and
 * snapshots, replayed in order. The node starts as a follower (a learner if it is not a member)
 * that heard from a leader just now, so it neither votes nor stands for election for one
 * election timeout: whatever it promised before the crash still holds.
 */
export function recoverSingleLeaderState(
  id: NodeId,
  config: SingleLeaderConfig,
  records: readonly SingleLeaderRecord[],
  now: number,
): SingleLeaderState {
  let epoch = 0
  let votedFor: NodeId | null = null
  let log = EMPTY_LOG
  // Runs of entries records are appended at once: one copy of the entries per run, not per
  // record (a log holds up to a checkpoint's worth of them).
  let entries: LogEntry[] = []
  const flush = () => {
    log = appendEntries(log, entries)
    entries = []
  }
  for (const record of records) {
    if (record.type === 'entries') {
      for (const entry of record.entries) entries.push(entry)
      continue
    }
    flush()
    switch (record.type) {
      case 'term':
        epoch = record.epoch
        votedFor = record.votedFor
        break
      case 'truncate':
        log = truncateAfter(log, record.after)
        break
      case 'snapshot':
        log = installSnapshot(
          log,
          { lsn: record.lsn, lastEpoch: record.lastEpoch, epochs: record.epochs, data: new Map(record.data) },
          record.keepSuffix,
        )
        break
    }
  }
  flush()
  const member = config.nodes.includes(id)
  return {
    id,
    config,
    member,
    role: member ? 'follower' : 'learner',
    epoch,
    votedFor,
    leader: null,
    log,
    checkpointLsn: log.base.lsn,
    commitLsn: log.base.lsn,
    durableLsn: lastLsn(log),
    leaderCommitLsn: log.base.lsn,
    matchedLsn: 0,
    lastHeardAt: now,
    leaderContactAt: now,
    electionStartedAt: now,
    preVotes: null,
    votes: [],
    progress: new Map(),
    learners: [],
    pending: [],
    held: [],
    parked: [],
    noopLsn: 0,
    becameLeaderAt: now,
    lastHeartbeatAt: now,
    chain: null,
    chainAcks: new Map(),
    chainLsn: 0,
    chainFed: null,
    lastJoinAt: Number.NEGATIVE_INFINITY,
    snapshotChunks: null,
    stats: zeroStats,
  }
}

/**
 * The state once every persist this node has emitted is durable (see `NodeMachine.settle`):
 * its whole log is on its disk.
 */
export function settleSingleLeader(state: SingleLeaderState): SingleLeaderState {
  const last = lastLsn(state.log)
  return state.durableLsn === last ? state : { ...state, durableLsn: last }
}

/** Adds `delta` to one counter. */
export function bump(
  state: SingleLeaderState,
  counter: keyof SingleLeaderStats,
  delta = 1,
): SingleLeaderState {
  return { ...state, stats: { ...state.stats, [counter]: state.stats[counter] + delta } }
}

/**
 * Refuses a client's write or leader read as `not-leader`, naming the leader this node follows
 * (none when this node leads but may not serve yet); `lsn` is the position the refusal reports.
 */
export function refuseNotLeader(
  state: SingleLeaderState,
  out: Out,
  client: string,
  id: string,
  lsn: number,
): void {
  out.push({
    type: 'reply',
    client,
    reply: {
      type: 'rejected',
      id,
      reason: 'not-leader',
      leader: state.role === 'leader' ? null : state.leader,
      maybeApplied: false,
      lsn,
    },
  })
}

/** The epoch carried by `persist` effects: storage fences older ones (none with fencing off). */
export function fenceEpoch(state: SingleLeaderState): number | null {
  return state.config.fencing ? state.epoch : null
}

/** Emits a record of the current epoch and vote. */
export function persistTerm(state: SingleLeaderState, out: Out): void {
  out.push({
    type: 'persist',
    records: [{ type: 'term', epoch: state.epoch, votedFor: state.votedFor }],
    epoch: fenceEpoch(state),
  })
}

/**
 * A checkpoint of this node with `log` as its log: its term, the log's base as a snapshot that
 * replaces any log, and the entries after the base. Persisted with `replace`, so the node's
 * storage drops every record before it (see `NodeStorage`): these records alone rebuild it.
 */
export function checkpoint(state: SingleLeaderState, log: ReplicationLog): SingleLeaderEffect {
  const records: SingleLeaderRecord[] = [
    { type: 'term', epoch: state.epoch, votedFor: state.votedFor },
    {
      type: 'snapshot',
      lsn: log.base.lsn,
      lastEpoch: log.base.epoch,
      epochs: epochsThrough(log, log.base.lsn),
      data: [...log.base.data],
      keepSuffix: false,
    },
  ]
  if (log.entries.length > 0) records.push({ type: 'entries', entries: log.entries })
  return { type: 'persist', records, epoch: fenceEpoch(state), replace: true }
}

/** Every voting member but this node. */
export function otherMembers(state: SingleLeaderState): NodeId[] {
  return state.config.nodes.filter((node) => node !== state.id)
}

/** How many votes or acknowledgements make a majority of the members. */
export function majority(state: SingleLeaderState): number {
  return majorityOf(state.config.nodes.length)
}

/** How many votes, the candidate's own included, elect a leader (see `electionQuorumOf`). */
export function electionQuorum(state: SingleLeaderState): number {
  return electionQuorumOf(state.config)
}

/**
 * The LSN a read may see here. A leader sees its commit point (in `async` and `semi-sync`,
 * everything it has appended); a follower, what it knows committed and holds.
 */
export function readableLsn(state: SingleLeaderState): number {
  return Math.min(state.commitLsn, lastLsn(state.log))
}

/**
 * When this leader's lease ends: `leaseMs` after the latest time at which a majority (itself
 * included) had heard from it, by the `sentAt` its followers echoed.
 *
 * Safe because a member that heard the leader at time t neither votes for another node nor
 * stands for election before t + `electionTimeoutMs`, which is longer than `leaseMs`: no other
 * leader can be elected before the lease ends.
 */
export function leaseExpiry(state: SingleLeaderState): number {
  const heard = otherMembers(state).map(
    (node) => state.progress.get(node)?.ackedSentAt ?? Number.NEGATIVE_INFINITY,
  )
  heard.sort((a, b) => b - a)
  const needed = majority(state) - 1
  if (needed === 0) return Number.POSITIVE_INFINITY
  return (heard[needed - 1] ?? Number.NEGATIVE_INFINITY) + state.config.leaseMs
}

/** True while this node leads and its lease holds (see {@link leaseExpiry}). */
export function leaseValid(state: SingleLeaderState, now: number): boolean {
  return state.role === 'leader' && leaseExpiry(state) > now
}

/** The epoch of the entry at `lsn` in this node's log. */
export function epochOf(state: SingleLeaderState, lsn: number): number | undefined {
  return epochAt(state.log, lsn)
}

/** The snapshot of what a node reports on `status`. */
export function statusOf(state: SingleLeaderState, now: number): SingleLeaderStatus {
  const followerLag: Record<string, number> = {}
  if (state.role === 'leader') {
    const last = lastLsn(state.log)
    for (const [node, progress] of state.progress) {
      const held =
        state.chain === null
          ? progress.match
          : Math.max(progress.match, Math.min(progress.heardLsn ?? 0, last))
      followerLag[node] = last - held
    }
  }
  return {
    node: state.id,
    role: state.role,
    epoch: state.epoch,
    leader: state.leader,
    lastLsn: lastLsn(state.log),
    commitLsn: state.commitLsn,
    snapshotLsn: state.log.base.lsn,
    lagLsn: state.role === 'leader' ? 0 : Math.max(0, state.leaderCommitLsn - readableLsn(state)),
    leaderHeardMsAgo: state.role === 'leader' ? null : Math.max(0, now - state.leaderContactAt),
    followerLag,
    electionQuorum: electionQuorum(state),
    chain: state.chain === null ? null : { nodes: state.chain.nodes, counted: state.chain.counted },
    stats: state.stats,
  }
}

/** The stored data as of the readable LSN, key by key (for checkers and tests). */
export function readableData(state: SingleLeaderState): Map<string, JsonValue> {
  return dataThrough(state, readableLsn(state)) ?? new Map(state.log.base.data)
}

/**
 * The data `state`'s log holds through `lsn`, key by key, or undefined when `lsn` lies inside
 * its compacted base (whose state before its end is gone).
 */
export function dataThrough(state: SingleLeaderState, lsn: number): Map<string, JsonValue> | undefined {
  const { base, entries } = state.log
  if (lsn < base.lsn) return undefined
  const data = new Map(base.data)
  for (const entry of entries) {
    if (entry.lsn > lsn) break
    if (entry.write !== null) data.set(entry.write.key, entry.write.value)
  }
  return data
}
