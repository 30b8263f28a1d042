import { join } from 'node:path'
import { createReplica } from '@chorus/client'
import type { ResolverKind, SpaceId } from '@chorus/core'
import { DATABASE_FILE, SqliteRelayStore } from '@chorus/relay'
import { IDBFactory } from 'fake-indexeddb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import {
  eventually,
  type RelayProcess,
  restoreBackup,
  runRelayCli,
  startRelay,
  tempDir,
  within,
} from './relay-process.js'

type Replica = Awaited<ReturnType<typeof createReplica>>

const SPACE = 'team-notes'
const WAIT_MS = 20_000

/** A Node replica on its own fake IndexedDB: one device. */
function device(url: string, resolver: ResolverKind, space = SPACE): Promise<Replica> {
  return createReplica({
    space,
    url,
    storage: 'indexeddb',
    indexedDB: new IDBFactory(),
    WebSocket: WebSocket as never,
    resolvers: { notes: resolver },
  })
}

async function allSynced(replicas: readonly Replica[]): Promise<void> {
  await within(Promise.all(replicas.map((replica) => replica.synced())), WAIT_MS, 'every replica to sync')
}

async function rows(replica: Replica) {
  return replica.collection('notes').list()
}

/** Writes `count` notes `<prefix>-<i>` with `body(i)` at once, and waits for their upload. */
async function putNotes(writer: Replica, count: number, prefix: string, body: (i: number) => string) {
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      writer.collection('notes').put(`${prefix}-${i}`, { title: `n${i}`, body: body(i) }),
    ),
  )
  await within(writer.synced(), WAIT_MS, 'the writer to upload')
}

/**
 * Opens a replica that joins `space` now, so it bootstraps from the relay's snapshot pages;
 * waits until `ready` holds for it, runs `check` on it, and closes it.
 */
async function lateJoiner(
  url: string,
  space: string,
  resolver: ResolverKind,
  what: string,
  ready: (late: Replica) => Promise<boolean>,
  check: (late: Replica) => Promise<void>,
): Promise<void> {
  const late = await device(url, resolver, space)
  try {
    await eventually(() => ready(late), what)
    await check(late)
  } finally {
    await late.close()
  }
}

/** Every replica synced and reading the same rows. */
async function converged(replicas: readonly Replica[]): Promise<void> {
  await allSynced(replicas)
  await eventually(async () => {
    const seen = (await Promise.all(replicas.map(rows))).map((r) => JSON.stringify(r))
    return seen.every((s) => s === seen[0]) && replicas.every((replica) => replica.status === 'synced')
  }, 'the replicas to read the same rows')
}

describe('Node replicas through a real relay process', () => {
  const data = tempDir('chorus-relay-')
  let relay: RelayProcess

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path })
  })

  afterAll(async () => {
    await relay?.stop('SIGTERM')
    data.remove()
  })

  it.each<ResolverKind>(['lww', 'merge', 'manual'])(
    'offline edits on three devices converge with the %s resolver',
    async (resolver) => {
      const space = `${SPACE}-${resolver}`
      const [alice, bob, carol] = await Promise.all([
        device(relay.url, resolver, space),
        device(relay.url, resolver, space),
        device(relay.url, resolver, space),
      ])
      const replicas = [alice, bob, carol]
      try {
        await alice.collection('notes').put('groceries', { title: 'Groceries', body: 'milk', done: false })
        // synced() means caught up with the head the relay last reported, which may predate
        // alice's upload: wait for the note itself.
        await converged(replicas)
        expect(await bob.collection('notes').get('groceries')).toEqual({
          title: 'Groceries',
          body: 'milk',
          done: false,
        })

        for (const replica of replicas) replica.disconnect()
        await alice.collection('notes').patch('groceries', { title: 'Groceries for Sunday' })
        await bob.collection('notes').patch('groceries', { body: 'milk, eggs' })
        await carol.collection('notes').patch('groceries', { done: true })
        await carol.collection('notes').put('carol-only', { title: 'written offline' })
        expect(alice.status).toBe('offline')

        for (const replica of replicas) replica.connect()
        await converged(replicas)
        const seen = await Promise.all(replicas.map(rows))
        expect(seen[1]).toEqual(seen[0])
        expect(seen[2]).toEqual(seen[0])
        expect(seen[0]?.map((row) => row.id).sort()).toEqual(['carol-only', 'groceries'])

        if (resolver === 'merge') {
          expect(await carol.collection('notes').get('groceries')).toEqual({
            title: 'Groceries for Sunday',
            body: 'milk, eggs',
            done: true,
          })
        }
        if (resolver === 'manual') {
          for (const replica of replicas) {
            const conflicts = await replica.conflicts()
            expect(conflicts).toHaveLength(1)
            expect(conflicts[0]?.versions).toHaveLength(3)
          }
          await bob
            .collection('notes')
            .resolve('groceries', { title: 'Settled', body: 'milk, eggs', done: true })
          await converged(replicas)
          for (const replica of replicas) {
            expect(await replica.conflicts()).toEqual([])
            expect(await replica.collection('notes').get('groceries')).toEqual({
              title: 'Settled',
              body: 'milk, eggs',
              done: true,
            })
          }
        }
      } finally {
        await Promise.all(replicas.map((replica) => replica.close()))
      }
    },
  )

  it('syncs changes too large to travel together: uploads, streams and snapshots in frames under the limit', async () => {
    const space = `${SPACE}-large`
    const writer = await device(relay.url, 'lww', space)
    const reader = await device(relay.url, 'lww', space)
    try {
      // 30 notes of 200,000 characters: 6 MB together, past the 4 MiB frame limit both ways.
      const body = (i: number) => `${i}`.padEnd(200_000, '.')
      await putNotes(writer, 30, 'big', body)
      await eventually(async () => (await rows(reader)).length === 30, 'the reader to receive all 30 notes')
      // A replica that joins now bootstraps from snapshot pages of the same notes.
      await lateJoiner(
        relay.url,
        space,
        'lww',
        'a new replica to bootstrap all 30 notes',
        async (late) => (await rows(late)).length === 30,
        async (late) => {
          const read = (await late.collection('notes').get('big-29')) as { body: string }
          expect(read.body).toBe(body(29))
        },
      )
    } finally {
      await Promise.all([writer.close(), reader.close()])
    }
  }, 60_000)

  it('bootstraps a conflicted record whose siblings together are larger than one frame', async () => {
    const space = `${SPACE}-siblings`
    const [alice, bob] = await Promise.all([
      device(relay.url, 'manual', space),
      device(relay.url, 'manual', space),
    ])
    try {
      // Two offline edits of one note, 2.5 MB each: each change fits a frame, the record's
      // two versions together (5 MB) do not, so its snapshot goes over two pages.
      alice.disconnect()
      bob.disconnect()
      const body = (who: string) => who.padEnd(2_500_000, who)
      await alice.collection('notes').put('poster', { title: 'from alice', body: body('a') })
      await bob.collection('notes').put('poster', { title: 'from bob', body: body('b') })
      alice.connect()
      bob.connect()
      await eventually(
        async () => (await alice.conflicts()).length === 1 && (await bob.conflicts()).length === 1,
        'both writers to see the conflict',
      )
      await allSynced([alice, bob])
      await lateJoiner(
        relay.url,
        space,
        'manual',
        'a new replica to bootstrap both versions of the note',
        async (late) => (await late.conflicts())[0]?.versions.length === 2,
        async (late) => {
          const versions = (await late.conflicts())[0]?.versions ?? []
          const titles = versions.map((v) => (v.value as { title: string }).title)
          expect(titles.sort()).toEqual(['from alice', 'from bob'])
        },
      )
    } finally {
      await Promise.all([alice.close(), bob.close()])
    }
  }, 60_000)

  it('bootstraps from snapshot pages of text that JSON escapes to six times its length', async () => {
    const space = `${SPACE}-escaped`
    const writer = await device(relay.url, 'lww', space)
    try {
      // Control characters: each becomes six (\\u0001) in JSON. 24 notes of 100,000 of them
      // are 2.4 MB of text and 14.4 MB of JSON, so a page cut by counting characters alone
      // would be a frame far past the 4 MiB limit, refused by the new replica on every retry.
      const body = (i: number) => `${i}`.padEnd(100_000, '\u0001')
      await putNotes(writer, 24, 'escaped', body)
      await lateJoiner(
        relay.url,
        space,
        'lww',
        'a new replica to bootstrap all 24 notes',
        async (late) => (await rows(late)).length === 24,
        async (late) => {
          const read = (await late.collection('notes').get('escaped-23')) as { body: string }
          expect(read.body).toBe(body(23))
        },
      )
    } finally {
      await writer.close()
    }
  }, 60_000)
})

describe('a relay that reads shorter frames than its clients (--max-frame-bytes)', () => {
  const data = tempDir('chorus-relay-frames-')
  let relay: RelayProcess

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path, args: ['--max-frame-bytes', String(64 * 1024)] })
  })

  afterAll(async () => {
    await relay.stop()
    data.remove()
  })

  /** A replica on its own fake IndexedDB database, online when `url` is given. */
  function onDisk(indexedDB: IDBFactory, url?: string): Promise<Replica> {
    return createReplica({
      space: 'short-frames',
      ...(url === undefined ? {} : { url }),
      storage: 'indexeddb',
      indexedDB,
      WebSocket: WebSocket as never,
      resolvers: { notes: 'lww' },
    })
  }

  it('names its limit: replicas upload in frames that fit it, and one whose queued change never can says so', async () => {
    // 300 notes of 1 KB written offline: by a client's own limit (4 MiB) they would go in one
    // frame of about 330 KB, which this relay refuses.
    const disk = new IDBFactory()
    const offline = await onDisk(disk)
    const body = 'w'.repeat(1_000)
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        offline.collection('notes').put(`note-${i}`, { title: `n${i}`, body }),
      ),
    )
    await offline.close()
    const writer = await onDisk(disk, relay.url)
    const reader = await onDisk(new IDBFactory(), relay.url)
    await converged([writer, reader])
    expect((await rows(reader)).length).toBe(300)
    // The batch sent behind the writer's first hello was refused, naming the limit, and the
    // writer sent the rest in frames that fit it.
    const metrics = await (await fetch(`${relay.http}/metrics`)).text()
    expect(Number(/^chorus_relay_frames_refused_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1)

    // A replica that wrote a 100 KB note before it ever heard the relay's limit: the note can
    // never be uploaded, and the replica stops saying so instead of retrying for good.
    const stuckDisk = new IDBFactory()
    const before = await onDisk(stuckDisk)
    await before.collection('notes').put('small', { title: 'fits', body: 'x' })
    await before.collection('notes').put('huge', { title: 'too big', body: 'h'.repeat(100_000) })
    await before.close()
    const stuck = await onDisk(stuckDisk, relay.url)
    const errors: { code: string; message: string }[] = []
    stuck.on('error', (error) => errors.push({ code: error.code, message: error.message }))
    await eventually(async () => errors.some((error) => error.code === 'frame-too-large'), 'frame-too-large')
    expect(errors.find((error) => error.code === 'frame-too-large')?.message).toMatch(
      /at most 65536 bytes.*can never be uploaded/,
    )
    expect(stuck.status).toBe('offline')
    // What it wrote before the huge note got through; the others were never disturbed.
    await eventually(async () => (await rows(reader)).some((row) => row.id === 'small'), 'the small note')
    expect((await rows(reader)).some((row) => row.id === 'huge')).toBe(false)
    // Knowing the limit, it refuses a new write of that size when it is made.
    await expect(stuck.collection('notes').put('again', { body: 'h'.repeat(100_000) })).rejects.toMatchObject(
      {
        code: 'invalid-argument',
      },
    )
    await within(Promise.all([stuck.close(), writer.close(), reader.close()]), WAIT_MS, 'closing')
  })
})

describe('a relay killed with SIGKILL mid-stream', () => {
  it('keeps every acknowledged change; replicas resume and converge after a restart on the same data', async () => {
    const data = tempDir('chorus-relay-kill-')
    let relay = await startRelay({ dataDir: data.path })
    const port = relay.port
    const writers = await Promise.all([device(relay.url, 'lww'), device(relay.url, 'lww')])
    const written = new Map<string, number>()
    const write = async (replica: Replica, n: number) => {
      await replica.collection('notes').put(`${replica.replicaId}-${n}`, { n, by: replica.replicaId })
      written.set(replica.replicaId, n)
    }
    /** Changes of `replica` the relay acknowledged: one change per put, so written minus pending. */
    const acknowledgedBy = (replica: Replica) => (written.get(replica.replicaId) ?? 0) - replica.pending
    try {
      // Both devices stream writes without pause; the relay is killed while they do.
      let n = 0
      let streaming = true
      const stream = (async () => {
        while (streaming) {
          n += 1
          await Promise.all(writers.map((w) => write(w, n)))
          await new Promise((resolveTurn) => setImmediate(resolveTurn))
        }
      })()
      await eventually(() => writers.every((w) => acknowledgedBy(w) >= 40), 'forty acknowledged writes each')
      expect(await relay.stop('SIGKILL')).toBeNull()
      for (const w of writers) w.disconnect()
      streaming = false
      await stream
      // Once the process is gone no ack can arrive: what each device counts as acknowledged is
      // final. Counted once every put has settled: a put under way counts as pending before it
      // counts as written, so a count taken meanwhile is one short.
      const acknowledged = new Map(writers.map((w) => [w.replicaId as string, acknowledgedBy(w)]))

      // Straight from the relay's SQLite file, before anyone reconnects: every acknowledged change.
      const store = new SqliteRelayStore(join(data.path, DATABASE_FILE))
      try {
        const meta = await store.loadSpace(SPACE as SpaceId)
        for (const [replicaId, count] of acknowledged) {
          expect(count).toBeGreaterThanOrEqual(40)
          expect(meta.received[replicaId] ?? 0).toBeGreaterThanOrEqual(count)
        }
      } finally {
        await store.close()
      }

      // Writing goes on while the relay is down; then it restarts on the same data and port.
      const last = n + 20
      for (let more = n + 1; more <= last; more++) await Promise.all(writers.map((w) => write(w, more)))
      relay = await startRelay({ dataDir: data.path, port })
      for (const w of writers) w.connect()
      const late = await device(relay.url, 'lww')
      const everyone = [...writers, late]
      try {
        await converged(everyone)
        for (const replica of everyone) expect(await rows(replica)).toHaveLength(last * writers.length)
        expect(writers.map((w) => w.pending)).toEqual([0, 0])
      } finally {
        await late.close()
      }
    } finally {
      await Promise.all(writers.map((w) => w.close()))
      await relay.stop('SIGTERM')
      data.remove()
    }
  })
})

describe('a relay restored from a backup', () => {
  it.each(['bob', 'alice'] as const)(
    'gets back from the replicas what it had acknowledged after the backup; every replica converges (%s reconnects first)',
    async (first) => {
      const data = tempDir('chorus-relay-restore-')
      const saved = tempDir('chorus-relay-backup-')
      const backupFile = join(saved.path, 'relay-backup.db')
      let relay = await startRelay({ dataDir: data.path })
      const port = relay.port
      const [alice, bob] = await Promise.all([device(relay.url, 'lww'), device(relay.url, 'lww')])
      const everyone = [alice, bob]
      try {
        await Promise.all([
          putNotes(alice, 5, 'alice', (i) => `before ${i}`),
          putNotes(bob, 5, 'bob', (i) => `before ${i}`),
        ])
        await converged(everyone)
        expect((await runRelayCli(['backup', '--data', data.path, '--out', backupFile])).code).toBe(0)

        // Acknowledged by the relay after the backup, so gone from the relay once it is restored
        // (and from the writers' outboxes): new notes, an edit that replaces a note written
        // after the backup, and a deletion.
        await putNotes(alice, 8, 'alice-after', (i) => `after ${i}`)
        await alice.collection('notes').put('alice-after-6', { title: 'n6', body: 'edited after the backup' })
        await bob.collection('notes').delete('bob-0')
        await bob.collection('notes').put('bob-late', { title: 'late', body: 'after the backup' })
        await converged(everyone)
        expect(everyone.map((replica) => replica.pending)).toEqual([0, 0])
        const before = await rows(alice)
        expect(before).toHaveLength(18)

        // The operator stops the relay and puts the backup in place, as the README says.
        for (const replica of everyone) replica.disconnect()
        expect(await relay.stop('SIGTERM')).toBe(0)
        restoreBackup(backupFile, join(data.path, DATABASE_FILE))
        relay = await startRelay({ dataDir: data.path, port })

        // Writing goes on: bob writes before he reconnects. The first one back writes five notes,
        // which take the restored log's head past the position the other had read up to: the
        // positions he held mean other changes now.
        await bob
          .collection('notes')
          .put('bob-offline', { title: 'offline', body: 'while the relay was down' })
        const [early, later] = first === 'bob' ? [bob, alice] : [alice, bob]
        early.connect()
        await allSynced([early])
        await putNotes(early, 5, 'restored', () => 'after the restore')
        later.connect()
        const late = await device(relay.url, 'lww')
        try {
          await converged([...everyone, late])
          const expected = [
            ...before,
            { id: 'bob-offline', value: { title: 'offline', body: 'while the relay was down' } },
            ...Array.from({ length: 5 }, (_, i) => ({
              id: `restored-${i}`,
              value: { title: `n${i}`, body: 'after the restore' },
            })),
          ].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          // The newcomer has only what the relay holds: everything, the deletion included.
          expect(await rows(late)).toEqual(expected)
          expect(await rows(later)).toEqual(expected)
          expect(everyone.map((replica) => replica.pending)).toEqual([0, 0])
          // What the writers sent again: the versions of the lost changes their records held,
          // not the put that the edit of alice-after-6 replaced (11 counters, 10 versions).
          const metrics = await (await fetch(`${relay.http}/metrics`)).text()
          expect(metrics).toMatch(/^chorus_relay_changes_recovered_total 10$/m)
        } finally {
          await late.close()
        }

        // And the relay's own store counts every counter of both writers as received again.
        expect(await relay.stop('SIGTERM')).toBe(0)
        const store = new SqliteRelayStore(join(data.path, DATABASE_FILE))
        try {
          const { received } = await store.loadSpace(SPACE as SpaceId)
          expect(received[alice.replicaId]).toBe(first === 'alice' ? 19 : 14)
          expect(received[bob.replicaId]).toBe(first === 'bob' ? 13 : 8)
        } finally {
          await store.close()
        }
      } finally {
        await Promise.all(everyone.map((replica) => replica.close()))
        await relay.stop('SIGTERM')
        data.remove()
        saved.remove()
      }
    },
    60_000,
  )
})

describe('a relay restored twice from one backup', () => {
  it('gives each restore a log of its own: a replica that read the first past the backup reads the second from the start', async () => {
    const data = tempDir('chorus-relay-restore-twice-')
    const saved = tempDir('chorus-relay-backup-twice-')
    const backupFile = join(saved.path, 'relay-backup.db')
    let relay = await startRelay({ dataDir: data.path })
    const port = relay.port
    const restore = async () => {
      expect(await relay.stop('SIGTERM')).toBe(0)
      const restored = await runRelayCli(['restore', '--from', backupFile, '--data', data.path])
      expect(restored.code, restored.stderr).toBe(0)
      relay = await startRelay({ dataDir: data.path, port })
    }
    const [lost, reader] = await Promise.all([device(relay.url, 'lww'), device(relay.url, 'lww')])
    const replicas = [lost, reader]
    try {
      await putNotes(lost, 5, 'seed', () => 'before the backup')
      await converged([lost, reader])
      expect((await runRelayCli(['backup', '--data', data.path, '--out', backupFile])).code).toBe(0)

      // The first restore: the reader reads past the backup's head (positions 6–10)…
      for (const replica of replicas) replica.disconnect()
      await restore()
      for (const replica of replicas) replica.connect()
      await putNotes(lost, 5, 'first', () => 'after the first restore')
      await converged([lost, reader])
      // … and the device that wrote there is lost for good: what it wrote stays on the reader.
      await lost.close()

      // The second restore of the same backup: another device writes positions 6–10 anew
      // while the reader is away.
      reader.disconnect()
      await restore()
      const other = await device(relay.url, 'lww')
      replicas.push(other)
      await putNotes(other, 5, 'second', () => 'after the second restore')
      reader.connect()
      await allSynced([reader, other])
      const ids = (await rows(reader)).map((row) => row.id)
      expect(ids).toEqual(
        [
          ...['seed', 'first', 'second'].flatMap((prefix) =>
            Array.from({ length: 5 }, (_, i) => `${prefix}-${i}`),
          ),
        ].sort(),
      )
    } finally {
      await Promise.all(replicas.map((replica) => replica.close()))
      await relay.stop('SIGTERM')
      data.remove()
      saved.remove()
    }
  })
})

describe('a relay with --hello-timeout and --max-connections', () => {
  const data = tempDir('chorus-relay-connections-')
  let relay: RelayProcess

  beforeAll(async () => {
    relay = await startRelay({
      dataDir: data.path,
      args: ['--hello-timeout', '2s', '--max-connections', '2'],
    })
  })

  afterAll(async () => {
    await relay.stop()
    data.remove()
  })

  /** A socket to the relay that says nothing, with how it closed. */
  async function silent(): Promise<{ socket: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
    const socket = new WebSocket(relay.url)
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    )
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    return { socket, closed }
  }

  it('closes sockets that say nothing, refuses those past the limit, and a replica refused meanwhile syncs once there is room', async () => {
    const [first, second] = [await silent(), await silent()]
    const third = await silent()
    expect(await third.closed).toEqual({
      code: 1013,
      reason: 'the relay is at its limit of 2 connections: try again later',
    })
    // A replica that comes while the two silent sockets hold every place: refused (1013), it
    // tries again with backoff, and gets in once the relay has closed them.
    const replica = await createReplica({
      space: 'after-the-silent-ones',
      url: relay.url,
      storage: 'memory',
      WebSocket: WebSocket as never,
    })
    try {
      await replica.collection('notes').put('n1', { title: 'through' })
      expect((await first.closed).code).toBe(1008)
      expect((await second.closed).code).toBe(1008)
      await within(replica.synced(), 20_000, 'the replica to sync')
    } finally {
      await replica.close()
    }
    const metrics = await (await fetch(`${relay.http}/metrics`)).text()
    expect(metrics).toMatch(/^chorus_relay_hello_timeouts_total 2$/m)
    expect(
      Number(/^chorus_relay_connections_refused_total (\d+)$/m.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(2)
  }, 60_000)
})
