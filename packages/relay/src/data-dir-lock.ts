import { join } from 'node:path'
import { ChorusError, ErrorCode } from '@chorus/core'
import Database from 'better-sqlite3'

/** The lock's file name inside the data directory. */
export const LOCK_FILE = 'relay.lock'

/** How long taking the lock waits for a relay that is shutting down to let go, in ms. */
const LOCK_WAIT_MS = 2_000

/** A data directory held by this process until {@link DataDirLock.release}. */
export interface DataDirLock {
  release(): void
}

/**
 * Holds `dataDir` for this process, so that a second relay started on it fails at once
 * instead of serving beside the first: one relay keeps each space's head and recent changes
 * in memory, and would not stream to its clients what the other appended.
 *
 * The lock is a small SQLite file written in exclusive locking mode, so the operating
 * system's file lock does the work: it goes with the process (kill -9 included), and a
 * process id that is reused later holds nothing. `chorus-relay backup` does not take it;
 * `chorus-relay delete-space` does. `busy` ends the message when another process holds it.
 */
export function lockDataDir(
  dataDir: string,
  busy = 'stop it first, or give this one another --data directory',
): DataDirLock {
  const path = join(dataDir, LOCK_FILE)
  let db: Database.Database | undefined
  try {
    db = new Database(path, { timeout: LOCK_WAIT_MS })
    db.pragma('locking_mode = EXCLUSIVE')
    // A write takes the exclusive lock, which exclusive locking mode keeps until close.
    db.exec(
      'CREATE TABLE IF NOT EXISTS holder (only INTEGER PRIMARY KEY, pid INTEGER NOT NULL, since TEXT NOT NULL)',
    )
    db.prepare('INSERT OR REPLACE INTO holder (only, pid, since) VALUES (1, ?, ?)').run(
      process.pid,
      new Date().toISOString(),
    )
  } catch (error) {
    db?.close()
    const code = (error as { code?: unknown }).code
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `another relay is serving the data directory ${dataDir} (it holds ${path}): ${busy}`,
        { cause: error },
      )
    }
    throw new ChorusError(ErrorCode.StorageFailed, `cannot lock the data directory ${dataDir} (${path})`, {
      cause: error,
    })
  }
  const held = db
  let released = false
  return {
    release() {
      if (released) return
      released = true
      held.close()
    },
  }
}
