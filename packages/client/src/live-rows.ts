import type { JsonObject, RecordId } from '@chorus/core'
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
 * `fresh` has it, or gone when `fresh` has none of it. Unchanged rows are the same objects.
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
    if (at < rows.length && (rows[at] as Row<JsonObject>).id === id) at++
    const row = now.get(id)
    if (row !== undefined) out.push(freezeRow(row))
  }
  while (at < rows.length) out.push(rows[at++] as Row<JsonObject>)
  return out
}
