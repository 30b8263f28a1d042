import { useSyncExternalStore } from 'react'
import { isSpaceId } from './ids.js'

/** A notebook this browser has opened, as the start page lists it. */
export interface KnownNotebook {
  readonly space: string
  readonly name: string
  readonly openedAt: number
}

const key = 'chorus-notes:notebooks'
const listeners = new Set<() => void>()
let cache: { readonly raw: string | null; readonly list: readonly KnownNotebook[] } | null = null

function read(): readonly KnownNotebook[] {
  const raw = localStorage.getItem(key)
  if (cache?.raw === raw) return cache.list
  cache = { raw, list: parse(raw) }
  return cache.list
}

function parse(raw: string | null): readonly KnownNotebook[] {
  if (raw === null) return []
  try {
    const value: unknown = JSON.parse(raw)
    if (!Array.isArray(value)) return []
    // An entry whose space no replica can open (an earlier build took more links) is dropped.
    return value.filter(
      (item): item is KnownNotebook =>
        isSpaceId(item?.space) && typeof item.name === 'string' && typeof item.openedAt === 'number',
    )
  } catch {
    // Not ours, or damaged: the list starts again rather than breaking the start page.
    return []
  }
}

function write(list: readonly KnownNotebook[]): void {
  localStorage.setItem(key, JSON.stringify(list))
  for (const listener of listeners) listener()
}

/** Records that `space` was opened now, under `name` when known. Most recent first. */
export function rememberNotebook(space: string, name?: string): void {
  const list = read()
  const known = list.find((item) => item.space === space)
  const entry = { space, name: name ?? known?.name ?? '', openedAt: Date.now() }
  write([entry, ...list.filter((item) => item.space !== space)])
}

/** Updates the name shown for `space`, if it is listed. */
export function renameKnownNotebook(space: string, name: string): void {
  const list = read()
  if (!list.some((item) => item.space === space && item.name !== name)) return
  write(list.map((item) => (item.space === space ? { ...item, name } : item)))
}

/** Drops `space` from this browser's list (its data stays, and its link still opens it). */
export function forgetNotebook(space: string): void {
  write(read().filter((item) => item.space !== space))
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener)
  const onStorage = (event: StorageEvent) => {
    if (event.key === key) listener()
  }
  window.addEventListener('storage', onStorage)
  return () => {
    listeners.delete(listener)
    window.removeEventListener('storage', onStorage)
  }
}

/** The notebooks this browser knows, most recently opened first. */
export function useKnownNotebooks(): readonly KnownNotebook[] {
  return useSyncExternalStore(subscribe, read)
}
