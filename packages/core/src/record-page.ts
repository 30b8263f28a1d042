import type { RecordId } from './ids.js'
import type { RecordPage } from './storage.js'

/**
 * The records of `sorted` (in id order) that `page` asks for: in its order, after its
 * `after`, and at most its `limit` unless `unlimited` (a caller that skips some records and
 * reads on until it has enough). Reverses `sorted` in place for a descending page.
 */
export function recordsInPage<TRecord extends { readonly id: RecordId }>(
  sorted: TRecord[],
  page: RecordPage,
  unlimited = false,
): TRecord[] {
  const { after, order, limit } = page
  const ordered = order === 'asc' ? sorted : sorted.reverse()
  const rest =
    after === undefined
      ? ordered
      : ordered.filter((record) => (order === 'asc' ? record.id > after : record.id < after))
  return limit === undefined || unlimited ? rest : rest.slice(0, limit)
}
