import type { ChorusError } from '@chorus/client'
import { IDBFactory } from 'fake-indexeddb'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { idbReplicas, poll } from './helpers/idb-replicas.js'
import { startTestHub, type TestHub } from './helpers/test-hub.js'

// Without tabs sharing a database (Node has no Web Locks; a browser with `tabs: false`), a
// replica opened on it takes it: one opened later on the same database takes it over.

let hub: TestHub
const replicas = idbReplicas(() => hub, 'lww')
const replica = replicas.open
const until = poll

beforeAll(async () => {
  hub = await startTestHub()
})

afterAll(async () => {
  await hub.close()
})

afterEach(async () => {
  await replicas.closeAll()
})

describe('a replica database with no tabs sharing it', () => {
  it('a replica opened later takes it over: the earlier one refuses to write, stops syncing and says why; the later one syncs', {
    timeout: 30_000,
  }, async () => {
    const space = 'sole-use'
    const origin = new IDBFactory()
    const first = await replica(space, origin, 'one')
    await first.collection('notes').put('before', { by: 'first' })
    await first.synced()
    const errors: ChorusError[] = []
    first.on('error', (error) => errors.push(error))

    const second = await replica(space, origin, 'one')
    expect(second.replicaId).toBe(first.replicaId)
    await second.collection('notes').put('after', { by: 'second' })
    await second.synced()
    await expect(first.collection('notes').put('refused', { by: 'first' })).rejects.toMatchObject({
      code: 'storage-failed',
      message: expect.stringMatching(/another replica instance opened this database since.*Reload/),
    })

    // A change from elsewhere: the later replica applies it; the earlier one refuses to, and stops.
    const device = await replica(space, new IDBFactory(), 'device')
    await device.collection('notes').put('remote', { by: 'device' })
    await until(
      async () => (await second.collection('notes').get('remote')) !== undefined,
      'the change at the later replica',
    )
    await until(
      () =>
        errors.some((error) =>
          /stopped syncing: another replica instance opened its database/.test(error.message),
        ),
      'the earlier replica to say why it stopped',
    )
    await until(() => first.status === 'offline', 'the earlier replica to stop syncing')
    await expect(first.synced()).rejects.toMatchObject({ code: 'storage-failed' })

    await until(() => device.pending === 0, 'the device to upload')
    await until(
      async () => (await device.collection('notes').get('after')) !== undefined,
      'the device to get the later write',
    )
    expect(await device.collection('notes').get('refused')).toBeUndefined()
    expect(await second.collection('notes').get('refused')).toBeUndefined()
  })
})
