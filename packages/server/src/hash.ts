/**
 * A 32-bit non-cryptographic string hash (cyrb53's mixing, folded to 32 bits), for placing
 * keys on the ring and checksumming stored rows.
 *
 * Deterministic across processes and platforms, which is all the hash ring and the Merkle
 * trees need: every node must place a key, and digest a range, exactly as every other does.
 * Not for security: keys come from applications, and a hostile one could aim at a node.
 */
export function hash32(text: string): number {
  const [h1, h2] = mix(text)
  return (h1 ^ h2) >>> 0
}

/**
 * The same hash at its full 53 bits (a safe integer), for digests that replicas compare to
 * find what differs. Two different version sets of a key that share a digest keep sharing it
 * until one of them changes, so the replica behind is not repaired meanwhile: a chance of
 * 2^-32 per differing key with 32 bits, 2^-53 with these.
 */
export function hash53(text: string): number {
  const [h1, h2] = mix(text)
  return 4_294_967_296 * (2_097_151 & h2) + (h1 >>> 0)
}

function mix(text: string): [number, number] {
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ code, 2_654_435_761)
    h2 = Math.imul(h2 ^ code, 1_597_334_677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2_246_822_507)
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3_266_489_909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2_246_822_507)
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3_266_489_909)
  return [h1, h2]
}
