import { type JsonObject, jsonEqual, type ListOptions, type RecordId } from '@chorus/core'
import type { Frozen, Row } from './collection.js'

/**
 * A live query brings its rows up to date by reading only the records a change names while
 * they are at most this many, or a `LIVE_UPDATE_SHARE`th of its rows if that is more; past
 * that it lists the collection again.
 */
export const LIVE_UPDATE_MIN = 64
export const LIVE_UPDATE_SHARE = 8

export function freezeRow(row: { readonly id: RecordId; readonly value: JsonObject }): Row<JsonObject> {
  return Object.freeze({ id: row.id, value: row.value as Frozen<JsonObject> })
}

/**
 * `rows` (in id order, as `list` gives them) after the records `ids` changed: each is now as
 * `fresh` has it, or gone when `fresh` has none of it. Unchanged rows are the same objects,
 * also a changed record whose value is equal to the one it had (written again as it was).
 */
export function patchRows(
  rows: readonly Row<JsonObject>[],
  ids: ReadonlySet<string>,
  fresh: readonly { readonly id: RecordId; readonly value: JsonObject }[],
): readonly Row<JsonObject>[] {
  const now = new Map(fresh.map((row) => [row.id as string, row]))
  const touched = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const out: Row<JsonObject>[] = []
  let at = 0
  for (const id of touched) {
    // The rows before `id` stay as they were.
    while (at < rows.length && (rows[at] as Row<JsonObject>).id < id) out.push(rows[at++] as Row<JsonObject>)
    const old =
      at < rows.length && (rows[at] as Row<JsonObject>).id === id ? (rows[at++] as Row<JsonObject>) : null
    const row = now.get(id)
    if (row === undefined) continue
    out.push(old !== null && jsonEqual(old.value as JsonObject, row.value) ? old : freezeRow(row))
  }
  while (at < rows.length) out.push(rows[at++] as Row<JsonObject>)
  return out
}

/**
 * `rows`, read whole after the records `changed` names changed (null: unknown), with each
 * row of `previous` in place of its fresh copy where the record did not change — not named
 * by `changed`, or its value equal — so that a listener sees unchanged rows as the same
 * objects after a whole read as after a patch.
 */
export function keepRows(
  previous: readonly Row<JsonObject>[],
  rows: readonly { readonly id: RecordId; readonly value: JsonObject }[],
  changed: ReadonlySet<string> | null,
): Row<JsonObject>[] {
  const before = new Map(previous.map((row) => [row.id as string, row]))
  return rows.map((row) => {
    const old = before.get(row.id)
    if (old === undefined) return freezeRow(row)
    return (changed !== null && !changed.has(row.id)) || jsonEqual(old.value as JsonObject, row.value)
      ? old
      : freezeRow(row)
  })
}

/** Whether two results of a live query hold the same rows: the same ids, in order, with equal values. */
export function sameRows(a: readonly Row<JsonObject>[], b: readonly Row<JsonObject>[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Row<JsonObject>
    const y = b[i] as Row<JsonObject>
    if (x !== y && (x.id !== y.id || !jsonEqual(x.value as JsonObject, y.value as JsonObject))) return false
  }
  return true
}

/**
 * Whether changes to the records `ids` leave a page as it was, without reading it: the page
 * is full and every id comes after its last row in the page's order, where no row of it can
 * go. (A record before that may enter the page, or push its last row out.)
 */
export function pageUntouched(
  page: readonly Row<JsonObject>[],
  ids: ReadonlySet<string>,
  options: ListOptions,
): boolean {
  const last = page.at(-1)
  if (options.limit === undefined || page.length < options.limit || last === undefined) return false
  const desc = options.order === 'desc'
  for (const id of ids) if (desc ? id >= last.id : id <= last.id) return false
  return true
}
