import { ChorusError, ErrorCode, isReplicaId, type ReplicaId } from '@chorus/core'

/**
 * The name of a server node.
 *
 * Node ids follow the replica-id alphabet (letters, digits, `_`, `-`; at most 64) because they
 * key version vectors and suffix clock stamps in the quorum design, exactly as replica ids do.
 */
export type NodeId = ReplicaId

/** True when `value` is a well-formed node id. */
export function isNodeId(value: unknown): value is NodeId {
  return isReplicaId(value)
}

/** Checks and brands a node id; throws `invalid-argument` when malformed. */
export function asNodeId(value: string): NodeId {
  if (!isNodeId(value)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `node id ${JSON.stringify(value)} is invalid: use 1–64 letters, digits, '_' or '-', starting with a letter or digit`,
    )
  }
  return value
}

/**
 * Checks a cluster's member list: at least one node, every id well formed, no duplicates.
 *
 * Throws `invalid-argument` naming the first problem.
 */
export function asNodeList(values: readonly string[], what: string): readonly NodeId[] {
  if (!Array.isArray(values) || values.length === 0) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${what} must list at least one node id`)
  }
  const nodes = values.map(asNodeId)
  const seen = new Set<string>()
  for (const node of nodes) {
    if (seen.has(node)) throw new ChorusError(ErrorCode.InvalidArgument, `${what} names ${node} twice`)
    seen.add(node)
  }
  return Object.freeze(nodes)
}

/** The smallest number of `size` nodes that any two such groups share at least one of. */
export function majorityOf(size: number): number {
  return Math.floor(size / 2) + 1
}
