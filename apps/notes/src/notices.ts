import { useSyncExternalStore } from 'react'

/** A message for the user about something that went wrong, with an optional action. */
export interface Notice {
  readonly id: number
  readonly message: string
  readonly tone: 'info' | 'error'
  readonly action?: {
    readonly label: string
    readonly run: () => void
    /**
     * Where focus goes once the action ran (the note it restored, say), when that is on the
     * page: the button that had it goes with the notice.
     */
    readonly focusAfter?: () => HTMLElement | null
  }
}

/** How long an info notice stays: long enough to read. */
export const INFO_NOTICE_MS = 6_000
/** How long an info notice with an action stays: long enough to reach the action and use it too. */
export const ACTION_NOTICE_MS = 12_000

let notices: readonly Notice[] = []
let nextId = 1
const listeners = new Set<() => void>()
/** The running timeouts of the info notices, by id. */
const timers = new Map<number, ReturnType<typeof setTimeout>>()
/** Why each held notice stays for now: focus is in it, or the pointer is over it. */
const holds = new Map<number, Set<'focus' | 'pointer'>>()

function publish(next: readonly Notice[]): void {
  notices = next
  for (const listener of listeners) listener()
}

function startTimeout(notice: Notice): void {
  if (notice.tone !== 'info') return
  clearTimeout(timers.get(notice.id))
  timers.set(
    notice.id,
    setTimeout(() => dismiss(notice.id), notice.action === undefined ? INFO_NOTICE_MS : ACTION_NOTICE_MS),
  )
}

/**
 * Shows a notice; info notices go away by themselves after a while, but not while they hold
 * focus or the pointer (see `holdNotice`). Returns its id, for `dismiss` once what it says no
 * longer holds.
 */
export function notify(notice: Omit<Notice, 'id'>): number {
  const id = nextId++
  for (const item of notices) if (item.message === notice.message) forget(item.id)
  const shown = { ...notice, id }
  publish([...notices.filter((item) => item.message !== notice.message), shown])
  startTimeout(shown)
  return id
}

/** Tells the user that `what` failed, and why. */
export function notifyFailure(what: string, error: unknown): void {
  const reason = error instanceof Error ? error.message : String(error)
  notify({ tone: 'error', message: `${what}: ${reason}` })
}

function forget(id: number): void {
  clearTimeout(timers.get(id))
  timers.delete(id)
  holds.delete(id)
}

/** Takes a notice away (one already gone: nothing). */
export function dismiss(id: number): void {
  forget(id)
  publish(notices.filter((item) => item.id !== id))
}

/**
 * Keeps notice `id` while focus is in it or the pointer is over it (`held`), and starts its
 * time again once neither is: a notice must not go from under the user reading it or about
 * to press its button.
 */
export function holdNotice(id: number, reason: 'focus' | 'pointer', held: boolean): void {
  const notice = notices.find((item) => item.id === id)
  if (notice === undefined) return
  const reasons = holds.get(id) ?? new Set()
  if (held) {
    reasons.add(reason)
    holds.set(id, reasons)
    clearTimeout(timers.get(id))
    timers.delete(id)
    return
  }
  if (!reasons.delete(reason) || reasons.size > 0) return
  holds.delete(id)
  startTimeout(notice)
}

/** The notices shown now, oldest first. */
export function currentNotices(): readonly Notice[] {
  return notices
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

export function useNotices(): readonly Notice[] {
  return useSyncExternalStore(subscribe, currentNotices, currentNotices)
}
