import { describe, expect, it } from 'vitest'
import type { LoopbackCluster } from '../src/node/loopback-cluster.js'
import { MAX_PEER_FRAME } from '../src/node/tcp-peer-transport.js'
import { asNodeId } from '../src/node-id.js'
import { createHashRing, preferenceList } from '../src/quorum/ring.js'
import { until } from './support/poll.js'
import { scratchClusters } from './support/scratch-clusters.js'

// Values near the node API's 1 MiB request limit: a few of them together outgrow one peer
// frame, so a follower can only catch up if no append carries more than a frame holds.
const VALUE_CHARS = 900_000
const WRITES = 16

interface Status {
  readonly node: string
  readonly role: string
  readonly lastLsn: number
  readonly commitLsn: number
  readonly snapshotLsn: number
  readonly stats: { readonly snapshotsInstalled: number }
}

const nodes = ['n1', 'n2', 'n3']
const clusters = scratchClusters('chorus-large-values-', nodes)
const fiveNodes = scratchClusters('chorus-large-values-five-', ['n1', 'n2', 'n3', 'n4', 'n5'])

async function start(
  name: string,
  settings: Record<string, unknown>,
  design: 'single-leader' | 'quorum' = 'single-leader',
): Promise<LoopbackCluster> {
  const single = { replication: { mode: 'async' }, heartbeatMs: 50, electionTimeoutMs: 1_000, leaseMs: 600 }
  const { running } = await clusters.start(
    name,
    design,
    design === 'quorum' ? settings : { ...single, ...settings },
  )
  return running
}

async function statusOf(running: LoopbackCluster, id: string): Promise<Status | undefined> {
  const answer = await running.status(id).catch(() => null)
  return (answer?.body as { status?: Status } | undefined)?.status
}

/** The running node that says it leads, if any. */
async function leaderOf(running: LoopbackCluster): Promise<Status | undefined> {
  for (const id of running.running()) {
    const status = await statusOf(running, id)
    if (status?.role === 'leader') return status
  }
  return undefined
}

/**
 * Kills a follower, writes `WRITES` large values at the leader, restarts the follower, and
 * checks that it catches up to the leader's last LSN and serves the last value.
 */
async function catchUpAfterLargeWrites(running: LoopbackCluster): Promise<Status> {
  expect(VALUE_CHARS * WRITES).toBeGreaterThan(MAX_PEER_FRAME)
  const leader = await until('a leader', () => leaderOf(running))
  const follower = nodes.find((id) => id !== leader.node) as string
  await running.kill(follower, 'SIGKILL')
  // A write that lands while leadership moves (a loaded machine can delay heartbeats past the
  // election timeout) is rejected; it is retried at whichever node leads then.
  await Promise.all(
    Array.from({ length: WRITES }, (_, i) =>
      until(`write ${i}`, async () => {
        const current = await leaderOf(running)
        if (current === undefined) return undefined
        const answer = await running
          .request(
            current.node,
            { type: 'write', id: `big-${i}`, key: `big-${i}`, value: String(i % 10).repeat(VALUE_CHARS) },
            20_000,
          )
          .catch(() => null)
        return (answer?.body as { type?: string } | undefined)?.type === 'write-ok' ? true : undefined
      }),
    ),
  )
  const current = (await leaderOf(running)) ?? leader
  const target = (await statusOf(running, current.node))?.lastLsn ?? 0
  await running.restart(follower)
  const caughtUp = await until(`${follower} to reach lsn ${target}`, async () => {
    const status = await statusOf(running, follower)
    return status !== undefined && status.lastLsn >= target ? status : undefined
  })
  const read = await running.request(follower, {
    type: 'read',
    id: 'read-big',
    key: `big-${WRITES - 1}`,
    consistency: 'replica',
    minLsn: target,
  })
  const body = read.body as { type: string; value?: unknown }
  expect(body.type).toBe('read-ok')
  expect(body.value).toBe(String((WRITES - 1) % 10).repeat(VALUE_CHARS))
  return caughtUp
}

describe('single-leader replication of large values', () => {
  it('catches a restarted follower up on more large writes than one peer frame holds', async () => {
    const caughtUp = await catchUpAfterLargeWrites(await start('entries', {}))
    expect(caughtUp.snapshotLsn).toBe(0)
  }, 60_000)

  it('bootstraps a follower from a snapshot longer than one peer frame, sent in chunks', async () => {
    const caughtUp = await catchUpAfterLargeWrites(await start('snapshot', { compactEvery: 4 }))
    expect(caughtUp.snapshotLsn).toBeGreaterThan(0)
    expect(caughtUp.stats.snapshotsInstalled).toBeGreaterThanOrEqual(1)
  }, 60_000)
})

describe('quorum replication of large values', () => {
  interface PutAnswer {
    readonly type: string
    readonly reason?: string
    readonly context?: Record<string, number>
    readonly values?: readonly unknown[]
  }

  async function put(running: LoopbackCluster, id: string, key: string, value: unknown, context = {}) {
    const answer = await running.request('n1', { type: 'put', id, key, value, context }, 20_000)
    return answer.body as PutAnswer
  }

  it('refuses a put whose sibling set would outgrow a peer message, and keeps replicating', async () => {
    const running = await start('quorum', { replicas: 3, writeQuorum: 3, readQuorum: 1 }, 'quorum')
    await until('every node to see the others', async () => {
      for (const id of nodes) {
        const body = (await running.status(id)).body as { status: { up: string[] } }
        if (body.status.up.length < nodes.length - 1) return undefined
      }
      return true
    })
    // Blind puts (no context) of one key: each is one more sibling, shipped whole to every
    // replica. Ten of 900,000 characters would be a store message past a peer frame.
    expect(VALUE_CHARS * 10).toBeGreaterThan(MAX_PEER_FRAME)
    const answers: PutAnswer[] = []
    for (let i = 0; i < 10; i++)
      answers.push(await put(running, `blind-${i}`, 'poster', String(i).repeat(VALUE_CHARS)))
    const accepted = answers.filter((answer) => answer.type === 'put-ok')
    const refused = answers.filter((answer) => answer.type !== 'put-ok')
    expect(accepted.length).toBeGreaterThanOrEqual(2)
    expect(refused.length).toBeGreaterThan(0)
    expect(refused).toEqual(
      refused.map(() => ({
        type: 'rejected',
        id: expect.any(String),
        reason: 'too-large',
        maybeApplied: false,
      })),
    )
    // Every accepted put reached all three replicas (W = 3), and the links still carry writes:
    // a put that supersedes every sibling is accepted and leaves one version.
    const last = accepted.at(-1) as PutAnswer
    const settled = await put(running, 'settle', 'poster', 'settled', last.context)
    expect(settled).toMatchObject({ type: 'put-ok', values: ['settled'] })
    expect(await put(running, 'other', 'other-key', 'small')).toMatchObject({ type: 'put-ok' })
  }, 60_000)

  it('keeps a key readable when concurrent puts at different coordinators together outgrow the bound of one put', async () => {
    const five = ['n1', 'n2', 'n3', 'n4', 'n5']
    // With every commit fsynced, as chorus-cluster runs by default, the puts overlap the most.
    const { running } = await fiveNodes.start(
      'concurrent',
      'quorum',
      { replicas: 3, writeQuorum: 2, readQuorum: 2 },
      { fsync: true },
    )
    await until('every node to see the others', async () => {
      for (const id of five) {
        const body = (await running.status(id)).body as { status: { up: string[] } }
        if (body.status.up.length < five.length - 1) return undefined
      }
      return true
    })
    const homes = preferenceList(createHashRing(five.map(asNodeId), 16), 'shared', 3)
    // Slow links: each home checks its puts against the siblings it holds itself, before the
    // others' puts reach it. Nine of a million characters, three at each home, pass those
    // checks and meet at the replicas as one sibling set longer than the old peer frame.
    const chars = 1_000_000 - 100
    expect(chars * 9).toBeGreaterThan(MAX_PEER_FRAME)
    for (const id of five) await running.faults(id, null, { latencyMs: 120 })
    const answers = await Promise.all(
      homes.flatMap((id) =>
        [0, 1, 2].map(async (i) => {
          const put = {
            type: 'put',
            id: `at-${id}-${i}`,
            key: 'shared',
            value: `${id}-${i}`.padEnd(chars, '.'),
          }
          return (await running.request(id, put, 30_000)).body as PutAnswer
        }),
      ),
    )
    // Each put is answered: stored, or refused with a reason (on a loaded machine one may miss
    // its W acknowledgements in time); none is left without an answer.
    const outcomes = answers.map((answer) => answer.type)
    expect(
      outcomes.every((type) => type === 'put-ok' || type === 'rejected'),
      JSON.stringify(outcomes),
    ).toBe(true)
    expect(outcomes).toContain('put-ok')
    await running.heal()
    // Every node reads the key, and a put with a read's context settles it everywhere.
    let reads = 0
    const read = async (id: string) => {
      const get = { type: 'get', id: `get-${++reads}`, key: 'shared' }
      const body = (await running.request(id, get, 20_000)).body as PutAnswer
      return body.type === 'get-ok' ? body : undefined
    }
    const merged = await until(`${homes[0]} to read the key`, () => read(homes[0] as string), 30_000)
    expect(merged.values?.length).toBeGreaterThanOrEqual(2)
    const settle = { type: 'put', id: 'settle', key: 'shared', value: 'settled', context: merged.context }
    expect((await running.request(homes[0] as string, settle, 20_000)).body).toMatchObject({
      type: 'put-ok',
      values: ['settled'],
    })
    for (const id of five) {
      await until(`${id} to read the settled value`, async () => {
        const body = await read(id)
        return body !== undefined && JSON.stringify(body.values) === '["settled"]' ? true : undefined
      })
    }
  }, 120_000)
})
