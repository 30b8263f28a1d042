import { type RecordId, uuidV7FromBytes } from '@chorus/core'

/**
 * A new record id, a UUID version 7: the time `now` (default the system clock) in its first
 * 48 bits, then random bits. Ids made later sort after earlier ones — `list` and live queries
 * order by id, so the newest come last (first with `order: 'desc'`) — and devices that make
 * them offline do not collide.
 */
export function newRecordId(now: number = Date.now()): RecordId {
  return uuidV7FromBytes(now, globalThis.crypto.getRandomValues(new Uint8Array(16)))
}
