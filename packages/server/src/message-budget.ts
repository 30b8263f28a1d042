import type { JsonValue } from '@chorus/core'

/**
 * How much a node puts in one peer message when it batches entries, items or versions.
 *
 * A peer frame holds at most 8 Mi UTF-16 code units (`MAX_PEER_FRAME` of the TCP transport;
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
 * No less than the length of `value` as JSON, found cheaply for the small values most writes
 * carry: a number, boolean or null by its text, a short string at six characters per code unit
 * (the longest escape), so nothing is serialised for them; anything else is measured exactly
 * ({@link jsonChars} for objects).
 */
export function jsonCharsBound(value: JsonValue): number {
  switch (typeof value) {
    case 'number':
      return 24
    case 'boolean':
      return 5
    case 'string':
      return value.length <= SHORT_STRING ? value.length * 6 + 2 : (JSON.stringify(value) as string).length
    default:
      return value === null ? 4 : jsonChars(value)
  }
}

/** No less than the JSON length of a key or id string: six characters per code unit, quotes. */
export function stringCharsBound(text: string): number {
  return text.length * 6 + 3
}

/** Strings up to this long are bounded, not measured, by {@link jsonCharsBound}. */
const SHORT_STRING = 1024

/**
 * How many of `items`, from `start`, one message carries: at most `max`, and no more than
 * {@link MAX_BATCH_CHARS} of JSON between them (as `measure` reckons it: the exact length by
 * default, or a bound no lower), but always at least one.
 */
export function countWithinBudget<T>(
  items: readonly T[],
  start: number,
  max: number,
  measure: (item: T) => number = jsonChars as (item: T) => number,
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
  measure: (item: T) => number = jsonChars as (item: T) => number,
): T[][] {
  const runs: T[][] = []
  for (let start = 0; start < items.length; ) {
    const count = countWithinBudget(items, start, max, measure)
    runs.push(items.slice(start, start + count))
    start += count
  }
  return runs
}
