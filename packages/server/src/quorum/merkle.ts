import { hash53 } from '../hash.js'
import { keyToken } from './ring.js'

/**
 * A Merkle tree over a set of keys, by ranges of the hash space.
 *
 * The hash space is cut into 2^depth equal ranges (the leaves, by the top `depth` bits of a
 * key's ring token). A leaf's hash digests its keys' version digests; an inner node's hash
 * digests its two children. Two replicas with equal roots hold the same versions; otherwise
 * they compare children, descend only into ranges that differ, and at the leaves exchange
 * per-key digests, so only keys that differ are ever sent. Level 0 is the root.
 */
export interface MerkleTree {
  readonly depth: number
  /** `levels[l][i]`: the hash of node `i` at level `l` (0 for an empty range). */
  readonly levels: readonly (readonly number[])[]
  /** The keys of each leaf, sorted, with their digests. */
  readonly leaves: readonly (readonly (readonly [string, number])[])[]
}

/** The leaf (range) a key falls in. */
export function leafOf(key: string, depth: number): number {
  return depth === 0 ? 0 : keyToken(key) >>> (32 - depth)
}

/** Builds the tree over `entries` (key and version digest). */
export function buildMerkleTree(entries: Iterable<readonly [string, number]>, depth: number): MerkleTree {
  const width = 2 ** depth
  const leaves: [string, number][][] = Array.from({ length: width }, () => [])
  for (const [key, digest] of entries) (leaves[leafOf(key, depth)] as [string, number][]).push([key, digest])
  for (const leaf of leaves) leaf.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const levels: number[][] = []
  levels[depth] = leaves.map((leaf) =>
    leaf.length === 0 ? 0 : hash53(leaf.map(([key, digest]) => `${key}\u0000${digest}`).join('\u0001')),
  )
  for (let level = depth - 1; level >= 0; level--) {
    const below = levels[level + 1] as number[]
    levels[level] = Array.from({ length: 2 ** level }, (_, i) => {
      const left = below[2 * i] as number
      const right = below[2 * i + 1] as number
      return left === 0 && right === 0 ? 0 : hash53(`${left}:${right}`)
    })
  }
  return { depth, levels, leaves }
}

/** The hash of node `index` at `level`. */
export function nodeHash(tree: MerkleTree, level: number, index: number): number {
  return tree.levels[level]?.[index] ?? 0
}
