import { type ReactNode, useLayoutEffect, useRef } from 'react'
import { focusIsLost, focusMainHeading, focusWhenShown } from './focus.js'
import { dismiss, holdNotice, type Notice, useNotices } from './notices.js'

/** The notices, in a corner, newest last. */
export function NoticeList(): ReactNode {
  const notices = useNotices()
  // Always there, so that a screen reader is listening when a notice ("Deleted … Undo") comes.
  return (
    <div className="notices" aria-live="polite">
      {notices.map((notice) => (
        <NoticeItem key={notice.id} notice={notice} />
      ))}
    </div>
  )
}

/**
 * One notice. It stays while focus is in it or the pointer is over it; when it goes while it
 * holds focus (its action, Dismiss, or its time up), focus moves on to where the action says,
 * else to the screen's main heading, rather than falling to the page.
 */
function NoticeItem({ notice }: { notice: Notice }): ReactNode {
  const element = useRef<HTMLDivElement>(null)
  /** Its action ran, and focus is on its way (a second press must not run it again). */
  const closing = useRef(false)

  // Gone some other way while holding focus (its time up, a newer notice of the same words):
  // the cleanup runs before the element leaves the page, while focus is still in it.
  useLayoutEffect(() => {
    const node = element.current
    return () => {
      if (node === null || !node.contains(document.activeElement)) return
      requestAnimationFrame(() => {
        if (focusIsLost()) focusMainHeading()
      })
    }
  }, [])

  /** Closes the notice; focus, if in it, moves first to what `find` returns (else the main heading). */
  const close = (find?: () => HTMLElement | null) => {
    const node = element.current
    if (node === null || !node.contains(document.activeElement)) {
      dismiss(notice.id)
      return
    }
    closing.current = true
    focusWhenShown(find ?? (() => null), () => dismiss(notice.id), find === undefined ? 0 : undefined)
  }

  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: the handlers only keep the notice shown while it is in use
    <div
      ref={element}
      className={`notice ${notice.tone}`}
      role={notice.tone === 'error' ? 'alert' : undefined}
      onFocus={() => holdNotice(notice.id, 'focus', true)}
      onBlur={(event) => {
        if (!event.currentTarget.contains(event.relatedTarget)) holdNotice(notice.id, 'focus', false)
      }}
      onPointerEnter={() => holdNotice(notice.id, 'pointer', true)}
      onPointerLeave={() => holdNotice(notice.id, 'pointer', false)}
    >
      <span>{notice.message}</span>
      {notice.action === undefined ? null : (
        <button
          type="button"
          className="link-button"
          onClick={() => {
            if (closing.current) return
            notice.action?.run()
            close(notice.action?.focusAfter)
          }}
        >
          {notice.action.label}
        </button>
      )}
      <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => close()}>
        ×
      </button>
    </div>
  )
}
