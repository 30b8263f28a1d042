import {
  ErrorCode,
  isChorusError,
  persistStorage,
  type StorageManagerLike,
  storagePersistence,
} from '@chorus/client'
import { describe, expect, it } from 'vitest'

/** A `navigator.storage` that grants persistence when `grants` says so, counting its calls. */
function storageManager(grants: boolean, fail?: Error) {
  const calls = { persisted: 0, persist: 0 }
  let persistent = false
  const storage: StorageManagerLike = {
    async persisted() {
      calls.persisted++
      if (fail !== undefined) throw fail
      return persistent
    },
    async persist() {
      calls.persist++
      if (grants) persistent = true
      return persistent
    },
  }
  return { storage, calls }
}

describe('persistent storage', () => {
  it('is unsupported without navigator.storage, as in Node', async () => {
    expect(await storagePersistence()).toBe('unsupported')
    expect(await persistStorage()).toBe('unsupported')
  })

  it('is asked for once, and kept once the browser grants it', async () => {
    const { storage, calls } = storageManager(true)
    expect(await storagePersistence(storage)).toBe('best-effort')
    expect(calls.persist).toBe(0)
    expect(await persistStorage(storage)).toBe('persistent')
    expect(await persistStorage(storage)).toBe('persistent')
    // The second call found it granted and asked nothing.
    expect(calls.persist).toBe(1)
    expect(await storagePersistence(storage)).toBe('persistent')
  })

  it('stays best-effort when the browser says no', async () => {
    const { storage, calls } = storageManager(false)
    expect(await persistStorage(storage)).toBe('best-effort')
    expect(await persistStorage(storage)).toBe('best-effort')
    expect(calls.persist).toBe(2)
  })

  it('rejects with storage-failed when the browser fails to answer', async () => {
    const { storage } = storageManager(true, new Error('the storage service crashed'))
    for (const call of [storagePersistence, persistStorage]) {
      const error = await call(storage).catch((caught: unknown) => caught)
      expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
      expect((error as Error).message).toMatch(/persistent storage failed: the storage service crashed/)
    }
  })
})
