import { useSyncExternalStore } from 'react'
import { screenChanged } from './focus.js'
import { isSpaceId } from './ids.js'

/** Where the app is, as the URL's hash says: `#/`, `#/notebook/<space>`, `#/notebook/<space>/conflicts`. */
export type Route =
  | { readonly name: 'home' }
  | { readonly name: 'notebook'; readonly space: string; readonly view: 'notes' | 'conflicts' }
  | { readonly name: 'invalid'; readonly hash: string }

/** Reads a route from a hash (`#/notebook/abc`). */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '')
  if (path === '' || path === '/') return { name: 'home' }
  const match = /^\/notebook\/([^/]+)(\/conflicts)?\/?$/.exec(path)
  const space = match?.[1] === undefined ? undefined : safeDecode(match[1])
  if (space === undefined || !isSpaceId(space)) return { name: 'invalid', hash }
  return { name: 'notebook', space, view: match?.[2] === undefined ? 'notes' : 'conflicts' }
}

function safeDecode(part: string): string | undefined {
  try {
    return decodeURIComponent(part)
  } catch {
    // A malformed escape: the link names no notebook, which the caller reports.
    return undefined
  }
}

/** The hash of a notebook's route. */
export function notebookHash(space: string, view: 'notes' | 'conflicts' = 'notes'): string {
  return `#/notebook/${encodeURIComponent(space)}${view === 'conflicts' ? '/conflicts' : ''}`
}

/** The shareable address of a notebook: this page with the notebook's hash. */
export function notebookLink(space: string): string {
  return new URL(notebookHash(space), location.href).href
}

/**
 * The notebook a pasted link or id names, or `undefined`. Accepts a whole link
 * (`https://host/#/notebook/<id>`), a hash, or a bare id.
 */
export function spaceFromInput(input: string): string | undefined {
  const text = input.trim()
  const at = text.indexOf('#/notebook/')
  if (at >= 0) {
    const route = parseRoute(text.slice(at))
    return route.name === 'notebook' ? route.space : undefined
  }
  return isSpaceId(text) ? text : undefined
}

const subscribe = (onChange: () => void): (() => void) => {
  const changed = () => {
    // The screen the new route shows moves focus to its heading (see `useScreenHeading`).
    screenChanged()
    onChange()
  }
  window.addEventListener('hashchange', changed)
  return () => window.removeEventListener('hashchange', changed)
}
const readHash = (): string => location.hash

/** The current route, following the hash. */
export function useRoute(): Route {
  return parseRoute(useSyncExternalStore(subscribe, readHash))
}

/** Goes to a hash (a new history entry, so Back returns). */
export function navigate(hash: string): void {
  if (location.hash !== hash) location.hash = hash
}
