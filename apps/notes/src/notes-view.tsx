import { newRecordId, type PresencePeer, type Row } from '@chorus/client'
import { useCollection, useConflicts, usePresence, useRecord, useReplica } from '@chorus/react'
import { memo, type ReactNode, useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { SEARCH_ANNOUNCE_MS, searchSummary } from './announce.js'
import { distinctDeviceLabels, guessDeviceName, shortReplicaId } from './device.js'
import { timeAgo, useMinute } from './format.js'
import { newestNotes } from './newest-notes.js'
import { NoteEditor } from './note-editor.js'
import { type KnownNotebook, useKnownNotebooks } from './notebooks.js'
import {
  asNote,
  Collections,
  displayTitle,
  LIST_PAGE,
  type Meta,
  type Note,
  newestFirst,
  preview,
  search,
} from './notes.js'
import { notifyFailure } from './notices.js'

/** The notes of a notebook: searchable list beside the open note (one at a time on a phone). */
/**
 * What an empty notebook says. Opened from a link, it may be empty here only because it has not
 * synced yet, or because nothing is stored under the link (a typo, say): each says so, rather
 * than that the notebook has no notes.
 */
function emptyNotebookText(known: KnownNotebook | undefined, named: boolean): string {
  if (known?.created !== true && known?.synced !== true) {
    return 'This notebook has not reached this device yet: its notes appear once it connects to the server.'
  }
  if (known?.created !== true && !named) {
    return 'This notebook holds no notes on the server. If someone shared its link with you, check that the link is whole; or start the notebook here with New note.'
  }
  return 'No notes yet. Start one with New note.'
}

export function NotesView({ space }: { space: string }): ReactNode {
  const replica = useReplica()
  const rows = useCollection<Note>(Collections.notes)
  const known = useKnownNotebooks().find((item) => item.space === space)
  const named = (useRecord<Meta>(Collections.meta, 'notebook')?.name.trim() ?? '') !== ''
  const newest = useNewestWhileLoading(rows === undefined)
  const conflicts = useConflicts(Collections.notes)
  const [query, setQuery] = useState('')
  // How many of the matching notes the list shows: a page, more when asked, a page again when
  // the search changes.
  const [limit, setLimit] = useState(LIST_PAGE)
  const changeQuery = (next: string) => {
    setQuery(next)
    setLimit(LIST_PAGE)
  }
  const now = useMinute()
  /**
   * The open note; `fresh` is the note as just created here, until it is read back;
   * `fromList`, that it was opened from the list (focus moves to it).
   */
  const [selected, setSelected] = useState<{ id: string; fresh?: Note; fromList?: boolean } | null>(null)
  const newNoteButton = useRef<HTMLButtonElement>(null)
  // Closing a note (‹ Notes) gives focus back to its entry in the list, and deleting it to New
  // note, rather than dropping focus on the page.
  const closeNote = useCallback(
    (deleted = false) => {
      const id = deleted ? undefined : selected?.id
      setSelected(null)
      requestAnimationFrame(() => {
        const entry =
          id === undefined ? null : document.querySelector<HTMLElement>(`[data-note-id="${CSS.escape(id)}"]`)
        ;(entry ?? newNoteButton.current)?.focus()
      })
    },
    [selected],
  )
  // Who else has the notebook open, and which note: this tab says so too.
  const openNote = selected?.id ?? null
  const here = useMemo(() => ({ device: guessDeviceName(), note: openNote }), [openNote])
  const others = useOthers(usePresence(here))

  // Until every note is loaded, the newest ones (ids are UUID v7: id order is creation order).
  const sorted = useMemo(
    () => (rows === undefined ? (query.trim() === '' ? newest : undefined) : newestFirst(rows)),
    [rows, newest, query],
  )
  const shown = useMemo(() => (sorted === undefined ? undefined : search(sorted, query)), [sorted, query])
  const conflicted = useMemo(() => new Set(conflicts?.map((conflict) => conflict.id)), [conflicts])

  const create = () => {
    const now = Date.now()
    const id = newRecordId(now)
    const note: Note = { title: '', body: '', createdAt: now, updatedAt: now }
    // The write is queued before the editor's first read of the note, so the editor finds it.
    // The editor shows the new note at once, its title focused, before that read: typing
    // right after the click goes into the title, not to the button (where a space would make
    // another note).
    replica
      .collection<Note>(Collections.notes)
      .put(id, note)
      .catch((error: unknown) => {
        setSelected((current) => (current?.id === id ? null : current))
        notifyFailure('Creating the note failed', error)
      })
    changeQuery('')
    setSelected({ id, fresh: note })
  }

  return (
    <div className={`workspace${selected === null ? '' : ' is-editing'}`}>
      <section className="sidebar" aria-labelledby="notes-heading">
        <h2 id="notes-heading" className="visually-hidden">
          Notes
        </h2>
        <SearchSummary query={query} matches={shown?.length} />
        <div className="sidebar-tools">
          <input
            type="search"
            className="search"
            aria-label="Search"
            dir="auto"
            placeholder="Search notes"
            value={query}
            onChange={(event) => changeQuery(event.target.value)}
          />
          <button type="button" className="button primary" onClick={create} ref={newNoteButton}>
            New note
          </button>
        </div>
        {others.length === 0 ? null : (
          <p className="presence-line">
            <span className="presence-dot" aria-hidden="true" />
            Also here: {others.map((other) => other.name).join(', ')}
          </p>
        )}
        {shown === undefined ? (
          <p className="muted pad">Loading notes…</p>
        ) : shown.length === 0 ? (
          <p className="muted pad empty-notebook">
            {query.trim() === '' ? emptyNotebookText(known, named) : `No notes match “${query.trim()}”.`}
          </p>
        ) : (
          <ul className="note-list">
            {shown.slice(0, limit).map((row) => (
              <NoteItem
                key={row.id}
                row={row}
                active={row.id === selected?.id}
                conflicted={conflicted.has(row.id)}
                viewers={viewersOf(others, row.id)}
                now={now}
                onSelect={setSelected}
              />
            ))}
          </ul>
        )}
        {shown !== undefined && shown.length > limit ? (
          <button
            type="button"
            className="button subtle show-more"
            onClick={() => {
              const first = shown[limit]
              setLimit(limit + LIST_PAGE)
              // Focus goes on to the first note shown now, where the list goes on.
              requestAnimationFrame(() =>
                document
                  .querySelector<HTMLElement>(`[data-note-id="${CSS.escape(first?.id ?? '')}"]`)
                  ?.focus(),
              )
            }}
          >
            Show more notes ({(shown.length - limit).toLocaleString('en')} more)
          </button>
        ) : null}
      </section>
      {/* The open note is a region of its own, named by its heading (see NoteEditor). */}
      <div className="editor-pane">
        {selected === null ? (
          <div className="empty-editor muted">
            <p>Select a note, or start a new one.</p>
          </div>
        ) : (
          <NoteEditor
            key={selected.id}
            id={selected.id}
            space={space}
            {...(selected.fresh === undefined ? {} : { fresh: selected.fresh })}
            takeFocus={selected.fromList === true}
            onClose={closeNote}
          />
        )}
      </div>
    </div>
  )
}

/**
 * Says how many notes match the search, once typing pauses: the list changes with every key,
 * which a screen reader user does not see, and hearing a count at each key would drown the
 * typing out.
 */
function SearchSummary({ query, matches }: { query: string; matches: number | undefined }): ReactNode {
  const [said, setSaid] = useState('')
  const count = useRef(matches)
  count.current = matches
  useEffect(() => {
    if (query.trim() === '') {
      setSaid('')
      return
    }
    const timer = setTimeout(() => {
      // Still loading: the list says so, and there is no count to tell yet.
      if (count.current !== undefined) setSaid(searchSummary(query, count.current))
    }, SEARCH_ANNOUNCE_MS)
    return () => clearTimeout(timer)
  }, [query])
  return (
    <p className="visually-hidden search-summary" role="status">
      {said}
    </p>
  )
}

/** Another device with the notebook open: its name, and the notes its tabs show. */
interface Other {
  readonly replicaId: string
  readonly name: string
  readonly notes: readonly string[]
}

/** The other devices present, one per replica however many of its tabs are, by name. */
function useOthers(peers: readonly PresencePeer[]): readonly Other[] {
  // Named as Conflicts names them: among every device the notebook knows (this one too), so
  // that a device of the same name as another gets the same suffix in both places.
  const devices = useCollection<{ name: string }>(Collections.devices)
  return useMemo(() => {
    const byReplica = new Map<string, { name: string; notes: string[] }>()
    for (const peer of peers) {
      const device = typeof peer.state.device === 'string' ? peer.state.device.slice(0, 60) : ''
      const other = byReplica.get(peer.replicaId) ?? {
        name: device || `device ${shortReplicaId(peer.replicaId)}`,
        notes: [],
      }
      if (typeof peer.state.note === 'string') other.notes.push(peer.state.note)
      byReplica.set(peer.replicaId, other)
    }
    const names = new Map<string, string>()
    for (const row of devices ?? []) {
      if (typeof row.value.name === 'string') names.set(row.id as string, row.value.name)
    }
    for (const [replicaId, { name }] of byReplica) names.set(replicaId, name)
    const labels = distinctDeviceLabels(names)
    return [...byReplica]
      .map(([replicaId, other]) => ({ replicaId, ...other, name: labels.get(replicaId) ?? other.name }))
      .sort((a, b) => (a.name < b.name ? -1 : 1))
  }, [peers, devices])
}

/** The names of the other devices that show note `id`, joined; empty when none does. */
function viewersOf(others: readonly Other[], id: string): string {
  return others
    .filter((other) => other.notes.includes(id))
    .map((other) => other.name)
    .join(', ')
}

/** While `loading`, the notebook's newest notes (see {@link newestNotes}), once read. */
function useNewestWhileLoading(loading: boolean): readonly Row<Note>[] | undefined {
  const replica = useReplica()
  const newest = newestNotes(replica)
  const [rows, setRows] = useState(newest.rows)
  useEffect(() => {
    if (!loading || newest.rows !== undefined) return
    let current = true
    newest.read.then(
      (page) => {
        if (current) setRows(page)
      },
      // The full load reads the same records and reports a failure; until it does, the
      // list just says it is loading.
      () => {
        if (current) setRows(undefined)
      },
    )
    return () => {
      current = false
    }
  }, [newest, loading])
  return loading ? (rows ?? newest.rows) : undefined
}

const NoteItem = memo(function NoteItem({
  row,
  active,
  conflicted,
  viewers,
  now,
  onSelect,
}: {
  row: Row<Note>
  active: boolean
  conflicted: boolean
  /** The other devices that have this note open, by name (empty: none). */
  viewers: string
  now: number
  onSelect: (selected: { id: string; fromList: true }) => void
}): ReactNode {
  const text = preview(row.value)
  return (
    <li>
      <button
        type="button"
        className={`note-item${active ? ' active' : ''}`}
        aria-current={active ? 'true' : undefined}
        data-note-id={row.id}
        onClick={() => onSelect({ id: row.id, fromList: true })}
      >
        <span className="note-item-title">
          <span dir="auto">{displayTitle(row.value)}</span>
          {conflicted ? <span className="tag warning">conflict</span> : null}
        </span>
        {text === '' ? null : (
          <span className="note-item-preview" dir="auto">
            {text}
          </span>
        )}
        <span className="note-item-time">{timeAgo(asNote(row.value).updatedAt, now)}</span>
        {viewers === '' ? null : <span className="note-item-viewers">open on {viewers}</span>}
      </button>
    </li>
  )
})
