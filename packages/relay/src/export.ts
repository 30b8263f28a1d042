import { type Change, ChorusError, ErrorCode, type HubStore, type SpaceId } from '@chorus/core'

/**
 * A space's records as `chorus-relay export` and `GET /admin/spaces/NAME/records` give them:
 * one line of JSON per record, in key order (collection, then id), each with every version
 * the relay keeps of it — siblings of a conflict side by side, and deletions not yet
 * collected as versions whose `op` is `{"type":"delete"}`.
 *
 * `{"collection":"notes","id":"n1","versions":[{"dot":["r1",3],"hlc":"…","context":{…},"op":{"type":"put","value":{…}}}]}`
 */
export interface ExportedRecord {
  readonly collection: string
  readonly id: string
  readonly versions: readonly Omit<Change, 'collection' | 'id'>[]
}

/** Records read per page while exporting. */
export const EXPORT_PAGE = 500

/** The lines of the records whose versions `changes` holds, each record's together. */
export function exportLines(changes: readonly Change[]): string[] {
  const lines: string[] = []
  let current: { collection: string; id: string; versions: ExportedRecord['versions'][number][] } | null =
    null
  for (const change of changes) {
    const { collection, id, dot, hlc, context, op } = change
    if (current === null || current.collection !== collection || current.id !== id) {
      if (current !== null) lines.push(JSON.stringify(current))
      current = { collection, id, versions: [] }
    }
    current.versions.push({ dot, hlc, context, op })
  }
  if (current !== null) lines.push(JSON.stringify(current))
  return lines
}

/**
 * Every record of `space` in `store` as lines of {@link ExportedRecord}, read a page at a time
 * through `readSnapshot` (whose pages hold whole records). Rejects with `space-deleted` for a
 * deleted space.
 */
export async function* exportRecords(
  store: Pick<HubStore, 'loadSpace' | 'readSnapshot'>,
  space: SpaceId,
): AsyncGenerator<string> {
  if ((await store.loadSpace(space)).deleted === true) {
    throw new ChorusError(ErrorCode.SpaceDeleted, `space ${space} was deleted on this relay`)
  }
  let afterKey: string | null = null
  do {
    const page = await store.readSnapshot(space, afterKey, EXPORT_PAGE)
    yield* exportLines(page.changes)
    afterKey = page.nextKey
  } while (afterKey !== null)
}
