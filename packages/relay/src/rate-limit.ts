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

/**
 * A token-bucket limiter: each bucket refills continuously at its rate up to its burst, and a
 * frame passes only if both buckets hold enough. Time is a parameter, so tests freeze it.
 */
export function createRateLimiter(limits: RateLimits, now: number): RateLimiter {
  let frames = limits.frameBurst
  let bytes = limits.byteBurst
  let updatedAt = now
  return {
    take(size, time) {
      const elapsed = Math.max(0, time - updatedAt) / 1000
      updatedAt = Math.max(updatedAt, time)
      frames = Math.min(limits.frameBurst, frames + elapsed * limits.framesPerSecond)
      bytes = Math.min(limits.byteBurst, bytes + elapsed * limits.bytesPerSecond)
      if (frames < 1 || bytes < size) return false
      frames -= 1
      bytes -= size
      return true
    },
  }
}
