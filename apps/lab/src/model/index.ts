import { MultiLeaderLab } from './multi-leader-lab.js'
import { presetEndMs } from './presets.js'
import { QuorumLab } from './quorum-lab.js'
import { checkSettings } from './settings.js'
import { SingleLeaderLab } from './single-leader-lab.js'
import type { Lab, LabSettings, Preset, TimedAction } from './types.js'

export { presetEndMs, presets } from './presets.js'
export { defaultSettings, labTimings } from './settings.js'
export type * from './types.js'

/**
 * Starts a lab of the design in `settings`: real nodes on a seeded simulated network, at
 * lab time 0. Throws `invalid-argument` for settings it cannot run.
 */
export async function createLab(settings: LabSettings): Promise<Lab> {
  checkSettings(settings)
  switch (settings.design) {
    case 'single-leader':
      return SingleLeaderLab.create(settings)
    case 'quorum':
      return QuorumLab.create(settings)
    case 'multi-leader':
      return MultiLeaderLab.create(settings)
  }
}

/**
 * A new lab from the same settings (so the same seed), with every action applied at its
 * recorded time, run to `untilMs`. Its view equals the original's at the same virtual time.
 */
export async function replayLab(
  settings: LabSettings,
  actions: readonly TimedAction[],
  untilMs: number,
): Promise<Lab> {
  const lab = await createLab(settings)
  for (const { at, action } of actions) {
    if (at > lab.now()) await lab.advance(at - lab.now())
    await lab.apply(action)
  }
  if (untilMs > lab.now()) await lab.advance(untilMs - lab.now())
  return lab
}

/** Plays a preset at once: a new lab, the whole script at its times, then `durationMs`. */
export function runPreset(preset: Preset): Promise<Lab> {
  return replayLab(preset.settings, preset.script, presetEndMs(preset))
}
