import { COMPARE_JSON_FIELDS, type CompareRow, compareScenario } from '@chorus/server'
import { loopbackDesigns } from '@chorus/server/node'
import { beforeAll, describe, expect, it } from 'vitest'
import { relayReplicasDesign, runRealComparison } from '../compare/real/real-comparison.js'

const singleLeaderSync = loopbackDesigns.find((design) => design.name === 'single-leader-sync')
let rows: CompareRow[] = []

beforeAll(async () => {
  if (singleLeaderSync === undefined) throw new Error('no single-leader-sync among the loopback designs')
  rows = await runRealComparison({
    seed: 1,
    scenarios: [compareScenario('leader-crash')],
    designs: [relayReplicasDesign, singleLeaderSync],
  })
}, 120_000)

function row(mode: string): CompareRow {
  const found = rows.find((candidate) => candidate.mode === mode)
  if (found === undefined) throw new Error(`no ${mode} row`)
  return found
}

describe('the comparison on real processes (a relay and client replicas; five node processes)', () => {
  it('rows have the issue’s shape, with figures measured on the wall clock', () => {
    expect(rows.map((r) => r.mode)).toEqual(['multi-leader', 'single-leader-sync'])
    for (const r of rows) {
      for (const field of COMPARE_JSON_FIELDS) expect(r, `${r.mode}.${field}`).toHaveProperty(field)
      expect(r.clock).toBe('wall')
      expect(r.scenario).toBe('leader-crash')
      expect(r.operations, r.mode).toBeGreaterThan(0)
      expect(r.writeP50Ms, r.mode).not.toBeNull()
      expect(r.writeP99Ms, r.mode).not.toBeNull()
      expect(r.writeP50Ms ?? Infinity, r.mode).toBeLessThanOrEqual(r.writeP99Ms ?? -1)
      expect(r.bytesOnWire, r.mode).toBeGreaterThan(0)
      expect(r.acceptedDuringPartition, r.mode).toBe(0)
      expect(r.convergenceMs, `${r.mode} converged`).not.toBeNull()
    }
  })

  it('neither Chorus nor sync single-leader loses an acknowledged write when its central node crashes', () => {
    expect(row('multi-leader').lostAcknowledged).toBe(0)
    expect(row('single-leader-sync').lostAcknowledged).toBe(0)
  })

  it('Chorus replicas keep accepting writes while the relay is down, and the relay acknowledges them after its restart', () => {
    const multi = row('multi-leader')
    expect(multi.availability).toBe(1)
    expect(multi.acceptedDuringFault).toBeGreaterThan(0)
    expect(multi.serverAckP99Ms).not.toBeNull()
  })
})
