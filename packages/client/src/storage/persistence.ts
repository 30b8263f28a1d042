import { ChorusError, ErrorCode } from '@chorus/core'

/**
 * Whether the browser keeps this site's data (every replica's IndexedDB database, unsynced
 * writes included) until the user clears it: `persistent`; or may clear it on its own when the
 * device runs short of space: `best-effort`, the default; or cannot say: `unsupported` (no
 * `navigator.storage`, as in Node or a page not served over HTTPS or from localhost).
 */
export type StoragePersistence = 'persistent' | 'best-effort' | 'unsupported'

/** What these functions use of the browser's `navigator.storage`. */
export interface StorageManagerLike {
  persisted(): Promise<boolean>
  persist(): Promise<boolean>
}

function platformStorage(): StorageManagerLike | undefined {
  const storage = (globalThis as { navigator?: { storage?: Partial<StorageManagerLike> } }).navigator?.storage
  return typeof storage?.persisted === 'function' && typeof storage.persist === 'function'
    ? (storage as StorageManagerLike)
    : undefined
}

async function ask(what: string, question: () => Promise<boolean>): Promise<boolean> {
  try {
    return (await question()) === true
  } catch (error) {
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `${what} failed: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    )
  }
}

/**
 * Whether the browser keeps this site's data for good (see {@link StoragePersistence}); it
 * asks nothing of the user. `storage` defaults to `navigator.storage`.
 */
export async function storagePersistence(storage = platformStorage()): Promise<StoragePersistence> {
  if (storage === undefined) return 'unsupported'
  return (await ask('checking for persistent storage', () => storage.persisted()))
    ? 'persistent'
    : 'best-effort'
}

/**
 * Asks the browser to keep this site's data until the user clears it, so that writes not yet
 * synced cannot be lost to the browser freeing space, and resolves with what holds now.
 * Browsers decide in their own way: Chromium grants it without asking to a site the user
 * engages with (bookmarked, installed, allowed notifications) and otherwise says no; Firefox
 * asks the user, so call it from a user's action (a button), not at load. Rejects with
 * `storage-failed` when the browser fails to answer.
 */
export async function persistStorage(storage = platformStorage()): Promise<StoragePersistence> {
  if (storage === undefined) return 'unsupported'
  if (await ask('checking for persistent storage', () => storage.persisted())) return 'persistent'
  return (await ask('asking for persistent storage', () => storage.persist())) ? 'persistent' : 'best-effort'
}
