import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  asRecordId,
  type Change,
  formatHlc,
  type JsonObject,
  type ReplicaId,
  type VersionVector,
} from '@chorus/core'
import { afterAll } from 'vitest'

const leftovers = new Set<string>()

// A test that fails before its own cleanup still leaves no directory behind.
afterAll(() => {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true })
})

/** A fresh directory under the OS temp dir, and a function that removes it. */
export function makeTempDir(prefix = 'chorus-relay-test-'): {
  readonly dir: string
  readonly remove: () => void
} {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  leftovers.add(dir)
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true })
      leftovers.delete(dir)
    },
  }
}

/** Resolves as `promise` does, or rejects after `ms` naming what was awaited. */
export function within<TValue>(promise: Promise<TValue>, ms: number, what: string): Promise<TValue> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Polls `check` every 10 ms until it holds, or rejects after `ms` naming what was awaited. */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A hand-built change: a put of `value`, or a delete when `value` is null. */
export function makeChange(
  replica: ReplicaId,
  counter: number,
  where: { readonly collection?: string; readonly id?: string; readonly context?: VersionVector } = {},
  value: JsonObject | null = { by: replica, n: counter },
): Change {
  return {
    collection: where.collection ?? 'notes',
    id: asRecordId(where.id ?? `${replica}-${counter}`),
    dot: [replica, counter],
    context: where.context ?? {},
    hlc: formatHlc({ wall: 1_700_000_000_000 + counter, counter: 0, replica }),
    op: value === null ? { type: 'delete' } : { type: 'put', value },
  }
}

/** Changes `from`..`to` of one replica, each to its own record. */
export function makeRun(replica: ReplicaId, from: number, to: number): Change[] {
  const out: Change[] = []
  for (let counter = from; counter <= to; counter++) out.push(makeChange(replica, counter))
  return out
}
