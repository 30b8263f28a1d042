import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import type { LoopbackCluster } from '../src/node/loopback-cluster.js'
import { scratchClusters } from './support/scratch-clusters.js'

// Real node processes writing many times to a few keys: each node's SQLite file must stay a
// checkpoint plus the records since, and a node killed with SIGKILL restarts from it whole.

const nodes = ['n1', 'n2', 'n3']
const KEYS = 5
const WRITES = 300
const clusters = scratchClusters('chorus-checkpoint-files-', nodes)

/** Rows in a node's records table, read from its file beside the running process (WAL). */
function rowsOf(dir: string, node: string): number {
  const db = new Database(join(dir, `${node}.sqlite`), { readonly: true, fileMustExist: true })
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM records').get() as { n: number }).n
  } finally {
    db.close()
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

interface Answer {
  readonly type: string
  readonly lsn?: number
  readonly value?: unknown
  readonly values?: readonly unknown[]
  readonly context?: Record<string, number>
}

/** Starts three nodes of `design` (fsync off) with their files in a directory of their own. */
function start(
  design: 'single-leader' | 'quorum',
  settings: Record<string, unknown>,
): Promise<{ dir: string; running: LoopbackCluster }> {
  return clusters.start(design, design, settings)
}

describe('checkpoints on real files', () => {
  it('single-leader: every node keeps a checkpoint and the entries since, and restarts from it', async () => {
    const { dir, running } = await start('single-leader', {
      replication: { mode: 'sync' },
      heartbeatMs: 50,
      electionTimeoutMs: 1_000,
      leaseMs: 600,
      compactEvery: 8,
    })
    const leaderOf = async () => {
      for (const id of running.running()) {
        const body = (await running.status(id)).body as { status?: { role: string } }
        if (body.status?.role === 'leader') return id
      }
      return undefined
    }
    let lastLsn = 0
    for (let i = 1; i <= WRITES; i++) {
      const answer = await until(`write ${i}`, async () => {
        const leader = await leaderOf()
        if (leader === undefined) return undefined
        const body = (
          await running.request(leader, { type: 'write', id: `w${i}`, key: `k${i % KEYS}`, value: i })
        ).body as Answer
        return body.type === 'write-ok' ? body : undefined
      })
      lastLsn = answer.lsn ?? lastLsn
    }
    const leader = (await until('a leader', leaderOf)) as string
    const follower = nodes.find((id) => id !== leader) as string
    // Without checkpoints every write would be a row of its own on every node.
    await until('every follower to have applied the writes', async () => {
      const body = (await running.status(follower)).body as { status: { lastLsn: number } }
      return body.status.lastLsn >= lastLsn ? true : undefined
    })
    for (const node of nodes) expect(rowsOf(dir, node), node).toBeLessThan(40)
    await running.kill(follower, 'SIGKILL')
    await running.restart(follower)
    for (let k = 0; k < KEYS; k++) {
      const expected = WRITES - ((WRITES - k) % KEYS)
      const read = await until(`k${k} at ${follower}`, async () => {
        const body = (
          await running.request(follower, {
            type: 'read',
            id: `r${k}`,
            key: `k${k}`,
            consistency: 'replica',
            minLsn: lastLsn,
          })
        ).body as Answer
        return body.type === 'read-ok' ? body : undefined
      })
      expect(read.value, `k${k}`).toBe(expected)
    }
  }, 90_000)

  it('quorum: every node keeps a checkpoint and the records since, and restarts from it', async () => {
    const { dir, running } = await start('quorum', {
      replicas: 3,
      writeQuorum: 2,
      readQuorum: 2,
      checkpointRecords: 16,
    })
    await until('every node to see the others', async () => {
      for (const id of nodes) {
        const body = (await running.status(id)).body as { status: { up: string[] } }
        if (body.status.up.length < nodes.length - 1) return undefined
      }
      return true
    })
    const contexts = new Map<string, Record<string, number>>()
    for (let i = 1; i <= WRITES; i++) {
      const key = `k${i % KEYS}`
      const node = nodes[i % nodes.length] as string
      const body = (
        await running.request(node, {
          type: 'put',
          id: `p${i}`,
          key,
          value: i,
          context: contexts.get(key) ?? {},
        })
      ).body as Answer
      expect(body.type, `put ${i}`).toBe('put-ok')
      contexts.set(key, body.context ?? {})
    }
    // Every put is a record on each of the three nodes: 300 rows each without checkpoints.
    await until('the last stores to land', async () =>
      nodes.every((node) => rowsOf(dir, node) < 60) ? true : undefined,
    )
    await running.kill('n2', 'SIGKILL')
    await running.restart('n2')
    for (let k = 0; k < KEYS; k++) {
      const expected = WRITES - ((WRITES - k) % KEYS)
      const got = await until(`k${k} at n2`, async () => {
        const body = (await running.request('n2', { type: 'get', id: `g${k}`, key: `k${k}`, r: 3 }))
          .body as Answer
        return body.type === 'get-ok' ? body : undefined
      })
      expect(got.values, `k${k}`).toEqual([expected])
    }
  }, 90_000)
})
