import { useSyncExternalStore } from 'react'
import { isSpaceId } from './ids.js'

/** A notebook this browser has opened, as the start page lists it. */
export interface KnownNotebook {
  readonly space: string
  readonly name: string
  readonly openedAt: number
  /** Made in this browser (the start page's Create notebook), not opened from a link. */
  readonly created?: boolean
  /** Synced with the server from this browser at least once: what it held then is here. */
  readonly synced?: boolean
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

/**
 * Records that `space` was opened now, under `name` when known (`created`: made here just now).
 * Most recent first.
 */
export function rememberNotebook(space: string, name?: string, created = false): void {
  const list = read()
  const known = list.find((item) => item.space === space)
  const entry: KnownNotebook = {
    space,
    name: name ?? known?.name ?? '',
    openedAt: Date.now(),
    ...(created || known?.created === true ? { created: true } : {}),
    ...(known?.synced === true ? { synced: true } : {}),
  }
  write([entry, ...list.filter((item) => item.space !== space)])
}

/** Sets `fields` of `space`'s entry, if it is listed and they change it. */
function updateKnown(space: string, fields: Partial<Pick<KnownNotebook, 'name' | 'synced'>>): void {
  const list = read()
  const changes = (item: KnownNotebook) =>
    item.space === space &&
    Object.entries(fields).some(([field, value]) => item[field as keyof KnownNotebook] !== value)
  if (!list.some(changes)) return
  write(list.map((item) => (item.space === space ? { ...item, ...fields } : item)))
}

/** Records that `space` synced with the server from this browser, if it is listed. */
export function markNotebookSynced(space: string): void {
  updateKnown(space, { synced: true })
}

/** Updates the name shown for `space`, if it is listed. */
export function renameKnownNotebook(space: string, name: string): void {
  updateKnown(space, { name })
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
