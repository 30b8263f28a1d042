import type { JsonObject, Row } from '@chorus/client'
import { type DependencyList, useMemo, useRef } from 'react'
import { jsonEqual } from './json-equal.js'
import { useCollection } from './use-collection.js'

/**
 * What `select` makes of the rows of collection `name` — a filter, an order, a page, a count —
 * kept current as the collection changes: `undefined` until the first load.
 *
 * `select` runs again when the rows change or one of `deps` does (list there whatever it reads
 * besides the rows, as for `useMemo`: a search term, a sort key). A result equal to the last
 * one — the same rows in the same order, or equal JSON — is handed back as the last one, so a
 * change to a row the selection leaves out renders nothing below, and `memo` components
 * given the rows skip those that did not change (rows keep their identity, as in
 * `useCollection`).
 */
export function useQuery<TValue extends object = JsonObject, TResult = readonly Row<TValue>[]>(
  name: string,
  select: (rows: readonly Row<TValue>[]) => TResult,
  deps: DependencyList = [],
): TResult | undefined {
  const rows = useCollection<TValue>(name)
  // biome-ignore lint/correctness/useExhaustiveDependencies: `select` is read anew whenever `deps` say it changed
  const result = useMemo(() => (rows === undefined ? undefined : select(rows)), [rows, ...deps])
  const last = useRef<{ readonly value: TResult | undefined } | null>(null)
  if (last.current !== null && sameResult(last.current.value, result)) return last.current.value
  last.current = { value: result }
  return result
}

/** The same rows in the same order (rows keep their identity), or equal JSON. */
function sameResult(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false
    if (a.every((item, index) => Object.is(item, b[index]))) return true
  }
  return jsonEqual(a, b)
}
