import type { Dot, JsonValue, VersionVector } from '@chorus/core'
import type { ErrorReply, NodeInput } from '../machine.js'
import type { NodeId } from '../node-id.js'
import type { ReadRepairMode } from './config.js'
import type { Hint } from './state.js'
import type { Version } from './versions.js'

/**
 * Messages between quorum nodes. `op` names one coordinator's request (unique per coordinator
 * incarnation), so replies are matched to it and late replies to a finished request ignored.
 */
export type QuorumMessage =
  /**
   * A node that is not a home replica of the put's key hands the put to one that is (only a
   * home replica makes versions; see `Version`). `client` is whom the put came from.
   */
  | {
      readonly type: 'coordinate'
      readonly op: string
      readonly client: string
      readonly request: Extract<QuorumRequest, { type: 'put' }>
    }
  /**
   * The home replica's answer to a `coordinate`, relayed to the client as it is: an `error`
   * when the home refused the request (a context it can tell is not one it handed out; see
   * `checkOwnContext`), which only the home can judge.
   */
  | { readonly type: 'coordinated'; readonly op: string; readonly reply: PutReply | ErrorReply }
  /**
   * Store a put: the coordinator's whole sibling set of the key after the put (the new version
   * among them); with `hintFor`, keep it as a hint for that (down) home node instead.
   */
  | {
      readonly type: 'store'
      readonly op: string
      readonly key: string
      readonly versions: readonly Version[]
      readonly hintFor: NodeId | null
    }
  | { readonly type: 'stored'; readonly op: string }
  /**
   * Several `store`s at once: what a coordinator sends one replica for the puts of one batch
   * of its inputs (see {@link batchQuorumMessages}). Each item is handled as its own `store`.
   */
  | { readonly type: 'store-batch'; readonly items: readonly StoreItem[] }
  /** Several `stored`s at once: a replica's answer to the stores of one batch of its inputs. */
  | { readonly type: 'stored-batch'; readonly ops: readonly string[] }
  | { readonly type: 'fetch'; readonly op: string; readonly key: string }
  | {
      readonly type: 'fetched'
      readonly op: string
      readonly key: string
      readonly versions: readonly Version[]
    }
  /** Read repair: merge these versions; acknowledge when `op` is set (blocking repair). */
  | {
      readonly type: 'repair'
      readonly op: string | null
      readonly key: string
      readonly versions: readonly Version[]
    }
  | { readonly type: 'repaired'; readonly op: string }
  /** Hinted handoff: versions a stand-in kept for the receiver while it was down. */
  | {
      readonly type: 'handoff'
      readonly items: readonly {
        readonly hint: string
        readonly key: string
        readonly versions: readonly Version[]
      }[]
    }
  | { readonly type: 'handoff-ack'; readonly hints: readonly string[] }
  | { readonly type: 'ping'; readonly sentAt: number }
  | { readonly type: 'pong'; readonly sentAt: number }
  /** Merkle exchange: the sender's hashes of these tree nodes at `level`. */
  | {
      readonly type: 'ae-tree'
      readonly level: number
      readonly nodes: readonly (readonly [number, number])[]
    }
  /** Merkle exchange: the sender's per-key digests in leaves whose hashes differ. */
  | {
      readonly type: 'ae-digests'
      readonly leaves: readonly {
        readonly index: number
        readonly keys: readonly (readonly [string, number])[]
      }[]
    }
  /** Merkle exchange: versions of keys that differ, and the keys the sender wants back. */
  | {
      readonly type: 'ae-sync'
      readonly items: readonly (readonly [string, readonly Version[]])[]
      readonly want: readonly string[]
    }

/** One put's `store`, as an item of a `store-batch`. */
export type StoreItem = Omit<Extract<QuorumMessage, { type: 'store' }>, 'type'>

/** The `type` of every {@link QuorumMessage}. */
export const quorumMessageTypes = [
  'coordinate',
  'coordinated',
  'store',
  'stored',
  'store-batch',
  'stored-batch',
  'fetch',
  'fetched',
  'repair',
  'repaired',
  'handoff',
  'handoff-ack',
  'ping',
  'pong',
  'ae-tree',
  'ae-digests',
  'ae-sync',
] as const

/**
 * What a client asks any node (which then coordinates the request).
 *
 * A `put` carries the `context` of the read it builds on: the versions that context covers
 * are superseded, others stay as siblings. `w`, `r`, `sloppy` and `repair` override the
 * cluster's settings for this request (null: the cluster's).
 */
export type QuorumRequest =
  | {
      readonly type: 'put'
      readonly id: string
      readonly key: string
      readonly value: JsonValue
      readonly context: VersionVector
      readonly w: number | null
      readonly sloppy: boolean | null
    }
  | {
      readonly type: 'get'
      readonly id: string
      readonly key: string
      readonly r: number | null
      readonly repair: ReadRepairMode | null
    }
  | { readonly type: 'status'; readonly id: string }

/** The `type` of every {@link QuorumRequest}. */
export const quorumRequestTypes = ['put', 'get', 'status'] as const

/** Counters a quorum node keeps (volatile). */
export interface QuorumStats {
  /** Puts this node made a version for, as a home replica of the key. */
  readonly putsCoordinated: number
  /** Puts this node handed to a home replica of their key. */
  readonly putsForwarded: number
  readonly getsCoordinated: number
  /** Puts that counted a stand-in toward W. */
  readonly sloppyPuts: number
  readonly hintsStored: number
  readonly hintsDelivered: number
  /** Repairs sent or applied by this node as a read coordinator. */
  readonly readRepairs: number
  /** Versions this replica dropped under last-write-wins without the winner having seen them. */
  readonly lwwDiscarded: number
  readonly antiEntropyExchanges: number
  /** Keys whose versions this node sent in Merkle exchanges. */
  readonly antiEntropyKeysSent: number
  readonly timeouts: number
  readonly unavailable: number
}

/** What `status` reports. */
export interface QuorumStatus {
  readonly node: NodeId
  readonly keys: number
  readonly hints: number
  /** Peers this node currently believes up. */
  readonly up: readonly NodeId[]
  readonly stats: QuorumStats
}

/**
 * Why a coordinator gave up. `unavailable`: too few replicas up to try (nothing written).
 * `too-large`: the key's sibling set with this put would be longer than one peer message
 * carries (`MAX_BATCH_CHARS` of JSON), so it could never be replicated; nothing was written.
 * Settle the siblings first: put with the context a `get` (or the last `put-ok`) returned.
 */
export type QuorumRejectReason = 'unavailable' | 'timeout' | 'too-large'

/**
 * The answer to a put.
 *
 * `put-ok` returns, like Riak's `returnbody`, the coordinator's siblings of the key after the
 * write: the new version and every concurrent one it did not supersede. `context` covers all
 * of them, so a client that writes with it next supersedes exactly what it was shown. (A
 * context of "what was read, plus this write" cannot be said as a version vector when the
 * coordinator holds a concurrent version with a lower dot: it would claim that one too.)
 */
export type PutReply =
  | {
      readonly type: 'put-ok'
      readonly id: string
      readonly dot: Dot
      /** The context to write with next: this write and every sibling below. */
      readonly context: VersionVector
      /** The siblings' values after the write (this write's among them), in canonical order. */
      readonly values: readonly JsonValue[]
      readonly dots: readonly Dot[]
      /** True when a stand-in counted toward W. */
      readonly sloppy: boolean
    }
  | {
      readonly type: 'rejected'
      readonly id: string
      readonly reason: QuorumRejectReason
      /** True when some replica may have stored the write anyway. */
      readonly maybeApplied: boolean
    }

/** A node's answer to a client. */
export type QuorumReply =
  | PutReply
  | {
      readonly type: 'get-ok'
      readonly id: string
      /** Every sibling's value, in canonical order. */
      readonly values: readonly JsonValue[]
      /** The last-write-wins pick among them (null when none): the register view. */
      readonly value: JsonValue | null
      readonly context: VersionVector
      readonly dots: readonly Dot[]
    }
  | { readonly type: 'status'; readonly id: string; readonly status: QuorumStatus }
  | ErrorReply

/** A record of a quorum node's durable log. */
export type QuorumRecord =
  | { readonly type: 'version'; readonly key: string; readonly version: Version }
  | {
      readonly type: 'hint'
      readonly id: string
      readonly home: NodeId
      readonly key: string
      readonly versions: readonly Version[]
    }
  | { readonly type: 'hint-done'; readonly ids: readonly string[] }
  /**
   * The node started its life `number` as a coordinator (see `Incarnation`); durable before
   * any of that life's dots leaves ahead of its commit.
   */
  | { readonly type: 'incarnation'; readonly number: number }
  /**
   * A checkpoint's body (see `maybeCheckpoint`): every version and hint the node held, and its
   * clock, since the stamps it issued may all have been superseded and its clock must not
   * restart behind them. One record, so one row to write.
   */
  | {
      readonly type: 'snapshot'
      readonly clock: { readonly wall: number; readonly counter: number }
      readonly store: readonly (readonly [string, readonly Version[]])[]
      readonly hints: readonly Hint[]
    }

/** Inputs of a quorum node. */
export type QuorumInput = NodeInput<QuorumMessage, QuorumRequest>
