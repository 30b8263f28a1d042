import { describe, expect, it } from 'vitest'
import { createLab, presetEndMs, presets, replayLab } from '../../src/model/index.js'
import type { Lab, Preset } from '../../src/model/types.js'

/** Plays a preset by hand, advancing in chunks of `chunkMs` and applying each action at its time. */
async function playInChunks(preset: Preset, chunkMs: number): Promise<Lab> {
  const lab = await createLab(preset.settings)
  const end = presetEndMs(preset)
  let next = 0
  while (lab.now() < end) {
    for (
      let step = preset.script[next];
      step !== undefined && step.at <= lab.now();
      step = preset.script[next]
    ) {
      await lab.apply(step.action)
      next++
    }
    const due = preset.script[next]?.at ?? end
    await lab.advance(Math.min(chunkMs, due - lab.now(), end - lab.now()))
  }
  for (let step = preset.script[next]; step !== undefined; step = preset.script[++next])
    await lab.apply(step.action)
  return lab
}

const byDesign = ['async-leader-crash', 'partition-fenced', 'quorum-strict', 'multi-leader-conflict'].map(
  (id) => presets.find((preset) => preset.id === id) as Preset,
)

describe('replay', () => {
  it.each(byDesign)(
    '$id: 1 ms steps, 37 ms steps and one step per action give the same view',
    async (preset) => {
      const fine = await playInChunks(preset, 1)
      const odd = await playInChunks(preset, 37)
      const coarse = await playInChunks(preset, Number.POSITIVE_INFINITY)
      expect(fine.now()).toBe(presetEndMs(preset))
      expect(odd.view()).toEqual(fine.view())
      expect(coarse.view()).toEqual(fine.view())
      expect(fine.view().timeline.length).toBeGreaterThan(5)
    },
  )

  it.each(byDesign)(
    '$id: replayLab from the recorded actions reproduces the view, midway too',
    async (preset) => {
      const original = await playInChunks(preset, 53)
      expect(original.actions()).toEqual(preset.script)
      const replayed = await replayLab(original.settings, original.actions(), original.now())
      expect(replayed.view()).toEqual(original.view())
      const midway = Math.floor(presetEndMs(preset) / 2)
      const half = await replayLab(
        preset.settings,
        preset.script.filter((step) => step.at <= midway),
        midway,
      )
      const halfByHand = await createLab(preset.settings)
      for (const step of preset.script.filter((s) => s.at <= midway)) {
        await halfByHand.advance(step.at - halfByHand.now())
        await halfByHand.apply(step.action)
      }
      await halfByHand.advance(midway - halfByHand.now())
      expect(half.view()).toEqual(halfByHand.view())
    },
  )
})

describe('seed and jitter', () => {
  const timelineText = (lab: Lab) => lab.view().timeline.map((event) => `${event.at} ${event.text}`)

  it.each(byDesign)(
    '$id: with jitter, another seed gives another run and the same seed the same run',
    async (preset) => {
      const jittery = { ...preset.settings, jitterMs: 30 }
      const first = await playInChunks({ ...preset, settings: jittery }, 29)
      const again = await playInChunks({ ...preset, settings: jittery }, Number.POSITIVE_INFINITY)
      const other = await playInChunks({ ...preset, settings: { ...jittery, seed: jittery.seed + 1 } }, 29)
      expect(again.view()).toEqual(first.view())
      expect(timelineText(other)).not.toEqual(timelineText(first))
      const replayed = await replayLab(first.settings, first.actions(), first.now())
      expect(replayed.view()).toEqual(first.view())
    },
  )

  it('refuses jitter that is not a whole number of ms from 0 to 1000', async () => {
    for (const jitterMs of [-1, 1.5, 1_001]) {
      await expect(createLab({ ...byDesign[0]!.settings, jitterMs })).rejects.toMatchObject({
        code: 'invalid-argument',
      })
    }
  })
})
