/** Per-connection rate limits: two token buckets, one for frames and one for bytes. */
export interface RateLimits {
  /** Frames refilled per second. */
  readonly framesPerSecond: number
  /** Most frames accepted in a burst. */
  readonly frameBurst: number
  /** Bytes refilled per second. */
  readonly bytesPerSecond: number
  /** Most bytes accepted in a burst; at least the largest frame, or that frame never passes. */
  readonly byteBurst: number
}

/** Defaults: well above what a replica sends when it uploads a full window. */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  framesPerSecond: 200,
  frameBurst: 1000,
  bytesPerSecond: 8 * 1024 * 1024,
  byteBurst: 16 * 1024 * 1024,
}

/** Admits or refuses one connection's inbound frames. */
export interface RateLimiter {
  /** Takes one frame of `bytes` at time `now` (ms); false (and nothing taken) when over the limit. */
  take(bytes: number, now: number): boolean
}

/** The two buckets' contents, as plain fields: a relay keeps them on its per-connection object. */
export interface TokenBuckets {
  /** Frames left in the frame bucket. */
  frames: number
  /** Bytes left in the byte bucket. */
  bytes: number
  /** When the buckets were last refilled (ms). */
  updatedAt: number
}

/** Full buckets at time `now`. */
export function fullBuckets(limits: RateLimits, now: number): TokenBuckets {
  return { frames: limits.frameBurst, bytes: limits.byteBurst, updatedAt: now }
}

/**
 * Takes one frame of `size` bytes at `time` (ms) from `buckets`, refilling them first: each
 * refills continuously at its rate up to its burst, and the frame passes only if both hold
 * enough. False (and nothing taken) when over the limit.
 */
export function takeTokens(buckets: TokenBuckets, limits: RateLimits, size: number, time: number): boolean {
  const elapsed = Math.max(0, time - buckets.updatedAt) / 1000
  buckets.updatedAt = Math.max(buckets.updatedAt, time)
  buckets.frames = Math.min(limits.frameBurst, buckets.frames + elapsed * limits.framesPerSecond)
  buckets.bytes = Math.min(limits.byteBurst, buckets.bytes + elapsed * limits.bytesPerSecond)
  if (buckets.frames < 1 || buckets.bytes < size) return false
  buckets.frames -= 1
  buckets.bytes -= size
  return true
}

/**
 * A token-bucket limiter over {@link takeTokens}. Time is a parameter, so tests freeze it.
 */
export function createRateLimiter(limits: RateLimits, now: number): RateLimiter {
  const buckets = fullBuckets(limits, now)
  return { take: (size, time) => takeTokens(buckets, limits, size, time) }
}
