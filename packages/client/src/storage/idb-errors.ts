import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'

/** The name of a DOMException (or any error), if it has one. */
export function errorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('name' in error)) return undefined
  return typeof error.name === 'string' ? error.name : undefined
}

/**
 * Turns an IndexedDB failure into a `storage-failed` ChorusError whose message says what
 * happened and what to do, keeping the original as `cause`. ChorusErrors pass through.
 *
 * `what` names the operation ("saving a local write"); every write is one transaction, so
 * the message can promise that nothing of it was written.
 */
export function idbFailure(error: unknown, what: string, write: boolean): ChorusError {
  if (isChorusError(error)) return error
  if (error instanceof TabFencedError) return fencedFailure(error, what)
  const nothing = write ? ' Nothing was written.' : ''
  const message = (() => {
    switch (errorName(error)) {
      case 'QuotaExceededError':
        return `${what} failed: the browser's storage quota for this site is used up.${nothing} Free space (delete records or unused databases), or ask for persistent storage with navigator.storage.persist(), then retry.`
      case 'VersionError':
        return `${what} failed: the database was created by a newer version of this app. Update the app (reload), or use another dbName.`
      case 'InvalidStateError':
        return `${what} failed: the database connection is closed (another tab deleted or upgraded the database, or the replica was closed).${nothing} Reload, or create the replica again.`
      case 'SecurityError':
        return `${what} failed: this page may not use IndexedDB (private browsing, or storage blocked by the browser's settings). Use storage 'memory', or allow site data.`
      case 'UnknownError':
        return `${what} failed: IndexedDB reported an internal error (a disk error or a damaged browser profile).${nothing} Retry; if it persists, clear this site's data.`
      case 'AbortError':
        return `${what} failed: the transaction was aborted.${nothing} Retry.`
      case 'DataCloneError':
      case 'DataError':
        return `${what} failed: IndexedDB refused the data.${nothing} This is a bug in Chorus; please report it.`
      default:
        return `${what} failed in IndexedDB.${nothing} Retry; the cause has the browser's explanation.`
    }
  })()
  return new ChorusError(ErrorCode.StorageFailed, message, { cause: error })
}

/**
 * Another instance of this replica (a tab) took over the connection: this one may no longer
 * upload, apply or drop acknowledged changes. Raised inside a transaction, which it aborts.
 */
export class TabFencedError extends Error {
  readonly mine: number
  readonly current: number
  /** True when this instance had the database to itself (tabs off), and another took it over. */
  readonly sole: boolean

  constructor(mine: number, current: number, sole = false) {
    super(
      sole
        ? `another replica instance opened this database since (a second tab with tabs off, or another process: epoch ${current}; this one had ${mine})`
        : `another tab took over this replica's connection (epoch ${current}; this tab had ${mine})`,
    )
    this.name = 'TabFencedError'
    this.mine = mine
    this.current = current
    this.sole = sole
  }
}

/** The `storage-failed` error for an operation refused because another tab took over. */
export function fencedFailure(error: TabFencedError, what: string): ChorusError {
  return new ChorusError(
    ErrorCode.StorageFailed,
    error.sole
      ? `${what} was refused: ${error.message}. Nothing was written; this replica has stopped. Reload to use the database from here again, or leave the tabs option on so tabs share it.`
      : `${what} was refused: ${error.message}. Nothing was written; this tab now follows the one that leads.`,
    { cause: error },
  )
}

/** True when `error`, or any error in its chain of causes, says another tab took over. */
export function isTabFenced(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && depth < 8; depth++) {
    if (current instanceof TabFencedError) return true
    current = current instanceof Error ? current.cause : undefined
  }
  return false
}
