import { describe, expect, it } from 'vitest'
import { createLabSession, freePlay, isScripted, type LabModel, presetStory } from '../src/lab-session.js'
import type { Lab, LabAction, LabSettings, LabView, Preset, TimedAction } from '../src/model/index.js'
import { runUntil, storyEnd } from '../src/script-runner.js'

const SETTINGS: LabSettings = {
  design: 'single-leader',
  seed: 7,
  nodes: 3,
  singleLeader: { replication: 'async', chain: false, fencing: true, autoFailover: true },
  quorum: { n: 3, w: 2, r: 2, sloppy: false, readRepair: 'blocking' },
  multiLeader: { resolver: 'lww' },
}

/** A lab that only keeps time and records what it was asked, as the timeline. */
function fakeLab(settings: LabSettings): Lab {
  let now = 0
  const actions: TimedAction[] = []
  const timeline: string[] = []
  return {
    settings,
    now: () => now,
    messagesHeld: () => 0,
    view: (): LabView => ({
      settings,
      now,
      nodes: [],
      links: [],
      messages: [],
      operations: [],
      timeline: timeline.map((text, seq) => ({ seq, at: 0, kind: 'action', text })),
      scoreboard: {
        acknowledgedWrites: 0,
        lostAcknowledgedWrites: 0,
        staleReads: 0,
        conflicts: 0,
        divergentReplicas: 0,
        rejectedWrites: 0,
        leaders: 1,
      },
    }),
    async advance(ms) {
      now += ms
    },
    async apply(action) {
      actions.push({ at: now, action })
      timeline.push(`${now} ${action.type}`)
    },
    actions: () => actions,
    subscribe: () => () => {},
  }
}

const fakeModel: LabModel = {
  createLab: async (settings) => fakeLab(settings),
  async replayLab(settings, actions, untilMs) {
    const lab = fakeLab(settings)
    await runUntil(lab, actions, 0, untilMs)
    return lab
  },
  defaultSettings: (design) => ({ ...SETTINGS, design }),
  presets: [],
}

const kill = (node: string): LabAction => ({ type: 'kill', node })

const PRESET: Preset = {
  id: 'story',
  title: 'A story',
  story: 'Things happen.',
  settings: SETTINGS,
  script: [
    { at: 0, action: kill('n0') },
    { at: 100, action: kill('n1') },
    { at: 100, action: kill('n2') },
    { at: 250, action: kill('n3') },
  ],
  durationMs: 500,
}

describe('running a script', () => {
  it('applies each action at its own time, in order, however the run is cut into steps', async () => {
    const whole = fakeLab(SETTINGS)
    expect(await runUntil(whole, PRESET.script, 0, 750)).toBe(4)
    const steps = fakeLab(SETTINGS)
    let cursor = 0
    for (let until = 0; until <= 750; until += 33)
      cursor = await runUntil(steps, PRESET.script, cursor, until)
    cursor = await runUntil(steps, PRESET.script, cursor, 750)
    expect(cursor).toBe(4)
    expect(steps.actions()).toEqual(whole.actions())
    expect(whole.actions().map((step) => step.at)).toEqual([0, 100, 100, 250])
    expect(whole.now()).toBe(750)
  })

  it('knows where a story ends, and that free play has no end', () => {
    expect(storyEnd(PRESET.script, PRESET.durationMs)).toBe(750)
    expect(isScripted(presetStory(PRESET))).toBe(true)
    expect(isScripted(freePlay(SETTINGS))).toBe(false)
  })
})

describe('a lab session', () => {
  it('starts paused with the actions due at time 0 applied, plays frame by frame and stops at the end', async () => {
    const session = createLabSession(fakeModel, presetStory(PRESET))
    await session.load(presetStory(PRESET))
    expect(session.getState()).toMatchObject({ busy: null, cursor: 1, playing: false, ended: false })
    session.setSpeed(1)
    session.play()
    for (let frame = 0; frame < 20 && !session.getState().ended; frame += 1) {
      await session.tick(100)
    }
    const state = session.getState()
    expect(state).toMatchObject({ ended: true, playing: false, cursor: 4 })
    expect(state.view?.now).toBe(750)
    // Played again, time goes on past the story (what is done now can be watched), and it
    // stays played out.
    session.play()
    await session.tick(100)
    expect(session.getState()).toMatchObject({ ended: true, playing: true, cursor: 4 })
    expect(session.getState().view?.now).toBe(850)
  })

  it('skips to the end at once, then replays to the same timeline on a new lab', async () => {
    const session = createLabSession(fakeModel, presetStory(PRESET))
    await session.skipToEnd()
    const before = session.getState()
    expect(before).toMatchObject({ ended: true, cursor: 4, busy: null })
    await session.apply(kill('n9'))
    await session.replay()
    const after = session.getState()
    expect(after.labNumber).toBe(before.labNumber + 1)
    expect(after.view?.timeline.map((event) => event.text)).toEqual([
      '0 kill',
      '100 kill',
      '100 kill',
      '250 kill',
      '750 kill',
    ])
    expect(after.view?.now).toBe(750)
  })

  it('drops what was queued for a lab that a later load replaces, and keeps what a replay follows', async () => {
    const session = createLabSession(fakeModel, freePlay(SETTINGS))
    const stale = session.apply(kill('n1'))
    const loaded = session.load(freePlay(SETTINGS))
    await Promise.all([stale, loaded])
    expect(session.getState().view?.timeline).toEqual([])
    const kept = session.apply(kill('n2'))
    const replayed = session.replay()
    const after = session.apply(kill('n3'))
    await Promise.all([kept, replayed, after])
    expect(session.getState().view?.timeline.map((event) => event.text)).toEqual(['0 kill', '0 kill'])
  })

  it('reports a failing action and carries on', async () => {
    const failing: LabModel = {
      ...fakeModel,
      async createLab(settings) {
        const lab = fakeLab(settings)
        return {
          ...lab,
          apply: async () => {
            throw new Error('no such node n9')
          },
        }
      },
    }
    const session = createLabSession(failing, freePlay(SETTINGS))
    await session.apply(kill('n9'))
    expect(session.getState().error).toBe('no such node n9')
    expect(session.getState().busy).toBeNull()
    await session.skipToEnd()
    expect(session.getState().ended).toBe(false)
  })

  it('says why the lab could not start', async () => {
    const broken: LabModel = {
      ...fakeModel,
      createLab: () => Promise.reject(new Error('quorum runs 3 to 7 nodes, got 2')),
    }
    const session = createLabSession(broken, freePlay(SETTINGS))
    await session.load(freePlay(SETTINGS))
    expect(session.getState().error).toMatch(/could not start: quorum runs 3 to 7 nodes/)
    expect(session.getState().view).toBeNull()
  })
})
