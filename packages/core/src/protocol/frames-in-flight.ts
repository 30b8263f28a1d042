/** A `changes` frame sent and not yet acknowledged: its last position and its estimated bytes. */
export type InFlight = readonly [to: number, bytes: number]

/**
 * The `changes` frames a hub session has sent and its peer has not acknowledged, oldest first:
 * the `to, bytes` pairs of `pairs` from index `start` up to `end`.
 *
 * A value, as the rest of a session's state is: {@link pushFrame} and {@link settleFrames}
 * return a new one and leave this one as it was. Sending a frame must not copy the frames
 * before it — a reader that acknowledges every few hundred frames would make each send cost
 * that many — so values share one backing array, each seeing a stretch of it. Pushing onto a
 * value whose stretch ends where the array ends appends in place: the values before it end
 * earlier and never see the new pair. Pushing onto any other value, or onto a frozen array,
 * copies first. Settling moves the start; the array is copied down once the settled pairs in
 * front of it outnumber the live ones.
 */
export interface FramesInFlight {
  readonly pairs: readonly number[]
  readonly start: number
  readonly end: number
}

/** No frame in flight. */
export const NO_FRAMES_IN_FLIGHT: FramesInFlight = Object.freeze({
  pairs: Object.freeze([]),
  start: 0,
  end: 0,
})

/** Settled pairs kept at the front of a backing array before it is copied down. */
const COMPACT_AFTER = 256

/** `frames` and one more, sent after them, ending at position `to`. */
export function pushFrame(frames: FramesInFlight, to: number, bytes: number): FramesInFlight {
  const { pairs, start, end } = frames
  if (end === start) return { pairs: [to, bytes], start: 0, end: 2 }
  if (end === pairs.length && !Object.isFrozen(pairs)) {
    ;(pairs as number[]).push(to, bytes)
    return { pairs, start, end: end + 2 }
  }
  const copy = pairs.slice(start, end)
  copy.push(to, bytes)
  return { pairs: copy, start: 0, end: copy.length }
}

/**
 * The frames left once the peer has acknowledged up to `acked` (those ending after it), and
 * the bytes of those it released.
 */
export function settleFrames(
  frames: FramesInFlight,
  acked: number,
): { readonly left: FramesInFlight; readonly released: number } {
  const { pairs, end } = frames
  let start = frames.start
  let released = 0
  while (start < end && (pairs[start] as number) <= acked) {
    released += pairs[start + 1] as number
    start += 2
  }
  if (start === frames.start) return { left: frames, released }
  if (start === end) return { left: NO_FRAMES_IN_FLIGHT, released }
  if (start >= COMPACT_AFTER && start > end - start) {
    const copy = pairs.slice(start, end)
    return { left: { pairs: copy, start: 0, end: copy.length }, released }
  }
  return { left: { pairs, start, end }, released }
}

/** The frames, oldest first (a copy). */
export function framesToArray(frames: FramesInFlight): InFlight[] {
  const list: InFlight[] = []
  for (let i = frames.start; i < frames.end; i += 2)
    list.push([frames.pairs[i] as number, frames.pairs[i + 1] as number])
  return list
}
