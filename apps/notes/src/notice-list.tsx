import type { ReactNode } from 'react'
import { dismiss, useNotices } from './notices.js'

/** The notices, in a corner, newest last. */
export function NoticeList(): ReactNode {
  const notices = useNotices()
  // Always there, so that a screen reader is listening when a notice ("Deleted … Undo") comes.
  return (
    <div className="notices" aria-live="polite">
      {notices.map((notice) => (
        <div
          key={notice.id}
          className={`notice ${notice.tone}`}
          role={notice.tone === 'error' ? 'alert' : undefined}
        >
          <span>{notice.message}</span>
          {notice.action === undefined ? null : (
            <button
              type="button"
              className="link-button"
              onClick={() => {
                notice.action?.run()
                dismiss(notice.id)
              }}
            >
              {notice.action.label}
            </button>
          )}
          <button
            type="button"
            className="icon-button"
            aria-label="Dismiss"
            onClick={() => dismiss(notice.id)}
          >
            ×
          </button>
        </div>
      ))}
    </div>
  )
}
