import { type ReactNode, useEffect, useRef, useState } from 'react'
import { formatTime, linkName } from './format.js'
import type { LabAction, LinkView } from './model/index.js'

/** The latency slider's range in virtual ms (widened when a preset sets a longer one). */
const LATENCY_MAX = 2000

/**
 * A link's latency slider. Dragging only moves the figure; the lab gets one action when the
 * slider is let go (the native `change` event), so a drag is one entry in the timeline.
 */
function LatencySlider(props: {
  readonly link: LinkView
  readonly disabled: boolean
  readonly onCommit: (ms: number) => void
}): ReactNode {
  const { link, onCommit } = props
  const [draft, setDraft] = useState(link.latencyMs)
  const input = useRef<HTMLInputElement>(null)
  useEffect(() => setDraft(link.latencyMs), [link.latencyMs])
  useEffect(() => {
    const element = input.current
    if (element === null) return
    const commit = () => onCommit(Number(element.value))
    element.addEventListener('change', commit)
    return () => element.removeEventListener('change', commit)
  }, [onCommit])
  return (
    <label className="latency">
      <span className="visually-hidden">Latency {linkName(link.a, link.b)}</span>
      <input
        ref={input}
        type="range"
        min={0}
        max={Math.max(LATENCY_MAX, link.latencyMs)}
        step={10}
        value={draft}
        disabled={props.disabled}
        onChange={(event) => setDraft(Number(event.target.value))}
      />
      <output>{formatTime(draft)}</output>
    </label>
  )
}

function LinkRow(props: {
  readonly link: LinkView
  readonly disabled: boolean
  readonly onAction: (action: LabAction) => void
}): ReactNode {
  const { link, onAction } = props
  const name = linkName(link.a, link.b)
  const [commit] = useState(() => (ms: number) => onAction({ type: 'latency', a: link.a, b: link.b, ms }))
  return (
    <li className={link.cut ? 'link-row cut' : 'link-row'} data-link={name}>
      <span className="link-name">{name}</span>
      <LatencySlider link={link} disabled={props.disabled} onCommit={commit} />
      {link.cut ? (
        <span className="tag danger">cut</span>
      ) : (
        <button
          type="button"
          className="button small danger"
          disabled={props.disabled}
          onClick={() => onAction({ type: 'cut', a: link.a, b: link.b })}
        >
          Cut network {name}
        </button>
      )}
    </li>
  )
}

/** Every link: its one-way latency, and a cut; Heal ends every cut at once. */
export function NetworkPanel(props: {
  readonly links: readonly LinkView[]
  readonly disabled: boolean
  readonly onAction: (action: LabAction) => void
}): ReactNode {
  return (
    <section className="card network" aria-labelledby="network-heading">
      <header className="card-header">
        <h2 id="network-heading">Network</h2>
        <button
          type="button"
          className="button small primary"
          disabled={props.disabled}
          onClick={() => props.onAction({ type: 'heal' })}
        >
          Heal
        </button>
      </header>
      <p className="muted small">
        One-way latency per link, both directions. A cut drops everything on the link.
      </p>
      <ul className="link-list">
        {props.links.map((link) => (
          <LinkRow
            key={`${link.a}-${link.b}`}
            link={link}
            disabled={props.disabled}
            onAction={props.onAction}
          />
        ))}
      </ul>
    </section>
  )
}
