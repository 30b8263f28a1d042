import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { approximateChangeLength, assertValueFits, utf8Length } from '../src/change-size.js'
import { ErrorCode } from '../src/errors.js'
import { formatHlc } from '../src/hlc.js'
import { asRecordId, asReplicaId } from '../src/ids.js'
import { encodeChange } from '../src/protocol/codec.js'
import { expectChorusError } from './expect-chorus-error.js'

describe('change size', () => {
  it('counts UTF-8 bytes as TextEncoder does', () => {
    const encoder = new TextEncoder()
    for (const text of [
      '',
      'ascii',
      'é',
      '€uro',
      '𝄞 clef',
      'mixed ü 𝄞 € a',
      '\u0000\u007f\u0080\u07ff\u0800\uffff',
    ]) {
      expect(utf8Length(text)).toBe(encoder.encode(text).length)
    }
  })

  it('estimates a change near its encoded length', () => {
    const replica = asReplicaId('alice')
    const change: Change = {
      collection: 'notes',
      id: asRecordId('n1'),
      dot: [replica, 3],
      context: { [replica]: 2, bob: 7 },
      hlc: formatHlc({ wall: 1_700_000_000_000, counter: 1, replica }),
      op: { type: 'put', value: { title: 'Groceries', body: 'milk, eggs'.repeat(20), done: false } },
    }
    const exact = JSON.stringify(change).length
    expect(approximateChangeLength(change)).toBeGreaterThanOrEqual(exact * 0.8)
    // Six characters for each counted (the longest escape) bound it from above, escapes and all.
    const escaped: Change = {
      ...change,
      id: asRecordId('n"\\1'),
      op: {
        type: 'patch',
        fields: { '"\u0001': '\u0002'.repeat(500) },
        base: { title: '"quoted"\n' },
        stamps: {},
        floor: change.hlc,
      },
    }
    for (const each of [change, escaped, { ...change, op: { type: 'delete' } } as Change]) {
      expect(approximateChangeLength(each) * 6).toBeGreaterThanOrEqual(encodeChange(each).length)
    }
  })

  it('refuses a value that could not fit one frame, and passes one that does', () => {
    const limit = 64 * 1024
    assertValueFits({ text: 'x'.repeat(40_000) }, limit, 'a put value')
    expectChorusError(
      () => assertValueFits({ text: 'x'.repeat(70_000) }, limit, 'a put value'),
      ErrorCode.InvalidArgument,
    )
    // Escapes count: 20,000 control characters are 120,000 bytes of JSON.
    expectChorusError(
      () => assertValueFits({ text: '\u0001'.repeat(20_000) }, limit, 'a put value'),
      ErrorCode.InvalidArgument,
    )
    // Three bytes of UTF-8 per character: 30,000 of them pass 64 KiB.
    expectChorusError(
      () => assertValueFits({ text: '€'.repeat(30_000) }, limit, 'a put value'),
      ErrorCode.InvalidArgument,
    )
  })
})
