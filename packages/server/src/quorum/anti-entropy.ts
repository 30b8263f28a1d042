import { splitWithinBudget } from '../message-budget.js'
import type { NodeId } from '../node-id.js'
import { buildMerkleTree, type MerkleTree, nodeHash } from './merkle.js'
import type { QuorumMessage } from './messages.js'
import {
  believedUp,
  bumpStat,
  homeReplicas,
  type QuorumOut,
  type QuorumState,
  storeVersions,
} from './state.js'
import { digestOf, type Version } from './versions.js'

/**
 * Merkle-tree anti-entropy: background repair of replicas that missed writes.
 *
 * Every `antiEntropyMs` a node picks the next peer (round robin, skipping those believed
 * down) and sends the root of a tree over the keys they both replicate. Each side answers a
 * set of tree nodes with its own hashes of the children of those that differ, descending one
 * level per message; at the leaves the sides trade per-key digests, then only the versions of
 * keys that differ, in both directions. Merging versions is order-independent, so after an
 * exchange both hold the union for every key they compared. The exchange is stateless: each
 * message carries what its receiver needs to answer.
 */
export function startAntiEntropy(state: QuorumState, out: QuorumOut, now: number): QuorumState {
  const every = state.config.antiEntropyMs
  if (every === 0 || now - state.lastAntiEntropyAt < every) return state
  const nodes = state.config.nodes
  let cursor = state.antiEntropyCursor
  let peer: NodeId | undefined
  for (let step = 0; step < nodes.length && peer === undefined; step++) {
    const candidate = nodes[cursor % nodes.length] as NodeId
    cursor++
    if (candidate !== state.id && believedUp(state, candidate, now)) peer = candidate
  }
  const next = { ...state, lastAntiEntropyAt: now, antiEntropyCursor: cursor % nodes.length }
  if (peer === undefined) return next
  const tree = treeWith(next, peer)
  out.push({
    type: 'send',
    to: peer,
    message: { type: 'ae-tree', level: 0, nodes: [[0, nodeHash(tree, 0, 0)]] },
  })
  return bumpStat(next, 'antiEntropyExchanges')
}

/** The tree over the keys this node and `peer` both replicate. */
export function treeWith(state: QuorumState, peer: NodeId): MerkleTree {
  const entries: [string, number][] = []
  for (const [key, versions] of state.store) {
    const homes = homeReplicas(state, key)
    if (homes.includes(peer) && homes.includes(state.id)) entries.push([key, digestOf(versions)])
  }
  return buildMerkleTree(entries, state.config.merkleDepth)
}

/** The peer's hashes at one level: answer with ours one level down, or digests at the leaves. */
export function handleTree(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'ae-tree' }>,
): QuorumState {
  const tree = treeWith(state, from)
  const depth = tree.depth
  if (message.level > depth) return state
  const differing = message.nodes
    .filter(([index, hash]) => nodeHash(tree, message.level, index) !== hash)
    .map(([index]) => index)
  if (differing.length === 0) return state
  if (message.level < depth) {
    const level = message.level + 1
    const nodes = differing.flatMap((index) => [
      [2 * index, nodeHash(tree, level, 2 * index)] as const,
      [2 * index + 1, nodeHash(tree, level, 2 * index + 1)] as const,
    ])
    out.push({ type: 'send', to: from, message: { type: 'ae-tree', level, nodes } })
    return state
  }
  const leaves = differing.map((index) => ({ index, keys: tree.leaves[index] ?? [] }))
  // The receiver answers each message's leaves on their own: many keys go as several.
  for (const run of splitWithinBudget(leaves, Number.POSITIVE_INFINITY))
    out.push({ type: 'send', to: from, message: { type: 'ae-digests', leaves: run } })
  return state
}

/** The peer's digests in differing leaves: send our versions of keys that differ, ask for theirs. */
export function handleDigests(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'ae-digests' }>,
): QuorumState {
  const tree = treeWith(state, from)
  const items: [string, readonly Version[]][] = []
  const want: string[] = []
  for (const leaf of message.leaves) {
    const mine = new Map(tree.leaves[leaf.index] ?? [])
    const theirs = new Map(leaf.keys)
    for (const [key, digest] of theirs) {
      if (mine.get(key) === digest) continue
      want.push(key)
      const versions = state.store.get(key)
      if (versions !== undefined) items.push([key, versions])
    }
    for (const key of mine.keys()) {
      const versions = state.store.get(key)
      if (!theirs.has(key) && versions !== undefined) items.push([key, versions])
    }
  }
  if (items.length === 0 && want.length === 0) return state
  sendSync(out, from, items, want)
  return bumpStat(state, 'antiEntropyKeysSent', items.length)
}

/** Versions of differing keys: merge them, and send back the ones the peer asked for. */
export function handleSync(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'ae-sync' }>,
  now: number,
): QuorumState {
  let next = state
  for (const [key, versions] of message.items) {
    if (homeReplicas(next, key).includes(next.id)) next = storeVersions(next, out, key, versions, now).state
  }
  if (message.want.length === 0) return next
  const items: [string, readonly Version[]][] = []
  for (const key of message.want) {
    const versions = next.store.get(key)
    if (versions !== undefined) items.push([key, versions])
  }
  if (items.length === 0) return next
  sendSync(out, from, items, [])
  return bumpStat(next, 'antiEntropyKeysSent', items.length)
}

/**
 * Sends `items` and `want` as `ae-sync` messages that each fit a peer frame (see
 * `MAX_BATCH_CHARS`): the items and the keys wanted each spread over as many as they need
 * (the receiver handles every message on its own).
 */
function sendSync(
  out: QuorumOut,
  to: NodeId,
  items: readonly (readonly [string, readonly Version[]])[],
  want: readonly string[],
): void {
  const itemRuns = splitWithinBudget(items, Number.POSITIVE_INFINITY)
  const wantRuns = splitWithinBudget(want, Number.POSITIVE_INFINITY)
  const count = Math.max(1, itemRuns.length, wantRuns.length)
  for (let i = 0; i < count; i++) {
    out.push({
      type: 'send',
      to,
      message: { type: 'ae-sync', items: itemRuns[i] ?? [], want: wantRuns[i] ?? [] },
    })
  }
}
