import { useSyncExternalStore } from 'react'

/** A message for the user about something that went wrong, with an optional action. */
export interface Notice {
  readonly id: number
  readonly message: string
  readonly tone: 'info' | 'error'
  readonly action?: { readonly label: string; readonly run: () => void }
}

let notices: readonly Notice[] = []
let nextId = 1
const listeners = new Set<() => void>()

function publish(next: readonly Notice[]): void {
  notices = next
  for (const listener of listeners) listener()
}

/** Shows a notice; info notices go away by themselves after a while. */
export function notify(notice: Omit<Notice, 'id'>): void {
  const id = nextId++
  publish([...notices.filter((item) => item.message !== notice.message), { ...notice, id }])
  if (notice.tone === 'info') setTimeout(() => dismiss(id), 6_000)
}

/** Tells the user that `what` failed, and why. */
export function notifyFailure(what: string, error: unknown): void {
  const reason = error instanceof Error ? error.message : String(error)
  notify({ tone: 'error', message: `${what}: ${reason}` })
}

export function dismiss(id: number): void {
  publish(notices.filter((item) => item.id !== id))
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

export function useNotices(): readonly Notice[] {
  return useSyncExternalStore(
    subscribe,
    () => notices,
    () => notices,
  )
}
