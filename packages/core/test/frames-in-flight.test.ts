import { createPrng } from '@chorus/testkit'
import { describe, expect, it } from 'vitest'
import {
  type FramesInFlight,
  framesToArray,
  type InFlight,
  NO_FRAMES_IN_FLIGHT,
  pushFrame,
  settleFrames,
} from '../src/protocol/frames-in-flight.js'

function pushAll(from: FramesInFlight, frames: readonly InFlight[]): FramesInFlight {
  let value = from
  for (const [to, bytes] of frames) value = pushFrame(value, to, bytes)
  return value
}

describe('frames in flight', () => {
  it('keeps frames oldest first and releases what an ack covers', () => {
    const frames = pushAll(NO_FRAMES_IN_FLIGHT, [
      [3, 10],
      [5, 20],
      [9, 40],
    ])
    expect(framesToArray(frames).length).toBe(3)
    expect(settleFrames(frames, 2)).toEqual({ left: frames, released: 0 })
    const { left, released } = settleFrames(frames, 5)
    expect(released).toBe(30)
    expect(framesToArray(left)).toEqual([[9, 40]])
    expect(settleFrames(frames, 9).left).toBe(NO_FRAMES_IN_FLIGHT)
    expect(settleFrames(frames, 100).released).toBe(70)
  })

  it('leaves a value as it was when a later one is extended or settled', () => {
    const base = pushAll(NO_FRAMES_IN_FLIGHT, [
      [1, 1],
      [2, 2],
    ])
    const longer = pushFrame(base, 3, 3)
    // Both extend `base`: the second must not see the first's frame.
    const other = pushFrame(base, 4, 4)
    const settled = pushFrame(settleFrames(longer, 1).left, 5, 5)
    expect(framesToArray(base)).toEqual([
      [1, 1],
      [2, 2],
    ])
    expect(framesToArray(longer)).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ])
    expect(framesToArray(other)).toEqual([
      [1, 1],
      [2, 2],
      [4, 4],
    ])
    expect(framesToArray(settled)).toEqual([
      [2, 2],
      [3, 3],
      [5, 5],
    ])
    expect(framesToArray(NO_FRAMES_IN_FLIGHT).length).toBe(0)
  })

  it('copies the live frames down once the settled ones outnumber them', () => {
    let frames = NO_FRAMES_IN_FLIGHT
    for (let to = 1; to <= 300; to++) frames = pushFrame(frames, to, 1)
    const few = settleFrames(frames, 100).left
    expect(few.pairs).toBe(frames.pairs)
    const { left, released } = settleFrames(few, 290)
    expect(released).toBe(190)
    expect(left.pairs).toHaveLength(20)
    expect(framesToArray(left)[0]).toEqual([291, 1])
  })

  it('copies rather than extend a frozen value', () => {
    const base = pushAll(NO_FRAMES_IN_FLIGHT, [[1, 1]])
    Object.freeze(base.pairs)
    const next = pushFrame(base, 2, 2)
    expect(next.pairs).not.toBe(base.pairs)
    expect(framesToArray(next)).toEqual([
      [1, 1],
      [2, 2],
    ])
  })

  it('matches a plain array over random pushes, acks and branches', () => {
    const random = createPrng(7)
    const kept: { value: FramesInFlight; plain: InFlight[] }[] = [{ value: NO_FRAMES_IN_FLIGHT, plain: [] }]
    let to = 0
    for (let step = 0; step < 5000; step++) {
      // Mostly the newest value goes on, as a session's does; sometimes an older one branches.
      const from = (
        random.next() < 0.9 ? kept[kept.length - 1] : kept[random.int(0, kept.length - 1)]
      ) as (typeof kept)[number]
      if (random.next() < 0.7) {
        to += random.int(1, 3)
        const bytes = random.int(0, 99)
        kept.push({ value: pushFrame(from.value, to, bytes), plain: [...from.plain, [to, bytes]] })
      } else {
        const last = from.plain[from.plain.length - 1]
        const acked = last === undefined ? to : random.int(0, last[0])
        const { left, released } = settleFrames(from.value, acked)
        const gone = from.plain.filter(([end]) => end <= acked).reduce((sum, [, bytes]) => sum + bytes, 0)
        expect(released).toBe(gone)
        kept.push({ value: left, plain: from.plain.filter(([end]) => end > acked) })
      }
      if (kept.length > 64) kept.splice(1, 1)
    }
    for (const { value, plain } of kept) {
      expect(framesToArray(value)).toEqual(plain)
      expect(framesToArray(value).length).toBe(plain.length)
    }
  })
})
