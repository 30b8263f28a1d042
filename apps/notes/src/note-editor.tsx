import { ErrorCode, isChorusError } from '@chorus/client'
import { useRecordWithConflict, useReplica } from '@chorus/react'
import { type ReactNode, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react'
import { type DraftFields, dropDraft, stashDraft } from './drafts.js'
import { textDirection, timeAgo, useMinute } from './format.js'
import { caretAfterMerge, mergeTyped } from './merge-draft.js'
import { asNote, Collections, displayTitle, type Note } from './notes.js'
import { dismiss, notify, notifyFailure } from './notices.js'
import { notebookHash } from './route.js'

/** How long typing may pause before the edit is written. */
const SAVE_AFTER_MS = 400
/** The longest an edit waits while typing goes on without a pause (then it is written anyway). */
const MAX_SAVE_WAIT_MS = 2_000

/** How recent a save in conflict must be for the editor to merge the conflict itself. */
const CROSSED_SAVE_MS = 10_000

/** Per field: the lines that came from elsewhere, and those typed here (see `mergeTyped`). */
type LineHistory = { [field in keyof DraftFields]?: { seen: Set<string>; typed: Set<string> } }

function historyOf(
  history: LineHistory,
  field: keyof DraftFields,
): { seen: Set<string>; typed: Set<string> } {
  let lines = history[field]
  if (lines === undefined) {
    lines = { seen: new Set(), typed: new Set() }
    history[field] = lines
  }
  return lines
}

/** Per field being typed: the text the typing started from, and those written here since. */
type Basis = { [field in keyof DraftFields]?: { from: string; own: string[] } }

/**
 * The texts of each field being typed that another device (or tab) wrote meanwhile: those of
 * `notes` (the stored note and its conflict's versions) that are neither the text the typing
 * started from, nor what is typed, nor a text written here.
 */
function othersOf(
  fields: DraftFields,
  notes: readonly Note[],
  basis: Basis,
): Partial<Record<keyof DraftFields, string[]>> {
  const others: Partial<Record<keyof DraftFields, string[]>> = {}
  for (const field of ['title', 'body'] as const) {
    const typed = fields[field]
    const started = basis[field]
    if (typed === undefined || started === undefined) continue
    const texts = notes
      .map((note) => note[field])
      .filter((text) => text !== started.from && text !== typed && !started.own.includes(text))
    if (texts.length > 0) others[field] = texts
  }
  return others
}

/**
 * `fields` with the body's lines others wrote merged in (see `mergeTyped`); their title is not.
 * `theirsFollow`: their text is the stored note, in no conflict, so written over the text the
 * typing started from, and the lines it no longer holds were deleted there.
 */
function withOthers(
  fields: DraftFields,
  others: Partial<Record<keyof DraftFields, string[]>>,
  basis: Basis,
  history: LineHistory,
  theirsFollow = false,
  caretLine?: string,
): DraftFields {
  if (others.body === undefined || fields.body === undefined) return fields
  const lines = historyOf(history, 'body')
  return {
    ...fields,
    body: mergeTyped(
      fields.body,
      basis.body?.from ?? '',
      others.body,
      caretLine === undefined ? lines : { ...lines, caretLine },
      theirsFollow,
    ),
  }
}

/** The line of `text` that position `at` is in. */
function lineAt(text: string, at: number): string {
  const end = text.indexOf('\n', at)
  return text.slice(text.lastIndexOf('\n', at - 1) + 1, end === -1 ? undefined : end)
}

/**
 * Whether two reads of a note hold the same note (what the editor shows and writes of it:
 * other fields a patch keeps as they are stored).
 */
function sameNote(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === undefined || a === null || b === undefined || b === null) return false
  const [x, y] = [asNote(a), asNote(b)]
  return (
    x.title === y.title && x.body === y.body && x.createdAt === y.createdAt && x.updatedAt === y.updatedAt
  )
}

/**
 * One note, edited in place and saved as you type.
 *
 * Only what the user typed is written, and only after they typed it: opening a note writes
 * nothing, so opening a note in conflict does not settle the conflict behind their back.
 * Until an edit is stored, the input shows the edit; after, it shows the stored note — so
 * changes from other devices appear while the user is not typing.
 */
export function NoteEditor({
  id,
  space,
  fresh,
  takeFocus = false,
  onClose,
}: {
  id: string
  space: string
  /** The note as this tab just created it: shown, its title focused, until it is read back. */
  fresh?: Note
  /**
   * Opened from the list: focus moves to the editor (not into a field, which would open a
   * phone's keyboard just to read), so that the next Tab reaches the title.
   */
  takeFocus?: boolean
  /** Closes the note; `deleted`, because it was just deleted here. */
  onClose: (deleted?: boolean) => void
}): ReactNode {
  const replica = useReplica()
  const notes = replica.collection<Note>(Collections.notes)
  // The note and its conflict, read together: read apart, the note could already be another
  // device's version of a conflict not listed yet, and the field being typed into would
  // switch to it under the caret.
  const read = useRecordWithConflict<Note>(Collections.notes, id)
  // A note just created is shown as created until it is read back (a read issued after its
  // write sees it).
  const stored = read === undefined ? fresh : (read.value ?? null)
  const autoFocus = fresh !== undefined
  const focused = useRef(false)
  const focusOnOpen = useCallback(
    (element: HTMLElement | null) => {
      if (element === null || !takeFocus || focused.current) return
      focused.current = true
      element.focus()
    },
    [takeFocus],
  )
  const versions = read?.conflict
  const conflict = useMemo(
    () => (versions === undefined || versions.length === 0 ? undefined : { versions }),
    [versions],
  )
  const inConflict = conflict !== undefined
  // What `save` reads when it runs (from a timer, a blur, or leaving): the note and its
  // conflict as they are then, not as they were when it was made.
  const live = useRef({ stored, conflict })
  live.current = { stored, conflict }
  /**
   * Per field being typed: the stored text the typing started from, and the texts this editor
   * wrote since that are not read back yet. A stored text that is neither was written by
   * another device (or tab) meanwhile, and a save must not write over it unseen.
   */
  const basis = useRef<Basis>({})
  /** Where the caret was in the body when lines from elsewhere were merged into it. */
  const caret = useRef<{ start: number; end: number } | null>(null)
  /** The body's text as last rendered, and its selection as the user last left it. */
  const bodyShown = useRef<string | null>(null)
  const selection = useRef<{ start: number; end: number } | null>(null)
  const keepSelection = (event: { currentTarget: HTMLTextAreaElement }) => {
    selection.current = { start: event.currentTarget.selectionStart, end: event.currentTarget.selectionEnd }
  }
  /**
   * Per field, for as long as this note is open here: the lines that came from elsewhere and
   * those typed here (see `mergeTyped`). Kept across drafts: a draft ends whenever a save is
   * read back before the next key, many times a line.
   */
  const history = useRef<LineHistory>({})
  const now = useMinute()
  /** The note as last read (not deleted), to restore it from. */
  const shown = useRef<Note | null>(null)
  if (stored !== undefined && stored !== null) shown.current = asNote(stored)
  const [draft, setDraft] = useState<DraftFields>({})
  const latest = useRef(draft)
  latest.current = draft
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null)
  /** When the oldest edit not yet written was typed, or null. */
  const unsavedSince = useRef<number | null>(null)
  /** The draft last written, so that a blur followed by leaving writes it once. */
  const written = useRef<DraftFields | null>(null)
  /** The last save was refused: the note is too long to sync. */
  const [tooLong, setTooLong] = useState(false)
  /**
   * The last save failed in the browser's storage (its quota for the site used up, say): what
   * was typed is not stored, and the editor says so rather than "Saving…" until it is.
   */
  const [storeFailed, setStoreFailed] = useState(false)
  /** `tooLong`, for the listeners of leaving the page. */
  const refused = useRef(false)
  /** The notice saying the note is too long, taken away once a save succeeds. */
  const tooLongNotice = useRef<number | null>(null)
  refused.current = tooLong
  /** Whether the editor is on the page: a save from one that is gone cannot wait to merge. */
  const mounted = useRef(true)
  useEffect(() => {
    mounted.current = true
    return () => {
      mounted.current = false
    }
  }, [])
  /**
   * A save found the note changed since it was last shown here (see `save`): it is saved
   * again once the change shows, merged.
   */
  const saveWhenShown = useRef(false)
  /**
   * The `updatedAt` of each save this editor made while connected: a version holding one was
   * typed here, and is in conflict because another device's save crossed it (see below).
   */
  const savedOnline = useRef(new Set<number>())
  /** The field with focus, if any. */
  const focusedField = useRef<keyof DraftFields | null>(null)
  /**
   * The field that had focus when the note came into conflict, until it loses focus: typing
   * into it goes on (see `locked` below).
   */
  const [typingThrough, setTypingThrough] = useState<keyof DraftFields | null>(null)
  const wasInConflict = useRef(inConflict)
  // In the render the conflict arrives in already (the effect below keeps it until a blur).
  const through = typingThrough ?? (inConflict && !wasInConflict.current ? focusedField.current : null)
  useLayoutEffect(() => {
    if (inConflict && !wasInConflict.current && focusedField.current !== null)
      setTypingThrough(focusedField.current)
    wasInConflict.current = inConflict
  }, [inConflict])
  /**
   * While typing goes on through a conflict, the fields show this device's version, which is
   * what was typed, rather than the latest version, which may be another device's.
   */
  const ownVersion =
    through === null
      ? undefined
      : conflict?.versions.find(
          (version) => version.replicaId === replica.replicaId && version.value !== null,
        )
  const typedNote = ownVersion === undefined ? null : asNote(ownVersion.value)

  const save = useCallback(() => {
    if (timer.current !== null) clearTimeout(timer.current)
    timer.current = null
    unsavedSince.current = null
    let fields = latest.current
    if (Object.keys(fields).length === 0 || fields === written.current) return
    const { stored: current, conflict: open } = live.current
    // Deleted on another device while typed into: a patch would bring back a note with only
    // the typed fields. What was typed stays on screen, to restore the note with or to leave.
    if (current === null) return
    // Changed elsewhere while typed into (a sync brought another device's edit, or a conflict
    // with one): their new lines are added to what is typed, and the user is told, so that
    // writing this supersedes nothing unseen.
    const others = othersOf(
      fields,
      [
        ...(current === undefined ? [] : [asNote(current)]),
        ...(open?.versions ?? []).map((version) => asNote(version.value)),
      ],
      basis.current,
    )
    if (others.body !== undefined || others.title !== undefined) {
      const typing = document.activeElement
      const caretLine =
        typing instanceof HTMLTextAreaElement && typing.id === `body-${id}`
          ? lineAt(typing.value, typing.selectionStart)
          : undefined
      fields = withOthers(fields, others, basis.current, history.current, open === undefined, caretLine)
      const { body } = fields
      for (const field of ['title', 'body'] as const) {
        const theirs = others[field]
        if (theirs === undefined) continue
        const { seen, typed } = historyOf(history.current, field)
        for (const text of theirs) for (const line of text.split('\n')) if (!typed.has(line)) seen.add(line)
        basis.current[field] = { from: theirs[0] as string, own: [] }
      }
      const before = latest.current.body ?? ''
      const added = body !== latest.current.body
      // The caret stays where the user is typing, in the text merged.
      const field = document.activeElement
      if (added && body !== undefined && field instanceof HTMLTextAreaElement && field.id === `body-${id}`) {
        caret.current = caretAfterMerge(before, body, field.selectionStart, field.selectionEnd)
      }
      latest.current = fields
      setDraft(fields)
      notify({
        tone: 'info',
        message: added
          ? 'This note was changed on another device while you typed: its changes were merged into yours.'
          : others.title !== undefined
            ? `This note's title was changed on another device while you typed (to “${others.title[0] ?? ''}”): yours is kept.`
            : 'This note was changed on another device while you typed: what you typed is kept.',
      })
    }
    for (const field of ['title', 'body'] as const) {
      const typed = fields[field]
      const started = basis.current[field]
      if (typed === undefined || started === undefined) continue
      started.own.push(typed)
      const lines = historyOf(history.current, field)
      for (const line of typed.split('\n')) if (!lines.seen.has(line)) lines.typed.add(line)
    }
    written.current = fields
    const updatedAt = Date.now()
    const { status } = replica
    if (status === 'synced' || status === 'syncing') savedOnline.current.add(updatedAt)
    const saved = fields
    // Written only over the note as merged above: an edit from elsewhere that the replica
    // applied after this editor last showed the note (its live query reads it a moment later)
    // would otherwise be written over unseen, as this replica has seen it.
    notes
      .update(id, (now, versions) => {
        const same =
          sameNote(now, current) &&
          versions.length === (open?.versions.length ?? 0) &&
          versions.every((version, i) => {
            const was = open?.versions[i]
            return was !== undefined && version.replicaId === was.replicaId && version.hlc === was.hlc
          })
        if (same) return { ...saved, updatedAt }
        // Saved again once the change shows here, merged as above and told.
        if (mounted.current) return undefined
        // The editor is gone: what was typed is merged into the note as it is now.
        if (now === undefined) return undefined
        const late = othersOf(
          saved,
          [now, ...versions.flatMap((version) => (version.value === null ? [] : [version.value]))].map(
            asNote,
          ),
          basis.current,
        )
        return { ...withOthers(saved, late, basis.current, history.current), updatedAt }
      })
      .then(
        (wrote) => {
          if (!wrote) {
            if (written.current === saved) written.current = null
            const { stored: later, conflict: listed } = live.current
            if (later !== current || listed !== open) save()
            else saveWhenShown.current = true
            return
          }
          // Stored: a copy kept as the page went away (which did not end it, after all) is not needed.
          dropDraft(space, id)
          setTooLong(false)
          setStoreFailed(false)
          if (tooLongNotice.current !== null) dismiss(tooLongNotice.current)
          tooLongNotice.current = null
        },
        (error: unknown) => {
          // The only argument of a note's patch the client can refuse is its size: a note must
          // fit one frame to the relay. What was typed stays in the editor, to be shortened.
          if (!isChorusError(error, ErrorCode.InvalidArgument)) {
            // Kept in the editor and written again with the next edit.
            setStoreFailed(true)
            notifyFailure('Saving the note failed', error)
            return
          }
          setTooLong((already) => {
            if (!already) {
              // Its size as it travels: JSON, where a tab, a newline or a quote takes two bytes.
              const encoded = new Blob([JSON.stringify([fields.title ?? '', fields.body ?? ''])]).size
              const megabytes = (encoded / 1_048_576).toFixed(1)
              tooLongNotice.current = notify({
                tone: 'error',
                message: `This note is too long to save (${megabytes} MB): a note syncs up to about 4 MB. Shorten it, or split it over several notes.`,
              })
            }
            return true
          })
          // A title typed beside a body too long is saved on its own.
          if (fields.title !== undefined && fields.body !== undefined) {
            notes
              .patch(id, { title: fields.title, updatedAt })
              .catch((again: unknown) => notifyFailure('Saving the title failed', again))
          }
        },
      )
  }, [notes, id, space, replica])

  // Leaving the note (another note, another view) saves what was typed. Leaving the page
  // (a reload, closing the tab) may end it before that write commits: what was typed is kept
  // in localStorage too, and written when the notebook opens again (see `recoverDrafts`).
  useEffect(() => {
    const leave = () => {
      const fields = latest.current
      if (Object.keys(fields).length === 0) return
      // A body refused as too long could not be written when the notebook opens again
      // either: only the rest is kept (the page asked before leaving, see below).
      const { body, ...rest } = fields
      const kept = refused.current && body !== undefined ? rest : fields
      if (Object.keys(kept).length > 0) stashDraft(space, id, kept, Date.now())
      save()
    }
    window.addEventListener('pagehide', leave)
    return () => {
      window.removeEventListener('pagehide', leave)
      save()
    }
  }, [save, space, id])

  // A body too long to save exists only on this page: the browser asks before it goes.
  const unsavable = tooLong && draft.body !== undefined
  useEffect(() => {
    if (!unsavable) return
    const ask = (event: BeforeUnloadEvent) => {
      event.preventDefault()
    }
    window.addEventListener('beforeunload', ask)
    return () => window.removeEventListener('beforeunload', ask)
  }, [unsavable])

  // Once the stored note holds an edit, the edit is no longer a draft.
  useEffect(() => {
    if (stored === undefined || stored === null) return
    // An own write read back: the typing builds on it now, and older own writes are history.
    for (const field of ['title', 'body'] as const) {
      const started = basis.current[field]
      const text = asNote(stored)[field]
      const at = started?.own.indexOf(text) ?? -1
      if (started !== undefined && at >= 0) {
        basis.current[field] = { from: text, own: started.own.slice(at + 1) }
      }
    }
    setDraft((current) => {
      const next = { ...current }
      let changed = false
      for (const field of ['title', 'body'] as const) {
        if (next[field] !== undefined && next[field] === asNote(stored)[field] && timer.current === null) {
          delete next[field]
          changed = true
        }
      }
      return changed ? next : current
    })
  }, [stored])

  // A save that found the note changed since it was shown (see `save`) goes again once the
  // change shows: merged into what is typed, and told.
  useEffect(() => {
    if (stored === undefined && conflict === undefined) return
    if (!saveWhenShown.current) return
    saveWhenShown.current = false
    save()
  }, [stored, conflict, save])

  // Two devices typing into the note at once, each saving before the other's save arrived,
  // put it in conflict: the versions are each device's text. When the typing here made one of
  // them, online and moments ago (edits made apart are for the users to compare), and the
  // versions differ only in their body, this editor merges them as it merges what arrives
  // while a draft is typed, and saves that, which settles the conflict. One device does so,
  // the one with the greatest replica id among the versions, so that two merges do not cross
  // and conflict again.
  useEffect(() => {
    if (conflict === undefined || Object.keys(latest.current).length > 0) return
    const { versions } = conflict
    const own = versions.find((version) => version.replicaId === replica.replicaId)
    if (own === undefined || own.value === null) return
    if (versions.some((version) => version.replicaId > replica.replicaId)) return
    const mine = asNote(own.value)
    if (!savedOnline.current.has(mine.updatedAt) || Date.now() - mine.updatedAt > CROSSED_SAVE_MS) return
    if (!versions.every((version) => version.value !== null && asNote(version.value).title === mine.title))
      return
    basis.current.body = { from: mine.body, own: [] }
    latest.current = { body: mine.body }
    setDraft(latest.current)
    save()
  }, [conflict, replica, save])

  // After the render that showed merged lines (any render: it does nothing unless asked).
  useLayoutEffect(() => {
    const field = document.getElementById(`body-${id}`)
    if (!(field instanceof HTMLTextAreaElement)) return
    const before = bodyShown.current
    bodyShown.current = field.value
    const at = caret.current
    if (at !== null) {
      caret.current = null
      field.setSelectionRange(at.start, at.end)
      return
    }
    // The stored note changed under a focused body that holds no draft (another device's edit
    // came between two of this one's saves): the caret keeps its place in the text, rather
    // than going to the end, where the next key would land in someone else's line.
    const held = selection.current
    if (before === null || before === field.value || latest.current.body !== undefined) return
    if (held === null || document.activeElement !== field) return
    const moved = caretAfterMerge(before, field.value, held.start, held.end)
    field.setSelectionRange(moved.start, moved.end)
  })

  const edit = (field: keyof DraftFields, value: string) => {
    // Typing into a field that holds no draft starts from the text shown.
    if (latest.current[field] === undefined && stored !== undefined && stored !== null) {
      const from = (typedNote ?? asNote(stored))[field]
      basis.current[field] = { from, own: [] }
      const { seen, typed } = historyOf(history.current, field)
      for (const line of from.split('\n')) if (!typed.has(line)) seen.add(line)
    }
    setDraft((current) => ({ ...current, [field]: value }))
    if (timer.current !== null) clearTimeout(timer.current)
    // Written after a pause in typing, or at the latest MAX_SAVE_WAIT_MS after the oldest
    // unwritten edit: steady typing is saved too, not only once it stops.
    const now = Date.now()
    unsavedSince.current ??= now
    const due = Math.min(SAVE_AFTER_MS, MAX_SAVE_WAIT_MS - (now - unsavedSince.current))
    timer.current = setTimeout(save, Math.max(0, due))
  }

  const remove = () => {
    if (stored === undefined || stored === null) return
    // In conflict since the render the click was on: the button is about to be disabled.
    if (live.current.conflict !== undefined) return
    if (timer.current !== null) clearTimeout(timer.current)
    timer.current = null
    const before: Note = { ...asNote(stored), ...latest.current }
    // Nothing typed may be written after the deletion: it would bring the note back.
    latest.current = {}
    setDraft({})
    onClose(true)
    notes.delete(id).then(
      () =>
        notify({
          tone: 'info',
          message: `Deleted “${before.title.trim() || 'Untitled'}”.`,
          action: {
            label: 'Undo',
            run: () => {
              notes
                .put(id, before)
                .catch((error: unknown) => notifyFailure('Restoring the note failed', error))
            },
            // Undone, focus goes to the note where it comes back in the list.
            focusAfter: () => document.querySelector<HTMLElement>(`[data-note-id="${CSS.escape(id)}"]`),
          },
        }),
      (error: unknown) => notifyFailure('Deleting the note failed', error),
    )
  }

  // The note as it was last read, with what was typed: brought back whole, a put of every field.
  function restore(): void {
    const seen = shown.current
    const fields = latest.current
    const at = Date.now()
    const note: Note = {
      title: fields.title ?? seen?.title ?? '',
      body: fields.body ?? seen?.body ?? '',
      createdAt: seen?.createdAt ?? at,
      updatedAt: at,
    }
    notes.put(id, note).then(
      () => {
        basis.current = {}
        latest.current = {}
        setDraft({})
        dropDraft(space, id)
      },
      (error: unknown) => notifyFailure('Restoring the note failed', error),
    )
  }

  if (stored === undefined) return <div className="editor muted pad">Loading…</div>
  if (stored === null) {
    const typed = Object.keys(draft).length > 0
    return (
      <section className="editor" ref={focusOnOpen} tabIndex={-1} aria-labelledby={`note-heading-${id}`}>
        <h2 className="visually-hidden" id={`note-heading-${id}`}>
          Deleted note
        </h2>
        <div className="editor-toolbar">
          <button type="button" className="button subtle back-to-list" onClick={() => onClose()}>
            ‹ Notes
          </button>
        </div>
        <p className="muted pad deleted-note">
          This note was deleted, here or on another device.
          {typed ? ' What you typed in it since is below: restore the note with it, or leave it.' : ''}
        </p>
        {typed ? (
          <div className="pad deleted-draft">
            {draft.title === undefined ? null : <h3 dir="auto">{draft.title || 'Untitled'}</h3>}
            {draft.body === undefined ? null : (
              <div className="version-body" dir={textDirection(draft.body)}>
                {draft.body}
              </div>
            )}
            <button type="button" className="button primary" onClick={restore}>
              Restore the note
            </button>
          </div>
        ) : null}
      </section>
    )
  }

  const note = typedNote ?? asNote(stored)
  const title = draft.title ?? note.title
  const body = draft.body ?? note.body
  const saving = Object.keys(draft).length > 0
  // A note in conflict is not edited in place: an edit would settle the conflict with the
  // version shown, and the other versions would be gone without anyone having seen them. What
  // was being typed when the conflict arrived stays editable, and is saved: a draft, or the
  // field being typed into (between two saves, as two devices typing at once make conflicts)
  // when the versions differ in that field alone. Its next save merges their text into it,
  // and so settles the conflict with nothing lost.
  const differsOnlyIn = (field: keyof DraftFields) => {
    const other = field === 'title' ? 'body' : 'title'
    return (conflict?.versions ?? []).every(
      (version) => version.value !== null && asNote(version.value)[other] === note[other],
    )
  }
  const lockedFor = (field: keyof DraftFields) =>
    inConflict && !saving && !(through === field && differsOnlyIn(field))
  const focusOn = (field: keyof DraftFields) => () => {
    focusedField.current = field
  }
  const blurred = () => {
    focusedField.current = null
    setTypingThrough(null)
    save()
  }

  // Focus comes here when the note is opened from the list: the region and its heading name
  // the note as the list does, so that a screen reader says which one opened.
  return (
    <section className="editor" ref={focusOnOpen} tabIndex={-1} aria-labelledby={`note-heading-${id}`}>
      <h2 className="visually-hidden" id={`note-heading-${id}`}>
        Note: {displayTitle({ title, body })}
      </h2>
      <div className="editor-toolbar">
        <button type="button" className="button subtle back-to-list" onClick={() => onClose()}>
          ‹ Notes
        </button>
        <span className="muted small save-state">
          {tooLong && saving
            ? 'Not saved: too long'
            : storeFailed && saving
              ? 'Not saved'
              : saving
                ? 'Saving…'
                : `Edited ${timeAgo(note.updatedAt, now)}`}
        </span>
        {/* Deleted in conflict, the versions not shown would be gone unseen (an undo brings
            back the one shown only): keep a version or merge them first. */}
        <button
          type="button"
          className="button subtle danger"
          onClick={remove}
          disabled={inConflict}
          aria-describedby={inConflict ? `conflict-${id}` : undefined}
        >
          Delete note
        </button>
      </div>
      {inConflict ? (
        <div className="conflict-banner">
          <span id={`conflict-${id}`}>
            This note was changed on two devices at once. You see the latest version: to edit or delete the
            note, keep a version or merge them first, so that neither is lost unseen.
          </span>
          <a className="button small" href={notebookHash(space, 'conflicts')}>
            Compare versions
          </a>
        </div>
      ) : null}
      <label className="visually-hidden" htmlFor={`title-${id}`}>
        Title
      </label>
      <input
        id={`title-${id}`}
        className="title-input"
        placeholder="Title"
        dir={textDirection(title)}
        value={title}
        readOnly={lockedFor('title')}
        // biome-ignore lint/a11y/noAutofocus: a note just created is there to be typed into
        autoFocus={autoFocus}
        onChange={(event) => edit('title', event.target.value)}
        onFocus={focusOn('title')}
        onBlur={blurred}
        onKeyDown={(event) => {
          if (event.key === 'Enter') {
            event.preventDefault()
            document.getElementById(`body-${id}`)?.focus()
          }
        }}
      />
      <label className="visually-hidden" htmlFor={`body-${id}`}>
        Body
      </label>
      <textarea
        id={`body-${id}`}
        className="body-input"
        placeholder="Write something…"
        dir={textDirection(body)}
        value={body}
        readOnly={lockedFor('body')}
        onChange={(event) => {
          keepSelection(event)
          edit('body', event.target.value)
        }}
        onSelect={keepSelection}
        onFocus={focusOn('body')}
        onBlur={blurred}
      />
    </section>
  )
}
