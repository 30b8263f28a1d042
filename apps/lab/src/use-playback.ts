import { useEffect } from 'react'
import type { LabSession } from './lab-session.js'

/**
 * While `playing`, feeds the session one tick per animation frame with the wall-clock time
 * since the previous frame; the session turns it into virtual time at the chosen speed.
 */
export function usePlayback(session: LabSession, playing: boolean): void {
  useEffect(() => {
    if (!playing) return
    let last = performance.now()
    let frame = requestAnimationFrame(function loop(time) {
      session.tick(time - last)
      last = time
      frame = requestAnimationFrame(loop)
    })
    return () => cancelAnimationFrame(frame)
  }, [session, playing])
}
