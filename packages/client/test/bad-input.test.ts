import { createReplica, ErrorCode, isChorusError, type Replica, type ReplicaOptions } from '@chorus/client'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { WebSocket } from 'ws'
import { openIdbReplicaStore } from '../src/storage/idb-replica-store.js'

const open: Replica[] = []
afterEach(async () => {
  vi.unstubAllGlobals()
  await Promise.all(open.splice(0).map((replica) => replica.close()))
})

async function replica(options: Partial<ReplicaOptions> = {}): Promise<Replica> {
  const created = await createReplica({
    space: 'bad-input',
    storage: 'memory',
    networkEvents: null,
    ...options,
  })
  open.push(created)
  return created
}

/** The ChorusError code a promise rejected with (or what it did instead). */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => (isChorusError(error) ? error.code : `not a ChorusError: ${String(error)}`),
  )
}

describe('createReplica refuses bad options with invalid-argument, before opening anything', () => {
  const cases: [string, unknown][] = [
    ['no options', undefined],
    ['no space', {}],
    ['an empty space', { space: '' }],
    ['a space with a slash', { space: 'team/notes' }],
    ['a space that is not a string', { space: 42 }],
    ['an unknown option', { space: 'ok', resolver: { notes: 'lww' } }],
    ['an unknown storage kind', { space: 'ok', storage: 'localstorage' }],
    ['a storage object that is not a store', { space: 'ok', storage: { get: () => undefined } }],
    ['a url that is not a string', { space: 'ok', url: 8787, WebSocket }],
    ['a url that is not absolute', { space: 'ok', url: '/sync', WebSocket }],
    ['an http url', { space: 'ok', url: 'http://127.0.0.1:8787/sync', WebSocket }],
    ['a token that is not a string or a function', { space: 'ok', token: 12 }],
    ['an unknown resolver name', { space: 'ok', resolvers: { notes: 'newest' } }],
    ['a resolver that is not a name or resolver', { space: 'ok', resolvers: { notes: 3 } }],
    ['resolvers that are not a map', { space: 'ok', resolvers: 'lww' }],
    ['a negative backoff', { space: 'ok', reconnect: { baseMs: -1 } }],
    ['a WebSocket that is not a constructor', { space: 'ok', url: 'ws://127.0.0.1:1', WebSocket: 'ws' }],
    ['an empty dbName', { space: 'ok', dbName: '' }],
    ['an IDBKeyRange without bound()', { space: 'ok', IDBKeyRange: { only: () => null } }],
    ['autoConnect that is not a boolean', { space: 'ok', autoConnect: 'yes' }],
    ['an empty token', { space: 'ok', token: '' }],
    ['a backoff whose most is below its first step', { space: 'ok', reconnect: { baseMs: 1000, maxMs: 10 } }],
    // A window or batch of 0 would leave the replica unable to upload, with no error.
    ['a session window of 0', { space: 'ok', session: { window: 0 } }],
    ['a negative session batch size', { space: 'ok', session: { batchSize: -1 } }],
    ['a session batch size that is not a whole number', { space: 'ok', session: { batchSize: 'x' } }],
    ['a session window of 1.5', { space: 'ok', session: { window: 1.5 } }],
    ['a session batch larger than a relay takes', { space: 'ok', session: { batchSize: 5_000 } }],
    ['an unknown session option', { space: 'ok', session: { windowBytes: 10 } }],
    ['an unknown reconnect option', { space: 'ok', reconnect: { silence: 5 } }],
    ['a silence of 0', { space: 'ok', reconnect: { silenceMs: 0 } }],
    // A WebSocket refuses a URL with a fragment at every attempt.
    ['a url with a fragment', { space: 'ok', url: 'ws://127.0.0.1:1/sync#frag', WebSocket }],
    // Timers run a longer delay after 1 ms: a long pause would be a spin.
    ['a backoff longer than a timer takes', { space: 'ok', reconnect: { baseMs: 3e9, maxMs: 3e9 } }],
    ['a tick longer than a timer takes', { space: 'ok', tickMs: 1e10 }],
  ]

  it.each(cases)('%s', async (_, options) => {
    const factory = new IDBFactory()
    const withFactory =
      typeof options === 'object' && options !== null ? { indexedDB: factory, ...options } : options
    await expect(codeOf(createReplica(withFactory as ReplicaOptions))).resolves.toBe(
      ErrorCode.InvalidArgument,
    )
    expect(await factory.databases()).toEqual([])
  })

  it('an option whose getter throws', async () => {
    const factory = new IDBFactory()
    const options = {
      space: 'ok',
      indexedDB: factory,
      get tickMs(): number {
        throw new Error('no tick')
      },
    }
    await expect(codeOf(createReplica(options as ReplicaOptions))).resolves.toBe(ErrorCode.InvalidArgument)
    expect(await factory.databases()).toEqual([])
  })

  it('a url without any WebSocket to use says to pass one', async () => {
    vi.stubGlobal('WebSocket', undefined)
    const error = await createReplica({ space: 'ok', storage: 'memory', url: 'ws://127.0.0.1:1/sync' }).then(
      () => new Error('expected a rejection'),
      (reason: unknown) => reason,
    )
    expect(isChorusError(error, ErrorCode.InvalidArgument)).toBe(true)
    expect((error as Error).message).toMatch(/import \{ WebSocket \} from 'ws'/)
  })

  it('storage indexeddb with no IndexedDB fails with storage-failed', async () => {
    vi.stubGlobal('indexedDB', undefined)
    await expect(codeOf(createReplica({ space: 'ok' }))).resolves.toBe(ErrorCode.StorageFailed)
  })
})

describe('writes refuse bad input with invalid-argument', () => {
  const values: [string, unknown][] = [
    ['a function', { title: () => 'x' }],
    ['undefined', { title: undefined }],
    ['NaN', { count: Number.NaN }],
    ['Infinity', { count: Number.POSITIVE_INFINITY }],
    ['a Date', { at: new Date(0) }],
    ['a Map', { tags: new Map() }],
    ['a bigint', { big: 1n }],
    ['a __proto__ key', JSON.parse('{"__proto__": {"polluted": true}}')],
    ['an array', ['a', 'b']],
    ['null', null],
    ['a string', 'hello'],
  ]

  it.each(values)('a value holding %s', async (_, value) => {
    const notes = (await replica()).collection('notes')
    await expect(codeOf(notes.put('a', value as never))).resolves.toBe(ErrorCode.InvalidArgument)
    await expect(codeOf(notes.patch('a', value as never))).resolves.toBe(ErrorCode.InvalidArgument)
    expect(await notes.list()).toEqual([])
  })

  it('a value that throws as it is read: a getter, a Proxy’s trap, a revoked Proxy', async () => {
    const created = await replica()
    const notes = created.collection('notes')
    const revoked = Proxy.revocable({}, {})
    revoked.revoke()
    const throwing = [
      {
        get title(): string {
          throw new Error('getter')
        },
      },
      new Proxy(
        {},
        {
          ownKeys: () => {
            throw new Error('ownKeys')
          },
        },
      ),
      new Proxy(
        { title: 'x' },
        {
          get: () => {
            throw new Error('get')
          },
        },
      ),
      revoked.proxy,
      { nested: revoked.proxy },
    ]
    for (const value of throwing) {
      await expect(codeOf(notes.put('a', value as never))).resolves.toBe(ErrorCode.InvalidArgument)
      await expect(codeOf(notes.patch('a', value as never))).resolves.toBe(ErrorCode.InvalidArgument)
      await expect(codeOf(notes.update('a', () => value as never))).resolves.toBe(ErrorCode.InvalidArgument)
      let presence: unknown
      try {
        created.setPresence(value as never)
      } catch (error) {
        presence = error
      }
      expect(isChorusError(presence, ErrorCode.InvalidArgument), String(presence)).toBe(true)
    }
    expect(await notes.list()).toEqual([])
    await notes.put('a', { title: 'still works' })
    expect(await notes.get('a')).toEqual({ title: 'still works' })
  })

  it('a value that holds one object many times over is refused as soon as its copy outgrows a frame', async () => {
    const notes = (await replica()).collection('notes')
    // 2^20 leaves as JSON, a few dozen objects in memory (at 2^26 a whole copy ran out of memory).
    let value: Record<string, unknown> = { leaf: 'x' }
    for (let i = 0; i < 20; i++) value = { a: value, b: value }
    for (const write of [notes.put('dag', value as never), notes.patch('dag', value as never)]) {
      const refused = await write.then(
        () => null,
        (error: unknown) => error,
      )
      expect(isChorusError(refused, ErrorCode.InvalidArgument)).toBe(true)
      // Refused by the bounded copy, before anything was copied whole.
      expect((refused as Error).message).toMatch(/is more than \d+ bytes as JSON/)
    }
    // Shared, but small as JSON: taken, as JSON would give it.
    const shared = { tag: 'x' }
    await notes.put('small', { first: shared, second: shared })
    expect(await notes.get('small')).toEqual({ first: { tag: 'x' }, second: { tag: 'x' } })
  })

  it('a cyclic value', async () => {
    const cyclic: Record<string, unknown> = { title: 'loop' }
    cyclic.self = cyclic
    const notes = (await replica()).collection('notes')
    await expect(codeOf(notes.put('a', cyclic as never))).resolves.toBe(ErrorCode.InvalidArgument)
  })

  it('list options it does not know, as a misspelt limit', async () => {
    const notes = (await replica()).collection('notes')
    await expect(codeOf(notes.list({ limt: 5 } as never))).resolves.toBe(ErrorCode.InvalidArgument)
  })

  it('an empty or too long id, and an id that is not a string', async () => {
    const notes = (await replica()).collection('notes')
    await expect(codeOf(notes.put('', { title: 'x' }))).resolves.toBe(ErrorCode.InvalidArgument)
    await expect(codeOf(notes.put('x'.repeat(257), { title: 'x' }))).resolves.toBe(ErrorCode.InvalidArgument)
    await expect(codeOf(notes.put(7 as never, { title: 'x' }))).resolves.toBe(ErrorCode.InvalidArgument)
    await expect(codeOf(notes.get(''))).resolves.toBe(ErrorCode.InvalidArgument)
    await expect(codeOf(notes.delete(''))).resolves.toBe(ErrorCode.InvalidArgument)
  })

  it('a bad collection name, event name or listener throws invalid-argument at once', async () => {
    const created = await replica()
    for (const call of [
      () => created.collection(''),
      () => created.collection('has space'),
      () => created.on('bogus' as never, () => undefined),
      () => created.on('status', 'not a function' as never),
      () => created.collection('notes').subscribe('not a function' as never),
      () => created.connect(),
      // Collections take no options; a resolver given here would be ignored.
      () => (created.collection as (name: string, options: unknown) => unknown)('notes', { resolver: 'lww' }),
    ]) {
      let thrown: unknown
      try {
        call()
      } catch (error) {
        thrown = error
      }
      expect(isChorusError(thrown, ErrorCode.InvalidArgument), String(thrown)).toBe(true)
    }
  })

  it('a conflicts filter that is not one is refused: no filter or { collection, ids? }', async () => {
    const created = await replica()
    for (const filter of [
      null,
      'notes',
      { ids: ['a'] },
      { collection: 'notes', ids: 'abc' },
      { collection: 'notes', ids: 5 },
      { collection: 'has space' },
      // A misspelt `ids` would list every conflict of the collection.
      { collection: 'notes', id: ['a'] },
    ]) {
      await expect(codeOf(created.conflicts(filter as never)), JSON.stringify(filter)).resolves.toBe(
        ErrorCode.InvalidArgument,
      )
    }
  })

  it('a resolver function that names an unknown resolver fails the write, not the replica', async () => {
    const created = await replica({
      resolvers: (collection) => (collection === 'odd' ? ('newest' as never) : 'lww'),
    })
    await expect(codeOf(created.collection('odd').put('a', { title: 'x' }))).resolves.toBe(
      ErrorCode.InvalidArgument,
    )
    await created.collection('notes').put('a', { title: 'fine' })
    expect(await created.collection('notes').get('a')).toEqual({ title: 'fine' })
  })

  it('destroy refuses an option it does not know, as a misspelt discardPending', async () => {
    const created = await replica()
    await expect(codeOf(created.destroy({ discardPendng: true } as never))).resolves.toBe(
      ErrorCode.InvalidArgument,
    )
    await created.collection('notes').put('kept', { title: 'kept' })
    expect(await created.collection('notes').get('kept')).toEqual({ title: 'kept' })
  })

  it('a clock (option now) that throws is reported, and the replica reads the system clock instead', async () => {
    // Reported once: to the console while the replica opens, as an error event after.
    const warned = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const created = await replica({
      now: () => {
        throw new Error('no clock')
      },
    })
    const errors: unknown[] = []
    created.on('error', (error) => errors.push(error))
    await created.collection('notes').put('a', { title: 'written' })
    expect(await created.collection('notes').get('a')).toEqual({ title: 'written' })
    const reports = [...errors, ...warned.mock.calls.map((call) => call[1])]
    expect(reports).toHaveLength(1)
    expect(isChorusError(reports[0], ErrorCode.InvalidArgument)).toBe(true)
    expect((reports[0] as Error).message).toMatch(/option now threw \(no clock\)/)
    warned.mockRestore()
  })

  it('synced() without a url rejects with invalid-argument instead of waiting forever', async () => {
    await expect(codeOf((await replica()).synced())).resolves.toBe(ErrorCode.InvalidArgument)
  })
})

describe('storage failures surface as storage-failed and are never acknowledged as written', () => {
  it('a put into a full IndexedDB rejects, and record, outbox and counter are unchanged', async () => {
    const store = await openIdbReplicaStore({ name: 'full', indexedDB: new IDBFactory() })
    const created = await replica({ storage: store })
    const notes = created.collection('notes')
    await notes.put('a', { title: 'kept' })
    const outbox = await store.readOutbox(0, 100)

    store.failNextWrite()
    const error = await notes.put('a', { title: 'lost' }).then(
      () => new Error('expected a rejection'),
      (reason: unknown) => reason,
    )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/quota/)
    expect(await store.readOutbox(0, 100)).toEqual(outbox)
    expect(await notes.get('a')).toEqual({ title: 'kept' })
    expect(created.pending).toBe(1)

    await notes.put('b', { title: 'after the failure' })
    expect((await store.readOutbox(0, 100)).map((change) => change.dot[1])).toEqual([1, 2])
  })

  it('two replicas on one IndexedDB database with no tabs sharing it: the later one takes it over, the earlier one fails loudly', async () => {
    const factory = new IDBFactory()
    const first = await replica({ storage: 'indexeddb', indexedDB: factory, dbName: 'shared' })
    const second = await replica({ storage: 'indexeddb', indexedDB: factory, dbName: 'shared' })
    expect(second.replicaId).toBe(first.replicaId)
    await second.collection('notes').put('a', { title: 'second tab' })
    const error = await first
      .collection('notes')
      .put('b', { title: 'first tab' })
      .then(
        () => new Error('expected a rejection'),
        (reason: unknown) => reason,
      )
    expect(isChorusError(error, ErrorCode.StorageFailed)).toBe(true)
    expect((error as Error).message).toMatch(/another replica instance/)
  })

  it('a database of another space is refused, and the replica opened nothing', async () => {
    const factory = new IDBFactory()
    await (await createReplica({ space: 'one', indexedDB: factory, dbName: 'shared' })).close()
    await expect(codeOf(createReplica({ space: 'two', indexedDB: factory, dbName: 'shared' }))).resolves.toBe(
      ErrorCode.InvalidArgument,
    )
    // The refused open closed its connection: deleting the database is not blocked.
    await new Promise<void>((resolve, reject) => {
      const request = factory.deleteDatabase('shared')
      request.onsuccess = () => resolve()
      request.onblocked = () => reject(new Error('a connection was left open'))
    })
  })
})
