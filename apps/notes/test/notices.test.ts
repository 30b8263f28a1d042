import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  ACTION_NOTICE_MS,
  currentNotices,
  dismiss,
  holdNotice,
  INFO_NOTICE_MS,
  type Notice,
  notify,
} from '../src/notices.js'

function shown(message: string): Notice | undefined {
  return currentNotices().find((notice) => notice.message === message)
}

describe('notices', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })

  afterEach(() => {
    for (const notice of currentNotices()) dismiss(notice.id)
    vi.useRealTimers()
  })

  it('an info notice goes by itself; one with an action stays longer, to reach the action', () => {
    notify({ tone: 'info', message: 'Saved.' })
    notify({ tone: 'info', message: 'Deleted “Plan”.', action: { label: 'Undo', run: () => {} } })
    vi.advanceTimersByTime(INFO_NOTICE_MS)
    expect(shown('Saved.')).toBeUndefined()
    expect(shown('Deleted “Plan”.')).toBeDefined()
    vi.advanceTimersByTime(ACTION_NOTICE_MS - INFO_NOTICE_MS)
    expect(shown('Deleted “Plan”.')).toBeUndefined()
  })

  it('does not go while focus is in it or the pointer over it, and gets its whole time again after', () => {
    notify({ tone: 'info', message: 'Deleted “Plan”.', action: { label: 'Undo', run: () => {} } })
    const id = shown('Deleted “Plan”.')?.id ?? -1
    vi.advanceTimersByTime(ACTION_NOTICE_MS - 1)
    holdNotice(id, 'focus', true)
    vi.advanceTimersByTime(ACTION_NOTICE_MS * 5)
    expect(shown('Deleted “Plan”.')).toBeDefined()
    // Focus gone, the pointer still over it: it stays.
    holdNotice(id, 'pointer', true)
    holdNotice(id, 'focus', false)
    vi.advanceTimersByTime(ACTION_NOTICE_MS * 5)
    expect(shown('Deleted “Plan”.')).toBeDefined()
    holdNotice(id, 'pointer', false)
    vi.advanceTimersByTime(ACTION_NOTICE_MS - 1)
    expect(shown('Deleted “Plan”.')).toBeDefined()
    vi.advanceTimersByTime(1)
    expect(shown('Deleted “Plan”.')).toBeUndefined()
  })

  it('keeps an error until dismissed, and shows a repeated message once', () => {
    notify({ tone: 'error', message: 'Saving the note failed: quota' })
    notify({ tone: 'error', message: 'Saving the note failed: quota' })
    vi.advanceTimersByTime(ACTION_NOTICE_MS * 10)
    expect(
      currentNotices().filter((notice) => notice.message === 'Saving the note failed: quota'),
    ).toHaveLength(1)
    // A repeated info notice times out from its own showing, not the first one's.
    notify({ tone: 'info', message: 'Saved.' })
    vi.advanceTimersByTime(INFO_NOTICE_MS - 1)
    notify({ tone: 'info', message: 'Saved.' })
    vi.advanceTimersByTime(INFO_NOTICE_MS - 1)
    expect(shown('Saved.')).toBeDefined()
  })
})
