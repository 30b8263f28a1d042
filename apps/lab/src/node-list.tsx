import type { ReactNode } from 'react'
import { disagreements } from './divergence.js'
import type { Design, LabAction, NodeView } from './model/index.js'

/**
 * How long **Pause** stops a node: longer than an election timeout, so a paused leader has
 * been replaced when it resumes with its old state (and steps down as soon as it hears so).
 */
const PAUSE_MS = 2_000

function Facts(props: { readonly node: NodeView }): ReactNode {
  const { node } = props
  const facts: [string, string][] = []
  if (node.epoch !== undefined) facts.push(['epoch', String(node.epoch)])
  if (node.lsn !== undefined) {
    facts.push([
      'LSN',
      node.commitLsn === undefined ? String(node.lsn) : `${node.lsn} (commit ${node.commitLsn})`,
    ])
  }
  if (node.lag !== undefined) facts.push(['lag', `${node.lag} behind`])
  if (node.chain !== undefined) {
    const { nodes, counted } = node.chain
    const catchingUp = nodes.length - counted
    facts.push([
      'chain',
      `${nodes.join(' → ')}${catchingUp === 0 ? '' : ` (${nodes.slice(counted).join(', ')} catching up)`}`,
    ])
  }
  if (node.clock !== undefined) facts.push(['clock', node.clock === '' ? '—' : node.clock])
  if (facts.length === 0) return null
  return (
    <dl className="facts">
      {facts.map(([term, value]) => (
        <div key={term} data-fact={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  )
}

function Values(props: {
  readonly node: NodeView
  readonly differs: Map<string, Set<string>>
  readonly disabled: boolean
  readonly onAction: (action: LabAction) => void
}): ReactNode {
  const { node, differs } = props
  const hints =
    node.hints === undefined || node.hints.length === 0 ? null : (
      <ul className="hints small">
        {node.hints.map((hint) => (
          <li key={`${hint.key}@${hint.home}`} data-hint={hint.key}>
            holds for {hint.home}: {hint.key} = {hint.values.join(' | ')}
          </li>
        ))}
      </ul>
    )
  if (node.values.length === 0) {
    // The relay stores and forwards the replicas' changes; it reads no values of its own.
    return (
      <>
        <p className="muted small">{node.role === 'relay' ? 'stores and forwards changes' : 'no data'}</p>
        {hints}
      </>
    )
  }
  return (
    <>
      <table className="values">
        <thead>
          <tr>
            <th scope="col">key</th>
            <th scope="col">value</th>
          </tr>
        </thead>
        <tbody>
          {node.values.map((entry) => {
            const odd = differs.get(entry.key)?.has(node.id) === true
            const conflict = entry.values.length > 1
            return (
              <tr key={entry.key} data-key={entry.key} className={odd ? 'differs' : undefined}>
                <th scope="row">{entry.key}</th>
                <td data-value={entry.values.join(' | ')}>
                  {entry.values.map((value, index) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: siblings may repeat a value; only their position tells them apart.
                    <span key={index} className={conflict ? 'chip sibling' : 'chip'}>
                      {value}
                    </span>
                  ))}
                  {conflict ? <span className="tag warning">conflict</span> : null}
                  {odd ? <span className="tag danger">differs</span> : null}
                  {conflict && entry.resolved !== undefined ? (
                    <span className="reads-as small">
                      reads as <strong>{entry.resolved}</strong>
                    </span>
                  ) : null}
                  {entry.conflict === true && node.up ? (
                    <span className="keep-buttons">
                      {[...new Set(entry.values)].map((value) => (
                        <button
                          key={value}
                          type="button"
                          className="button small"
                          disabled={props.disabled}
                          aria-label={`Keep ${value} for ${entry.key} at ${node.id}`}
                          onClick={() =>
                            props.onAction({ type: 'resolve', node: node.id, key: entry.key, value })
                          }
                        >
                          Keep {value}
                        </button>
                      ))}
                    </span>
                  ) : null}
                </td>
              </tr>
            )
          })}
        </tbody>
      </table>
      {hints}
    </>
  )
}

/**
 * One card per node: role, epoch, log position or version vector, lag, every key it holds
 * (values that differ from most nodes are marked), and its Kill / Restart / Promote buttons.
 */
export function NodeList(props: {
  readonly nodes: readonly NodeView[]
  readonly design: Design
  readonly disabled: boolean
  readonly onAction: (action: LabAction) => void
}): ReactNode {
  const differs = disagreements(props.nodes, { holdersOnly: props.design === 'quorum' })
  return (
    <section className="node-list" aria-label="Nodes">
      {props.nodes.map((node) => {
        const promotable = props.design === 'single-leader' && node.role !== 'leader' && node.role !== 'relay'
        const pausable = props.design !== 'multi-leader'
        return (
          <article
            key={node.id}
            className={node.up ? 'card node-card' : 'card node-card is-down'}
            data-node={node.id}
            data-role={node.role}
            data-up={node.up}
            data-paused={node.paused}
            aria-labelledby={`node-${node.id}`}
          >
            <header className="node-header">
              <h3 id={`node-${node.id}`}>{node.id}</h3>
              {node.role === 'down' ? null : <span className={`role role-${node.role}`}>{node.role}</span>}
              {!node.up ? <span className="tag danger">down</span> : null}
              {node.paused ? <span className="tag warning">paused</span> : null}
            </header>
            <Facts node={node} />
            <Values node={node} differs={differs} disabled={props.disabled} onAction={props.onAction} />
            <div className="actions">
              {node.up ? (
                <button
                  type="button"
                  className="button small danger"
                  disabled={props.disabled}
                  // The second click of a double click would land on Restart, drawn in its place.
                  onClick={(event) => event.detail < 2 && props.onAction({ type: 'kill', node: node.id })}
                >
                  Kill {node.id}
                </button>
              ) : (
                <button
                  type="button"
                  className="button small"
                  disabled={props.disabled}
                  onClick={(event) => event.detail < 2 && props.onAction({ type: 'restart', node: node.id })}
                >
                  Restart {node.id}
                </button>
              )}
              {pausable ? (
                <button
                  type="button"
                  className="button small"
                  disabled={props.disabled || !node.up || node.paused}
                  title="Stop the node for 2 s of lab time (a long GC pause, a SIGSTOP): it resumes with the state it had; with fencing, a leader that others replaced meanwhile steps down once it hears of the newer epoch (without, it may go on leading: split brain)"
                  onClick={() => props.onAction({ type: 'pause', node: node.id, ms: PAUSE_MS })}
                >
                  Pause {node.id}
                </button>
              ) : null}
              {promotable ? (
                <button
                  type="button"
                  className="button small"
                  disabled={props.disabled || !node.up || node.paused}
                  onClick={() => props.onAction({ type: 'promote', node: node.id })}
                >
                  Promote follower {node.id}
                </button>
              ) : null}
            </div>
          </article>
        )
      })}
    </section>
  )
}
