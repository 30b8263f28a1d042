import type { Change } from '../src/change.js'
import { formatHlc } from '../src/hlc.js'
import { asRecordId, type ReplicaId } from '../src/ids.js'
import type { LogEntry } from '../src/storage.js'

/** `replica`'s put of `{ n: counter }` to note `r<counter>`, with its counter as the dot. */
export function change(replica: ReplicaId, counter: number): Change {
  return {
    collection: 'notes',
    id: asRecordId(`r${counter}`),
    dot: [replica, counter],
    context: {},
    hlc: formatHlc({ wall: 1_700_000_000_000, counter: 0, replica }),
    op: { type: 'put', value: { n: counter } },
  }
}

/** Log positions `after + 1 … after + count`, each holding `writer`'s change of that counter. */
export function logEntries(writer: ReplicaId, after: number, count: number): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    seq: after + i + 1,
    change: change(writer, after + i + 1),
  }))
}
