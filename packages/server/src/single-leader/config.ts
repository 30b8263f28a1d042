import { ChorusError, ErrorCode } from '@chorus/core'
import { asNodeList, majorityOf, type NodeId } from '../node-id.js'

/**
 * How a leader decides a write is safe to acknowledge.
 *
 * - `async` — as soon as the leader's own log has it. Fast; a leader that fails before its
 *   followers receive a write loses it, though the client was told it succeeded.
 * - `semi-sync` — once `acks` followers have it durably, or, when `timeoutMs` passes first, on
 *   the leader's disk alone. That fallback is counted in the node's stats (`semiSyncFallbacks`)
 *   and reported to the client (`durability: 'leader'`). Only fallen-back writes can be lost on
 *   failover: a write acknowledged `replicated` is on `acks` + 1 nodes, and an election needs
 *   the votes of {@link electionQuorumOf} = max(majority, N − `acks`) members, so every electing
 *   group includes one of those nodes (N − `acks` + `acks` + 1 > N), and no voter elects a
 *   candidate less up to date than itself. The price when `acks` is below N − majority (N = 5,
 *   `acks` 1): elections need more than a majority (4 of 5), so fewer failures stop failover.
 * - `sync` — once a **majority** of the cluster (the leader counts itself) has it durably; not
 *   every follower. A write acknowledged this way survives any failover, because an election
 *   needs a majority too and a voter never elects a node less up to date than itself; and a
 *   minority of slow or failed followers cannot stall writes. To wait for every follower, use
 *   `chain` (or `semi-sync` with `acks` = the follower count, which keeps the timeout).
 * - `chain` — the followers form a chain behind the leader (head → … → tail, at first in
 *   `nodes` order); each node appends, then forwards; the write is acknowledged once the tail
 *   has it, so every node in the chain does. A member silent for `electionTimeoutMs` leaves the
 *   chain while the members answering are a majority, so it stalls writes for that long, not
 *   until it returns; back, it catches up at the end and is counted again (see `chain.ts`). A
 *   member alive but cut off from its neighbour still stalls writes.
 */
export type ReplicationMode =
  | { readonly mode: 'async' }
  | { readonly mode: 'semi-sync'; readonly acks: number; readonly timeoutMs: number }
  | { readonly mode: 'sync' }
  | { readonly mode: 'chain' }

/** A single-leader cluster's settings, shared by every node (see {@link createSingleLeaderConfig}). */
export interface SingleLeaderConfig {
  /** The voting members, which is also the chain order. Other nodes may join as learners. */
  readonly nodes: readonly NodeId[]
  readonly replication: ReplicationMode
  /**
   * When true (the default), every message, vote and storage append carries the sender's
   * epoch, and anything from an older epoch is refused: a deposed leader cannot commit. When
   * false — for teaching only — epochs are ignored: a promoted follower and the old leader both
   * accept writes (split brain) and followers take entries from either by position alone.
   */
  readonly fencing: boolean
  /** Followers elect a new leader when heartbeats stop (default true). */
  readonly autoFailover: boolean
  /**
   * When true (the default), a member whose election timer runs out first asks the others
   * whether they would vote for it (a *pre-vote*, which changes nothing anywhere) and moves to
   * a new epoch only when the election quorum would. A member cut off by a partition then keeps
   * its epoch instead of raising it at every timeout, and on its return does not depose a
   * healthy leader with that higher epoch. When false, a timed-out member stands at once.
   */
  readonly preVote: boolean
  /** How often a leader heartbeats its followers. */
  readonly heartbeatMs: number
  /**
   * How long a follower waits without a heartbeat before standing for election, and how long
   * after its last heartbeat it refuses to vote for anyone else (that refusal is what makes the
   * leader's lease safe). Each node adds a stagger that rotates with the epoch.
   */
  readonly electionTimeoutMs: number
  /**
   * How long a leader may act after a majority acknowledged a heartbeat it sent; reads and
   * writes are refused once it expires. Must be shorter than `electionTimeoutMs` (by more
   * than the clock drift between nodes, in a real deployment).
   */
  readonly leaseMs: number
  /** Resend entries a follower has not acknowledged after this long. */
  readonly resendMs: number
  /** Most entries per append message. */
  readonly maxBatch: number
  /**
   * Compact the log into a snapshot (in memory) once this many applied entries follow the last
   * one; a checkpoint on disk follows at most this often (see `maybeCompact`).
   */
  readonly compactEvery: number
}

/** What {@link createSingleLeaderConfig} accepts: everything but `nodes` has a default. */
export interface SingleLeaderConfigInput {
  readonly nodes: readonly string[]
  readonly replication?: ReplicationMode
  readonly fencing?: boolean
  readonly autoFailover?: boolean
  readonly preVote?: boolean
  readonly heartbeatMs?: number
  readonly electionTimeoutMs?: number
  readonly leaseMs?: number
  readonly resendMs?: number
  readonly maxBatch?: number
  readonly compactEvery?: number
}

/**
 * Checks and completes a single-leader cluster's settings; throws `invalid-argument` on a bad
 * one (an unknown mode, `acks` larger than the follower count, a lease not shorter than the
 * election timeout, …).
 */
export function createSingleLeaderConfig(input: SingleLeaderConfigInput): SingleLeaderConfig {
  const nodes = asNodeList(input.nodes, 'nodes')
  const replication = input.replication ?? { mode: 'sync' }
  const fail = (message: string): never => {
    throw new ChorusError(ErrorCode.InvalidArgument, message)
  }
  switch (replication.mode) {
    case 'async':
    case 'sync':
    case 'chain':
      break
    case 'semi-sync':
      if (
        !Number.isSafeInteger(replication.acks) ||
        replication.acks < 1 ||
        replication.acks > nodes.length - 1
      ) {
        fail(
          `semi-sync acks must be between 1 and the follower count (${nodes.length - 1}), got ${replication.acks}`,
        )
      }
      positive('semi-sync timeoutMs', replication.timeoutMs)
      break
    default:
      fail(
        `replication mode ${JSON.stringify((replication as { mode: unknown }).mode)} is unknown; use async, semi-sync, sync or chain`,
      )
  }
  const config: SingleLeaderConfig = {
    nodes,
    replication: { ...replication },
    fencing: input.fencing ?? true,
    autoFailover: input.autoFailover ?? true,
    preVote: flag('preVote', input.preVote, true),
    heartbeatMs: positive('heartbeatMs', input.heartbeatMs ?? 50),
    electionTimeoutMs: positive('electionTimeoutMs', input.electionTimeoutMs ?? 300),
    leaseMs: positive('leaseMs', input.leaseMs ?? 200),
    resendMs: positive('resendMs', input.resendMs ?? 100),
    maxBatch: positive('maxBatch', input.maxBatch ?? 64),
    compactEvery: positive('compactEvery', input.compactEvery ?? 256),
  }
  if (config.leaseMs >= config.electionTimeoutMs) {
    fail(`leaseMs (${config.leaseMs}) must be shorter than electionTimeoutMs (${config.electionTimeoutMs})`)
  }
  if (config.heartbeatMs >= config.leaseMs) {
    fail(`heartbeatMs (${config.heartbeatMs}) must be shorter than leaseMs (${config.leaseMs})`)
  }
  return Object.freeze(config)
}

/**
 * How many votes (the candidate's own included) elect a leader: a majority of the members, or,
 * in `semi-sync`, N − `acks` when that is more. With N − `acks` votes, any electing group and
 * any `acks` + 1 nodes holding a write acknowledged `replicated` share a node, which is what
 * makes semi-sync lose only writes acknowledged after a fallback. Two electing groups always
 * share a node too (the quorum is at least a majority), so an epoch has at most one leader.
 */
export function electionQuorumOf(config: Pick<SingleLeaderConfig, 'nodes' | 'replication'>): number {
  const majority = majorityOf(config.nodes.length)
  const mode = config.replication
  return mode.mode === 'semi-sync' ? Math.max(majority, config.nodes.length - mode.acks) : majority
}

function flag(name: string, value: boolean | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `${name} must be true or false, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${name} must be a positive integer, got ${value}`)
  }
  return value
}
