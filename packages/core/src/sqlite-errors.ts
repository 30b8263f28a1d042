import { ChorusError, ErrorCode, isChorusError } from './errors.js'

/**
 * SQLite's result code of an error (`SQLITE_FULL`, `SQLITE_IOERR_WRITE`, …), if it has one:
 * better-sqlite3 names it in `code`. (Here for every package that stores in SQLite: the
 * client's Node storage, the server's node storage.)
 */
export function sqliteCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined
  return typeof error.code === 'string' ? error.code : undefined
}

/**
 * Turns a SQLite failure into a `storage-failed` ChorusError whose message says what happened
 * and what to do, keeping the original as `cause`. ChorusErrors pass through.
 */
export function sqliteFailure(error: unknown, what: string, write: boolean): ChorusError {
  if (isChorusError(error)) return error
  const nothing = write ? ' Nothing was written.' : ''
  const code = sqliteCode(error) ?? ''
  const advice = (() => {
    if (code.startsWith('SQLITE_FULL')) return `the disk is full.${nothing} Free space, then retry.`
    if (code.startsWith('SQLITE_IOERR'))
      return `the disk reported an I/O error.${nothing} Check the disk, then retry.`
    if (code.startsWith('SQLITE_READONLY'))
      return `the database file is read-only.${nothing} Give this process write access to the file and its directory.`
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
      return `another process holds the database locked.${nothing} Open one replica per file at a time, then retry.`
    // better-sqlite3 checks the directory itself, before SQLite is asked, and throws a TypeError.
    if (
      code.startsWith('SQLITE_CANTOPEN') ||
      (error instanceof Error && /directory does not exist/.test(error.message))
    )
      return 'the file cannot be opened. Check that its directory exists and this process may write there.'
    if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB'))
      return 'the file is damaged or is not a SQLite database. Restore it from a backup, or use another path.'
    // SQLite's own words, since a caller may keep only the message (a relay's log line).
    const detail = error instanceof Error ? error.message : String(error)
    return `SQLite failed${code === '' ? '' : ` (${code})`}: ${detail}.${nothing}`
  })()
  return new ChorusError(ErrorCode.StorageFailed, `${what} failed: ${advice}`, { cause: error })
}
