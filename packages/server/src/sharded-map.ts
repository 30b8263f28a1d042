import { hash32 } from './hash.js'

/** Shards of a {@link ShardedMap}: an update copies one of them and this many references. */
const SHARDS = 256

/**
 * An immutable string-keyed map whose updates are cheap: `with` returns a new map that shares
 * every shard but the key's with the old one, so an update copies about `size / 256` entries
 * and 256 references instead of the whole map.
 *
 * A machine's state is a value that every step replaces (a runtime keeps the state before a
 * batch to replay it), so a store of many keys copied whole on every write would cost each
 * write time in proportion to the data. Iteration visits shard by shard, each in insertion
 * order: callers must not depend on the order.
 */
export class ShardedMap<TValue> implements ReadonlyMap<string, TValue> {
  readonly size: number
  readonly #shards: readonly ReadonlyMap<string, TValue>[]

  private constructor(shards: readonly ReadonlyMap<string, TValue>[], size: number) {
    this.#shards = shards
    this.size = size
  }

  /** The empty map. */
  static empty<TValue>(): ShardedMap<TValue> {
    return new ShardedMap<TValue>(
      Array.from({ length: SHARDS }, () => new Map<string, TValue>()),
      0,
    )
  }

  /** A map of `entries` (a later entry for a key replaces an earlier one). */
  static from<TValue>(entries: Iterable<readonly [string, TValue]>): ShardedMap<TValue> {
    const shards = Array.from({ length: SHARDS }, () => new Map<string, TValue>())
    for (const [key, value] of entries) (shards[shardOf(key)] as Map<string, TValue>).set(key, value)
    return new ShardedMap<TValue>(
      shards,
      shards.reduce((sum, shard) => sum + shard.size, 0),
    )
  }

  get(key: string): TValue | undefined {
    return this.#shards[shardOf(key)]?.get(key)
  }

  has(key: string): boolean {
    return this.#shards[shardOf(key)]?.has(key) ?? false
  }

  /** A map with `key` set to `value`; this one is unchanged. */
  with(key: string, value: TValue): ShardedMap<TValue> {
    const index = shardOf(key)
    const shard = new Map(this.#shards[index])
    const added = shard.has(key) ? 0 : 1
    shard.set(key, value)
    const shards = this.#shards.slice()
    shards[index] = shard
    return new ShardedMap(shards, this.size + added)
  }

  *entries(): MapIterator<[string, TValue]> {
    for (const shard of this.#shards) yield* shard.entries()
  }

  *keys(): MapIterator<string> {
    for (const shard of this.#shards) yield* shard.keys()
  }

  *values(): MapIterator<TValue> {
    for (const shard of this.#shards) yield* shard.values()
  }

  forEach(callback: (value: TValue, key: string, map: ReadonlyMap<string, TValue>) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this)
  }

  [Symbol.iterator](): MapIterator<[string, TValue]> {
    return this.entries()
  }
}

function shardOf(key: string): number {
  return hash32(key) % SHARDS
}
