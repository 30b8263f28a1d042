import { describe, expect, it } from 'vitest'
import { ShardedMap } from '../src/sharded-map.js'

describe('ShardedMap', () => {
  it('returns a new map from with() and leaves the old one as it was', () => {
    const empty = ShardedMap.empty<number>()
    const one = empty.with('a', 1)
    const two = one.with('b', 2).with('a', 3)
    expect(empty.size).toBe(0)
    expect(empty.get('a')).toBeUndefined()
    expect(one.get('a')).toBe(1)
    expect(one.has('b')).toBe(false)
    expect(two.size).toBe(2)
    expect(two.get('a')).toBe(3)
    expect(two.get('b')).toBe(2)
  })

  it('holds what a Map of the same entries holds, by every way of reading it', () => {
    const entries = Array.from({ length: 2_000 }, (_, i) => [`key-${i % 1_500}`, i] as const)
    const map = new Map(entries)
    let sharded = ShardedMap.from(entries.slice(0, 700))
    for (const [key, value] of entries.slice(700)) sharded = sharded.with(key, value)
    expect(sharded.size).toBe(map.size)
    expect(new Map(sharded)).toEqual(map)
    expect(new Map(sharded.entries())).toEqual(map)
    expect(new Set(sharded.keys())).toEqual(new Set(map.keys()))
    expect([...sharded.values()].sort((a, b) => a - b)).toEqual([...map.values()].sort((a, b) => a - b))
    const seen = new Map<string, number>()
    sharded.forEach((value, key) => {
      seen.set(key, value)
    })
    expect(seen).toEqual(map)
  })
})
