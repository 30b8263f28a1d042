import { type ReactNode, useEffect, useRef } from 'react'
import { formatSpeed, formatTime } from './format.js'
import { isScripted, type LabSession, type SessionState } from './lab-session.js'
import { SPEEDS } from './pace.js'
import { storyEnd } from './script-runner.js'

const BUSY_TEXT = {
  loading: 'Starting the cluster…',
  skipping: 'Running to the end…',
  replaying: 'Replaying…',
}

/**
 * Keeps `--transport-height` on the page at the bar's height, which grows as the bar wraps on a
 * narrow window: the page's scroll padding leaves that much room above a control reached with
 * Tab, so the bar does not cover it.
 */
function useStickyHeight() {
  const bar = useRef<HTMLDivElement>(null)
  useEffect(() => {
    const element = bar.current
    if (element === null || typeof ResizeObserver === 'undefined') return
    const root = document.documentElement
    const observer = new ResizeObserver(() => {
      root.style.setProperty('--transport-height', `${Math.ceil(element.getBoundingClientRect().height)}px`)
    })
    observer.observe(element)
    return () => {
      observer.disconnect()
      root.style.removeProperty('--transport-height')
    }
  }, [])
  return bar
}

/** Play and pause, speed, virtual time, skip to the story's end, replay, start over. */
export function TransportBar(props: {
  readonly state: SessionState
  readonly session: LabSession
  readonly onStartOver: () => void
}): ReactNode {
  const { state, session } = props
  const now = state.view?.now ?? 0
  const scripted = isScripted(state.story)
  const end = storyEnd(state.story.script, state.story.durationMs)
  const idle = state.busy === null && state.view !== null
  const bar = useStickyHeight()
  return (
    <div className="transport" role="toolbar" aria-label="Playback" ref={bar}>
      <button
        type="button"
        className="button primary play"
        disabled={!idle}
        onClick={() => (state.playing ? session.pause() : session.play())}
      >
        <span aria-hidden="true">{state.playing ? '❚❚' : '▶'}</span>
        {state.playing ? 'Pause' : 'Play'}
      </button>
      <label className="speed">
        <span>Speed</span>
        <select value={state.speed} onChange={(event) => session.setSpeed(Number(event.target.value))}>
          {SPEEDS.map((speed) => (
            <option key={speed} value={speed}>
              {formatSpeed(speed)}
            </option>
          ))}
        </select>
      </label>
      <div className="clock">
        <span className="muted small">virtual time</span>
        {/* Not announced: it changes at every frame while playing (the timeline says what happened). */}
        <output aria-label="Virtual time" aria-live="off" data-now={now}>
          {formatTime(now)}
        </output>
        {scripted ? (
          <progress
            aria-label="Story progress"
            max={end}
            value={Math.min(now, end)}
            className="story-progress"
          />
        ) : null}
      </div>
      <div className="transport-actions">
        <button
          type="button"
          className="button"
          disabled={!idle || !scripted || state.ended}
          onClick={() => void session.skipToEnd()}
        >
          Skip to end
        </button>
        <button
          type="button"
          className="button"
          disabled={!idle || !state.replayable}
          title={
            !state.replayable
              ? 'Nothing has run yet: play, or act on the cluster, first'
              : 'Run every action so far again on a fresh cluster with the same seed'
          }
          onClick={() => void session.replay()}
        >
          Replay
        </button>
        <button
          type="button"
          className="button subtle"
          disabled={state.busy === 'loading'}
          onClick={props.onStartOver}
        >
          Start over
        </button>
      </div>
      <p className="busy" role="status">
        {state.busy === null
          ? state.ended
            ? state.playing
              ? 'The story has played out; time goes on.'
              : 'The story has played out. Play to go on from here.'
            : ''
          : BUSY_TEXT[state.busy]}
      </p>
    </div>
  )
}
