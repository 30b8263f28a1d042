import { type ChildProcess, spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { createReplica } from '@chorus/client'
import { openSqliteReplicaStore } from '@chorus/client/sqlite'
import { asRecordId } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { setFileSizeLimit, underFileSizeLimit } from './file-size-limit.js'
import { ROOT, startRelay, tempDir, within } from './relay-process.js'

/**
 * A Node replica on its durable SQLite storage whose disk fills up, for real: the writer runs
 * in its own process under a file size limit (see `file-size-limit.ts`), writing offline until
 * a write is refused, and the limit is lifted later (space freed).
 */

/** Lines the child printed, and a way to wait for one. */
function lines(child: ChildProcess): { all: string[]; next: (match: RegExp) => Promise<string> } {
  const all: string[] = []
  const waiting: { match: RegExp; resolve: (line: string) => void }[] = []
  let buffered = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8')
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    for (const line of parts) {
      all.push(line)
      for (const wait of waiting.splice(0)) {
        if (wait.match.test(line)) wait.resolve(line)
        else waiting.push(wait)
      }
    }
  })
  return {
    all,
    next: (match) => {
      const seen = all.find((line) => match.test(line))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve) => waiting.push({ match, resolve }))
    },
  }
}

/** A fixture of `test/integration/fixtures` run as its own process under a file size limit. */
interface Fixture {
  readonly child: ChildProcess
  readonly output: ReturnType<typeof lines>
  /** How the process ended: its exit code and the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr(): string
}

function runFixture(script: string, args: readonly string[], limitBytes: number): Fixture {
  const run = underFileSizeLimit(limitBytes, process.execPath, [
    '--import',
    'tsx',
    '--conditions=@chorus/source',
    join(ROOT, 'test/integration/fixtures', script),
    ...args,
  ])
  const child = spawn(run.command, run.args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return { child, output: lines(child), exited, stderr: () => stderr }
}

describe('a Node replica whose disk fills up', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  it('refuses the write it cannot store with storage-failed, keeps every earlier one, and writes again once there is room', async () => {
    const data = tempDir('chorus-full-disk-replica-')
    cleanups.push(data.remove)
    const path = join(data.path, 'replica.sqlite')
    // Its files as a fresh replica makes them, then room for a few dozen notes of 1 KB.
    const { child, output, exited, stderr } = runFixture('filling-writer.ts', [path, '5'], 256 * 1024)
    cleanups.push(() => {
      child.kill('SIGKILL')
    })

    const refusal = await within(
      output.next(/^refused /),
      30_000,
      `the writer to be refused; stderr: ${stderr()}`,
    )
    const [, refusedAt, code] = /^refused (\d+) (\S+)/.exec(refusal) ?? []
    expect(code).toBe('storage-failed')
    // Said with what to do (`EFBIG` is an I/O error to SQLite, `ENOSPC` a full disk).
    expect(refusal).toMatch(/the disk (is full|reported an I\/O error)\. Nothing was written\./)
    const written = Number(refusedAt) - 1
    expect(written).toBeGreaterThan(0)
    expect(output.all.filter((line) => line.startsWith('wrote '))).toHaveLength(written)
    expect(statSync(path).size).toBeLessThanOrEqual(256 * 1024)

    // Room again: the same replica, still open, writes the refused note and five more.
    await setFileSizeLimit(child.pid, 'unlimited')
    child.stdin?.write('again\n')
    await within(output.next(/^done$/), 30_000, `the writer to write again; stderr: ${stderr()}`)
    expect((await exited).code).toBe(0)

    const store = await openSqliteReplicaStore({ path })
    cleanups.push(() => store.close())
    const total = written + 6
    const meta = await store.loadMeta()
    // The refused write took no counter: the outbox runs 1 … total without a gap.
    expect(meta?.counter).toBe(total)
    const outbox = await store.readOutbox(0, 1_000_000)
    expect(outbox.map((change) => change.dot[1])).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    for (let i = 1; i <= total; i++) {
      expect(outbox[i - 1]?.id).toBe(`note-${i}`)
      const state = await store.getRecord('notes', asRecordId(`note-${i}`))
      expect(state?.versions).toHaveLength(1)
      expect(state?.versions[0]?.op).toMatchObject({ type: 'put', value: { i } })
    }
    expect(await store.listRecords('notes')).toHaveLength(total)
  }, 60_000)

  it('stops taking what it cannot store while it syncs, takes the rest once there is room, and keeps it all', async () => {
    const data = tempDir('chorus-full-disk-reader-')
    cleanups.push(data.remove)
    const relay = await startRelay({ dataDir: data.path })
    cleanups.push(async () => {
      await relay.stop('SIGTERM')
    })
    const space = 'full-disk-sync'
    const writer = await createReplica({
      space,
      url: relay.url,
      storage: 'memory',
      WebSocket: WebSocket as never,
      resolvers: { notes: 'lww' },
    })
    cleanups.push(() => writer.close())
    const body = 'x'.repeat(1_000)
    const write = async (from: number, count: number) => {
      await Promise.all(
        Array.from({ length: count }, (_, i) =>
          writer.collection('notes').put(`note-${String(from + i).padStart(4, '0')}`, { body }),
        ),
      )
      await within(writer.synced(), 30_000, 'the writer to upload')
    }
    await write(0, 20)

    const path = join(data.path, 'reader.sqlite')
    const { child, output, exited, stderr } = runFixture(
      'syncing-reader.ts',
      [path, relay.url, space],
      256 * 1024,
    )
    cleanups.push(() => {
      child.kill('SIGKILL')
    })
    await within(output.next(/^count 20$/), 30_000, `the reader to hold the first notes; stderr: ${stderr()}`)

    // More than its disk holds: it stores what fits, then says it cannot store more.
    await write(20, 400)
    const failure = await within(output.next(/^error /), 30_000, `the reader to fail; stderr: ${stderr()}`)
    // What failed, why and what to do, said once, then what happens now.
    expect(failure).toMatch(
      /^error storage-failed applying remote changes failed: the disk (is full|reported an I\/O error)\. Nothing was written\. .*\(they will be fetched again\)$/,
    )
    const counts = () =>
      output.all.filter((line) => line.startsWith('count ')).map((line) => Number(line.slice(6)))
    expect(Math.max(...counts())).toBeLessThan(420)

    // Room again: it takes the rest from the relay.
    await setFileSizeLimit(child.pid, 'unlimited')
    await within(output.next(/^count 420$/), 30_000, `the reader to hold every note; stderr: ${stderr()}`)

    // Killed outright: its file holds every note it showed.
    child.kill('SIGKILL')
    expect((await exited).signal).toBe('SIGKILL')
    const store = await openSqliteReplicaStore({ path })
    cleanups.push(() => store.close())
    const ids = (await store.listRecords('notes')).map((record) => record.id)
    expect(ids).toEqual(Array.from({ length: 420 }, (_, i) => `note-${String(i).padStart(4, '0')}`))
  }, 120_000)
})
