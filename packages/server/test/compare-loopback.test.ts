import { beforeAll, describe, expect, it } from 'vitest'
import type { CompareRow } from '../src/index.js'
import { compareScenario, runComparison } from '../src/index.js'
import { loopbackDesigns } from '../src/node.js'

/**
 * The quorum designs as real node processes through the comparison harness, on the wall
 * clock: what must hold whatever the timing.
 */
let rows: CompareRow[] = []

beforeAll(async () => {
  rows = await runComparison({
    seed: 1,
    scenarios: [compareScenario('leader-crash')],
    designs: loopbackDesigns.filter((design) => design.mode === 'quorum'),
    durationMs: 2_000,
    fault: { startMs: 400, endMs: 1_200 },
    convergeWithinMs: 15_000,
  })
}, 90_000)

describe('a quorum cluster of five processes in the comparison', () => {
  it('loses no acknowledged put when n1 stalls, is killed with SIGKILL and restarts from its file', () => {
    expect(rows).toHaveLength(1)
    const [row] = rows
    expect(row?.clock).toBe('wall')
    expect(row?.mode).toBe('quorum')
    expect(row?.lostAcknowledged).toBe(0)
    expect(row?.operations).toBeGreaterThan(0)
    expect(row?.writeP50Ms).not.toBeNull()
    expect(row?.bytesOnWire).toBeGreaterThan(0)
    expect(row?.convergenceMs).not.toBeNull()
  })
})
