import { type ReactNode, useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react'
import { ClientPanel } from './client-panel.js'
import { ClusterDiagram } from './cluster-diagram.js'
import { createLabSession, freePlay, type LabModel, presetStory, type Story } from './lab-session.js'
import type { Design, LabAction, LabSettings, Preset } from './model/index.js'
import { NetworkPanel } from './network-panel.js'
import { NodeList } from './node-list.js'
import { PresetList } from './preset-list.js'
import { presetFromHash, presetHash } from './route.js'
import { ScoreboardPanel } from './scoreboard-panel.js'
import { keepsScript } from './settings-edit.js'
import { SetupPanel } from './setup-panel.js'
import { TimelinePanel } from './timeline-panel.js'
import { TransportBar } from './transport-bar.js'
import { usePlayback } from './use-playback.js'

/** The design the lab opens on when no preset is linked. */
const FIRST_DESIGN: Design = 'single-leader'

function initialStory(model: LabModel, hash: string): Story {
  const id = presetFromHash(hash)
  const preset = model.presets.find((candidate) => candidate.id === id)
  return preset === undefined ? freePlay(model.defaultSettings(FIRST_DESIGN)) : presetStory(preset)
}

function setHash(hash: string): void {
  window.history.replaceState(null, '', hash === '' ? window.location.pathname : hash)
}

function sameSettings(a: LabSettings, b: LabSettings): boolean {
  // No jitter is jitter 0 (the slider sets 0 where a story leaves it out).
  const plain = (settings: LabSettings) => JSON.stringify({ ...settings, jitterMs: settings.jitterMs ?? 0 })
  return plain(a) === plain(b)
}

function StoryCard(props: {
  readonly preset: Preset | undefined
  readonly settings: LabSettings
}): ReactNode {
  const { preset } = props
  if (preset === undefined) {
    const breaking =
      props.settings.design === 'multi-leader'
        ? 'kill the relay or a replica'
        : props.settings.design === 'single-leader'
          ? 'kill the leader or promote a follower'
          : 'kill a node'
    return (
      <section className="story" aria-label="Story">
        <h2>Free play</h2>
        <p>
          Write at one node and read at another, slow a link down, cut the network, {breaking}, and watch what
          this design does about it. Or load one of the stories.
        </p>
      </section>
    )
  }
  return (
    <section className="story" aria-label="Story">
      <h2>{preset.title}</h2>
      <p>{preset.story}</p>
      {sameSettings(preset.settings, props.settings) ? null : (
        <p className="small story-changed">
          Played with changed settings: the script is the story's, the rules are yours.
        </p>
      )}
    </section>
  )
}

/** The replication lab: a cluster of real Chorus nodes in the page, and the controls to break it. */
export function App(props: { readonly model: LabModel }): ReactNode {
  const { model } = props
  const [session] = useState(() => createLabSession(model, initialStory(model, window.location.hash)))
  const state = useSyncExternalStore(session.subscribe, session.getState)
  usePlayback(session, state.playing)
  const onAction = useCallback((action: LabAction) => void session.apply(action), [session])

  const { story, view } = state
  const settings = story.settings
  const busy = state.busy !== null
  // A link to another story within the page (`#preset=…`, or the hash edited) loads it, as
  // opening the link afresh would.
  useEffect(() => {
    const follow = () => {
      const id = presetFromHash(window.location.hash)
      const chosen = model.presets.find((candidate) => candidate.id === id)
      const current = session.getState().story.presetId
      if (chosen !== undefined && chosen.id !== current) void session.load(presetStory(chosen))
      // Back to the lab's own address (or a link to no story): free play, as opening it shows.
      else if (chosen === undefined && current !== null) void session.load(initialStory(model, ''))
    }
    window.addEventListener('hashchange', follow)
    return () => window.removeEventListener('hashchange', follow)
  }, [model, session])
  useFocusKept(busy)
  const narrow = useNarrow()
  const preset = model.presets.find((candidate) => candidate.id === story.presetId)

  const loadPreset = (chosen: Preset) => {
    setHash(presetHash(chosen.id))
    void session.load(presetStory(chosen))
  }
  const changeSettings = (next: LabSettings) => {
    if (keepsScript(settings, next)) {
      void session.load({ ...story, settings: next })
      return
    }
    setHash('')
    void session.load(freePlay(next))
  }
  const changeDesign = (design: Design) =>
    changeSettings({
      ...model.defaultSettings(design),
      seed: settings.seed,
      ...(settings.jitterMs === undefined ? {} : { jitterMs: settings.jitterMs }),
    })

  // On a narrow screen the cards stack in one column, in the page's order, which Tab follows:
  // the stories and the design go after the cluster there, not before it.
  const side = (
    <div className="lab-side">
      <PresetList presets={model.presets} current={story.presetId} disabled={busy} onLoad={loadPreset} />
      <SetupPanel settings={settings} disabled={busy} onDesign={changeDesign} onChange={changeSettings} />
    </div>
  )

  return (
    <div
      className="lab"
      data-busy={state.busy ?? 'no'}
      data-ended={state.ended}
      data-lab={state.labNumber}
      data-design={settings.design}
    >
      <header className="lab-header">
        <span className="logo" aria-hidden="true" />
        <div>
          <h1>Replication lab</h1>
          <p className="tagline">Real Chorus nodes on a simulated network, in virtual time. Break them.</p>
        </div>
        <a className="button subtle" href="/">
          Notes app
        </a>
      </header>
      <TransportBar state={state} session={session} onStartOver={() => void session.load(story)} />
      {state.error === null ? null : (
        <p className="error-banner" role="alert">
          {state.error}
        </p>
      )}
      <div className="lab-grid">
        {narrow ? null : side}
        <main className="lab-main">
          <StoryCard preset={preset} settings={settings} />
          <section className="card diagram-card" aria-label="Cluster">
            {view === null ? (
              <p className="muted pad">Starting the cluster…</p>
            ) : (
              <ClusterDiagram view={view} />
            )}
            <ul className="legend small muted">
              <li>
                <span className="legend-dot" aria-hidden="true" /> message in flight
              </li>
              <li>
                <span className="legend-dropped" aria-hidden="true">
                  ✕
                </span>{' '}
                dropped
              </li>
              <li>
                <span className="legend-cut" aria-hidden="true" /> cut link
              </li>
              {settings.design === 'single-leader' ? (
                <li>
                  <span className="legend-leader" aria-hidden="true" /> leader
                </li>
              ) : null}
            </ul>
          </section>
          {view === null ? null : (
            <>
              <NodeList nodes={view.nodes} design={settings.design} disabled={busy} onAction={onAction} />
              <NetworkPanel links={view.links} disabled={busy} onAction={onAction} />
            </>
          )}
        </main>
        <div className="lab-info">
          {view === null ? null : (
            <>
              <ScoreboardPanel scoreboard={view.scoreboard} design={settings.design} />
              <ClientPanel
                nodes={view.nodes}
                operations={view.operations}
                disabled={busy}
                onAction={onAction}
              />
              <TimelinePanel events={view.timeline} seed={view.settings.seed} lab={state.labNumber} />
            </>
          )}
        </div>
        {narrow ? side : null}
      </div>
    </div>
  )
}

/**
 * While the lab restarts (a setting changed, a story loaded) its controls are disabled, and a
 * browser moves focus off a control that is disabled: to the page. Once they are enabled
 * again, focus goes back to the control last focused, if it is still there and nothing else
 * took focus meanwhile, so that a keyboard user can go on (an arrow key moves a slider on).
 * A control an action disables or removes for good (Pause, Cut network) hands focus to the
 * first usable control of its card or panel.
 */
function useFocusKept(busy: boolean): void {
  const last = useRef<HTMLElement | null>(null)
  /** The card or panel the last focused control is in, for when that control goes. */
  const around = useRef<HTMLElement | null>(null)
  useEffect(() => {
    const seen = (event: FocusEvent) => {
      if (!(event.target instanceof HTMLElement) || event.target === document.body) return
      last.current = event.target
      around.current = event.target.closest<HTMLElement>(
        'article, section, nav, header, footer, [role="toolbar"]',
      )
    }
    document.addEventListener('focusin', seen)
    return () => document.removeEventListener('focusin', seen)
  }, [])
  const wasBusy = useRef(busy)
  // After every render: an action can disable or remove the control that had focus.
  useEffect(() => {
    const settled = wasBusy.current && !busy
    wasBusy.current = busy
    if (busy) return
    const control = last.current
    if (control === null) return
    const active = document.activeElement
    const usable = control.isConnected && !(control as HTMLButtonElement).disabled
    if (usable) {
      // Disabled while the lab was busy, and enabled again: focus goes back to it.
      if (settled && (active === null || active === document.body)) control.focus()
      return
    }
    // Disabled (Pause, Skip to end) or gone (Cut network, Keep): unless focus went elsewhere
    // meanwhile, the first control still usable where it was, not the top of the page. (A
    // control just disabled holds focus until the browser's next rendering update.)
    if (active !== null && active !== document.body && active !== control) return
    around.current
      ?.querySelector<HTMLElement>('button:enabled, input:enabled, select:enabled, [tabindex="0"]')
      ?.focus()
  })
}

/** The width below which the lab is one column (the stylesheet's 760 px breakpoint). */
const NARROW = '(max-width: 760px)'

function useNarrow(): boolean {
  return useSyncExternalStore(
    (onChange) => {
      const query = window.matchMedia(NARROW)
      query.addEventListener('change', onChange)
      return () => query.removeEventListener('change', onChange)
    },
    () => window.matchMedia(NARROW).matches,
  )
}
