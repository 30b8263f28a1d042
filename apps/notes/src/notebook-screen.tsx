import { isChorusError, type Replica } from '@chorus/client'
import {
  ChorusProvider,
  useCollection,
  useConflicts,
  useRecord,
  useReplica,
  useSyncStatus,
} from '@chorus/react'
import { type ReactNode, useEffect, useRef, useState } from 'react'
import { ConflictsView } from './conflicts-view.js'
import { guessDeviceName } from './device.js'
import { download, exportFileName, notebookMarkdown } from './export.js'
import { useScreenHeading } from './focus.js'
import {
  forgetNotebook,
  markNotebookSynced,
  rememberNotebook,
  renameKnownNotebook,
  useKnownNotebooks,
} from './notebooks.js'
import { asNote, Collections, type Meta } from './notes.js'
import { NotesView } from './notes-view.js'
import { notify, notifyFailure } from './notices.js'
import { openNotebook, removeNotebookData } from './replica.js'
import { navigate, notebookHash, notebookLink } from './route.js'
import { OfflineSwitch, SyncStatus } from './sync-status.js'

type Opening =
  | { readonly state: 'opening' }
  | { readonly state: 'open'; readonly replica: Replica }
  | { readonly state: 'failed'; readonly error: unknown }

/** One notebook: opened from this browser's storage, then synced with the relay. */
export function NotebookScreen({ space, view }: { space: string; view: 'notes' | 'conflicts' }): ReactNode {
  const [attempt, setAttempt] = useState(0)
  return (
    <NotebookOpener
      key={attempt}
      space={space}
      view={view}
      onRetry={() => setAttempt((count) => count + 1)}
    />
  )
}

function NotebookOpener({
  space,
  view,
  onRetry,
}: {
  space: string
  view: 'notes' | 'conflicts'
  onRetry: () => void
}): ReactNode {
  const [opening, setOpening] = useState<Opening>({ state: 'opening' })

  useEffect(() => {
    const handle = openNotebook(space)
    let current = true
    handle.replica.then(
      (replica) => {
        if (current) setOpening({ state: 'open', replica })
      },
      (error: unknown) => {
        if (current) setOpening({ state: 'failed', error })
      },
    )
    return () => {
      current = false
      handle.release()
    }
  }, [space])

  useEffect(() => rememberNotebook(space), [space])

  if (opening.state === 'open') {
    return (
      <ChorusProvider replica={opening.replica}>
        <Notebook space={space} view={view} />
      </ChorusProvider>
    )
  }
  if (opening.state === 'opening') {
    return (
      <main className="message-page" aria-busy="true">
        <p className="muted">Opening notebook…</p>
      </main>
    )
  }
  return <OpenFailed error={opening.error} onRetry={onRetry} />
}

function OpenFailed({ error, onRetry }: { error: unknown; onRetry: () => void }): ReactNode {
  const heading = useScreenHeading<HTMLHeadingElement>()
  return (
    <main className="message-page">
      <h1 tabIndex={-1} ref={heading}>
        This notebook could not be opened
      </h1>
      <p>
        {isChorusError(error) && error.code === 'storage-failed'
          ? 'The browser refused to open its storage for this notebook. '
          : ''}
        {error instanceof Error ? error.message : String(error)}
      </p>
      <div className="actions">
        <button type="button" className="button primary" onClick={onRetry}>
          Try again
        </button>
        <a className="button" href="#/">
          Your notebooks
        </a>
      </div>
    </main>
  )
}

function Notebook({ space, view }: { space: string; view: 'notes' | 'conflicts' }): ReactNode {
  const replica = useReplica()
  const conflicts = useConflicts(Collections.notes)
  const conflictCount = conflicts?.length ?? 0
  const conflictNews = useConflictNews(conflicts?.length)
  const firstNote = useCollection(Collections.notes, { limit: 1 })
  const storedName = useRecord<Meta>(Collections.meta, 'notebook')?.name.trim() ?? ''
  useDeviceName(replica, (firstNote?.length ?? 0) > 0 || storedName !== '')
  useRelayErrors(replica)
  const { status, refusal } = useSyncStatus()
  const deleted = refusal?.code === 'space-deleted'
  useEffect(() => {
    if (status === 'synced') markNotebookSynced(space)
  }, [status, space])
  const heading = useScreenHeading<HTMLHeadingElement>()
  const name = storedName || 'Untitled notebook'
  // The tab's title says which notebook, and which view of it, as the heading does.
  useEffect(() => {
    document.title = `${view === 'conflicts' ? 'Conflicts · ' : ''}${name} · Chorus Notes`
    return () => {
      document.title = 'Chorus Notes'
    }
  }, [name, view])

  return (
    <div className="notebook">
      {deleted ? <DeletedOnServer space={space} /> : null}
      <header className="topbar">
        <div className="topbar-title">
          <a className="back-link" href="#/">
            <span aria-hidden="true">‹</span>
            <span className="visually-hidden">Your notebooks</span>
          </a>
          <NotebookName space={space} />
          <ShareLink space={space} />
          <ExportButton space={space} />
        </div>
        <div className="topbar-sync">
          <SyncStatus />
          <OfflineSwitch />
          {/* Named for where it goes, on the Conflicts view too (the current page then): the way
              back to the notes is the view's ‹ Notes. */}
          <a
            className={`button conflicts-button${view === 'conflicts' ? ' active' : ''}${conflictCount > 0 ? ' has-conflicts' : ''}`}
            href={notebookHash(space, 'conflicts')}
            aria-current={view === 'conflicts' ? 'page' : undefined}
            aria-describedby="conflict-count"
          >
            Conflicts
            {conflictCount > 0 ? (
              <span className="badge" aria-hidden="true">
                {conflictCount}
              </span>
            ) : null}
          </a>
          <span id="conflict-count" hidden>
            {conflictCount === 1 ? '1 note in conflict' : `${conflictCount} notes in conflict`}
          </span>
          <span className="visually-hidden conflict-news" role="status">
            {conflictNews}
          </span>
        </div>
      </header>
      <main className="notebook-main">
        {/* Coming to the notes from another screen, focus goes here (Conflicts focuses its own). */}
        <h1 className="visually-hidden" tabIndex={-1} ref={view === 'notes' ? heading : undefined}>
          {name}
        </h1>
        {view === 'conflicts' ? <ConflictsView space={space} /> : <NotesView space={space} />}
      </main>
    </div>
  )
}

/**
 * What a screen reader is told when more notes come into conflict (a sync brought a concurrent
 * edit), which sighted users see as the Conflicts badge. Nothing is said of the conflicts there
 * were when the notebook opened (the Conflicts link describes them), and the message is cleared
 * when the count goes down, so that the next rise is heard even if it says the same.
 */
function useConflictNews(count: number | undefined): string {
  const [news, setNews] = useState('')
  const previous = useRef(count)
  useEffect(() => {
    const before = previous.current
    previous.current = count
    if (count === undefined || before === undefined || count === before) return
    setNews(
      count < before
        ? ''
        : count === 1
          ? 'A note is now in conflict: open Conflicts to choose a version.'
          : `${count} notes are now in conflict: open Conflicts to choose a version.`,
    )
  }, [count])
  return news
}

/** The notebook's name: stored in the notebook, so every device shows it. */
function NotebookName({ space }: { space: string }): ReactNode {
  const replica = useReplica()
  const stored = useRecord<Meta>(Collections.meta, 'notebook')
  const known = useKnownNotebooks().find((item) => item.space === space)
  const [draft, setDraft] = useState<string | null>(null)
  /** Escape was pressed: the blur it causes drops the draft instead of saving it. */
  const cancelled = useRef(false)
  const storedName = stored?.name ?? ''

  useEffect(() => {
    if (stored === undefined) return
    // A notebook created here with a name: write the name into the notebook once.
    if (stored === null && known !== undefined && known.name !== '') {
      replica
        .collection<Meta>(Collections.meta)
        .put('notebook', { name: known.name })
        .catch((error: unknown) => notifyFailure('Saving the notebook name failed', error))
    } else if (stored !== null) {
      renameKnownNotebook(space, stored.name)
    }
  }, [stored, known, replica, space])

  const save = () => {
    // The blur comes before React has rendered the cleared draft: it must not save the old one.
    if (cancelled.current) {
      cancelled.current = false
      setDraft(null)
      return
    }
    if (draft === null) return
    const name = draft.trim()
    setDraft(null)
    if (name === storedName) return
    replica
      .collection<Meta>(Collections.meta)
      .put('notebook', { name })
      .catch((error: unknown) => notifyFailure('Saving the notebook name failed', error))
  }

  return (
    <input
      className="notebook-name-input"
      aria-label="Notebook name"
      dir="auto"
      placeholder="Untitled notebook"
      value={draft ?? (storedName || (stored === null ? (known?.name ?? '') : ''))}
      maxLength={80}
      onChange={(event) => setDraft(event.target.value)}
      onBlur={save}
      onKeyDown={(event) => {
        if (event.key === 'Enter') event.currentTarget.blur()
        if (event.key === 'Escape') {
          cancelled.current = true
          setDraft(null)
          event.currentTarget.blur()
        }
      }}
    />
  )
}

/** "Share": the notebook's link, to copy and open on another device. */
function ShareLink({ space }: { space: string }): ReactNode {
  const [open, setOpen] = useState(false)
  const [copied, setCopied] = useState(false)
  const link = notebookLink(space)

  const copy = () => {
    navigator.clipboard.writeText(link).then(
      () => setCopied(true),
      (error: unknown) => notifyFailure('Copying the link failed; select it and copy it yourself', error),
    )
  }

  const shareButton = useRef<HTMLButtonElement>(null)
  // Escape closes the open panel, focus back on its button.
  useEffect(() => {
    if (!open) return
    const close = (event: KeyboardEvent) => {
      if (event.key !== 'Escape') return
      setOpen(false)
      shareButton.current?.focus()
    }
    document.addEventListener('keydown', close)
    return () => document.removeEventListener('keydown', close)
  }, [open])
  return (
    <div className="share">
      <button
        ref={shareButton}
        type="button"
        className="button subtle"
        aria-expanded={open}
        onClick={() => {
          setOpen(!open)
          setCopied(false)
        }}
      >
        Share
      </button>
      {open ? (
        <div className="share-panel">
          <p className="small">Open this link on another device or browser to use this notebook there.</p>
          <div className="inline-form">
            <input
              aria-label="Notebook link"
              readOnly
              value={link}
              onFocus={(event) => event.target.select()}
            />
            {navigator.clipboard === undefined ? null : (
              <button type="button" className="button primary" onClick={copy}>
                {copied ? 'Copied' : 'Copy link'}
              </button>
            )}
          </div>
        </div>
      ) : null}
    </div>
  )
}

/** "Export": the notebook as one Markdown file, saved by the browser (what this device holds now). */
function ExportButton({ space }: { space: string }): ReactNode {
  const replica = useReplica()
  const known = useKnownNotebooks().find((item) => item.space === space)
  const [busy, setBusy] = useState(false)

  const save = async () => {
    const [meta, rows] = await Promise.all([
      replica.collection<Meta>(Collections.meta).get('notebook'),
      replica.collection(Collections.notes).list(),
    ])
    const name = meta?.name ?? known?.name ?? ''
    const notes = rows.map((row) => ({ id: row.id, value: asNote(row.value) }))
    download(exportFileName(name), notebookMarkdown(name, notes, Date.now()))
  }

  return (
    // Busy, it says so rather than being disabled: a disabled button would lose focus to the page.
    <button
      type="button"
      className="button subtle export-button"
      aria-disabled={busy}
      title="Save every note of this notebook as one Markdown file"
      onClick={() => {
        if (busy) return
        setBusy(true)
        save()
          .catch((error: unknown) => notifyFailure('Exporting the notebook failed', error))
          .finally(() => setBusy(false))
      }}
    >
      Export
    </button>
  )
}

/**
 * Writes this device's name into the notebook once, so conflicts can say which device wrote
 * what. Not before the notebook first synced here: a device that just opened a link would
 * otherwise show a change of its own waiting to upload before the user did anything, and
 * until it syncs no other device sees its writes, nor needs its name. Nor while the notebook
 * holds nothing (`holdsAnything`: no note, no name): a link with a typo would otherwise store
 * a notebook on the server that no one meant to make.
 */
function useDeviceName(replica: Replica, holdsAnything: boolean): void {
  const { status } = useSyncStatus()
  const written = useRef<Replica | null>(null)
  useEffect(() => {
    if (status !== 'synced' || !holdsAnything || written.current === replica) return
    written.current = replica
    const devices = replica.collection<{ name: string }>(Collections.devices)
    devices
      .get(replica.replicaId)
      .then((known) =>
        known === undefined ? devices.put(replica.replicaId, { name: guessDeviceName() }) : undefined,
      )
      .catch((error: unknown) => notifyFailure('Saving this device’s name failed', error))
  }, [replica, status, holdsAnything])
}

/**
 * Shows what the replica reports with nobody to tell: a refused connection, a failed apply.
 * A replica that closed because another tab removed the notebook from this browser goes back
 * to the notebook list, saying so. A notebook deleted on the relay has its own banner (see
 * `DeletedOnServer`).
 */
function useRelayErrors(replica: Replica): void {
  useEffect(
    () =>
      replica.on('error', (error) => {
        if (isChorusError(error, 'space-deleted')) return
        if (isChorusError(error, 'closed')) {
          notify({ tone: 'info', message: 'This notebook was removed from this browser in another tab.' })
          navigate('#/')
        } else notifyFailure('Sync problem', error)
      }),
    [replica],
  )
}

/** The notebook was deleted on the server: this copy no longer syncs, and can be removed. */
function DeletedOnServer({ space }: { space: string }): ReactNode {
  const [removing, setRemoving] = useState(false)
  const remove = () => {
    setRemoving(true)
    removeNotebookData(space, true).then(
      () => {
        forgetNotebook(space)
        navigate('#/')
      },
      (error: unknown) => {
        setRemoving(false)
        notifyFailure('Removing the notebook failed', error)
      },
    )
  }
  return (
    <div className="deleted-banner" role="alert">
      <p>
        This notebook was deleted on the server. The copy in this browser no longer syncs: what you change
        here stays here.
      </p>
      <button type="button" className="button danger" disabled={removing} onClick={remove}>
        {removing ? 'Removing…' : 'Remove it from this browser'}
      </button>
    </div>
  )
}
