import { type FormEvent, type ReactNode, useState } from 'react'
import { formatTime } from './format.js'
import type { LabAction, NodeView, OperationView, ReadMode } from './model/index.js'

const CLIENTS = ['c1', 'c2', 'c3']

const READ_MODES: readonly { value: ReadMode; label: string }[] = [
  { value: 'any', label: 'Whatever the node has' },
  { value: 'read-your-writes', label: 'Read your writes' },
  { value: 'monotonic', label: 'Monotonic reads' },
]

function readMode(value: string): ReadMode {
  return READ_MODES.find((option) => option.value === value)?.value ?? 'any'
}

/** How many of the latest operations the panel lists. */
const SHOWN_OPERATIONS = 12

function describeOperation(operation: OperationView): string {
  const what =
    operation.kind === 'write'
      ? `write ${operation.key} = ${operation.value ?? ''}`
      : `read ${operation.key}${operation.endedAt === undefined ? '' : ` → ${operation.value ?? '—'}`}`
  return `${operation.client} ${what} at ${operation.node}`
}

function Operation(props: { readonly operation: OperationView }): ReactNode {
  const { operation } = props
  const outcome = operation.outcome ?? 'pending'
  return (
    <li className={`operation outcome-${outcome}`} data-operation={operation.id} data-outcome={outcome}>
      <span className="operation-text">{describeOperation(operation)}</span>
      <span className="operation-meta small">
        <span className="outcome">{outcome}</span>
        {operation.mode !== undefined && operation.mode !== 'any' ? <span> · {operation.mode}</span> : null}
        {operation.detail === undefined ? null : <span> · {operation.detail}</span>}
        <span className="muted">
          {' '}
          · {formatTime(operation.startedAt)}
          {operation.endedAt === undefined ? '' : `–${formatTime(operation.endedAt)}`}
        </span>
      </span>
    </li>
  )
}

/** A client that writes and reads at any node, with a read guarantee, and what came back. */
export function ClientPanel(props: {
  readonly nodes: readonly NodeView[]
  readonly operations: readonly OperationView[]
  readonly disabled: boolean
  readonly onAction: (action: LabAction) => void
}): ReactNode {
  const targetNodes = props.nodes.filter((node) => node.role !== 'relay')
  const targets = targetNodes.map((node) => node.id)
  const [client, setClient] = useState('c1')
  const [chosen, setNode] = useState<string | null>(null)
  const [key, setKey] = useState('x')
  const [value, setValue] = useState('1')
  const [mode, setMode] = useState<ReadMode>('any')
  const node = chosen !== null && targets.includes(chosen) ? chosen : (targets[0] ?? '')
  const ready = !props.disabled && node !== '' && key.trim() !== ''

  const write = (event: FormEvent) => {
    event.preventDefault()
    if (ready) props.onAction({ type: 'write', client, node, key: key.trim(), value })
  }
  const read = () => {
    if (ready) props.onAction({ type: 'read', client, node, key: key.trim(), mode })
  }
  const recent = props.operations.slice(-SHOWN_OPERATIONS).reverse()

  return (
    <section className="card client" aria-labelledby="client-heading">
      <h2 id="client-heading">Client</h2>
      <form className="client-form" onSubmit={write}>
        <label>
          <span>Client</span>
          <select value={client} onChange={(event) => setClient(event.target.value)}>
            {CLIENTS.map((id) => (
              <option key={id}>{id}</option>
            ))}
          </select>
        </label>
        <label>
          <span>Node</span>
          <select value={node} onChange={(event) => setNode(event.target.value)}>
            {/* A node that is down or paused can still be chosen: the request goes unanswered
                while it stays so, as against a real cluster. The option says so beforehand. */}
            {targetNodes.map(({ id, up, paused }) => (
              <option key={id} value={id}>
                {up ? (paused ? `${id} (paused)` : id) : `${id} (down)`}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Key</span>
          <input value={key} maxLength={12} onChange={(event) => setKey(event.target.value)} />
        </label>
        <label>
          <span>Value</span>
          <input value={value} maxLength={24} onChange={(event) => setValue(event.target.value)} />
        </label>
        <label className="wide">
          <span>Read guarantee</span>
          <select value={mode} onChange={(event) => setMode(readMode(event.target.value))}>
            {READ_MODES.map((option) => (
              <option key={option.value} value={option.value}>
                {option.label}
              </option>
            ))}
          </select>
        </label>
        <div className="actions wide">
          <button type="submit" className="button primary" disabled={!ready}>
            Write
          </button>
          <button type="button" className="button" disabled={!ready} onClick={read}>
            Read
          </button>
        </div>
      </form>
      {recent.length === 0 ? (
        <p className="muted small">No operations yet.</p>
      ) : (
        <ol className="operations" aria-label="Operations">
          {recent.map((operation) => (
            <Operation key={operation.id} operation={operation} />
          ))}
        </ol>
      )}
    </section>
  )
}
