/**
 * The page the browser benchmark drives (`../browser.ts`). Chorus and raw Dexie, bundled
 * together, so both run in the same page of the same browser.
 *
 * - `window.bench` offers the write runs; each writes into a database of its own and
 *   returns its time in ms.
 * - Loaded with `?load=<kind>&db=<name>`, the page instead does a cold load of that database
 *   as soon as its script runs and leaves the figures in `window.benchLoad`.
 */
import { createReplica, type Row } from '@chorus/client'
import { Dexie, liveQuery } from 'dexie'
import { type NoteRow, type NoteValue, notes, noteValue } from './notes.js'

/** The notes collection's resolver, as the notes app has it. */
const RESOLVERS = { notes: 'manual' } as const
/** How many notes the first screen shows. */
export const FIRST_PAGE = 100

/** The figures of one cold load, in ms from `performance.now()`'s origin (the navigation). */
export interface LoadTimes {
  /** Just before the database is opened. */
  readonly start: number
  /** The database is open (Chorus: the replica is created; Dexie: `db.open()` resolved). */
  readonly opened: number
  /** The first {@link FIRST_PAGE} notes, newest first, are in the DOM. */
  readonly first: number
  /** Every note is read into the page. */
  readonly all: number
  readonly count: number
  /** The first note shown, to check both sides show the same. */
  readonly firstId: string
}

/** The cold load kinds. */
export type LoadKind = 'dexie' | 'chorus' | 'chorus-subscribe'

export interface BenchApi {
  /** Opens `db` (holding `count` notes) with a live list, then edits `edits` notes one at a time: ms from each write to the list showing it. */
  liveChorus(db: string, count: number, edits: number): Promise<number[]>
  liveDexie(db: string, count: number, edits: number): Promise<number[]>
  writeChorus(db: string, count: number, together: boolean): Promise<number>
  writeDexie(db: string, count: number, bulk: boolean, strict?: boolean): Promise<number>
  deleteDatabase(name: string): Promise<void>
}

declare global {
  interface Window {
    bench: BenchApi
    benchLoad?: Promise<LoadTimes>
  }
}

let cached: NoteRow[] = []
function notesFor(count: number): NoteRow[] {
  if (cached.length !== count) cached = notes(count)
  return cached
}

function openDexie(name: string, strict = false): Dexie {
  const db = new Dexie(name, strict ? { chromeTransactionDurability: 'strict' } : {})
  db.version(1).stores({ notes: 'id' })
  return db
}

async function writeChorus(db: string, count: number, together: boolean): Promise<number> {
  const rows = notesFor(count)
  const values = rows.map(noteValue)
  const replica = await createReplica({ space: 'bench', dbName: db, resolvers: RESOLVERS })
  const collection = replica.collection<NoteValue>('notes')
  const start = performance.now()
  if (together) {
    await Promise.all(rows.map((row, n) => collection.put(row.id, values[n] as NoteValue)))
  } else {
    for (let n = 0; n < count; n++) await collection.put((rows[n] as NoteRow).id, values[n] as NoteValue)
  }
  const ms = performance.now() - start
  const pending = replica.pending
  await replica.close()
  if (pending !== count) throw new Error(`${pending} changes in the outbox, expected ${count}`)
  return ms
}

async function writeDexie(db: string, count: number, bulk: boolean, strict = false): Promise<number> {
  const rows = notesFor(count)
  const dexie = openDexie(db, strict)
  await dexie.open()
  const table = dexie.table<NoteRow, string>('notes')
  const start = performance.now()
  if (bulk) await table.bulkPut(rows)
  else for (const row of rows) await table.put(row)
  const ms = performance.now() - start
  const stored = await table.count()
  dexie.close()
  if (stored !== count) throw new Error(`${stored} notes in Dexie, expected ${count}`)
  return ms
}

/** Edits made so far, so that every edit of a run writes a title no earlier one wrote. */
let edited = 0

/** The note edited `n`th: spread over the collection. */
function editedId(count: number, n: number): string {
  return (notesFor(count)[(n * 997) % count] as NoteRow).id
}

/**
 * Resolves with the next result a live list delivers that passes `check`; `listen` registers
 * the list's one listener for the run.
 */
function liveRun<TRows>(listen: (deliver: (rows: TRows) => void) => void) {
  let waiting: { check: (rows: TRows) => boolean; resolve: () => void } | null = null
  listen((rows) => {
    if (waiting?.check(rows) === true) {
      const { resolve } = waiting
      waiting = null
      resolve()
    }
  })
  return (check: (rows: TRows) => boolean) =>
    new Promise<void>((resolve) => {
      waiting = { check, resolve }
    })
}

async function liveChorus(db: string, count: number, edits: number): Promise<number[]> {
  const replica = await createReplica({ space: 'bench', dbName: db, resolvers: RESOLVERS })
  const collection = replica.collection<NoteValue>('notes')
  let stop = () => {}
  const next = liveRun<readonly Row<NoteValue>[]>((deliver) => {
    stop = collection.subscribe(deliver)
  })
  await next((rows) => rows.length === count)
  const times: number[] = []
  for (let n = 0; n < edits; n++) {
    const id = editedId(count, n)
    const title = `edited ${++edited}`
    const shown = next((rows) => rows.some((row) => row.id === id && row.value.title === title))
    const start = performance.now()
    await collection.patch(id, { title })
    await shown
    times.push(performance.now() - start)
  }
  stop()
  await replica.close()
  return times
}

async function liveDexie(db: string, count: number, edits: number): Promise<number[]> {
  const dexie = openDexie(db)
  await dexie.open()
  const table = dexie.table<NoteRow, string>('notes')
  let stop = () => {}
  const next = liveRun<NoteRow[]>((deliver) => {
    const subscription = liveQuery(() => table.toArray()).subscribe(deliver)
    stop = () => subscription.unsubscribe()
  })
  await next((rows) => rows.length === count)
  const times: number[] = []
  for (let n = 0; n < edits; n++) {
    const id = editedId(count, n)
    const title = `edited ${++edited}`
    const shown = next((rows) => rows.some((row) => row.id === id && row.title === title))
    const start = performance.now()
    await table.update(id, { title })
    await shown
    times.push(performance.now() - start)
  }
  stop()
  dexie.close()
  return times
}

function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name)
    request.onsuccess = () => resolve()
    request.onerror = () => reject(request.error)
    request.onblocked = () => reject(new Error(`deleting ${name} is blocked by an open connection`))
  })
}

/** Shows `rows` as the notes list: title and the start of the body. */
function render(
  rows: readonly { readonly id: string; readonly title: string; readonly body: string }[],
): void {
  const list = document.getElementById('notes') as HTMLUListElement
  const items = rows.map((row) => {
    const item = document.createElement('li')
    item.dataset.id = row.id
    const title = document.createElement('strong')
    title.textContent = row.title
    const preview = document.createElement('span')
    preview.textContent = row.body.slice(0, 140)
    item.append(title, preview)
    return item
  })
  list.replaceChildren(...items)
}

/** Newest first, as the notes app lists them. */
function newestFirst<TRow extends { readonly id: string; readonly createdAt: number }>(rows: TRow[]): TRow[] {
  return rows.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1))
}

function asNote(row: Row<NoteValue>): NoteRow {
  return { id: row.id, ...row.value }
}

async function loadDexie(db: string): Promise<LoadTimes> {
  const start = performance.now()
  const dexie = openDexie(db)
  await dexie.open()
  const opened = performance.now()
  const table = dexie.table<NoteRow, string>('notes')
  const page = await table.orderBy('id').reverse().limit(FIRST_PAGE).toArray()
  render(page)
  const first = performance.now()
  const last = page[page.length - 1]
  const rest = last === undefined ? [] : await table.where('id').below(last.id).reverse().toArray()
  const all = performance.now()
  dexie.close()
  return { start, opened, first, all, count: page.length + rest.length, firstId: page[0]?.id ?? '' }
}

async function loadChorus(db: string): Promise<LoadTimes> {
  const start = performance.now()
  const replica = await createReplica({ space: 'bench', dbName: db, resolvers: RESOLVERS })
  const opened = performance.now()
  const collection = replica.collection<NoteValue>('notes')
  const page = (await collection.list({ order: 'desc', limit: FIRST_PAGE })).map(asNote)
  render(page)
  const first = performance.now()
  const last = page[page.length - 1]
  const rest = last === undefined ? [] : await collection.list({ order: 'desc', after: last.id })
  const all = performance.now()
  await replica.close()
  return { start, opened, first, all, count: page.length + rest.length, firstId: page[0]?.id ?? '' }
}

/** What an app that lists a collection live does: `subscribe`, sort, show the first screen. */
async function loadChorusSubscribe(db: string): Promise<LoadTimes> {
  const start = performance.now()
  const replica = await createReplica({ space: 'bench', dbName: db, resolvers: RESOLVERS })
  const opened = performance.now()
  const rows = await new Promise<NoteRow[]>((resolve) => {
    const stop = replica.collection<NoteValue>('notes').subscribe((delivered) => {
      stop()
      const sorted = newestFirst(delivered.map(asNote))
      render(sorted.slice(0, FIRST_PAGE))
      resolve(sorted)
    })
  })
  const first = performance.now()
  await replica.close()
  return { start, opened, first, all: first, count: rows.length, firstId: rows[0]?.id ?? '' }
}

const loaders: Record<LoadKind, (db: string) => Promise<LoadTimes>> = {
  dexie: loadDexie,
  chorus: loadChorus,
  'chorus-subscribe': loadChorusSubscribe,
}

window.bench = { liveChorus, liveDexie, writeChorus, writeDexie, deleteDatabase }

const params = new URLSearchParams(location.search)
const load = params.get('load')
const db = params.get('db')
if (load !== null && db !== null) {
  const loader = loaders[load as LoadKind]
  window.benchLoad =
    loader === undefined ? Promise.reject(new Error(`unknown load kind ${load}`)) : loader(db)
}
