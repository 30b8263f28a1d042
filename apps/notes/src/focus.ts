import { useCallback } from 'react'

/**
 * Moves focus to the main heading of the screen (the page's `h1`), or to the main content when
 * there is none: where focus goes when what had it went away and nothing better is at hand, so
 * that it never falls to the page itself (a screen reader would start over from its top).
 */
export function focusMainHeading(): void {
  const target =
    document.querySelector<HTMLElement>('main h1') ??
    document.querySelector<HTMLElement>('h1') ??
    document.querySelector<HTMLElement>('main')
  if (target === null) return
  if (!target.hasAttribute('tabindex')) target.tabIndex = -1
  target.focus()
}

/** Whether focus is nowhere in particular: on the page itself. */
export function focusIsLost(): boolean {
  return document.activeElement === null || document.activeElement === document.body
}

/**
 * Focuses what `find` returns as soon as it is on the page (an element that a change being
 * written is about to bring), trying each frame for up to `ms`; else the main heading. Calls
 * `done` once focus has moved.
 */
export function focusWhenShown(
  find: () => HTMLElement | null,
  done: () => void = () => {},
  ms = 1_500,
): void {
  const until = performance.now() + ms
  const attempt = () => {
    const target = find()
    if (target !== null) target.focus()
    else if (performance.now() < until) {
      requestAnimationFrame(attempt)
      return
    } else focusMainHeading()
    done()
  }
  attempt()
}

/** The app moved to another screen (the URL's hash changed) and focus has not followed yet. */
let arrived = false

/** Called when the route changes: the next screen heading shown takes focus (see `useScreenHeading`). */
export function screenChanged(): void {
  arrived = true
}

/**
 * A ref for a screen's main heading: after a move to another screen, it takes focus as it
 * appears, so that a screen reader says where the user is, and the next Tab goes on from the
 * top of the new screen rather than from the page. It does not take focus from anything that
 * holds it, nor on the first screen the page opens on. `always`: it takes focus whenever it
 * appears (a view opened to act on what it heads).
 */
export function useScreenHeading<T extends HTMLElement>(always = false): (element: T | null) => void {
  return useCallback(
    (element: T | null) => {
      if (element === null) return
      if (always) {
        arrived = false
        element.focus()
      } else if (arrived) {
        arrived = false
        if (focusIsLost()) element.focus()
      }
    },
    [always],
  )
}
