import { describe, expect, it } from 'vitest'
import { textDirection } from '../src/format.js'

describe('textDirection', () => {
  it('reads the direction from the first letter, past digits, spaces and punctuation', () => {
    expect(textDirection('מה שלום?')).toBe('rtl')
    expect(textDirection('  12. مرحبا بالعالم!')).toBe('rtl')
    expect(textDirection('ܫܠܡܐ')).toBe('rtl')
    expect(textDirection('Hello שלום')).toBe('ltr')
    expect(textDirection('« Ça va ? »')).toBe('ltr')
    expect(textDirection('你好')).toBe('ltr')
    expect(textDirection('שלום and hello')).toBe('rtl')
  })

  it('leaves the page’s direction to a text with no letter', () => {
    expect(textDirection('')).toBeUndefined()
    expect(textDirection('123 — !?')).toBeUndefined()
    expect(textDirection('😀 42')).toBeUndefined()
  })
})
