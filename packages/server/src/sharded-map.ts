import { hash32 } from './hash.js'

/** Bits of a key's hash that pick a slot at each level of the trie (32 slots per array). */
const BITS = 5
const WIDTH = 1 << BITS
const MASK = WIDTH - 1

/** A bucket: the entries whose hashes agree on the 15 bits the three levels use. */
type Bucket<TValue> = readonly (readonly [string, TValue])[]
/** Level 2: 32 buckets. */
type Leaf<TValue> = readonly (Bucket<TValue> | undefined)[]
/** Level 1: 32 leaves. */
type Mid<TValue> = readonly (Leaf<TValue> | undefined)[]
/** Level 0 (the root): 32 mids. */
type Root<TValue> = readonly (Mid<TValue> | undefined)[]

/**
 * An immutable string-keyed map whose updates are cheap: `with` returns a new map that shares
 * all but one path of a three-level, 32-way trie (by the key's hash) with the old one, so an
 * update copies three arrays of 32 references and one bucket of about `size / 32768` entries,
 * whatever the map's size up to hundreds of thousands of keys.
 *
 * A machine's state is a value that every step replaces (a runtime keeps the state before a
 * batch to replay it), so a store of many keys copied whole on every write would cost each
 * write time in proportion to the data. (The map used to be 256 `Map` shards: an update copied
 * 256 references and a whole shard, about `size / 256` entries, which at a few thousand keys
 * was the largest cost of a quorum put's steps.) Empty parts of the trie are not allocated.
 * Iteration visits the trie in hash order, each bucket in insertion order: callers must not
 * depend on the order (it is deterministic for a given history).
 */
export class ShardedMap<TValue> implements ReadonlyMap<string, TValue> {
  readonly size: number
  readonly #root: Root<TValue>

  private constructor(root: Root<TValue>, size: number) {
    this.#root = root
    this.size = size
  }

  /** The empty map. */
  static empty<TValue>(): ShardedMap<TValue> {
    return new ShardedMap<TValue>(new Array<Mid<TValue> | undefined>(WIDTH).fill(undefined), 0)
  }

  /** A map of `entries` (a later entry for a key replaces an earlier one). */
  static from<TValue>(entries: Iterable<readonly [string, TValue]>): ShardedMap<TValue> {
    let map = ShardedMap.empty<TValue>()
    for (const [key, value] of entries) map = map.with(key, value)
    return map
  }

  get(key: string): TValue | undefined {
    const bucket = this.#bucketOf(key)
    if (bucket === undefined) return undefined
    for (const entry of bucket) if (entry[0] === key) return entry[1]
    return undefined
  }

  has(key: string): boolean {
    return this.#bucketOf(key)?.some((entry) => entry[0] === key) ?? false
  }

  /** A map with `key` set to `value`; this one is unchanged. */
  with(key: string, value: TValue): ShardedMap<TValue> {
    const h = hash32(key)
    const i0 = h >>> (32 - BITS)
    const i1 = (h >>> (32 - 2 * BITS)) & MASK
    const i2 = (h >>> (32 - 3 * BITS)) & MASK
    const mid = this.#root[i0]
    const leaf = mid?.[i1]
    const bucket = leaf?.[i2] ?? []
    const nextBucket = bucket.slice()
    const at = bucket.findIndex((entry) => entry[0] === key)
    const added = at < 0 ? 1 : 0
    nextBucket[at < 0 ? bucket.length : at] = [key, value]
    const nextLeaf = leaf === undefined ? emptySlots<Bucket<TValue>>() : leaf.slice()
    nextLeaf[i2] = nextBucket
    const nextMid = mid === undefined ? emptySlots<Leaf<TValue>>() : mid.slice()
    nextMid[i1] = nextLeaf
    const nextRoot = this.#root.slice()
    nextRoot[i0] = nextMid
    return new ShardedMap(nextRoot, this.size + added)
  }

  *entries(): MapIterator<[string, TValue]> {
    for (const mid of this.#root) {
      if (mid === undefined) continue
      for (const leaf of mid) {
        if (leaf === undefined) continue
        for (const bucket of leaf) {
          if (bucket === undefined) continue
          for (const [key, value] of bucket) yield [key, value]
        }
      }
    }
  }

  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key
  }

  *values(): MapIterator<TValue> {
    for (const [, value] of this.entries()) yield value
  }

  forEach(callback: (value: TValue, key: string, map: ReadonlyMap<string, TValue>) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this)
  }

  [Symbol.iterator](): MapIterator<[string, TValue]> {
    return this.entries()
  }

  #bucketOf(key: string): Bucket<TValue> | undefined {
    const h = hash32(key)
    return this.#root[h >>> (32 - BITS)]?.[(h >>> (32 - 2 * BITS)) & MASK]?.[(h >>> (32 - 3 * BITS)) & MASK]
  }
}

function emptySlots<TSlot>(): (TSlot | undefined)[] {
  return new Array<TSlot | undefined>(WIDTH).fill(undefined)
}
