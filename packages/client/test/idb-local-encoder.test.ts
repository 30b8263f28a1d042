import { asRecordId, asReplicaId, type Change, type HlcStamp, type RecordId } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import {
  createLocalWriteEncoder,
  decodeOutboxChunk,
  decodeRecord,
  encodeOutboxItem,
  encodeRecord,
  encodeVersion,
} from '../src/storage/idb-layout.js'

const alice = asReplicaId('alice')
const bob = asReplicaId('bob')

function change(counter: number, id: string, op: Change['op'], collection = 'notes'): Change {
  return {
    collection,
    id: asRecordId(id),
    dot: [alice, counter],
    context: { [bob]: 2 },
    hlc: `001700000000000.${String(counter).padStart(6, '0')}@alice` as HlcStamp,
    op,
  }
}

const sibling: Change = {
  collection: 'notes',
  id: asRecordId('x'),
  dot: [bob, 3],
  context: {},
  hlc: '001700000000000.000009@bob' as HlcStamp,
  op: { type: 'put', value: { by: 'bob' } },
}

describe('the local-write encoder', () => {
  it('writes what encodeRecord and encodeOutboxItem write, and it decodes back', () => {
    const writes: { id: RecordId; versions: Change[]; change: Change }[] = []
    const put = change(1, 'a "quoted"\u2028 id', { type: 'put', value: { t: 'x', n: [1, { a: null }] } })
    writes.push({ id: put.id, versions: [put], change: put })
    const patch = change(
      2,
      'x',
      {
        type: 'patch',
        fields: { a: 1 },
        base: { b: 'two' },
        stamps: { b: '001600000000000.000000@bob' as HlcStamp },
        floor: null,
      },
      'other.collection',
    )
    writes.push({ id: patch.id, versions: [patch], change: patch })
    const concurrent = change(3, 'x', { type: 'put', value: { by: 'alice' } })
    writes.push({ id: concurrent.id, versions: [concurrent, sibling], change: concurrent })
    const removed = change(4, 'gone', { type: 'delete' })
    writes.push({ id: removed.id, versions: [removed], change: removed })
    const stamped = { ...change(5, 'y', { type: 'delete' }), hlc: '001700000000000.000005@bob' as HlcStamp }
    writes.push({ id: stamped.id, versions: [stamped], change: stamped })

    const encode = createLocalWriteEncoder()
    for (const { id, versions, change: made } of writes) {
      const text = encode({ id, state: { versions } }, made)
      const version = encodeVersion(made)
      expect(text.record).toEqual(encodeRecord(id, versions, { change: made, text: version }))
      expect(text.record).toEqual(encodeRecord(id, versions))
      expect(text.outbox).toBe(encodeOutboxItem(made, version))
      expect(decodeRecord(made.collection, text.record).state.versions).toEqual(versions)
      expect(decodeOutboxChunk({ first: made.dot[1], changes: `[${text.outbox}]` })).toEqual([made])
    }
  })
})
