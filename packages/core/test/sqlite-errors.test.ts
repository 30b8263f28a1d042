import { describe, expect, it } from 'vitest'
import { ErrorCode, isChorusError } from '../src/errors.js'
import { sqliteFailure } from '../src/sqlite-errors.js'

/** An error as better-sqlite3 throws it: SQLite's words, and its result code in `code`. */
function sqliteError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code })
}

describe('sqliteFailure', () => {
  it('says what to do for a full disk, and that nothing of a write was kept', () => {
    const failure = sqliteFailure(
      sqliteError('database or disk is full', 'SQLITE_FULL'),
      'appending changes',
      true,
    )
    expect(isChorusError(failure, ErrorCode.StorageFailed)).toBe(true)
    expect(failure.message).toBe(
      'appending changes failed: the disk is full. Nothing was written. Free space, then retry.',
    )
    expect((failure as Error & { cause?: unknown }).cause).toBeInstanceOf(Error)
  })

  it('keeps SQLite’s own words where it has no advice, since a log may show the message alone', () => {
    const failure = sqliteFailure(
      sqliteError('too many SQL variables', 'SQLITE_ERROR'),
      'reading the log',
      false,
    )
    expect(failure.message).toBe(
      'reading the log failed: SQLite failed (SQLITE_ERROR): too many SQL variables.',
    )
  })
})
