import { describe, expect, it } from 'vitest'
import { createFrameBytes } from '../src/frame-text.js'

describe('createFrameBytes', () => {
  function counted() {
    const encoded: string[] = []
    const frameBytes = createFrameBytes((text) => {
      encoded.push(text)
      return Buffer.from(text, 'utf8')
    })
    return { frameBytes, encoded }
  }

  it('encodes a run of the same frame once, with another frame in between', () => {
    const { frameBytes, encoded } = counted()
    const fanned = `{"type":"changes","batch":["${'é'.repeat(50)}"]}`
    const own = '{"type":"changes","batch":[]}'
    const sent = [fanned, fanned, own, fanned, fanned, own, fanned].map((text) => frameBytes(text))
    expect(encoded).toEqual(['', fanned, own])
    expect(sent.map((bytes) => bytes.toString('utf8'))).toEqual([
      fanned,
      fanned,
      own,
      fanned,
      fanned,
      own,
      fanned,
    ])
    expect(sent[0]?.byteLength).toBe(Buffer.byteLength(fanned))
  })

  it('keeps the last two frames: a third one evicts the older', () => {
    const { frameBytes, encoded } = counted()
    for (const text of ['a', 'b', 'c', 'b', 'a', 'a', 'b']) {
      expect(frameBytes(text).toString('utf8')).toBe(text)
    }
    expect(encoded).toEqual(['', 'a', 'b', 'c', 'a'])
  })
})
