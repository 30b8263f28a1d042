import { describe, expect, it } from 'vitest'
import { formatSpeed, formatTime, isBad, linkName, METRICS } from '../src/format.js'
import { MAX_FRAME_MS, virtualStep } from '../src/pace.js'
import { presetFromHash, presetHash } from '../src/route.js'

describe('formatting', () => {
  it('writes virtual times in ms below a second, in seconds above', () => {
    expect(formatTime(0)).toBe('0 ms')
    expect(formatTime(39.6)).toBe('40 ms')
    expect(formatTime(999)).toBe('999 ms')
    expect(formatTime(1000)).toBe('1.00 s')
    expect(formatTime(43_250)).toBe('43.25 s')
  })

  it('names links and speeds the way the controls do', () => {
    expect(linkName('n1', 'n2')).toBe('n1–n2')
    expect(formatSpeed(0.1)).toBe('1/10×')
    expect(formatSpeed(0.02)).toBe('1/50×')
    expect(formatSpeed(1)).toBe('1×')
    expect(formatSpeed(4)).toBe('4×')
  })

  it('flags the figures that are failures: any lost write, more than one leader', () => {
    const metric = (key: string) => METRICS.find((candidate) => candidate.key === key)!
    expect(isBad(metric('lostAcknowledgedWrites'), 1)).toBe(true)
    expect(isBad(metric('lostAcknowledgedWrites'), 0)).toBe(false)
    expect(isBad(metric('leaders'), 1)).toBe(false)
    expect(isBad(metric('leaders'), 2)).toBe(true)
    expect(isBad(metric('acknowledgedWrites'), 9)).toBe(false)
    expect(new Set(METRICS.map((candidate) => candidate.key)).size).toBe(METRICS.length)
  })
})

describe('pace', () => {
  it('turns a frame into virtual time at the speed, never a background tab’s whole absence', () => {
    expect(virtualStep(16, 0.1)).toBeCloseTo(1.6)
    expect(virtualStep(5000, 0.1)).toBe(MAX_FRAME_MS * 0.1)
    expect(virtualStep(-3, 1)).toBe(0)
    expect(virtualStep(16, 0)).toBe(0)
    expect(virtualStep(Number.NaN, 1)).toBe(0)
  })
})

describe('links to a preset', () => {
  it('round-trips a preset id through the hash and ignores anything else', () => {
    expect(presetFromHash(presetHash('async-leader-crash'))).toBe('async-leader-crash')
    expect(presetFromHash(presetHash('a b/c'))).toBe('a b/c')
    expect(presetFromHash('')).toBeNull()
    expect(presetFromHash('#/notebook/x')).toBeNull()
    expect(presetFromHash('#preset=%E0%A4%A')).toBeNull()
  })
})
