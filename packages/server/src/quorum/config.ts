import { ChorusError, ErrorCode } from '@chorus/core'
import { asNodeList, type NodeId } from '../node-id.js'
import { MAX_QUORUM_NODE_ID } from './incarnation.js'
import type { ConflictMode } from './versions.js'

/**
 * What a coordinator does when the replicas it read disagree.
 *
 * - `off`: nothing; anti-entropy and later writes repair them.
 * - `async`: answer the client at once, then send the merged versions to stale home replicas.
 * - `blocking`: write the merged versions back until `W` home replicas hold them, then answer
 *   (every other home replica the read hears holding less is repaired too, without waiting).
 *   With W + R > N and a strict quorum this makes reads linearizable for last-write-wins
 *   registers (a read's result is on a write quorum before anyone sees it, so no later read
 *   can miss it); `async` read repair leaves a window in which a later read returns older data.
 */
export type ReadRepairMode = 'off' | 'async' | 'blocking'

/** A quorum cluster's settings, shared by every node (see {@link createQuorumConfig}). */
export interface QuorumConfig {
  readonly nodes: readonly NodeId[]
  /** N: how many replicas hold each key. */
  readonly replicas: number
  /** W: acknowledgements a write waits for (a request may ask for another). */
  readonly writeQuorum: number
  /** R: replies a read waits for (a request may ask for another). */
  readonly readQuorum: number
  /** Ring positions per node. */
  readonly vnodes: number
  /**
   * Sloppy quorum: when a home replica is believed down, the next healthy node on the ring
   * takes its writes as hints and counts toward W, so writes stay available through a
   * partition — and W + R > N no longer guarantees that a read meets the latest write.
   */
  readonly sloppy: boolean
  readonly readRepair: ReadRepairMode
  readonly conflicts: ConflictMode
  /** A coordinator gives up on a request after this long. */
  readonly requestTimeoutMs: number
  /** Nodes ping each other this often. */
  readonly pingMs: number
  /** A peer not heard from for this long is believed down. */
  readonly failureTimeoutMs: number
  /** A stand-in offers its hints to their home nodes this often. */
  readonly handoffMs: number
  /** Each node starts a Merkle exchange with one peer this often; 0 turns anti-entropy off. */
  readonly antiEntropyMs: number
  /** The Merkle trees have 2^merkleDepth leaves. */
  readonly merkleDepth: number
  /** Most hints per handoff message. */
  readonly maxBatch: number
  /**
   * A node writes a checkpoint (see `maybeCheckpoint`) once it has persisted this many records
   * since the last, and at least twice as many as it holds keys and hints.
   */
  readonly checkpointRecords: number
}

/** What {@link createQuorumConfig} accepts: everything but `nodes` has a default. */
export interface QuorumConfigInput {
  readonly nodes: readonly string[]
  readonly replicas?: number
  readonly writeQuorum?: number
  readonly readQuorum?: number
  readonly vnodes?: number
  readonly sloppy?: boolean
  readonly readRepair?: ReadRepairMode
  readonly conflicts?: ConflictMode
  readonly requestTimeoutMs?: number
  readonly pingMs?: number
  readonly failureTimeoutMs?: number
  readonly handoffMs?: number
  readonly antiEntropyMs?: number
  readonly merkleDepth?: number
  readonly maxBatch?: number
  readonly checkpointRecords?: number
}

/**
 * Checks and completes a quorum cluster's settings; throws `invalid-argument` on a bad one
 * (N larger than the cluster, W or R outside 1..N, an unknown mode, a node id that leaves no
 * room for, or could be mistaken for, the actor id `<node>_<incarnation>` of a node's dots).
 */
export function createQuorumConfig(input: QuorumConfigInput): QuorumConfig {
  const nodes = asNodeList(input.nodes, 'nodes')
  const fail = (message: string): never => {
    throw new ChorusError(ErrorCode.InvalidArgument, message)
  }
  for (const node of nodes) {
    if (node.length > MAX_QUORUM_NODE_ID)
      fail(
        `node id ${node} is longer than ${MAX_QUORUM_NODE_ID} characters (its dots' actor ids add an incarnation)`,
      )
    const owner = nodes.find((other) => other !== node && new RegExp(`^${other}_[0-9]+$`).test(node))
    if (owner !== undefined)
      fail(
        `node id ${node} reads as an incarnation of ${owner} (<node>_<number> names a node's dots); rename it`,
      )
  }
  const replicas = count('replicas', input.replicas ?? Math.min(3, nodes.length), 1)
  if (replicas > nodes.length) fail(`replicas (N=${replicas}) cannot exceed the node count (${nodes.length})`)
  const majority = Math.floor(replicas / 2) + 1
  const writeQuorum = count('writeQuorum', input.writeQuorum ?? majority, 1)
  const readQuorum = count('readQuorum', input.readQuorum ?? majority, 1)
  if (writeQuorum > replicas) fail(`writeQuorum (W=${writeQuorum}) cannot exceed replicas (N=${replicas})`)
  if (readQuorum > replicas) fail(`readQuorum (R=${readQuorum}) cannot exceed replicas (N=${replicas})`)
  const readRepair = input.readRepair ?? 'async'
  if (!['off', 'async', 'blocking'].includes(readRepair)) {
    fail(`readRepair ${JSON.stringify(readRepair)} is unknown; use off, async or blocking`)
  }
  const conflicts = input.conflicts ?? 'siblings'
  if (conflicts !== 'siblings' && conflicts !== 'lww') {
    fail(`conflicts ${JSON.stringify(conflicts)} is unknown; use siblings or lww`)
  }
  const merkleDepth = count('merkleDepth', input.merkleDepth ?? 4, 0)
  if (merkleDepth > 12) fail(`merkleDepth must be at most 12, got ${merkleDepth}`)
  return Object.freeze({
    nodes,
    replicas,
    writeQuorum,
    readQuorum,
    vnodes: count('vnodes', input.vnodes ?? 16, 1),
    sloppy: input.sloppy ?? false,
    readRepair,
    conflicts,
    requestTimeoutMs: count('requestTimeoutMs', input.requestTimeoutMs ?? 500, 1),
    pingMs: count('pingMs', input.pingMs ?? 50, 1),
    failureTimeoutMs: count('failureTimeoutMs', input.failureTimeoutMs ?? 200, 1),
    handoffMs: count('handoffMs', input.handoffMs ?? 100, 1),
    antiEntropyMs: count('antiEntropyMs', input.antiEntropyMs ?? 0, 0),
    merkleDepth,
    maxBatch: count('maxBatch', input.maxBatch ?? 64, 1),
    checkpointRecords: count('checkpointRecords', input.checkpointRecords ?? 1024, 1),
  })
}

function count(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `${name} must be an integer of at least ${min}, got ${value}`,
    )
  }
  return value
}
