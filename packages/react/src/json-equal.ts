/**
 * Deep equality of JSON values (plain objects compared by their own keys, in any order).
 * Any other object — a `Map`, a `Set`, a `Date`, a class instance — equals only itself: its
 * contents are not in its own keys, so two of them with different contents would otherwise
 * compare equal.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((item, index) => jsonEqual(item, b[index]))
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false
  const aKeys = Object.keys(a)
  if (aKeys.length !== Object.keys(b).length) return false
  return aKeys.every(
    (key) =>
      Object.hasOwn(b, key) &&
      jsonEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
  )
}

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * `next`, with every item equal to one in `previous` (same key, same data) replaced by that
 * item — or `previous` itself when nothing changed. Components memoised on an item then skip
 * rendering items that did not change.
 */
export function reuseItems<TItem>(
  previous: readonly TItem[],
  next: readonly TItem[],
  keyOf: (item: TItem) => string,
): readonly TItem[] {
  let byKey: Map<string, TItem> | null = null
  let unchanged = previous.length === next.length
  const items = next.map((item, index) => {
    const atIndex = previous[index]
    let old: TItem | undefined = atIndex !== undefined && keyOf(atIndex) === keyOf(item) ? atIndex : undefined
    if (old === undefined) {
      byKey ??= new Map(previous.map((entry) => [keyOf(entry), entry]))
      old = byKey.get(keyOf(item))
    }
    if (old !== undefined && jsonEqual(old, item)) {
      if (old !== atIndex) unchanged = false
      return old
    }
    unchanged = false
    return item
  })
  return unchanged ? previous : Object.freeze(items)
}
