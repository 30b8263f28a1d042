import { type ChildProcess, spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { openSqliteReplicaStore } from '@chorus/client/sqlite'
import { asRecordId } from '@chorus/core'
import { afterEach, describe, expect, it } from 'vitest'
import { setFileSizeLimit, underFileSizeLimit } from './file-size-limit.js'
import { ROOT, tempDir, within } from './relay-process.js'

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
    const run = underFileSizeLimit(256 * 1024, process.execPath, [
      '--import',
      'tsx',
      '--conditions=@chorus/source',
      join(ROOT, 'test/integration/fixtures/filling-writer.ts'),
      path,
      '5',
    ])
    const child = spawn(run.command, run.args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8')
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    cleanups.push(() => {
      child.kill('SIGKILL')
    })
    const output = lines(child)

    const refusal = await within(
      output.next(/^refused /),
      30_000,
      `the writer to be refused; stderr: ${stderr}`,
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
    await within(output.next(/^done$/), 30_000, `the writer to write again; stderr: ${stderr}`)
    expect(await exited).toBe(0)

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
})
