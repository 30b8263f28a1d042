import { describe, expect, it } from 'vitest'
import { disagreements } from '../src/divergence.js'
import type { LabSettings, NodeView } from '../src/model/index.js'
import {
  clampQuorum,
  keepsScript,
  nodeRange,
  quorumsOverlap,
  withNodes,
  withQuorum,
} from '../src/settings-edit.js'

const QUORUM: LabSettings = {
  design: 'quorum',
  seed: 1,
  nodes: 5,
  singleLeader: { replication: 'async', chain: false, fencing: true, autoFailover: true },
  quorum: { n: 3, w: 2, r: 2, sloppy: false, readRepair: 'blocking' },
  multiLeader: { resolver: 'lww' },
}

const node = (id: string, values: Record<string, string[]>, extra: Partial<NodeView> = {}): NodeView => ({
  id,
  role: 'follower',
  up: true,
  paused: false,
  values: Object.entries(values).map(([key, list]) => ({ key, values: list })),
  ...extra,
})

describe('editing settings', () => {
  it('keeps 1 ≤ W, R ≤ N ≤ nodes whichever slider moved', () => {
    expect(clampQuorum({ ...QUORUM.quorum, n: 9, w: 9, r: 0 }, 5)).toMatchObject({ n: 5, w: 5, r: 1 })
    expect(withQuorum(QUORUM, { n: 1 }).quorum).toMatchObject({ n: 1, w: 1, r: 1 })
    expect(withNodes({ ...QUORUM, quorum: { ...QUORUM.quorum, n: 5, w: 4 } }, 3).quorum).toMatchObject({
      n: 3,
      w: 3,
    })
    expect(withNodes(QUORUM, 99).nodes).toBe(nodeRange('quorum').max)
    expect(withNodes(QUORUM, 1).nodes).toBe(nodeRange('quorum').min)
  })

  it('says when reads and writes overlap', () => {
    expect(quorumsOverlap({ ...QUORUM.quorum, n: 3, w: 2, r: 2 })).toBe(true)
    expect(quorumsOverlap({ ...QUORUM.quorum, n: 3, w: 1, r: 2 })).toBe(false)
  })

  it('keeps a script across a rule change, not across a design or size change', () => {
    expect(keepsScript(QUORUM, withQuorum(QUORUM, { w: 1 }))).toBe(true)
    expect(keepsScript(QUORUM, { ...QUORUM, seed: 2 })).toBe(true)
    expect(keepsScript(QUORUM, withNodes(QUORUM, 4))).toBe(false)
    expect(keepsScript(QUORUM, { ...QUORUM, design: 'single-leader' })).toBe(false)
  })
})

describe('divergence on the page', () => {
  it('marks the nodes that read differently from most (holding nothing counts), siblings compared as a set', () => {
    const nodes = [
      node('n1', { x: ['5'], y: ['1'] }),
      node('n2', { x: ['5'], y: ['1'] }),
      node('n3', { x: ['7'], y: ['1'] }),
      node('n4', { x: ['5'], z: ['2', '3'] }),
      node('n5', { x: ['5'], z: ['3', '2'] }),
    ]
    const result = disagreements(nodes)
    expect([...(result.get('x') ?? [])]).toEqual(['n3'])
    expect(result.has('y')).toBe(true)
    expect(new Set(result.get('z'))).toEqual(new Set(['n4', 'n5']))
  })

  it('in a quorum cluster, compares only the nodes that hold a key (its home replicas)', () => {
    // N = 2 of 5 nodes: three hold nothing of x, and that is no disagreement.
    const nodes = [
      node('n1', { x: ['5'] }),
      node('n2', { x: ['5'] }),
      node('n3', {}),
      node('n4', {}),
      node('n5', { y: ['1'] }),
    ]
    expect(disagreements(nodes).get('x')).toEqual(new Set(['n1', 'n2']))
    expect(disagreements(nodes, { holdersOnly: true }).size).toBe(0)
    expect(disagreements([...nodes, node('n6', { x: ['4'] })], { holdersOnly: true }).get('x')).toEqual(
      new Set(['n6']),
    )
  })

  it('ignores a relay and a killed node, and reports nothing when all agree', () => {
    const nodes = [
      node('n1', { x: ['5'] }),
      node('n2', { x: ['5'] }),
      node('n3', { x: ['1'] }, { up: false }),
      node('relay', {}, { role: 'relay' }),
    ]
    expect(disagreements(nodes).size).toBe(0)
  })
})
