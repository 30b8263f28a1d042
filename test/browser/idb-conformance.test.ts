import { openIdbReplicaStore } from '@chorus/client'
import { runReplicaStoreConformance } from '@chorus/testkit/conformance'
import { describe, expect, it } from 'vitest'

// These run in Chromium (see the `browser` project in vitest.config.ts): real IndexedDB.
describe('the browser under test', () => {
  it('is a real Chromium with IndexedDB, not a Node shim', () => {
    expect(navigator.userAgent).toMatch(/Chrome\//)
    expect(typeof indexedDB.databases).toBe('function')
    expect(typeof process).toBe('undefined')
  })
})

let counter = 0

runReplicaStoreConformance('IdbReplicaStore (Chromium IndexedDB)', async () => {
  counter += 1
  const name = `chorus:conformance:${Date.now()}:${counter}`
  let current = await openIdbReplicaStore({ name, indexedDB })
  return {
    store: current,
    reopen: async () => {
      current = await openIdbReplicaStore({ name, indexedDB })
      return current
    },
    failNextWrite: () => current.failNextWrite(),
    cleanup: () =>
      new Promise<void>((resolve, reject) => {
        const request = indexedDB.deleteDatabase(name)
        request.onsuccess = () => resolve()
        request.onerror = () => reject(request.error)
      }),
  }
})
