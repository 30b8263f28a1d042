import { describe, expect, it } from 'vitest'
import {
  DIAGRAM,
  DROPPED_AT_SEND,
  diagramHeight,
  layoutClients,
  layoutNodes,
  messagePoint,
  messageProgress,
  midpoint,
} from '../src/diagram-geometry.js'

const ring = (ids: string[]) => ids.map((id) => ({ id, role: 'follower' }))

describe('diagram geometry', () => {
  it('puts the first node at the top and the rest clockwise, all inside the drawing', () => {
    const positions = layoutNodes(ring(['n1', 'n2', 'n3', 'n4']))
    const [n1, n2, n3, n4] = ['n1', 'n2', 'n3', 'n4'].map((id) => positions.get(id)!)
    expect(n1).toEqual({ x: DIAGRAM.width / 2, y: DIAGRAM.margin })
    expect(n2!.x).toBeGreaterThan(n1!.x)
    expect(n3!.y).toBeGreaterThan(n2!.y)
    expect(n4!.x).toBeLessThan(n1!.x)
    for (const point of positions.values()) {
      expect(point.x).toBeGreaterThanOrEqual(DIAGRAM.nodeRadius)
      expect(point.x).toBeLessThanOrEqual(DIAGRAM.width - DIAGRAM.nodeRadius)
      expect(point.y).toBeGreaterThanOrEqual(DIAGRAM.nodeRadius)
      expect(point.y).toBeLessThanOrEqual(DIAGRAM.height - DIAGRAM.nodeRadius)
    }
  })

  it('keeps a relay in the middle and a node where it was when its role changes', () => {
    const hub = layoutNodes([{ id: 'relay', role: 'relay' }, ...ring(['r1', 'r2'])])
    expect(hub.get('relay')).toEqual({ x: DIAGRAM.width / 2, y: DIAGRAM.height / 2 })
    const before = layoutNodes(ring(['n1', 'n2', 'n3']))
    const after = layoutNodes([
      { id: 'n1', role: 'follower' },
      { id: 'n2', role: 'leader' },
      { id: 'n3', role: 'follower' },
    ])
    expect(after).toEqual(before)
  })

  it('spreads clients in a row below the nodes, growing the drawing for them', () => {
    expect(diagramHeight(0)).toBe(DIAGRAM.height)
    expect(diagramHeight(2)).toBeGreaterThan(DIAGRAM.height)
    const clients = layoutClients(['c1', 'c2'])
    expect(clients.get('c1')!.x).toBeLessThan(clients.get('c2')!.x)
    expect(clients.get('c1')!.y).toBeGreaterThan(DIAGRAM.height - DIAGRAM.nodeRadius)
    expect(clients.get('c1')!.y).toBeLessThan(diagramHeight(2))
  })

  it('moves a message from rim to rim as virtual time passes, clamped at both ends', () => {
    expect(messageProgress(100, 140, 90)).toBe(0)
    expect(messageProgress(100, 140, 120)).toBe(0.5)
    expect(messageProgress(100, 140, 200)).toBe(1)
    expect(messageProgress(100, 100, 100)).toBe(1)
    expect(messageProgress(100, 100, 100, true)).toBe(DROPPED_AT_SEND)
    const from = { x: 0, y: 0 }
    const to = { x: 100, y: 0 }
    expect(messagePoint(from, to, 0, 10)).toEqual({ x: 10, y: 5 })
    expect(messagePoint(from, to, 1, 10)).toEqual({ x: 90, y: 5 })
    // The way back is drawn on the other side of the link.
    expect(messagePoint(to, from, 0.5, 10).y).toBe(-5)
    expect(messagePoint(from, from, 0.5)).toEqual(from)
    expect(midpoint(from, to)).toEqual({ x: 50, y: 0 })
  })
})
