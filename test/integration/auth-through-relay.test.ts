import { ChorusError, createReplica, ErrorCode, type Replica, type TokenOption } from '@chorus/client'
import { mintToken } from '@chorus/relay'
import { IDBFactory } from 'fake-indexeddb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { eventually, type RelayProcess, runRelayCli, startRelay, tempDir, within } from './relay-process.js'

const SECRET = 'integration-secret-with-enough-entropy-0123456789'
const SPACE = 'team-notes'
const WAIT_MS = 20_000

/** A replica on its own fake IndexedDB, collecting the errors it reports. */
async function device(
  url: string,
  options: { token?: TokenOption; space?: string; now?: () => number } = {},
) {
  const errors: ChorusError[] = []
  const replica = await createReplica({
    space: options.space ?? SPACE,
    url,
    indexedDB: new IDBFactory(),
    WebSocket,
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.now === undefined ? {} : { now: options.now }),
    // Listening before it connects: a failure of its first attempt is reported too.
    autoConnect: false,
  })
  replica.on('error', (error) => errors.push(error))
  replica.connect()
  return { replica, errors }
}

/** What `synced()` rejects with, or null if it resolves. */
async function refusal(replica: Replica): Promise<ChorusError | null> {
  try {
    await within(replica.synced(), WAIT_MS, 'the relay to answer')
    return null
  } catch (error) {
    if (error instanceof ChorusError) return error
    throw error
  }
}

/** A raw socket that sends `frames` and collects what comes back until the relay closes it. */
function rawSession(
  url: string,
  frames: readonly object[],
): Promise<{ received: unknown[]; closeCode: number }> {
  return within(
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      const received: unknown[] = []
      socket.on('open', () => {
        for (const frame of frames) socket.send(JSON.stringify(frame))
      })
      socket.on('message', (data) => received.push(JSON.parse(String(data))))
      socket.on('close', (closeCode) => resolve({ received, closeCode }))
      socket.on('error', reject)
    }),
    WAIT_MS,
    'the relay to close a refused socket',
  )
}

describe('a relay process started with --auth-secret, and real replicas', () => {
  const data = tempDir('chorus-relay-auth-')
  let relay: RelayProcess
  let writeToken: string

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path, authSecret: SECRET })
    // The operator's way to mint one: the CLI.
    const minted = await runRelayCli([
      'token',
      '--secret',
      SECRET,
      '--sub',
      'alice',
      '--space',
      `${SPACE}:write`,
    ])
    expect(minted.code).toBe(0)
    writeToken = minted.stdout.trim()
  })

  afterAll(async () => {
    await relay?.stop('SIGTERM')
    data.remove()
  })

  it('says it runs with auth, and an authorised writer syncs to an authorised reader', async () => {
    expect(relay.output()).not.toMatch(/OPEN/)
    const readToken = await mintToken({ secret: SECRET, sub: 'rita', spaces: { [SPACE]: 'read' } })
    const alice = await device(relay.url, { token: writeToken })
    const rita = await device(relay.url, { token: readToken })
    try {
      await alice.replica.collection('notes').put('plan', { title: 'Plan' })
      await within(alice.replica.synced(), WAIT_MS, 'alice to sync')
      await eventually(
        async () => (await rita.replica.collection('notes').get('plan')) !== undefined,
        'the reader to receive the note',
      )
      expect(alice.errors).toEqual([])
      expect(rita.errors).toEqual([])
    } finally {
      await Promise.all([alice.replica.close(), rita.replica.close()])
    }
  })

  it('refuses a replica with no token, an expired one, and one signed with another secret', async () => {
    const expired = await mintToken({
      secret: SECRET,
      sub: 'alice',
      spaces: { [SPACE]: 'write' },
      expiresIn: 60,
      now: Date.now() - 3_600_000,
    })
    const forged = await mintToken({
      secret: 'not-the-relay-secret-0123456789',
      sub: 'alice',
      spaces: { [SPACE]: 'write' },
    })
    for (const token of [undefined, expired, forged, 'not.a.token']) {
      const { replica, errors } = await device(relay.url, token === undefined ? {} : { token })
      try {
        await replica.collection('notes').put('sneaky', { title: 'should never arrive' })
        expect((await refusal(replica))?.code).toBe(ErrorCode.Unauthenticated)
        expect(replica.status).toBe('offline')
        expect(errors.map((error) => error.code)).toEqual([ErrorCode.Unauthenticated])
        // The local write stays local and pending: nothing was acknowledged.
        expect(replica.pending).toBe(1)
      } finally {
        await replica.close()
      }
    }
  })

  /**
   * A token the relay takes now and whose session ends about a second from now: it expired
   * 29 s ago, within the relay's 30 s of tolerance for clock skew.
   */
  function expiringSoon(sub: string): Promise<string> {
    return mintToken({
      secret: SECRET,
      sub,
      spaces: { [SPACE]: 'write' },
      expiresIn: 60,
      now: Date.now() - 89_000,
    })
  }

  it('closes a connection whose token expires, and a replica with a token function renews it and syncs on', async () => {
    const issued: string[] = []
    const provide = async () => {
      const token =
        issued.length === 0
          ? await expiringSoon('alice')
          : await mintToken({ secret: SECRET, sub: 'alice', spaces: { [SPACE]: 'write' } })
      issued.push(token)
      return token
    }
    const alice = await device(relay.url, { token: provide })
    const bob = await device(relay.url, { token: writeToken })
    try {
      await alice.replica.collection('notes').put('before', { title: 'before the expiry' })
      await within(alice.replica.synced(), WAIT_MS, 'alice to sync on her first token')
      // The relay's tick (every second) finds the session past its token's expiry.
      await eventually(() => alice.errors.length > 0, 'the relay to close the expired session')
      expect(alice.errors.map((error) => error.code)).toEqual([ErrorCode.Unauthenticated])
      expect(alice.errors[0]?.message).toMatch(/expired/)
      await eventually(() => issued.length === 2, 'alice to ask for a new token')
      await alice.replica.collection('notes').put('after', { title: 'after the expiry' })
      await within(alice.replica.synced(), WAIT_MS, 'alice to sync on her new token')
      // The space holds the first test's note too: look for these two by id.
      const notes = bob.replica.collection('notes')
      await eventually(
        async () => (await notes.get('before')) !== undefined && (await notes.get('after')) !== undefined,
        'bob to receive both notes',
      )
      expect(alice.replica.status).toBe('synced')
      expect(alice.errors).toHaveLength(1)
    } finally {
      await Promise.all([alice.replica.close(), bob.replica.close()])
    }
  })

  it('asks a token function that gives back the refused token again, with backoff, and stops for good after a minute of it', async () => {
    const token = await expiringSoon('alice')
    let asked = 0
    // The replica's clock, moved on a minute once the repeats are seen (it is all the grace reads).
    let later = 0
    const { replica, errors } = await device(relay.url, {
      token: () => {
        asked++
        return token
      },
      now: () => Date.now() + later,
    })
    try {
      await within(replica.synced(), WAIT_MS, 'the replica to sync before its token expires')
      // Given back within the minute (an identical token minted again in the same second, or one
      // cached until a new secret reaches it): asked again, and the replica stays in the game.
      await eventually(() => asked >= 3, 'the token function to be asked again')
      expect(replica.refusal).toBeNull()
      expect(errors.map((error) => error.code).every((code) => code === ErrorCode.Unauthenticated)).toBe(true)
      expect(errors[1]?.message).toMatch(/gave the token the relay just refused: it is asked again/)
      later = 61_000
      await eventually(() => replica.refusal !== null, 'the refusal to be final')
      expect(errors.at(-1)?.message).toMatch(/has given the same one again for a minute/)
      expect(replica.status).toBe('offline')
      await expect(replica.synced()).rejects.toMatchObject({ code: ErrorCode.Unauthenticated })
    } finally {
      await replica.close()
    }
  })

  it('reports a token function that fails or gives no token, and connects once it gives one', async () => {
    let asked = 0
    const { replica, errors } = await device(relay.url, {
      token: async () => {
        asked++
        if (asked === 1) throw new Error('the sign-in service is down')
        if (asked === 2) return ''
        return writeToken
      },
    })
    try {
      await within(replica.synced(), WAIT_MS, 'the replica to sync on its third try')
      expect(asked).toBe(3)
      expect(errors.map((error) => error.code)).toEqual([
        ErrorCode.Unauthenticated,
        ErrorCode.InvalidArgument,
      ])
      expect(errors[0]?.message).toMatch(/token function failed/)
      expect(errors[0]?.cause).toMatchObject({ message: 'the sign-in service is down' })
      expect(errors[1]?.message).toMatch(/must give a non-empty string, got an empty one/)
    } finally {
      await replica.close()
    }
  })

  it("refuses a space the token does not grant, a read-only replica's writes, and a spoofed replica id", async () => {
    const alice = await device(relay.url, { token: writeToken })
    try {
      await within(alice.replica.synced(), WAIT_MS, 'alice to sync')

      // Cross-space: alice's token does not name this space.
      const elsewhere = await device(relay.url, { token: writeToken, space: 'payroll' })
      expect((await refusal(elsewhere.replica))?.code).toBe(ErrorCode.Forbidden)
      await elsewhere.replica.close()

      // Read-only: the relay's hello says so. A note the reader wrote offline before it knew
      // stays with it, unsent; later writes are refused; everyone else's notes still arrive.
      const readToken = await mintToken({ secret: SECRET, sub: 'rita', spaces: { [SPACE]: 'read' } })
      const ritaDisk = new IDBFactory()
      const offline = await createReplica({ space: SPACE, indexedDB: ritaDisk })
      await offline.collection('notes').put('graffiti', { title: 'read-only writes' })
      await offline.close()
      const rita = await createReplica({
        space: SPACE,
        url: relay.url,
        indexedDB: ritaDisk,
        WebSocket,
        token: readToken,
      })
      const ritaErrors: ChorusError[] = []
      rita.on('error', (error) => ritaErrors.push(error))
      await alice.replica.collection('notes').put('for-rita', { title: 'read me' })
      await eventually(
        async () => (await rita.collection('notes').list()).some((row) => row.id === 'for-rita'),
        'the reader to receive alice’s note',
      )
      await expect(rita.collection('notes').put('more', { title: 'refused' })).rejects.toMatchObject({
        code: ErrorCode.Forbidden,
      })
      expect(rita.pending).toBe(1)
      expect(rita.status).not.toBe('offline')
      // An app can say why the change is still waiting: the status says the replica may only read.
      expect(rita.readOnly).toBe(true)
      expect(alice.replica.readOnly).toBe(false)
      // It cannot sync what it may not upload: `synced()` says so instead of waiting forever.
      await expect(rita.synced()).rejects.toMatchObject({ code: ErrorCode.Forbidden })
      expect(ritaErrors.map((error) => error.code)).toEqual([ErrorCode.Forbidden])
      expect(ritaErrors[0]?.message).toMatch(/its 1 own change not uploaded stay here/)
      await rita.close()

      // Spoofing: bob's valid token, alice's replica id.
      const bobToken = await mintToken({ secret: SECRET, sub: 'bob', spaces: { [SPACE]: 'write' } })
      const spoof = await rawSession(relay.url, [
        {
          type: 'hello',
          protocol: 1,
          replicaId: alice.replica.replicaId,
          spaces: [SPACE],
          have: {},
          token: bobToken,
        },
      ])
      expect(spoof.received).toEqual([expect.objectContaining({ type: 'error', code: ErrorCode.Forbidden })])
      expect(spoof.closeCode).toBe(1008)

      // Alice was not affected by any of it, and nothing of the others reached her.
      await alice.replica.collection('notes').put('still-here', { title: 'still syncing' })
      await within(alice.replica.synced(), WAIT_MS, 'alice to sync again')
      expect(alice.replica.pending).toBe(0)
      expect((await alice.replica.collection('notes').list()).map((row) => row.id)).not.toContain('graffiti')
      expect(alice.errors).toEqual([])
    } finally {
      await alice.replica.close()
    }
  })
})
