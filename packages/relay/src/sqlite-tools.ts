/** What an operator runs on a relay's SQLite file beside the relay: a consistent copy, the spaces it holds, and a space's records. */
import { type Change, ChorusError, ErrorCode } from '@chorus/core'
import Database from 'better-sqlite3'
import { exportLines } from './export.js'
import type { SpaceSummary } from './relay-store.js'
import { DESCRIBE_SPACES, renameLog, type SpaceSummaryRow } from './sqlite-schema.js'

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
    // The copy's log gets its own name (see `renameLog`).
    db = new Database(destination, { fileMustExist: true })
    renameLog(db)
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
