import { MemoryReplicaStore } from '@chorus/core'
import { runHubStoreConformance } from '../src/hub-store-conformance.js'
import { MemoryHubStore } from '../src/memory-hub-store.js'
import { runReplicaStoreConformance } from '../src/replica-store-conformance.js'

runReplicaStoreConformance('MemoryReplicaStore', async () => {
  const store = new MemoryReplicaStore()
  return {
    store,
    reopen: async () => store.reopen(),
    failNextWrite: () => store.failNextWrite(),
  }
})

runHubStoreConformance('MemoryHubStore', async () => {
  const store = new MemoryHubStore()
  return {
    store,
    reopen: async () => store.reopen(),
    failNextWrite: () => store.failNextWrite(),
  }
})
