import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { SingleLeaderStatus } from '@chorus/server'
import { LoopbackCluster } from '@chorus/server/node'
import { afterEach, describe, expect, it } from 'vitest'
import { setFileSizeLimit } from './file-size-limit.js'
import { eventually } from './relay-process.js'

/**
 * Server nodes whose disk fills up, for real: a running node process gets a file size limit
 * just above its write-ahead log (see `file-size-limit.ts`), so its next commits fail in the
 * kernel, and the limit is lifted later (space freed).
 */

type Status = SingleLeaderStatus

type Body = Record<string, unknown>

const NODES = ['n1', 'n2', 'n3']
/** Room left in a node's log when its disk fills up (less than a commit of `VALUE` takes). */
const ROOM_BYTES = 8 * 1024
const VALUE = 'x'.repeat(2_000)

async function statuses(cluster: LoopbackCluster): Promise<Status[]> {
  const seen: Status[] = []
  for (const id of cluster.running()) {
    const answer = await cluster.status(id).catch(() => null)
    const status = (answer?.body as { status?: Status } | undefined)?.status
    if (status !== undefined) seen.push(status)
  }
  return seen
}

/** The leader of an epoch above `above` that every node that answers follows. */
async function settledLeader(cluster: LoopbackCluster, above: number): Promise<Status> {
  let found: Status | undefined
  await eventually(
    async () => {
      const seen = await statuses(cluster)
      found = seen.find((status) => status.role === 'leader' && status.epoch > above)
      return found !== undefined && seen.every((status) => status.leader === found?.node)
    },
    `a leader above epoch ${above} that every node follows`,
    20_000,
  )
  return found as Status
}

/** A leader read of `key` at `node`, retried while a fresh leader is not ready to serve it. */
async function leaderRead(cluster: LoopbackCluster, node: string, key: string): Promise<Body> {
  let body: Body = {}
  await eventually(async () => {
    const request = {
      type: 'read',
      id: `r-${key}-${Date.now()}`,
      key,
      consistency: 'leader',
      minLsn: 0,
      waitMs: 0,
    }
    body = (await cluster.request(node, request)).body as Body
    return body.type !== 'rejected'
  }, `a leader read of ${key}`)
  return body
}

/** What each test started, stopped and removed after it, last first. */
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('a single-leader cluster whose leader runs out of disk', () => {
  it('refuses the write it cannot store with storage-failed, the others carry on under a newer epoch, and nothing acknowledged is lost', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chorus-full-disk-nodes-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const cluster = await LoopbackCluster.start({
      design: 'single-leader',
      nodes: NODES,
      settings: { replication: { mode: 'sync' }, heartbeatMs: 50, electionTimeoutMs: 400, leaseMs: 250 },
      dataDir,
    })
    cleanups.push(() => cluster.stop())
    const acknowledged = new Map<string, number>()
    const write = async (node: string, key: string, value: number): Promise<Body> => {
      const body = (
        await cluster.request(node, {
          type: 'write',
          id: `w-${key}-${value}`,
          key,
          value: { n: value, pad: VALUE },
        })
      ).body as Body
      if (body.type === 'write-ok') acknowledged.set(key, value)
      return body
    }

    const first = await settledLeader(cluster, 0)
    for (let i = 0; i < 10; i++) {
      expect(await write(first.node, `k${i}`, i)).toMatchObject({
        type: 'write-ok',
        durability: 'replicated',
      })
    }

    // The leader's disk fills up: the next write it cannot store.
    const wal = statSync(join(dataDir, `${first.node}.sqlite-wal`)).size
    await setFileSizeLimit(cluster.node(first.node).child.pid, wal + ROOM_BYTES)
    let refused: Body | undefined
    for (let i = 10; i < 60 && refused === undefined; i++) {
      const body = await write(first.node, `k${i}`, i)
      if (body.type !== 'write-ok') refused = body
    }
    expect(refused).toMatchObject({ type: 'error', code: 'storage-failed', maybeApplied: true })
    expect(refused?.message).toMatch(
      new RegExp(
        `^${first.node} could not store it \\(the append failed: the disk (is full|reported an I/O error)\\. Nothing was written\\.`,
      ),
    )
    // Still up, answering.
    expect((await cluster.status(first.node)).status).toBe(200)

    // The other two elect a leader of a newer epoch and take writes, acknowledged by both.
    const second = await settledLeaderAmong(cluster, first)
    for (let i = 100; i < 110; i++) {
      expect(await write(second.node, `k${i}`, i)).toMatchObject({ type: 'write-ok', epoch: second.epoch })
    }

    // Room again: the old leader follows the new one and catches up.
    await setFileSizeLimit(cluster.node(first.node).child.pid, 'unlimited')
    await eventually(async () => {
      const [back, leader] = await Promise.all([cluster.status(first.node), cluster.status(second.node)])
      const status = (back.body as { status: Status }).status
      const head = (leader.body as { status: Status }).status
      return status.leader === second.node && status.commitLsn === head.commitLsn
    }, `${first.node} to catch up with ${second.node}`)

    // The new leader killed outright: whoever leads next holds every acknowledged write.
    await cluster.kill(second.node, 'SIGKILL')
    const third = await settledLeader(cluster, second.epoch)
    for (const [key, value] of acknowledged) {
      expect(await leaderRead(cluster, third.node, key), key).toMatchObject({
        type: 'read-ok',
        value: { n: value },
      })
    }
  }, 120_000)
})

/** The leader the nodes other than `old` elect, of an epoch above `old`'s. */
async function settledLeaderAmong(cluster: LoopbackCluster, old: Status): Promise<Status> {
  let found: Status | undefined
  await eventually(
    async () => {
      const seen = (await statuses(cluster)).filter((status) => status.node !== old.node)
      found = seen.find((status) => status.role === 'leader' && status.epoch > old.epoch)
      return found !== undefined && seen.every((status) => status.leader === found?.node)
    },
    `a leader above epoch ${old.epoch} among the nodes other than ${old.node}`,
    20_000,
  )
  return found as Status
}

describe('a quorum cluster with a node out of disk', () => {
  it('refuses the puts that node cannot store, takes the rest on the other two, and repairs it once there is room', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chorus-full-disk-quorum-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const cluster = await LoopbackCluster.start({
      design: 'quorum',
      nodes: NODES,
      settings: { replicas: 3, writeQuorum: 2, readQuorum: 2, readRepair: 'blocking', antiEntropyMs: 100 },
      dataDir,
    })
    cleanups.push(() => cluster.stop())
    // Until the nodes have heard from each other they believe their peers down.
    await eventually(async () => {
      for (const id of NODES) {
        const body = (await cluster.status(id)).body as { status: { up: string[] } }
        if (body.status.up.length < NODES.length - 1) return false
      }
      return true
    }, 'every node to hear from the others')
    const acknowledged = new Map<string, number>()
    const put = async (node: string, key: string, value: number): Promise<Body> => {
      const request = { type: 'put', id: `p-${key}-${value}`, key, value: { n: value, pad: VALUE } }
      const body = (await cluster.request(node, request)).body as Body
      if (body.type === 'put-ok') acknowledged.set(key, value)
      return body
    }
    for (let i = 0; i < 9; i++)
      expect(await put(NODES[i % 3] as string, `k${i}`, i)).toMatchObject({ type: 'put-ok' })

    const full = 'n1'
    const wal = statSync(join(dataDir, `${full}.sqlite-wal`)).size
    await setFileSizeLimit(cluster.node(full).child.pid, wal + ROOM_BYTES)
    let refused: Body | undefined
    for (let i = 10; i < 60 && refused === undefined; i++) {
      const body = await put(full, `k${i}`, i)
      if (body.type !== 'put-ok') refused = body
    }
    expect(refused).toMatchObject({ type: 'error', code: 'storage-failed', maybeApplied: true })
    expect(refused?.message).toMatch(
      /^n1 could not store it \(the append failed: the disk (is full|reported an I\/O error)\. Nothing was written\./,
    )
    // The other two store puts between them (W = 2) while it cannot.
    for (let i = 100; i < 110; i++) {
      expect(await put(i % 2 === 0 ? 'n2' : 'n3', `k${i}`, i)).toMatchObject({ type: 'put-ok' })
    }
    expect((await cluster.status(full)).status).toBe(200)

    // Room again: anti-entropy gives it every key the others hold.
    await setFileSizeLimit(cluster.node(full).child.pid, 'unlimited')
    const keys = async (id: string) =>
      ((await cluster.status(id)).body as { status: { keys: number } }).status.keys
    await eventually(
      async () => (await keys(full)) === (await keys('n2')) && (await keys('n2')) >= acknowledged.size,
      `${full} to hold every key again`,
      20_000,
    )

    // Another node killed outright: the two left read every acknowledged put.
    await cluster.kill('n2', 'SIGKILL')
    for (const [key, value] of acknowledged) {
      const get = (await cluster.request(full, { type: 'get', id: `g-${key}`, key })).body as Body
      expect(get, key).toMatchObject({ type: 'get-ok', value: { n: value } })
    }
  }, 120_000)
})
