/** A point in the diagram's SVG user units. */
export interface Point {
  readonly x: number
  readonly y: number
}

/** The diagram's drawing area in SVG user units (it scales to the page's width). */
export const DIAGRAM = { width: 420, height: 300, nodeRadius: 26, margin: 44, clientRow: 46 } as const

/** The drawing's height: a row for clients below the nodes when there are any. */
export function diagramHeight(clients: number): number {
  return clients === 0 ? DIAGRAM.height : DIAGRAM.height + DIAGRAM.clientRow
}

/** Clients sit in a row under the nodes, evenly spread, in the order given. */
export function layoutClients(clients: readonly string[], width: number = DIAGRAM.width): Map<string, Point> {
  const positions = new Map<string, Point>()
  clients.forEach((id, index) => {
    positions.set(id, {
      x: round((width * (index + 1)) / (clients.length + 1)),
      y: DIAGRAM.height + DIAGRAM.clientRow / 2 - 8,
    })
  })
  return positions
}

/**
 * Where each node sits: a relay (multi-leader's hub) in the middle, every other node evenly on
 * an ellipse starting at the top and going clockwise, in the order given. Positions depend
 * only on ids, roles and order, so a node stays put while its state changes.
 */
export function layoutNodes(
  nodes: readonly { readonly id: string; readonly role: string }[],
  size: { readonly width: number; readonly height: number; readonly margin: number } = DIAGRAM,
): Map<string, Point> {
  const center = { x: size.width / 2, y: size.height / 2 }
  const radius = { x: size.width / 2 - size.margin, y: size.height / 2 - size.margin }
  const hubs = nodes.filter((node) => node.role === 'relay')
  const ring = nodes.filter((node) => node.role !== 'relay')
  const positions = new Map<string, Point>()
  hubs.forEach((node, index) => {
    positions.set(node.id, { x: center.x + (index - (hubs.length - 1) / 2) * 70, y: center.y })
  })
  ring.forEach((node, index) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * index) / ring.length
    positions.set(node.id, {
      x: round(center.x + radius.x * Math.cos(angle)),
      y: round(center.y + radius.y * Math.sin(angle)),
    })
  })
  return positions
}

function round(value: number): number {
  return Math.round(value * 10) / 10
}

/** Where a message dropped as it was sent is drawn: just outside its sender. */
export const DROPPED_AT_SEND = 0.08

/**
 * How far along its link a message is at `now`: 0 when sent, 1 when it arrives (clamped). A
 * message dropped as it was sent (`arrivesAt = sentAt`) stays by its sender.
 */
export function messageProgress(sentAt: number, arrivesAt: number, now: number, dropped = false): number {
  if (arrivesAt <= sentAt) return dropped ? DROPPED_AT_SEND : now >= arrivesAt ? 1 : 0
  return Math.min(1, Math.max(0, (now - sentAt) / (arrivesAt - sentAt)))
}

/**
 * Where a message from `from` to `to` is drawn at `progress`: on the segment between the two
 * nodes' rims, shifted a little to the side of travel so that messages crossing in opposite
 * directions (a request and its ack) are drawn apart.
 */
export function messagePoint(
  from: Point,
  to: Point,
  progress: number,
  radius: number = DIAGRAM.nodeRadius,
): Point {
  const dx = to.x - from.x
  const dy = to.y - from.y
  const length = Math.hypot(dx, dy)
  if (length === 0) return from
  const ux = dx / length
  const uy = dy / length
  const start = { x: from.x + ux * radius, y: from.y + uy * radius }
  const span = Math.max(0, length - 2 * radius)
  const side = 5
  return {
    x: start.x + ux * span * progress - uy * side,
    y: start.y + uy * span * progress + ux * side,
  }
}

/** The middle of a link, where its latency or a cut mark is drawn. */
export function midpoint(a: Point, b: Point): Point {
  return { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }
}
