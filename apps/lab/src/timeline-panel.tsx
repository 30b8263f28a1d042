import { memo, type ReactNode, useLayoutEffect, useRef } from 'react'
import { formatTime } from './format.js'
import type { TimelineEvent } from './model/index.js'

/** How close to the bottom (px) the list must be scrolled to keep following new events. */
const FOLLOW_SLACK = 40

function Events(props: { readonly events: readonly TimelineEvent[]; readonly lab: number }): ReactNode {
  const list = useRef<HTMLOListElement>(null)
  const following = useRef(true)
  const count = props.events.length
  // A new lab (a story loaded, a replay, settings changed) is followed from its start, however
  // the last one was scrolled.
  // biome-ignore lint/correctness/useExhaustiveDependencies: it runs when the lab changes, which is all it reads
  useLayoutEffect(() => {
    following.current = true
  }, [props.lab])
  useLayoutEffect(() => {
    const element = list.current
    if (element !== null && following.current && count > 0) element.scrollTop = element.scrollHeight
  }, [count])
  if (count === 0) return <p className="muted small">Nothing has happened yet.</p>
  return (
    <ol
      ref={list}
      className="timeline-list"
      data-events={count}
      onScroll={(event) => {
        const element = event.currentTarget
        following.current = element.scrollHeight - element.scrollTop - element.clientHeight < FOLLOW_SLACK
      }}
    >
      {props.events.map((event) => (
        <li key={event.seq} className={`event kind-${event.kind}`}>
          <time className="event-time">{formatTime(event.at)}</time>
          <span className="event-kind">{event.kind}</span>
          <span className="event-text">{event.text}</span>
        </li>
      ))}
    </ol>
  )
}

/**
 * Drawn again only when an event was added or the lab was replaced (a replay draws its own
 * timeline even when it is the same), not for every frame's fresh snapshot.
 */
const MemoEvents = memo(
  Events,
  (before, after) =>
    before.lab === after.lab &&
    before.events.length === after.events.length &&
    before.events.at(-1)?.seq === after.events.at(-1)?.seq,
)

/** Every event of the run in order, with its virtual time: what Replay must reproduce. */
export function TimelinePanel(props: {
  readonly events: readonly TimelineEvent[]
  readonly seed: number
  /** Which lab the events come from: a new number for every new lab. */
  readonly lab: number
}): ReactNode {
  return (
    <section className="card timeline" aria-labelledby="timeline-heading">
      <header className="card-header">
        <h2 id="timeline-heading">Timeline</h2>
        <span className="muted small">
          seed {props.seed} · {props.events.length} events
        </span>
      </header>
      <MemoEvents events={props.events} lab={props.lab} />
    </section>
  )
}
