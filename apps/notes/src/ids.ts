/**
 * A UUID version 7: 48 bits of Unix milliseconds, then random bits, so ids sort by creation
 * time and never collide between devices that create notes offline.
 */
export function uuidV7(now: number = Date.now()): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  let time = now
  for (let index = 5; index >= 0; index--) {
    bytes[index] = time % 256
    time = Math.floor(time / 256)
  }
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f)
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f)
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789'

/** A new notebook's space id: 20 random characters that read unambiguously when typed from a link. */
export function newSpaceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20))
  return Array.from(bytes, (byte) => alphabet[byte % alphabet.length]).join('')
}

/** True when `value` can name a Chorus space: the client's own check, so that a link the app takes opens. */
export { isSpaceId } from '@chorus/client'
