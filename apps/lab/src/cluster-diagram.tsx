import type { ReactNode } from 'react'
import {
  DIAGRAM,
  diagramHeight,
  layoutClients,
  layoutNodes,
  messagePoint,
  messageProgress,
  midpoint,
} from './diagram-geometry.js'
import { formatTime } from './format.js'
import type { LabView, NodeView } from './model/index.js'

/** Message labels are drawn beside their dots only while few are in flight. */
const MAX_LABELLED_MESSAGES = 6

function nodeClass(node: NodeView): string {
  const state = !node.up ? 'down' : node.paused ? 'paused' : 'up'
  return `diagram-node role-${node.role} ${state}`
}

function summary(view: LabView): string {
  const nodes = view.nodes
    .map((node) => `${node.id} ${!node.up ? 'down' : node.paused ? `${node.role}, paused` : node.role}`)
    .join(', ')
  const cuts = view.links.filter((link) => link.cut).length
  const messages = view.messages.length
  return `Cluster: ${nodes}. ${messages} ${messages === 1 ? 'message' : 'messages'} in flight${cuts > 0 ? `, ${cuts} ${cuts === 1 ? 'link' : 'links'} cut` : ''}.`
}

/** The cluster as a picture: nodes, links (cut ones broken), and messages moving along them. */
export function ClusterDiagram(props: { readonly view: LabView }): ReactNode {
  const { view } = props
  const clients = view.clients ?? []
  const clientPositions = layoutClients(clients)
  const positions = new Map([...layoutNodes(view.nodes), ...clientPositions])
  const labelled = view.messages.length <= MAX_LABELLED_MESSAGES
  return (
    <svg
      className="diagram"
      viewBox={`0 0 ${DIAGRAM.width} ${diagramHeight(clients.length)}`}
      role="img"
      aria-label={summary(view)}
      preserveAspectRatio="xMidYMid meet"
    >
      <g className="links">
        {view.links.map((link) => {
          const a = positions.get(link.a)
          const b = positions.get(link.b)
          if (a === undefined || b === undefined) return null
          const middle = midpoint(a, b)
          return (
            <g key={`${link.a}-${link.b}`} className={link.cut ? 'link cut' : 'link'}>
              <line x1={a.x} y1={a.y} x2={b.x} y2={b.y} />
              {link.cut ? (
                <text x={middle.x} y={middle.y + 4} className="cut-mark" textAnchor="middle">
                  ✕
                </text>
              ) : (
                <text x={middle.x} y={middle.y - 4} className="latency-label" textAnchor="middle">
                  {formatTime(link.latencyMs)}
                </text>
              )}
            </g>
          )
        })}
      </g>
      <g className="messages">
        {view.messages.map((message) => {
          const from = positions.get(message.from)
          const to = positions.get(message.to)
          if (from === undefined || to === undefined) return null
          const dropped = message.dropped !== undefined
          const progress = messageProgress(message.sentAt, message.arrivesAt, view.now, dropped)
          const point = messagePoint(
            from,
            to,
            progress,
            clientPositions.has(message.to) ? 14 : DIAGRAM.nodeRadius,
          )
          const what = `${message.label}: ${message.from} → ${message.to}`
          return (
            <g
              key={message.id}
              className={dropped ? 'message dropped' : 'message'}
              transform={`translate(${point.x} ${point.y})`}
            >
              {dropped ? (
                <path d="M-4 -4L4 4M4 -4L-4 4">
                  <title>{`${what}, dropped (${message.dropped})`}</title>
                </path>
              ) : (
                <circle r={4.5}>
                  <title>{what}</title>
                </circle>
              )}
              {labelled ? (
                <text x={7} y={3} className="message-label">
                  {message.label}
                </text>
              ) : null}
            </g>
          )
        })}
      </g>
      <g className="clients">
        {clients.map((id) => {
          const point = clientPositions.get(id)
          if (point === undefined) return null
          return (
            <g key={id} className="diagram-client" transform={`translate(${point.x} ${point.y})`}>
              <rect x={-15} y={-11} width={30} height={22} rx={6} />
              <text y={4} textAnchor="middle">
                {id}
              </text>
            </g>
          )
        })}
      </g>
      <g className="nodes">
        {view.nodes.map((node) => {
          const point = positions.get(node.id)
          if (point === undefined) return null
          return (
            <g key={node.id} className={nodeClass(node)} transform={`translate(${point.x} ${point.y})`}>
              <circle r={DIAGRAM.nodeRadius} />
              <text y={-2} textAnchor="middle" className="node-id">
                {node.id}
              </text>
              <text y={12} textAnchor="middle" className="node-role">
                {!node.up ? 'down' : node.paused ? 'paused' : node.role}
              </text>
            </g>
          )
        })}
      </g>
    </svg>
  )
}
