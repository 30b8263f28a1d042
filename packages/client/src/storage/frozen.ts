import { type Change, freezeJson, type JsonValue, type RecordState, type StoredRecord } from '@chorus/core'

/**
 * Deep-freezes data read back from a database, as the engine freezes what it stores in memory:
 * a value an application reads must not be editable behind the engine's back. Records and
 * changes are plain JSON data, so core's JSON freezer applies.
 */
export function frozen<TData extends RecordState | StoredRecord | Change>(data: TData): TData {
  freezeJson(data as unknown as JsonValue)
  return data
}
