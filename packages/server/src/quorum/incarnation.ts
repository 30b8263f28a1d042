import type { NodeId } from '../node-id.js'
import type { QuorumRecord } from './messages.js'

/**
 * One life of a quorum node as a coordinator: from a start (or a rebuild from storage) to its
 * crash.
 *
 * **Why a coordinator changes identity at every start.** A put's stores leave before the
 * coordinator's own commit of the new version (the two fsyncs overlap). A context is a version
 * vector: `{ n1_3: 5 }` claims every dot 1…5 of `n1_3` for the key, which is true only if the
 * holder of dot 5 also knows dots 1…4. Within one life that holds: the coordinator numbers a
 * key's versions from what it holds in memory and ships its whole sibling set. A crash breaks
 * it: dot 5 may be at a replica while the coordinator's storage never got it, and a restarted
 * coordinator numbering from its storage would issue a second dot 5, or a dot 6 that travels
 * without the first dot 5, and a read seeing 6 would return a context claiming 5 unseen. So
 * each life makes its dots under an actor id of its own, `<node>_<incarnation>`, numbered from
 * 1 per key: a dot a dead life sent and never stored stays under that life's actor, whose
 * counters no later life advances, and no context can claim it without having seen it.
 *
 * The incarnation number is one past the highest recorded, and the record of it must be
 * durable before any of its dots leaves early: a node that crashed before the record was
 * durable would otherwise take the same number again. The first puts of a life are therefore
 * sent after their commit (the record's commit with them), as before; once a replica
 * acknowledges one of them, the record is known durable and later puts overlap.
 *
 * The cost: a key's contexts gain one entry for every life of a home replica that coordinated
 * a put of it. Entries of dead lives are never pruned: dropping `n1_3: 5` is safe only when no
 * version, hint, message in flight or client context anywhere still carries a dot of `n1_3`
 * for the key, which no node can know.
 */
export interface Incarnation {
  readonly number: number
  /** The actor id of this life's dots. */
  readonly actor: NodeId
  /**
   * The number of the first op whose put carried the incarnation record (null before any): a
   * replica's acknowledgement of a store with this op number or a later one proves the record
   * durable, because every store of this life leaves after the record's commit until then.
   */
  readonly recordedFrom: number | null
  /** True once the record is known durable: stores may then leave before their commit. */
  readonly durable: boolean
}

/** Longest node id of a quorum cluster: room for `_` and a ten-digit incarnation number. */
export const MAX_QUORUM_NODE_ID = 53

/** The actor id of `node`'s dots in incarnation `number`. */
export function actorOf(node: NodeId, number: number): NodeId {
  return `${node}_${number}` as NodeId
}

/**
 * The incarnation a node starts with, given its records: one past the highest recorded, or 1
 * for a storage that has none (one written before incarnations existed: its dots are under the
 * plain node id, an actor no life uses any more, so they stay readable and are never reissued).
 */
export function nextIncarnation(node: NodeId, records: readonly QuorumRecord[]): Incarnation {
  let highest = 0
  for (const record of records) if (record.type === 'incarnation') highest = Math.max(highest, record.number)
  const number = highest + 1
  return { number, actor: actorOf(node, number), recordedFrom: null, durable: false }
}

/**
 * The incarnation after a replica acknowledged the store of `op`: durable when `op` is this
 * life's and no older than the put that carried the record (op ids are `<prefix>.<number>`).
 */
export function afterAcknowledgement(incarnation: Incarnation, opPrefix: string, op: string): Incarnation {
  if (incarnation.durable || incarnation.recordedFrom === null) return incarnation
  if (!op.startsWith(opPrefix) || op.charCodeAt(opPrefix.length) !== 46) return incarnation
  const number = Number(op.slice(opPrefix.length + 1))
  if (!Number.isSafeInteger(number) || number < incarnation.recordedFrom) return incarnation
  return { ...incarnation, durable: true }
}
