import { asRecordId, asReplicaId, type Change, type HlcStamp, type RecordId } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import {
  CHUNK_CHANGES,
  CHUNK_CHARS,
  decodeOutboxChunk,
  decodeRecord,
  encodeOutbox,
  encodeOutboxItem,
  encodeRecord,
  encodeVersion,
  type OutboxChunk,
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

/** Puts of `counter`s from `first` on, each with a value of about `chars` characters. */
function puts(first: number, count: number, chars: (n: number) => number): Change[] {
  return Array.from({ length: count }, (_, n) =>
    change(first + n, `id-${n}`, { type: 'put', value: { text: 'é'.repeat(chars(n)) } }),
  )
}

/** Every chunk `encodeOutbox` stores for `changes`, with its key. */
function chunksOf(changes: readonly Change[]): { key: number; chunk: OutboxChunk }[] {
  const chunks: { key: number; chunk: OutboxChunk }[] = []
  encodeOutbox(changes, (key, chunk) => chunks.push({ key, chunk }))
  return chunks
}

describe('the outbox encoder', () => {
  it('stores each change as encodeOutboxItem writes it, and the chunks decode back', () => {
    const put = change(1, 'a "quoted"\u2028 id', { type: 'put', value: { t: 'x', n: [1, { a: null }] } })
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
    const concurrent = change(3, 'x', { type: 'put', value: { by: 'alice' } })
    const removed = change(4, 'gone', { type: 'delete' })
    const stamped = { ...change(5, 'y', { type: 'delete' }), hlc: '001700000000000.000005@bob' as HlcStamp }
    const changes = [put, patch, concurrent, removed, stamped]
    const chunks = chunksOf(changes)
    expect(chunks).toEqual([
      {
        key: 5,
        chunk: {
          first: 1,
          changes: `[${changes.map((made) => encodeOutboxItem(made, encodeVersion(made))).join(',')}]`,
        },
      },
    ])
    expect(decodeOutboxChunk(chunks[0]?.chunk as OutboxChunk)).toEqual(changes)
  })

  it('holds at most CHUNK_CHANGES changes, and CHUNK_CHARS characters unless one change is longer', () => {
    const sizes: [string, (n: number) => number][] = [
      ['small values', () => 10],
      ['values near the limit per chunk', () => 180],
      ['growing values', (n) => n * 3],
      ['values of every size', (n) => [5, 3000, 40, 25_000, 700][n % 5] as number],
    ]
    for (const [, chars] of sizes) {
      const changes = puts(7, 1000, chars)
      const chunks = chunksOf(changes)
      let next = 7
      for (const { key, chunk } of chunks) {
        const decoded = decodeOutboxChunk(chunk)
        expect(chunk.first).toBe(next)
        expect(key).toBe(next + decoded.length - 1)
        expect(decoded.length).toBeLessThanOrEqual(CHUNK_CHANGES)
        if (decoded.length > 1) expect(chunk.changes.length).toBeLessThanOrEqual(CHUNK_CHARS)
        next = key + 1
      }
      expect(next).toBe(1007)
      expect(chunks.flatMap(({ chunk }) => decodeOutboxChunk(chunk))).toEqual(changes)
    }
  })

  it('fills chunks: small changes go CHUNK_CHANGES to a chunk, larger ones nearly CHUNK_CHARS', () => {
    expect(chunksOf(puts(1, 1000, () => 10)).length).toBe(Math.ceil(1000 / CHUNK_CHANGES))
    const large = chunksOf(puts(1, 1000, () => 1000))
    const chars = large.reduce((sum, { chunk }) => sum + chunk.changes.length, 0)
    expect(large.length).toBeLessThanOrEqual(Math.ceil(chars / (CHUNK_CHARS * 0.8)))
  })
})

describe('encodeRecord', () => {
  it('stores a single put as its entry and any other record as text, both decoding back', () => {
    const put = change(1, 'a', { type: 'put', value: { t: 'x' } })
    const concurrent = change(3, 'x', { type: 'put', value: { by: 'alice' } })
    const removed = change(4, 'gone', { type: 'delete' })
    const records: [RecordId, Change[]][] = [
      [put.id, [put]],
      [concurrent.id, [concurrent, sibling]],
      [removed.id, [removed]],
    ]
    for (const [id, versions] of records) {
      const entry = encodeRecord(id, versions)
      expect(typeof entry === 'string').toBe(versions.length > 1 || versions[0]?.op.type !== 'put')
      expect(decodeRecord('notes', entry).state.versions).toEqual(versions)
    }
  })
})
