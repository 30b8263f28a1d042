import { createReplica } from '@chorus/client'
import { type ChorusError, ErrorCode } from '@chorus/core'
import { IDBFactory } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { eventually, runRelayCli, startRelay, tempDir, within } from './relay-process.js'

type Replica = Awaited<ReturnType<typeof createReplica>>

const WAIT_MS = 20_000

/** A Node replica of `space` on its own fake IndexedDB, with the errors it reports. */
async function device(url: string, space: string) {
  const replica = await createReplica({
    space,
    url,
    indexedDB: new IDBFactory(),
    WebSocket: WebSocket as never,
    reconnect: { baseMs: 20, maxMs: 100 },
  })
  const errors: ChorusError[] = []
  replica.on('error', (error) => errors.push(error))
  return { replica, errors }
}

function synced(replicas: readonly Replica[]): Promise<unknown> {
  return within(Promise.all(replicas.map((replica) => replica.synced())), WAIT_MS, 'the replicas to sync')
}

describe('deleting a space on a relay (chorus-relay delete-space)', () => {
  it('deletes its data for good: its replicas are refused with space-deleted, other spaces go on', async () => {
    const data = tempDir('chorus-relay-delete-')
    let relay = await startRelay({ dataDir: data.path })
    const port = relay.port
    const doomed = 'doomed-notes'
    const alice = await device(relay.url, doomed)
    const bob = await device(relay.url, doomed)
    const carol = await device(relay.url, 'kept-notes')
    const everyone = [alice, bob, carol]
    try {
      await alice.replica.collection('notes').put('a', { title: 'to be deleted' })
      await carol.replica.collection('notes').put('c', { title: 'kept' })
      await synced(everyone.map((device) => device.replica))
      await eventually(
        async () => (await bob.replica.collection('notes').get('a')) !== undefined,
        'bob to read it',
      )

      // Not while the relay serves the data: the command says so and deletes nothing.
      const busy = await runRelayCli(['delete-space', '--data', data.path, '--space', doomed])
      expect(busy.code).toBe(1)
      expect(busy.stderr).toContain('stop it first')
      const usage = await runRelayCli(['delete-space', '--data', data.path, '--space', 'not a name'])
      expect(usage.code).toBe(2)

      expect(await relay.stop('SIGTERM')).toBe(0)
      // Written while the relay was away: never uploaded, and never to be.
      await bob.replica.collection('notes').put('b', { title: 'too late' })
      const deleted = await runRelayCli(['delete-space', '--data', data.path, '--space', doomed])
      expect(deleted).toMatchObject({ code: 0 })
      expect(deleted.stderr).toContain(`deleted space ${doomed}`)
      const again = await runRelayCli(['delete-space', '--data', data.path, '--space', doomed])
      expect(again.code).toBe(0)
      expect(again.stderr).toContain('was deleted already')

      relay = await startRelay({ dataDir: data.path, port })
      for (const device of [alice, bob]) {
        await eventually(
          () => device.errors.some((error) => error.code === ErrorCode.SpaceDeleted),
          'the replica to be told',
        )
        await expect(device.replica.synced()).rejects.toMatchObject({ code: ErrorCode.SpaceDeleted })
        expect(device.replica.status).toBe('offline')
        expect(device.replica.refusal?.code).toBe(ErrorCode.SpaceDeleted)
      }
      expect(bob.replica.pending).toBe(1)
      // The space's other replica goes on, and a newcomer to the deleted space is refused too.
      await carol.replica.collection('notes').put('d', { title: 'still syncing' })
      await synced([carol.replica])
      const newcomer = await device(relay.url, doomed)
      everyone.push(newcomer)
      await expect(within(newcomer.replica.synced(), WAIT_MS, 'the refusal')).rejects.toMatchObject({
        code: ErrorCode.SpaceDeleted,
      })
      const metrics = await (await fetch(`${relay.http}/metrics`)).text()
      expect(metrics).toMatch(/^chorus_relay_sessions_refused_total\{code="space-deleted"\} [1-9]\d*$/m)

      // What the app does then: delete its own copy too.
      await bob.replica.destroy({ discardPending: true })
    } finally {
      await Promise.all(everyone.map((device) => device.replica.close()))
      await relay.stop('SIGTERM')
      data.remove()
    }
  }, 60_000)

  it('deletes a space on a running relay through its administration API (--relay): its replicas are refused at once', async () => {
    const data = tempDir('chorus-relay-delete-live-')
    const secret = 'delete-space-secret-0123456789-abcdefghijklmnop'
    const relay = await startRelay({ dataDir: data.path, authSecret: secret })
    const space = 'live-doomed'
    const minted = await runRelayCli([
      'token',
      '--secret',
      secret,
      '--sub',
      'alice',
      '--space',
      `${space}:write`,
    ])
    const alice = await createReplica({
      space,
      url: relay.url,
      token: minted.stdout.trim(),
      indexedDB: new IDBFactory(),
      WebSocket: WebSocket as never,
    })
    try {
      await alice.collection('notes').put('a', { title: 'soon gone' })
      await synced([alice])
      const refused = new Promise<string>((resolve) =>
        alice.on('error', (error) => {
          if (error.code === ErrorCode.SpaceDeleted) resolve(error.code)
        }),
      )
      // A wrong secret mints a token the relay does not take: nothing is deleted.
      const wrong = await runRelayCli([
        'delete-space',
        '--relay',
        relay.http,
        '--secret',
        `${secret}-no`,
        '--space',
        space,
      ])
      expect(wrong.code).toBe(1)
      expect(wrong.stderr).toContain('refused')
      expect(alice.status).toBe('synced')

      const listed = await runRelayCli(['spaces', '--relay', relay.http, '--secret', secret])
      expect(listed.code).toBe(0)
      expect(listed.stdout).toMatch(new RegExp(`^${space}\t1\t1\t1\t1\t0$`, 'm'))
      const deleted = await runRelayCli([
        'delete-space',
        '--relay',
        relay.http,
        '--secret',
        secret,
        '--sub',
        'ops',
        '--space',
        space,
      ])
      expect(deleted).toMatchObject({ code: 0 })
      expect(deleted.stderr).toContain(`deleted space ${space}`)
      expect(await within(refused, WAIT_MS, 'the refusal')).toBe(ErrorCode.SpaceDeleted)
      expect(relay.output()).toContain(`admin: ops deleted space ${space}`)
      expect((await runRelayCli(['spaces', '--relay', relay.http, '--secret', secret])).stdout).not.toContain(
        space,
      )
      await expect(alice.synced()).rejects.toMatchObject({ code: ErrorCode.SpaceDeleted })
    } finally {
      await alice.close()
      await relay.stop('SIGTERM')
      data.remove()
    }
  }, 60_000)
})
