import { createReplica } from '@chorus/client'
import { ErrorCode, isChorusError } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import {
  eventually,
  type RelayProcess,
  raiseFileSizeLimit,
  startRelay,
  tempDir,
  within,
} from './relay-process.js'

type Replica = Awaited<ReturnType<typeof createReplica>>

/**
 * A relay whose disk fills up, for real: the relay process runs under a file size limit
 * (`RLIMIT_FSIZE`), so SQLite's writes past it fail in the kernel (`EFBIG`) as they fail with
 * `ENOSPC` on a full disk — no hook, no simulated error. Its write-ahead log reaches the limit
 * first (the checkpoint into the database file comes at 4 MiB).
 */
const LIMIT_BYTES = 512 * 1024
const SPACE = 'full-disk'
const BODY = 'x'.repeat(1_000)
const WAIT_MS = 30_000

function device(url: string): Promise<Replica> {
  return createReplica({
    space: SPACE,
    url,
    storage: 'memory',
    WebSocket: WebSocket as never,
    resolvers: { notes: 'lww' },
  })
}

/** What the relay's `/healthz` says. */
async function health(relay: RelayProcess): Promise<{ status: string; commitsFailing?: boolean }> {
  const response = await fetch(`${relay.http}/healthz`)
  return (await response.json()) as { status: string; commitsFailing?: boolean }
}

/** The ids of the notes `replica` holds, sorted. */
async function ids(replica: Replica): Promise<string[]> {
  return (await replica.collection('notes').list()).map((row) => row.id).sort()
}

/**
 * Writes notes of 1 KB in rounds of 20 until the relay says it could not store them (the
 * writer's `error` event with `storage-failed`); resolves with the ids written.
 */
async function writeUntilRefused(writer: Replica): Promise<string[]> {
  const refused = new Promise<void>((resolve) =>
    writer.on('error', (error) => {
      if (isChorusError(error, ErrorCode.StorageFailed)) resolve()
    }),
  )
  let done = false
  void refused.then(() => {
    done = true
  })
  const written: string[] = []
  // 512 KiB of log holds a few hundred such notes: a thousand rounds is far past it.
  for (let round = 0; round < 1_000 && !done; round++) {
    const batch = Array.from({ length: 20 }, (_, i) => `note-${String(round * 20 + i).padStart(5, '0')}`)
    await Promise.all(batch.map((id) => writer.collection('notes').put(id, { body: BODY })))
    written.push(...batch)
    await Promise.race([refused, new Promise((resolve) => setTimeout(resolve, 50))])
  }
  await within(refused, WAIT_MS, 'the relay to refuse a write')
  return written
}

describe('a relay whose disk fills up', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  it.each(['in-thread', 'worker'] as const)(
    'refuses what it cannot store, stays up, and takes it all once there is room; nothing acknowledged is lost (store %s)',
    async (store) => {
      const data = tempDir('chorus-full-disk-')
      cleanups.push(data.remove)
      let relay = await startRelay({
        dataDir: data.path,
        fileSizeLimit: LIMIT_BYTES,
        args: ['--store', store],
      })
      cleanups.push(async () => {
        await relay.stop('SIGKILL')
      })
      const writer = await device(relay.url)
      const reader = await device(relay.url)
      cleanups.push(
        () => writer.close(),
        () => reader.close(),
      )

      const written = await writeUntilRefused(writer)
      // Refused, not acknowledged: the writer keeps them, and the relay says it is failing.
      expect(writer.pending).toBeGreaterThan(0)
      expect(writer.status).not.toBe('synced')
      expect(await health(relay)).toMatchObject({ status: 'failing', commitsFailing: true })
      // Said in its log with what to do (`EFBIG` is an I/O error to SQLite, `ENOSPC` a full disk).
      expect(relay.output()).toMatch(
        /storage-failed: appending changes failed: the disk (is full|reported an I\/O error)\. Nothing was written\./,
      )
      // The process is up and still serving: the reader holds what was stored, no more.
      expect(relay.child.exitCode).toBeNull()
      const acknowledged = written.length - writer.pending
      await eventually(
        async () => (await ids(reader)).length === acknowledged,
        'the reader to hold what was stored',
      )

      // Room again (an operator frees space): what was refused goes again and is stored.
      await raiseFileSizeLimit(relay)
      await within(writer.synced(), WAIT_MS, 'the writer to upload everything')
      expect(writer.pending).toBe(0)
      await eventually(
        async () => (await ids(reader)).length === written.length,
        'the reader to hold every note',
        WAIT_MS,
      )
      expect(await ids(reader)).toEqual([...written].sort())
      await eventually(async () => (await health(relay)).status === 'ok', 'the relay to report healthy again')

      // Killed outright and started again on the same data: every note is there.
      await relay.stop('SIGKILL')
      relay = await startRelay({ dataDir: data.path })
      const late = await device(relay.url)
      cleanups.push(() => late.close())
      await eventually(
        async () => (await ids(late)).length === written.length,
        'a new replica to read every note',
        WAIT_MS,
      )
      expect(await ids(late)).toEqual([...written].sort())
    },
    120_000,
  )

  it('stops cleanly on SIGTERM while its disk is full, and loses nothing it acknowledged', async () => {
    const data = tempDir('chorus-full-disk-')
    cleanups.push(data.remove)
    let relay = await startRelay({ dataDir: data.path, fileSizeLimit: LIMIT_BYTES })
    cleanups.push(async () => {
      await relay.stop('SIGKILL')
    })
    const writer = await device(relay.url)
    cleanups.push(() => writer.close())

    const written = await writeUntilRefused(writer)
    const acknowledged = written.length - writer.pending
    expect(acknowledged).toBeGreaterThan(0)
    expect(writer.pending).toBeGreaterThan(0)
    // The shutdown finishes what it can (what it holds buffered goes to the disk that is full)
    // and exits as asked.
    expect(await relay.stop('SIGTERM')).toBe(0)
    expect(relay.output()).toMatch(/chorus-relay stopped/)

    // Started again with room: the acknowledged notes were kept, and the writer sends the rest.
    relay = await startRelay({ dataDir: data.path, port: relay.port })
    const reader = await device(relay.url)
    cleanups.push(() => reader.close())
    await eventually(
      async () => (await ids(reader)).length >= acknowledged,
      'the reader to hold the acknowledged notes',
      WAIT_MS,
    )
    await within(writer.synced(), WAIT_MS, 'the writer to upload the rest')
    await eventually(
      async () => (await ids(reader)).length === written.length,
      'the reader to hold every note',
      WAIT_MS,
    )
    expect(await ids(reader)).toEqual([...written].sort())
  }, 120_000)
})
