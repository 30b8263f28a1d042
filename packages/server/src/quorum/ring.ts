import { hash32 } from '../hash.js'
import type { NodeId } from '../node-id.js'

/** One virtual node: a position on the ring owned by a physical node. */
export interface RingPoint {
  readonly token: number
  readonly node: NodeId
}

/**
 * A consistent-hash ring: each node owns `vnodes` positions (tokens) in the 32-bit hash space.
 *
 * A key belongs to the first position at or after its hash, going clockwise; its replicas are
 * the first N distinct nodes met from there. Virtual nodes spread each node's share over many
 * small ranges, so keys divide evenly and a failed node's load falls on many others. Tokens
 * are hashes of `node#i`, so every node builds the same ring from the same member list.
 */
export interface HashRing {
  readonly points: readonly RingPoint[]
  readonly nodes: readonly NodeId[]
}

/** Builds the ring for `nodes` with `vnodes` positions each. */
export function createHashRing(nodes: readonly NodeId[], vnodes: number): HashRing {
  const points: RingPoint[] = []
  for (const node of nodes) {
    for (let i = 0; i < vnodes; i++) points.push({ token: hash32(`${node}#${i}`), node })
  }
  points.sort((a, b) => a.token - b.token || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0))
  return { points, nodes: [...nodes] }
}

/** Where a key sits on the ring. */
export function keyToken(key: string): number {
  return hash32(`key:${key}`)
}

/**
 * The first `count` distinct nodes clockwise from `key`'s position: its preference list. The
 * first N are the key's home replicas; the rest stand in for them under a sloppy quorum.
 */
export function preferenceList(ring: HashRing, key: string, count: number): NodeId[] {
  const token = keyToken(key)
  const points = ring.points
  let low = 0
  let high = points.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if ((points[middle] as RingPoint).token < token) low = middle + 1
    else high = middle
  }
  const result: NodeId[] = []
  const wanted = Math.min(count, ring.nodes.length)
  for (let step = 0; step < points.length && result.length < wanted; step++) {
    const node = (points[(low + step) % points.length] as RingPoint).node
    if (!result.includes(node)) result.push(node)
  }
  return result
}
