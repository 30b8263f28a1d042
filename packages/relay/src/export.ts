import type { Change } from '@chorus/core'

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
 * Every record of a space as lines of {@link ExportedRecord}, read a page at a time through
 * `readPage` (a store's `readSnapshot`, whose pages hold whole records).
 */
export async function* exportRecords(
  readPage: (
    afterKey: string | null,
    limit: number,
  ) => Promise<{ readonly changes: readonly Change[]; readonly nextKey: string | null }>,
): AsyncGenerator<string> {
  let afterKey: string | null = null
  do {
    const page = await readPage(afterKey, EXPORT_PAGE)
    yield* exportLines(page.changes)
    afterKey = page.nextKey
  } while (afterKey !== null)
}
