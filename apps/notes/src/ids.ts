const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789'

/** A new notebook's space id: 20 random characters that read unambiguously when typed from a link. */
export function newSpaceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20))
  return Array.from(bytes, (byte) => alphabet[byte % alphabet.length]).join('')
}

/** True when `value` can name a Chorus space: the client's own check, so that a link the app takes opens. */
export { isSpaceId } from '@chorus/client'
