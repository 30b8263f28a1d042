import type { Design, Lab, LabAction, LabSettings, LabView, Preset, TimedAction } from './model/index.js'
import { DEFAULT_SPEED, virtualStep } from './pace.js'
import { runUntil, storyEnd } from './script-runner.js'

/** What the page needs of the lab's model (its `index.ts`), passed in so tests can fake it. */
export interface LabModel {
  createLab(settings: LabSettings): Promise<Lab>
  replayLab(settings: LabSettings, actions: readonly TimedAction[], untilMs: number): Promise<Lab>
  defaultSettings(design: Design): LabSettings
  readonly presets: readonly Preset[]
}

/** What the lab runs: settings, and optionally a preset's script to play out. */
export interface Story {
  readonly settings: LabSettings
  readonly script: readonly TimedAction[]
  /** Virtual ms the story needs after its last action; 0 for free play. */
  readonly durationMs: number
  /** The preset this story came from, if any (its settings may since have been changed). */
  readonly presetId: string | null
}

/** What the session is doing that the person has to wait for. */
export type Busy = 'loading' | 'skipping' | 'replaying' | null

/** The page's whole state of the lab, one immutable snapshot per change. */
export interface SessionState {
  readonly story: Story
  /** The lab's latest snapshot; null until the first lab is created. */
  readonly view: LabView | null
  readonly playing: boolean
  /** Virtual ms per wall-clock ms while playing. */
  readonly speed: number
  readonly busy: Busy
  /** How many of the story's scripted actions have been applied. */
  readonly cursor: number
  /** A scripted story that has run to its end (free play never ends). */
  readonly ended: boolean
  /** The last failure, worded for the person; cleared by the next successful step. */
  readonly error: string | null
  /** Counts the labs this session has created: a replay or a load makes a new one. */
  readonly labNumber: number
  /** Whether the lab has something to replay: virtual time has run, or actions were taken. */
  readonly replayable: boolean
}

/** Drives one lab at a time for the page: play at a speed, skip, replay, act. */
export interface LabSession {
  getState(): SessionState
  subscribe(listener: () => void): () => void
  /** Replaces the lab with a fresh one running `story` from virtual time 0, paused. */
  load(story: Story): Promise<void>
  play(): void
  pause(): void
  setSpeed(speed: number): void
  /**
   * Runs the virtual time a frame `wallMs` after the previous one stands for, while playing;
   * resolves when it has run. A frame that comes while the previous one still runs is dropped.
   */
  tick(wallMs: number): Promise<void>
  /** Runs the rest of the story at once. */
  skipToEnd(): Promise<void>
  /** A new lab from the same seed with every action so far at its recorded time, paused. */
  replay(): Promise<void>
  /** Applies a person's action now. */
  apply(action: LabAction): Promise<void>
}

/** A story with no script: the person drives. */
export function freePlay(settings: LabSettings): Story {
  return { settings, script: [], durationMs: 0, presetId: null }
}

/** The story a preset tells, optionally with its settings changed. */
export function presetStory(preset: Preset, settings: LabSettings = preset.settings): Story {
  return { settings, script: preset.script, durationMs: preset.durationMs, presetId: preset.id }
}

/** Whether `story` has an end to skip to. */
export function isScripted(story: Story): boolean {
  return story.script.length > 0 || story.durationMs > 0
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * A session over `model`, starting with `story`. Every operation on the lab runs in one queue,
 * so a frame's advance, a click and a skip never interleave, and an operation queued for a lab
 * that has since been replaced does nothing.
 */
export function createLabSession(model: LabModel, story: Story): LabSession {
  let state: SessionState = {
    story,
    view: null,
    playing: false,
    speed: DEFAULT_SPEED,
    busy: 'loading',
    cursor: 0,
    ended: false,
    error: null,
    labNumber: 0,
    replayable: false,
  }
  let lab: Lab | null = null
  /** The lab that operations queued now will meet: the one the latest load or replay makes. */
  let expectedGeneration = 0
  /** Which of those `lab` is. */
  let labGeneration = -1
  /** Operations queued for an older lab than this are dropped: a later load replaced it. */
  let oldestLive = 0
  let queue: Promise<void> = Promise.resolve()
  let ticking = false
  const listeners = new Set<() => void>()

  function set(patch: Partial<SessionState>): void {
    state = { ...state, ...patch }
    for (const listener of listeners) listener()
  }

  function refresh(current: Lab, patch: Partial<SessionState> = {}): void {
    const ended =
      isScripted(state.story) && current.now() >= storyEnd(state.story.script, state.story.durationMs)
    const replayable = current.now() > 0 || current.actions().length > 0
    // Playing stops where the story ends; played again from there, time goes on (so what a
    // person does after the story can be watched), and the story stays played out.
    const justEnded = ended && !state.ended
    set({ view: current.view(), ended, replayable, ...patch, ...(justEnded ? { playing: false } : {}) })
  }

  /**
   * Queues `task` for the lab the queue will have reached by then; it is skipped if a load
   * was asked for after it (that load's story is already the session's), or if that lab
   * failed to start. A replay asked for after it does not skip it: the replay includes it.
   */
  function enqueue(task: (current: Lab) => Promise<void>): Promise<void> {
    const generation = expectedGeneration
    const run = async () => {
      if (lab === null || labGeneration !== generation || generation < oldestLive) return
      try {
        await task(lab)
      } catch (error) {
        set({ busy: null, playing: false, error: describe(error) })
      }
    }
    queue = queue.then(run)
    return queue
  }

  const session: LabSession = {
    getState: () => state,
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    load(next) {
      set({ story: next, busy: 'loading', playing: false, cursor: 0, ended: false, error: null })
      expectedGeneration += 1
      const generation = expectedGeneration
      oldestLive = generation
      queue = queue.then(async () => {
        try {
          const created = await model.createLab(next.settings)
          lab = created
          labGeneration = generation
          const cursor = await runUntil(created, next.script, 0, 0)
          refresh(created, { busy: null, cursor, labNumber: state.labNumber + 1 })
        } catch (error) {
          set({ busy: null, error: `The lab could not start: ${describe(error)}` })
        }
      })
      return queue
    },
    play() {
      if (lab === null) return
      set({ playing: true })
    },
    pause() {
      set({ playing: false })
    },
    setSpeed(speed) {
      set({ speed })
    },
    tick(wallMs) {
      const step = virtualStep(wallMs, state.speed)
      if (!state.playing || state.busy !== null || ticking || step === 0) return Promise.resolve()
      ticking = true
      return enqueue(async (current) => {
        const { script, durationMs } = state.story
        const wanted = current.now() + step
        const until =
          isScripted(state.story) && !state.ended ? Math.min(wanted, storyEnd(script, durationMs)) : wanted
        const cursor = await runUntil(current, script, state.cursor, until)
        refresh(current, { cursor, error: null })
      }).finally(() => {
        ticking = false
      })
    },
    skipToEnd() {
      if (!isScripted(state.story)) return Promise.resolve()
      set({ playing: false })
      return enqueue(async (current) => {
        set({ busy: 'skipping' })
        const { script, durationMs } = state.story
        const cursor = await runUntil(current, script, state.cursor, storyEnd(script, durationMs))
        refresh(current, { cursor, busy: null, error: null })
      })
    },
    replay() {
      set({ playing: false })
      const generation = expectedGeneration + 1
      const task = enqueue(async (original) => {
        set({ busy: 'replaying' })
        // Whatever comes of it, later operations go to the lab that is current afterwards.
        labGeneration = generation
        const replayed = await model.replayLab(original.settings, original.actions(), original.now())
        lab = replayed
        refresh(replayed, { busy: null, error: null, labNumber: state.labNumber + 1 })
      })
      expectedGeneration = generation
      return task
    },
    apply(action) {
      return enqueue(async (current) => {
        await current.apply(action)
        refresh(current, { error: null })
      })
    },
  }
  void session.load(story)
  return session
}
