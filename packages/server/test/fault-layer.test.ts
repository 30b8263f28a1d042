import { describe, expect, it } from 'vitest'
import { FaultLayer } from '../src/node/fault-layer.js'

describe('FaultLayer', () => {
  it('passes frames on a clean link, and blocks, delays and drops as set, per link', () => {
    const layer = new FaultLayer(1)
    expect(layer.decide('n2')).toEqual({ deliver: true, delayMs: 0 })
    layer.set('n2', { blocked: true })
    layer.set('n3', { latencyMs: 20, jitterMs: 5 })
    expect(layer.decide('n2')).toEqual({ deliver: false })
    for (let i = 0; i < 50; i++) {
      const decision = layer.decide('n3')
      expect(decision.deliver).toBe(true)
      if (decision.deliver) expect(decision.delayMs).toBeGreaterThanOrEqual(20)
      if (decision.deliver) expect(decision.delayMs).toBeLessThanOrEqual(25)
    }
    layer.set(null, { loss: 0.5 })
    let lost = 0
    for (let i = 0; i < 1_000; i++) if (!layer.decide('n4').deliver) lost++
    expect(lost).toBeGreaterThan(400)
    expect(lost).toBeLessThan(600)
    expect(layer.stats).toMatchObject({ blocked: 1, lost })
    layer.heal()
    expect(layer.decide('n2')).toEqual({ deliver: true, delayMs: 0 })
  })

  it('draws the same faults from the same seed', () => {
    const draws = (seed: number) => {
      const layer = new FaultLayer(seed)
      layer.set(null, { loss: 0.3, jitterMs: 10 })
      return Array.from({ length: 100 }, () => layer.decide('n2'))
    }
    expect(draws(7)).toEqual(draws(7))
    expect(draws(7)).not.toEqual(draws(8))
  })

  it('a partition blocks exactly the links to the other side', () => {
    const layer = new FaultLayer(1)
    layer.partition(['n3'], ['n2', 'n3'])
    expect(layer.settings('n2').blocked).toBe(false)
    expect(layer.settings('n3').blocked).toBe(true)
  })

  it.each([
    [{ loss: 1.5 }, /loss must be a probability/],
    [{ latencyMs: -1 }, /latencyMs must be an integer/],
    [{ jitterMs: 0.5 }, /jitterMs must be an integer/],
    [{ blocked: 'yes' }, /blocked must be a boolean/],
  ])('refuses %j with invalid-argument', (faults, message) => {
    const layer = new FaultLayer(1)
    expect(() => layer.set(null, faults as never)).toThrow(
      expect.objectContaining({ code: 'invalid-argument', message: expect.stringMatching(message) }),
    )
  })
})
