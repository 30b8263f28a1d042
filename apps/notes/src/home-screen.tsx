import { isChorusError, persistStorage, type StoragePersistence, storagePersistence } from '@chorus/client'
import { type FormEvent, type ReactNode, useEffect, useRef, useState } from 'react'
import { focusIsLost, useScreenHeading } from './focus.js'
import { timeAgo } from './format.js'
import { newSpaceId } from './ids.js'
import { forgetNotebook, type KnownNotebook, rememberNotebook, useKnownNotebooks } from './notebooks.js'
import { notifyFailure } from './notices.js'
import { removeNotebookData } from './replica.js'
import { navigate, notebookHash, spaceFromInput } from './route.js'

/** The start page: this browser's notebooks, a new one, or one opened from a link. */
export function HomeScreen(): ReactNode {
  const notebooks = useKnownNotebooks()
  const [name, setName] = useState('')
  const [link, setLink] = useState('')
  const [linkError, setLinkError] = useState<string | null>(null)
  const heading = useScreenHeading<HTMLHeadingElement>()

  const create = (event: FormEvent) => {
    event.preventDefault()
    const space = newSpaceId()
    rememberNotebook(space, name.trim(), true)
    navigate(notebookHash(space))
  }

  const openLink = (event: FormEvent) => {
    event.preventDefault()
    const space = spaceFromInput(link)
    if (space === undefined) {
      setLinkError('That is not a notebook link. Paste the whole link, or the id after #/notebook/.')
      return
    }
    navigate(notebookHash(space))
  }

  return (
    <main className="home">
      <header className="home-header">
        <span className="logo" aria-hidden="true" />
        <h1 tabIndex={-1} ref={heading}>
          Notes
        </h1>
        <p className="tagline">Works offline. Syncs between your devices when it can.</p>
      </header>

      <section className="card" aria-labelledby="notebooks-heading">
        <h2 id="notebooks-heading" tabIndex={-1}>
          Your notebooks
        </h2>
        {notebooks.length === 0 ? (
          <p className="muted">No notebooks in this browser yet. Create one, or open one from a link.</p>
        ) : (
          <>
            <ul className="notebook-list">
              {notebooks.map((notebook) => (
                <NotebookItem key={notebook.space} notebook={notebook} />
              ))}
            </ul>
            <p className="muted small">
              Remove deletes a notebook from this browser only: it stays on the server and on your other
              devices, and opening its link again brings it back.
            </p>
            <StorageNote />
          </>
        )}
        <form className="inline-form" onSubmit={create}>
          <input
            aria-label="New notebook name"
            placeholder="Name of a new notebook"
            dir="auto"
            value={name}
            onChange={(event) => setName(event.target.value)}
            maxLength={80}
          />
          <button type="submit" className="button primary">
            Create notebook
          </button>
        </form>
      </section>

      <section className="card" aria-labelledby="open-heading">
        <h2 id="open-heading">Open a shared notebook</h2>
        <p className="muted">Paste the link someone shared, or one you copied on another device.</p>
        <form className="inline-form" onSubmit={openLink}>
          <input
            aria-label="Notebook link"
            placeholder="https://…/#/notebook/…"
            value={link}
            onChange={(event) => {
              setLink(event.target.value)
              setLinkError(null)
            }}
            aria-invalid={linkError !== null}
            aria-describedby={linkError === null ? undefined : 'link-error'}
          />
          <button type="submit" className="button">
            Open
          </button>
        </form>
        {linkError === null ? null : (
          <p id="link-error" className="field-error">
            {linkError}
          </p>
        )}
      </section>

      <p className="muted small home-footer">
        Curious what happens to your notes when the network fails? Break a cluster yourself in the{' '}
        <a href="/lab/">replication lab</a>.
      </p>
    </main>
  )
}

/**
 * Whether the browser may clear the notebooks to free space (unsynced changes with them), and
 * a button that asks it not to: browsers grant it in their own way, some by asking the user.
 */
function StorageNote(): ReactNode {
  const [persistence, setPersistence] = useState<StoragePersistence | 'asking' | null>(null)
  const [refused, setRefused] = useState(false)

  useEffect(() => {
    let live = true
    storagePersistence().then(
      (found) => {
        if (live) setPersistence(found)
      },
      () => {
        if (live) setPersistence('unsupported')
      },
    )
    return () => {
      live = false
    }
  }, [])

  const keep = () => {
    setPersistence('asking')
    persistStorage().then(
      (granted) => {
        setPersistence(granted)
        setRefused(granted === 'best-effort')
      },
      (error: unknown) => {
        setPersistence('best-effort')
        notifyFailure('Asking the browser to keep your notebooks failed', error)
      },
    )
  }

  if (persistence === null || persistence === 'unsupported') return null
  if (persistence === 'persistent') {
    return (
      <p className="muted small storage-note" role="status">
        This browser keeps your notebooks until you remove them.
      </p>
    )
  }
  return (
    <div className="storage-note" role="status">
      <p className="muted small">
        {refused
          ? 'The browser said no for now. Browsers agree more readily for a site you bookmark or install.'
          : 'This browser may clear notebooks to free space when the device runs low, changes not yet synced included.'}
      </p>
      <button type="button" className="button small" disabled={persistence === 'asking'} onClick={keep}>
        Keep my notebooks in this browser
      </button>
    </div>
  )
}

/**
 * A notebook of the list, and its removal from this browser: its data is deleted, after the
 * user confirms when it holds changes that have not reached the server (they would be lost).
 */
function NotebookItem({ notebook }: { notebook: KnownNotebook }): ReactNode {
  const [state, setState] = useState<'idle' | 'removing' | 'unsynced'>('idle')
  const name = notebook.name || 'Untitled notebook'
  const item = useRef<HTMLLIElement>(null)
  const removeButton = useRef<HTMLButtonElement>(null)
  /** “Keep it” answered the question, which goes: focus goes back to Remove, not to the page. */
  const keep = useRef(false)
  useEffect(() => {
    if (state !== 'idle' || !keep.current) return
    keep.current = false
    removeButton.current?.focus()
  }, [state])

  const remove = (discardPending: boolean) => {
    setState('removing')
    removeNotebookData(notebook.space, discardPending).then(
      () => {
        // Focus was on this notebook's Remove (or Remove anyway), about to go with it: it goes on
        // to the next notebook's Remove, else the one before, else the list's heading.
        const row = item.current
        const hadFocus = row !== null && (row.contains(document.activeElement) || focusIsLost())
        const next = row?.nextElementSibling ?? row?.previousElementSibling
        forgetNotebook(notebook.space)
        if (!hadFocus) return
        requestAnimationFrame(() => {
          const target =
            next?.querySelector<HTMLElement>('.remove-notebook') ??
            document.getElementById('notebooks-heading')
          target?.focus()
        })
      },
      (error: unknown) => {
        if (isChorusError(error, 'pending-changes')) setState('unsynced')
        else {
          setState('idle')
          notifyFailure(`Removing ${name} failed`, error)
        }
      },
    )
  }

  return (
    <li ref={item}>
      <div className="notebook-row">
        <a href={notebookHash(notebook.space)}>
          <span className="notebook-name" dir="auto">
            {name}
          </span>
          <span className="muted small">opened {timeAgo(notebook.openedAt)}</span>
        </a>
        {/* Busy, it says so rather than being disabled: a disabled button would lose focus to the page. */}
        <button
          ref={removeButton}
          type="button"
          className="link-button small remove-notebook"
          aria-label={`Remove ${name} from this browser`}
          aria-disabled={state !== 'idle'}
          onClick={() => {
            if (state === 'idle') remove(false)
          }}
        >
          {state === 'removing' ? 'Removing…' : 'Remove'}
        </button>
      </div>
      {state === 'unsynced' ? (
        <div className="notebook-confirm" role="alert">
          <p>
            {name} has changes that have not reached the server yet. Removing it from this browser loses them.
          </p>
          <div className="actions">
            <button
              type="button"
              className="button danger"
              onClick={() => {
                // The question goes as the removal starts: focus waits on Remove meanwhile.
                remove(true)
                removeButton.current?.focus()
              }}
            >
              Remove anyway
            </button>
            <button
              type="button"
              className="button"
              onClick={() => {
                keep.current = true
                setState('idle')
              }}
            >
              Keep it
            </button>
          </div>
        </div>
      ) : null}
    </li>
  )
}
