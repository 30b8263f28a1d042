/** What an operator runs on a relay's SQLite file beside the relay: a consistent copy, the spaces it holds, and a space's records. */
import {
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { type Change, ChorusError, ErrorCode } from '@chorus/core'
import Database from 'better-sqlite3'
import { exportLines } from './export.js'
import type { SpaceSummary } from './relay-store.js'
import { DESCRIBE_SPACES, forgetLogName, SCHEMA_VERSION, type SpaceSummaryRow } from './sqlite-schema.js'

/**
 * Writes a consistent copy of a relay database to `destination` with `VACUUM INTO`, through
 * a read-only connection, so it is safe while a relay is running on `source`. Copying a live
 * WAL database with `cp` is not: the copy can miss committed pages or be corrupt.
 * Fails if `destination` exists.
 */
export function backupDatabase(source: string, destination: string): void {
  let db: Database.Database | undefined
  try {
    db = new Database(source, { readonly: true, fileMustExist: true })
    db.prepare('VACUUM INTO ?').run(destination)
    db.close()
    // Each database made from the copy names its log anew (see `forgetLogName`).
    db = new Database(destination, { fileMustExist: true })
    forgetLogName(db)
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `backing up ${source} to ${destination} failed: ${detail}`,
      {
        cause: error,
      },
    )
  } finally {
    db?.close()
  }
}

/** The files SQLite keeps beside a database in WAL mode. */
const WAL_FILES = ['-wal', '-shm'] as const

/** What {@link restoreDatabase} did. */
export interface RestoreResult {
  /** The files the copy replaced (the database, its `-wal` and `-shm`), moved aside: where they went. */
  readonly movedAside: readonly string[]
}

/**
 * Puts the backup `copy` in place as the relay database `database`, which no relay may be
 * serving (the caller holds the data directory's lock). The copy must be a relay database
 * this build reads, with no `-wal` beside it (a backup has none; a database a relay was
 * serving may), that passes SQLite's integrity check. It is copied beside `database` and made
 * durable first; the files there (the database, its `-wal` and `-shm`) are then moved aside
 * together under a name with the time, and the copy takes their place. The restored database names its log anew when
 * a relay opens it, however many times the same copy is restored (see `forgetLogName`).
 */
export function restoreDatabase(copy: string, database: string, now = new Date()): RestoreResult {
  const fail = (what: string, error?: unknown): never => {
    const detail = error === undefined ? '' : `: ${error instanceof Error ? error.message : String(error)}`
    throw new ChorusError(ErrorCode.StorageFailed, `restoring ${copy}: ${what}${detail}`, {
      ...(error === undefined ? {} : { cause: error }),
    })
  }
  checkCopy(copy, fail)
  const staged = `${database}.restoring`
  const removeStaged = () => {
    for (const file of [staged, ...WAL_FILES.map((suffix) => `${staged}${suffix}`)])
      rmSync(file, { force: true })
  }
  removeStaged()
  try {
    copyFileSync(copy, staged, constants.COPYFILE_EXCL)
    const db = new Database(staged, { fileMustExist: true })
    try {
      forgetLogName(db)
    } finally {
      db.close()
    }
    syncFile(staged)
  } catch (error) {
    removeStaged()
    fail(`cannot copy it to ${staged}`, error)
  }
  const movedAside: string[] = []
  const present = ['', ...WAL_FILES].filter((suffix) => existsSync(`${database}${suffix}`))
  if (present.length > 0) {
    const stamp = now.toISOString().replace(/[:.]/g, '-')
    const aside = join(dirname(database), `${basename(database, '.db')}-replaced-${stamp}.db`)
    try {
      // Under one name, the database with its -wal: a -wal left beside the restored file would
      // be applied to it, and corrupt it.
      for (const suffix of present) {
        renameSync(`${database}${suffix}`, `${aside}${suffix}`)
        movedAside.push(`${aside}${suffix}`)
      }
    } catch (error) {
      removeStaged()
      fail(`cannot move the database at ${database} aside`, error)
    }
  }
  try {
    renameSync(staged, database)
    syncFile(dirname(database))
  } catch (error) {
    fail(`cannot put it in place as ${database} (the copy is at ${staged})`, error)
  }
  return { movedAside }
}

/** Throws through `fail` unless `copy` is a relay database this build reads, whole. */
function checkCopy(copy: string, fail: (what: string, error?: unknown) => never): void {
  const wal = `${copy}-wal`
  if (existsSync(wal) && statSync(wal).size > 0)
    fail(
      `${wal} is beside it: it is a database a relay was serving, not a copy. Make one with chorus-relay backup`,
    )
  let db: Database.Database | undefined
  try {
    db = new Database(copy, { readonly: true, fileMustExist: true })
    const version = db.pragma('user_version', { simple: true }) as number
    const tables = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN ('log', 'spaces')")
      .all()
    if (version < 1 || tables.length < 2) fail('it is not a relay database')
    if (version > SCHEMA_VERSION)
      fail(`it has schema ${version}; this relay reads up to ${SCHEMA_VERSION}: upgrade the relay`)
    const check = db.pragma('integrity_check', { simple: true })
    if (check !== 'ok') fail(`it fails SQLite's integrity check (${String(check)})`)
  } catch (error) {
    if (error instanceof ChorusError) throw error
    fail('cannot read it', error)
  } finally {
    db?.close()
  }
}

/** Flushes a file or directory to the disk. */
function syncFile(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * `RelayStore.describeSpaces` of the relay database `file`, read through a read-only
 * connection: safe while a relay is running on it (acknowledgements it still buffers are not
 * counted yet).
 */
export function describeSpacesIn(file: string): SpaceSummary[] {
  let db: Database.Database | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
    return db
      .prepare<[], SpaceSummaryRow>(DESCRIBE_SPACES)
      .all()
      .map((row) => ({ ...row, space: row.space as SpaceSummary['space'] }))
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    throw new ChorusError(ErrorCode.StorageFailed, `reading the spaces of ${file} failed: ${detail}`, {
      cause: error,
    })
  } finally {
    db?.close()
  }
}

/**
 * The records of `space` in the relay database `file` as lines of JSON (see
 * `ExportedRecord`), read in one read-only transaction: a consistent view, safe while a relay
 * is running on it. Throws `space-deleted` for a deleted space, `storage-failed` when the file
 * cannot be read.
 */
export function* exportSpaceIn(file: string, space: string): Generator<string> {
  let db: Database.Database | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
    if (db.prepare('SELECT 1 FROM deleted_spaces WHERE space = ?').get(space) !== undefined) {
      throw new ChorusError(ErrorCode.SpaceDeleted, `space ${space} was deleted on this relay`)
    }
    const rows = db
      .prepare<[string], { versions: string }>('SELECT versions FROM records WHERE space = ? ORDER BY key')
      .iterate(space)
    for (const row of rows) yield* exportLines(JSON.parse(row.versions) as Change[])
  } catch (error) {
    if (error instanceof ChorusError) throw error
    const detail = error instanceof Error ? error.message : String(error)
    throw new ChorusError(ErrorCode.StorageFailed, `reading space ${space} of ${file} failed: ${detail}`, {
      cause: error,
    })
  } finally {
    db?.close()
  }
}
