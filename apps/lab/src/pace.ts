/** Playback speeds offered: virtual milliseconds per wall-clock millisecond. */
export const SPEEDS: readonly number[] = [0.02, 0.05, 0.1, 0.25, 0.5, 1, 4]

/** The speed a lab starts at: a 40 ms message takes 0.4 s to cross the screen. */
export const DEFAULT_SPEED = 0.1

/**
 * The longest wall-clock gap one frame may turn into virtual time. A tab in the background
 * gets no frames for seconds; on return the lab carries on from where it was instead of
 * jumping ahead through events nobody saw.
 */
export const MAX_FRAME_MS = 100

/** The virtual milliseconds to run for a frame that came `wallMs` after the previous one. */
export function virtualStep(wallMs: number, speed: number): number {
  if (!(wallMs > 0) || !(speed > 0)) return 0
  return Math.min(wallMs, MAX_FRAME_MS) * speed
}
