import { describe, expect, it } from 'vitest'
import { hash32 } from '../src/hash.js'
import { buildMerkleTree } from '../src/quorum/merkle.js'
import { digestOf, type Version } from '../src/quorum/versions.js'

/** A version of one write: what a digest reads of it is its dot and its stamp. */
function version(node: string, counter: number, wall: number): Version {
  return {
    dot: [node, counter],
    context: { [node]: counter },
    stamp: `${String(wall).padStart(15, '0')}.000000@${node}`,
    value: counter,
  } as unknown as Version
}

describe('quorum digests', () => {
  it('are safe integers, distinct across 300,000 version sets (as 32-bit ones are not)', () => {
    const sets: Version[][] = []
    for (let counter = 1; counter <= 100_000; counter++) {
      for (const node of ['n1', 'n2', 'n3']) sets.push([version(node, counter, 1_700_000_000_000 + counter)])
    }
    const texts = sets.map((set) => set.map((v) => `${v.dot[0]}:${v.dot[1]}@${v.stamp}`).join('|'))
    // The birthday bound: among 300,000 32-bit hashes about ten pairs are equal.
    expect(new Set(texts.map(hash32)).size).toBeLessThan(sets.length)
    expect(new Set(sets.map(digestOf)).size).toBe(sets.length)
    expect(sets.map(digestOf).every(Number.isSafeInteger)).toBe(true)
  })

  it('differ for two replicas whose only difference is a version whose 32-bit digests collide, and so do their Merkle roots', () => {
    // Two one-version sets of one key whose 32-bit digests are equal.
    const seen = new Map<number, Version[]>()
    let pair: [Version[], Version[]] | undefined
    for (let counter = 1; pair === undefined && counter <= 400_000; counter++) {
      const set = [version('n1', counter, 1_700_000_000_000)]
      const text = `${set[0]?.dot[0]}:${set[0]?.dot[1]}@${set[0]?.stamp}`
      const earlier = seen.get(hash32(text))
      if (earlier !== undefined) pair = [earlier, set]
      else seen.set(hash32(text), set)
    }
    expect(pair).toBeDefined()
    const [a, b] = pair as [Version[], Version[]]
    expect(digestOf(a)).not.toBe(digestOf(b))
    const tree = (set: Version[]) => buildMerkleTree([['the-key', digestOf(set)]], 4)
    expect(tree(a).levels[0]?.[0]).not.toBe(tree(b).levels[0]?.[0])
  })
})
