import type { JsonValue } from '@chorus/core'
import type { ErrorReply, NodeInput } from '../machine.js'
import type { NodeId } from '../node-id.js'

/**
 * One position of the replication log.
 *
 * `lsn` (log sequence number) counts from 1 without gaps; `epoch` is the leader's epoch when
 * it appended the entry. A (lsn, epoch) pair names one entry cluster-wide: two logs that hold
 * the same pair hold the same entries up to it (the log-matching rule every append checks).
 * `write` is null for the no-op a new leader appends to commit its epoch.
 */
export interface LogEntry {
  readonly lsn: number
  readonly epoch: number
  readonly write: { readonly key: string; readonly value: JsonValue; readonly id: string } | null
}

/** `[epoch, first lsn]`: where each epoch's entries begin in a log (a leader-epoch cache). */
export type EpochStart = readonly [epoch: number, startLsn: number]

/**
 * A chain-replication leader's current chain (see `chain.ts`): `nodes` in chain order, the
 * leader first; the first `counted` of them form the chain whose tail commits, and any after
 * them are members catching up at its end before they are counted. `view` numbers the
 * orders a leader has used in its epoch.
 */
export interface ChainView {
  readonly view: number
  readonly nodes: readonly NodeId[]
  readonly counted: number
}

/**
 * Messages between nodes. Every message from a leader carries its `epoch`; with fencing on a
 * receiver that knows a newer epoch refuses it and answers with its own, which deposes the
 * sender. `sentAt` is the sender's clock, echoed in acknowledgements to time the leader's lease.
 */
export type SingleLeaderMessage =
  /** Entries after `prevLsn`, which the receiver must hold with epoch `prevEpoch`. */
  | {
      readonly type: 'append'
      readonly epoch: number
      readonly leader: NodeId
      readonly prevLsn: number
      readonly prevEpoch: number
      readonly entries: readonly LogEntry[]
      readonly commitLsn: number
      readonly sentAt: number
      /**
       * How many appends a runtime joined into this one (`batchSingleLeaderMessages`); 1 when
       * absent. The acknowledgement echoes it, so the sender's count of appends in flight
       * stays true.
       */
      readonly parts?: number
      /**
       * Chain mode: the chain view the sender streams in, and `chainLsn`, how far the sender
       * and every node before it in that chain hold the leader's log (see `chain.ts`).
       */
      readonly view?: number
      readonly chainLsn?: number
    }
  /**
   * `ok`: the receiver's log matches through `lsn`; otherwise retry from `lsn + 1`. `parts`
   * echoes the append's (or sums those of joined acknowledgements); 1 when absent.
   */
  | {
      readonly type: 'append-ack'
      readonly epoch: number
      readonly ok: boolean
      readonly lsn: number
      readonly sentAt: number
      readonly parts?: number
      /** Chain mode: the receiver's `chainLsn` as it answers (see `chain.ts`). */
      readonly chainLsn?: number
    }
  /**
   * The sender's compacted state through `lsn`, for a receiver behind the sender's log. Data
   * longer than one message carries (`MAX_BATCH_CHARS`) goes as `chunks` messages, `chunk`
   * numbering each from 0, alike in every other field: the receiver installs the snapshot once it
   * holds every chunk of one sending (same sender, epoch, `lsn` and `sentAt`).
   */
  | {
      readonly type: 'snapshot'
      readonly epoch: number
      readonly leader: NodeId
      readonly lsn: number
      readonly lastEpoch: number
      readonly epochs: readonly EpochStart[]
      readonly data: readonly (readonly [string, JsonValue])[]
      readonly commitLsn: number
      readonly sentAt: number
      readonly chunk?: number
      readonly chunks?: number
    }
  /**
   * `lastLsn`/`lastEpoch` name the leader's last entry: a follower holding it knows its log
   * matches the leader's that far, even with no append in flight (after a restart, say).
   */
  | {
      readonly type: 'heartbeat'
      readonly epoch: number
      readonly leader: NodeId
      readonly commitLsn: number
      readonly lastLsn: number
      readonly lastEpoch: number
      readonly sentAt: number
      /**
       * Chain mode: the leader's current chain, sent to a member until it answers holding that
       * view (`view` of its `heartbeat-ack`).
       */
      readonly chain?: ChainView
    }
  | {
      readonly type: 'heartbeat-ack'
      readonly epoch: number
      readonly sentAt: number
      readonly lastLsn: number
      /** Chain mode: the view of the chain the member holds, if any. */
      readonly view?: number
      /**
       * Chain mode: in `view`, the member lacks entries the leader holds and its predecessor
       * has fed it none of them for an election timeout (a link cut between the two, say).
       */
      readonly unfed?: boolean
    }
  /**
   * From the chain's tail, and from members catching up behind it, to the leader: in chain
   * `view`, the sender and every node before it hold the leader's log through `lsn`.
   */
  | { readonly type: 'chain-ack'; readonly epoch: number; readonly view: number; readonly lsn: number }
  /** `force`: a manual promotion, which voters honour even while they still hear a leader. */
  | {
      readonly type: 'vote-request'
      readonly epoch: number
      readonly lastLsn: number
      readonly lastEpoch: number
      readonly force: boolean
    }
  | { readonly type: 'vote'; readonly epoch: number; readonly granted: boolean }
  /**
   * Would the receiver vote for the sender in `epoch` (the sender's next)? Asked before an
   * election (see `preVote`); answering changes nothing on either side.
   */
  | {
      readonly type: 'pre-vote-request'
      readonly epoch: number
      readonly lastLsn: number
      readonly lastEpoch: number
    }
  /** The answer to a `pre-vote-request` for `epoch`; `current` is the answering node's epoch. */
  | { readonly type: 'pre-vote'; readonly epoch: number; readonly granted: boolean; readonly current: number }
  /** A learner (a non-voting follower) asks the leader to stream the log to it. */
  | { readonly type: 'join' }

/** The `type` of every {@link SingleLeaderMessage}. */
export const singleLeaderMessageTypes = [
  'append',
  'append-ack',
  'snapshot',
  'heartbeat',
  'heartbeat-ack',
  'chain-ack',
  'vote-request',
  'vote',
  'pre-vote-request',
  'pre-vote',
  'join',
] as const

/**
 * What a client asks a node.
 *
 * Reads carry a token, `minLsn`: the highest LSN the client has written or read. A node whose
 * readable state is behind it answers `not-yet` (or waits up to `waitMs` for it), which gives
 * read-your-writes and monotonic reads on any follower. With `minEpoch`, the epoch of the
 * entry at `minLsn` (a write's `epoch`, a read's `lsnEpoch`), the token names that entry, not
 * just a position: a node whose entry there is of an older epoch holds another history (a
 * deposed semi-sync leader's fallbacks, which the new leader's log replaces) and answers
 * `not-yet` too; one whose entry is of a newer epoch holds the history that replaced the
 * token's (the token's entry was a lost fallback) and answers. `consistency: 'leader'` asks for a
 * linearizable read: only a leader holding its lease, with its epoch committed, answers.
 */
export type SingleLeaderRequest =
  | { readonly type: 'write'; readonly id: string; readonly key: string; readonly value: JsonValue }
  | {
      readonly type: 'read'
      readonly id: string
      readonly key: string
      readonly consistency: 'leader' | 'replica'
      readonly minLsn: number
      /** The epoch of the entry at `minLsn` (optional; see above). */
      readonly minEpoch?: number
      readonly waitMs: number
    }
  | { readonly type: 'status'; readonly id: string }

/** The `type` of every {@link SingleLeaderRequest}. */
export const singleLeaderRequestTypes = ['write', 'read', 'status'] as const

/**
 * Why a node refused a request.
 *
 * - `not-leader`: this node does not lead, or stepped down holding the write (it held it while
 *   its lease was renewed); `leader` names the one it follows, if any. Nothing was written.
 * - `not-yet`: this node has not applied the client's token yet. Nothing was read.
 * - `deposed`: the node lost leadership with the write appended but not acknowledged; the
 *   write may yet survive or vanish (`maybeApplied` is true).
 */
export type RejectReason = 'not-leader' | 'not-yet' | 'deposed'

/** A node's role. A learner follows without voting and is never elected. */
export type SingleLeaderRole = 'leader' | 'follower' | 'candidate' | 'learner'

/** Counters a node keeps; they survive only as long as its in-memory state. */
export interface SingleLeaderStats {
  readonly writesAccepted: number
  readonly writesAcknowledged: number
  /** Semi-sync writes acknowledged on the leader's disk alone after the timeout. */
  readonly semiSyncFallbacks: number
  readonly electionsStarted: number
  /** Pre-vote rounds this member started (see `preVote`); each that won began an election. */
  readonly preVoteRounds: number
  readonly becameLeader: number
  readonly promotions: number
  /** Messages refused because they came from an older epoch (fencing at work). */
  readonly staleEpochRefused: number
  /** Entries taken from a leader of an older epoch than this node's (only with fencing off). */
  readonly staleEpochAccepted: number
  readonly entriesTruncated: number
  readonly snapshotsSent: number
  readonly snapshotsInstalled: number
  readonly readsServed: number
  readonly readsNotYet: number
  /**
   * Writes a leader held because its lease had lapsed (its followers' answers came late), each
   * handled once an answer renewed it, or refused once it was no longer the leader.
   */
  readonly writesHeld: number
  /** Chain mode, on a leader: members it took out of the chain after they fell silent. */
  readonly chainMembersRemoved: number
  /** Chain mode, on a leader: members it counted in the chain again once they caught up. */
  readonly chainMembersRestored: number
}

/** What `status` reports. */
export interface SingleLeaderStatus {
  readonly node: NodeId
  readonly role: SingleLeaderRole
  readonly epoch: number
  readonly leader: NodeId | null
  readonly lastLsn: number
  readonly commitLsn: number
  readonly snapshotLsn: number
  /**
   * On a follower: how far its readable state trails the leader's commit, as last heard. A
   * follower cut off from the leader hears of no new commits, so this is a lower bound: read it
   * with {@link leaderHeardMsAgo}.
   */
  readonly lagLsn: number
  /**
   * Not on a leader (null there): milliseconds since this node last heard from a leader of its
   * epoch, or since it started if it never has. A figure past the election timeout means the
   * leader is out of reach and `lagLsn` may be far behind the truth.
   */
  readonly leaderHeardMsAgo: number | null
  /**
   * On a leader: how many entries each follower and learner lacks. In chain mode, for the
   * members past the leader's successor, from the log end their last heartbeat answer named.
   */
  readonly followerLag: { readonly [node: string]: number }
  /** Votes that elect a leader: a majority, or N − acks in semi-sync when that is more. */
  readonly electionQuorum: number
  /**
   * Chain mode: the chain as this node knows it (a leader's own, a follower's as last heard),
   * the leader first; the first `counted` commit, the rest catch up behind them. Otherwise null.
   */
  readonly chain: { readonly nodes: readonly NodeId[]; readonly counted: number } | null
  readonly stats: SingleLeaderStats
}

/** A node's answer to a client. */
export type SingleLeaderReply =
  | {
      readonly type: 'write-ok'
      readonly id: string
      readonly lsn: number
      readonly epoch: number
      /** `leader`: on the leader's disk only (async, or a semi-sync fallback). */
      readonly durability: 'leader' | 'replicated'
    }
  | {
      readonly type: 'read-ok'
      readonly id: string
      readonly value: JsonValue | null
      /** The LSN the read reflects: the client's next token. */
      readonly lsn: number
      /** The epoch of the entry at `lsn`: the token's `minEpoch`. */
      readonly lsnEpoch: number
      /** The node's epoch now. */
      readonly epoch: number
      readonly role: SingleLeaderRole
      readonly lagLsn: number
    }
  | {
      readonly type: 'rejected'
      readonly id: string
      readonly reason: RejectReason
      readonly leader: NodeId | null
      readonly maybeApplied: boolean
      /** For `not-yet`: the LSN this node can serve now. */
      readonly lsn: number
    }
  | { readonly type: 'status'; readonly id: string; readonly status: SingleLeaderStatus }
  | ErrorReply

/** A record of a node's durable log (see `NodeStorage`). */
export type SingleLeaderRecord =
  | { readonly type: 'term'; readonly epoch: number; readonly votedFor: NodeId | null }
  | { readonly type: 'entries'; readonly entries: readonly LogEntry[] }
  /** Entries after `after` are gone (they diverged from the leader's log). */
  | { readonly type: 'truncate'; readonly after: number }
  /**
   * State through `lsn`. `keepSuffix`: a compaction, later entries stay; otherwise an installed
   * snapshot that replaces the whole log.
   */
  | {
      readonly type: 'snapshot'
      readonly lsn: number
      readonly lastEpoch: number
      readonly epochs: readonly EpochStart[]
      readonly data: readonly (readonly [string, JsonValue])[]
      readonly keepSuffix: boolean
    }

/** Inputs of a single-leader node. Every input carries the node's clock, `now`. */
export type SingleLeaderInput =
  | NodeInput<SingleLeaderMessage, SingleLeaderRequest>
  /** An operator's manual failover: make this node the leader (see `fencing`). */
  | { readonly type: 'promote'; readonly now: number }
