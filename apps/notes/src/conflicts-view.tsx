import type { Conflict, ConflictVersion } from '@chorus/client'
import { parseHlc } from '@chorus/core'
import { useCollection, useConflicts, useReplica } from '@chorus/react'
import {
  type FormEvent,
  memo,
  type ReactNode,
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
} from 'react'
import { distinctDeviceLabels, shortReplicaId } from './device.js'
import { useScreenHeading } from './focus.js'
import { exactTime, textDirection } from './format.js'
import { mergeDraft } from './merge-draft.js'
import { asNote, Collections, displayTitle, type Note } from './notes.js'
import { notifyFailure } from './notices.js'
import { notebookHash } from './route.js'

/**
 * Every note that two devices changed while apart, with each version side by side. The user
 * keeps one version, or merges them by editing; either is written over every version, so the
 * conflict goes away on every device.
 */
export function ConflictsView({ space }: { space: string }): ReactNode {
  const conflicts = useConflicts(Collections.notes)
  const devices = useCollection<{ name: string }>(Collections.devices)
  // Opening the view takes focus to its heading, so that a screen reader says where it is.
  const heading = useScreenHeading<HTMLHeadingElement>(true)
  const deviceNames = useMemo(
    () => distinctDeviceLabels(new Map(devices?.map((row) => [row.id as string, row.value.name]))),
    [devices],
  )

  return (
    <div className="conflicts">
      <div className="conflicts-header">
        <a className="button subtle" href={notebookHash(space)}>
          ‹ Notes
        </a>
        <h2 id="conflicts-heading" ref={heading} tabIndex={-1}>
          Conflicts
        </h2>
      </div>
      <p className="muted intro">
        When the same note is changed on two devices that were not in touch, both versions are kept until you
        choose. What you choose here replaces them on every device.
      </p>
      {conflicts === undefined ? (
        <p className="muted">Looking for conflicts…</p>
      ) : conflicts.length === 0 ? (
        <div className="all-clear">
          <p>No conflicts. Every note has one version.</p>
        </div>
      ) : (
        conflicts.map((conflict) => (
          <ConflictCard key={conflict.id} conflict={conflict} deviceNames={deviceNames} />
        ))
      )}
    </div>
  )
}

const ConflictCard = memo(function ConflictCard({
  conflict,
  deviceNames,
}: {
  conflict: Conflict
  deviceNames: ReadonlyMap<string, string>
}): ReactNode {
  const replica = useReplica()
  const [merging, setMerging] = useState(false)
  // The merge form closed without saving (Cancel, Escape): focus goes back to the button that
  // opened it, rather than to the page.
  const mergeButton = useRef<HTMLButtonElement>(null)
  const refocus = useRef(false)
  useEffect(() => {
    if (merging || !refocus.current) return
    refocus.current = false
    mergeButton.current?.focus()
  }, [merging])
  const newestFirst = [...conflict.versions].reverse()
  const newest = newestFirst.find((version) => version.value !== null)
  const heading = newest === undefined ? 'A deleted note' : displayTitle(asNote(newest.value))

  // Settled, the card goes: focus moves to the view's heading rather than to the page.
  const settled = useCallback(() => document.getElementById('conflicts-heading')?.focus(), [])

  const keep = (version: ConflictVersion) => {
    const notes = replica.collection(Collections.notes)
    const written =
      version.value === null ? notes.delete(conflict.id) : notes.resolve(conflict.id, version.value)
    written.then(settled, (error: unknown) => notifyFailure('Keeping that version failed', error))
  }

  return (
    <article className="conflict-card" aria-label={`Conflict: ${heading}`}>
      <h3 dir="auto">{heading}</h3>
      <div className="versions">
        {newestFirst.map((version) => (
          <section
            key={`${version.replicaId}@${version.hlc}`}
            className="version"
            aria-label={`Version from ${deviceLabel(version.replicaId, replica.replicaId, deviceNames)}`}
          >
            <header className="version-header">
              <strong>{deviceLabel(version.replicaId, replica.replicaId, deviceNames)}</strong>
              <span className="muted small">
                {version.replicaId === replica.replicaId ? '' : `${shortReplicaId(version.replicaId)} · `}
                <time dateTime={new Date(parseHlc(version.hlc).wall).toISOString()}>
                  {exactTime(parseHlc(version.hlc).wall)}
                </time>
              </span>
            </header>
            {version.value === null ? (
              <p className="muted version-deleted">Deleted the note.</p>
            ) : (
              <div className="version-content">
                <h4 dir="auto">{asNote(version.value).title || 'Untitled'}</h4>
                <div className="version-body" dir={textDirection(asNote(version.value).body)}>
                  {asNote(version.value).body}
                </div>
              </div>
            )}
            <button type="button" className="button primary" onClick={() => keep(version)}>
              Keep this version
              {/* Said, not shown: which version, for a screen reader going from button to button. */}
              <span className="visually-hidden">
                {` from ${deviceLabel(version.replicaId, replica.replicaId, deviceNames)}, ${exactTime(parseHlc(version.hlc).wall)}`}
              </span>
            </button>
          </section>
        ))}
      </div>
      {merging ? (
        <MergeForm
          conflict={conflict}
          onDone={(saved) => {
            setMerging(false)
            if (saved) settled()
            else refocus.current = true
          }}
        />
      ) : (
        <button ref={mergeButton} type="button" className="button" onClick={() => setMerging(true)}>
          Merge by editing
        </button>
      )}
    </article>
  )
})

function MergeForm({
  conflict,
  onDone,
}: {
  conflict: Conflict
  /** Closes the form: `saved`, with the merged version written. */
  onDone: (saved: boolean) => void
}): ReactNode {
  const replica = useReplica()
  // Opened, the form takes focus to its title field.
  const titleField = useRef<HTMLInputElement>(null)
  useEffect(() => titleField.current?.focus(), [])
  const [initial] = useState(() => mergeDraft(conflict.versions))
  const [title, setTitle] = useState(initial.title)
  const [body, setBody] = useState(initial.body)

  const submit = (event: FormEvent) => {
    event.preventDefault()
    const merged: Note = { title, body, createdAt: initial.createdAt, updatedAt: Date.now() }
    replica
      .collection<Note>(Collections.notes)
      .resolve(conflict.id, merged)
      .then(
        () => onDone(true),
        (error: unknown) => notifyFailure('Saving the merged version failed', error),
      )
  }

  return (
    <form
      className="merge-form"
      onSubmit={submit}
      onKeyDown={(event) => {
        if (event.key === 'Escape') onDone(false)
      }}
    >
      <p className="small muted">
        Starts from the newest version, with the lines only the others have added below. Edit it into the note
        you want.
      </p>
      <label>
        <span>Merged title</span>
        <input
          ref={titleField}
          dir={textDirection(title)}
          value={title}
          onChange={(event) => setTitle(event.target.value)}
        />
      </label>
      <label>
        <span>Merged text</span>
        <textarea
          rows={10}
          dir={textDirection(body)}
          value={body}
          onChange={(event) => setBody(event.target.value)}
        />
      </label>
      <div className="actions">
        <button type="submit" className="button primary">
          Save merged version
        </button>
        <button type="button" className="button subtle" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  )
}

function deviceLabel(replicaId: string, self: string, names: ReadonlyMap<string, string>): string {
  if (replicaId === self) return 'This device'
  return names.get(replicaId) ?? 'Another device'
}
