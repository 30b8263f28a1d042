import { ChorusError, ErrorCode } from '@chorus/core'
import Database from 'better-sqlite3'
import { renameLog } from './sqlite-schema.js'

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
