import type { Lab, TimedAction } from './model/index.js'

/** When a story is over: its last scripted action plus the time it needs to play out. */
export function storyEnd(script: readonly TimedAction[], durationMs: number): number {
  const last = script.reduce((latest, step) => Math.max(latest, step.at), 0)
  return last + durationMs
}

/**
 * Runs `lab` to virtual time `until`, applying each scripted action from `cursor` on at its
 * own time (several at one time in script order), and resolves with the new cursor: how many
 * of the script's actions have been applied. Running in steps (frame by frame) or at once
 * gives the same actions at the same times, hence the same timeline.
 */
export async function runUntil(
  lab: Pick<Lab, 'now' | 'advance' | 'apply'>,
  script: readonly TimedAction[],
  cursor: number,
  until: number,
): Promise<number> {
  let next = cursor
  for (let step = script[next]; step !== undefined && step.at <= until; step = script[next]) {
    const wait = step.at - lab.now()
    if (wait > 0) await lab.advance(wait)
    await lab.apply(step.action)
    next += 1
  }
  const rest = until - lab.now()
  if (rest > 0) await lab.advance(rest)
  return next
}
