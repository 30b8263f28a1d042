import { approximateJsonLength, type JsonValue } from '@chorus/core'

/**
 * How much a node puts in one peer message when it batches entries, items or versions.
 *
 * A peer frame holds at least 8 Mi UTF-16 code units (`peerFrameLimit` of the TCP transport;
 * a longer one closes the connection), and the node API takes values of up to 1 MiB, so a
 * batch counted only in items could outgrow a frame: refused at every retry, it would stall
 * the stream for good. Batches are therefore also bounded by the JSON length of what they
 * carry, at half a frame, so the message's own fields never take a full batch over. An item
 * longer than the bound still goes, alone.
 */
export const MAX_BATCH_CHARS = 4 * 1024 * 1024

const lengths = new WeakMap<object, number>()

/**
 * The length of `item` as JSON text, in UTF-16 code units. Measured once per object: the
 * entries and versions batched are never changed after they are made, and one is often sent
 * to several peers.
 */
export function jsonChars(item: object): number {
  let length = lengths.get(item)
  if (length === undefined) {
    length = JSON.stringify(item)?.length ?? 0
    lengths.set(item, length)
  }
  return length
}

/**
 * No less than the length of `value` as JSON: six times core's allocation-free estimate
 * (`approximateJsonLength` counts no escapes, and an escape is at most six characters) while
 * that is small, so the small values most writes carry are never serialised to be measured;
 * a larger one is measured exactly ({@link jsonChars} for objects).
 */
export function jsonCharsBound(value: JsonValue): number {
  const bound = approximateJsonLength(value) * 6
  if (bound <= MEASURED_ABOVE) return bound
  return typeof value === 'object' && value !== null
    ? jsonChars(value)
    : (JSON.stringify(value) as string).length
}

/** Values whose bound is at most this are bounded, not measured, by {@link jsonCharsBound}. */
const MEASURED_ABOVE = 8 * 1024

/**
 * How many of `items`, from `start`, one message carries: at most `max`, and no more than
 * {@link MAX_BATCH_CHARS} of JSON between them (as `measure` reckons it: {@link jsonCharsBound}
 * by default, or any other bound no lower), but always at least one.
 */
export function countWithinBudget<T>(
  items: readonly T[],
  start: number,
  max: number,
  measure: (item: T) => number = jsonCharsBound as (item: T) => number,
): number {
  let chars = 0
  let count = 0
  while (count < max && start + count < items.length) {
    chars += measure(items[start + count] as T)
    if (count > 0 && chars > MAX_BATCH_CHARS) break
    count++
  }
  return count
}

/**
 * Splits `items` into runs that each fit one message ({@link countWithinBudget}, at most `max`
 * items, measured by `measure`). No items, no runs.
 */
export function splitWithinBudget<T>(
  items: readonly T[],
  max: number,
  measure: (item: T) => number = jsonCharsBound as (item: T) => number,
): T[][] {
  const runs: T[][] = []
  for (let start = 0; start < items.length; ) {
    const count = countWithinBudget(items, start, max, measure)
    runs.push(items.slice(start, start + count))
    start += count
  }
  return runs
}
