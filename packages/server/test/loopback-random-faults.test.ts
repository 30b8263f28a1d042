import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { JsonValue } from '@chorus/core'
import { checkLinearizable, createPrng, type Prng, sweepSeeds } from '@chorus/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { QuorumHttpClient } from '../src/client/quorum-client.js'
import { SingleLeaderHttpClient } from '../src/client/single-leader-client.js'
import { LoopbackCluster } from '../src/node/loopback-cluster.js'
import { SqliteNodeStorage } from '../src/node/sqlite-node-storage.js'
import { createQuorumConfig } from '../src/quorum/config.js'
import type { QuorumRecord, QuorumStatus } from '../src/quorum/messages.js'
import { createQuorumMachine } from '../src/quorum/node.js'
import { createHashRing, preferenceList } from '../src/quorum/ring.js'
import { HistoryRecorder } from '../src/sim/sim-client.js'
import type { SingleLeaderStatus } from '../src/single-leader/messages.js'
import { until } from './support/poll.js'

/**
 * Node processes under seeded random faults: each step draws a fault (kill -9, a freeze, a
 * partition, latency, loss) for one node of three, waits for the clients to make progress
 * under it, lifts it (restart, thaw, heal), and waits for progress again. One node at a time,
 * so a majority is always there and progress always comes. Two seeds run; `SEED=n` replays
 * one (the fault script is in every failure message), and `SOAK`/`SEEDS_FROM` run others (see
 * `sweepSeeds`).
 */
const SEEDS = sweepSeeds(process.env, 2).seeds
const STEPS = 5
/** Acknowledged writes each half of a step waits for. */
const PROGRESS = 8
const nodes = ['n1', 'n2', 'n3']

type Fault = 'kill' | 'freeze' | 'partition' | 'latency' | 'loss' | 'cut'
const FAULTS: readonly Fault[] = ['kill', 'freeze', 'partition', 'latency', 'loss']
/** Chain: also the link between the node and one other, cut both ways (both still reach the rest). */
const CHAIN_FAULTS: readonly Fault[] = [...FAULTS, 'cut']

let cluster: LoopbackCluster | null = null
let scratch: string | null = null

afterEach(async () => {
  for (const id of cluster?.options.nodes ?? []) {
    // A frozen node stops only once thawed.
    if (cluster?.running().includes(id)) cluster.node(id).child.kill('SIGCONT')
  }
  await cluster?.stop()
  cluster = null
  if (scratch !== null) rmSync(scratch, { recursive: true, force: true })
  scratch = null
})

async function start(
  design: 'single-leader' | 'quorum',
  settings: Record<string, unknown>,
  members: readonly string[] = nodes,
): Promise<LoopbackCluster> {
  scratch = mkdtempSync(join(tmpdir(), `chorus-random-faults-${design}-`))
  cluster = await LoopbackCluster.start({ design, nodes: members, settings, dataDir: scratch })
  return cluster
}

/** Counts acknowledged writes and lets a step wait for `count` more. */
class Progress {
  acknowledged = 0
  private readonly waiters: { readonly target: number; readonly resolve: () => void }[] = []

  ack(): void {
    this.acknowledged++
    for (const waiter of this.waiters.filter((w) => w.target <= this.acknowledged)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
  }

  more(count: number, what: string, ms = 30_000): Promise<void> {
    const target = this.acknowledged + count
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no progress ${what}: ${this.acknowledged} of ${target} writes`)),
        ms,
      )
      this.waiters.push({
        target,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      })
    })
  }
}

/**
 * Runs the fault script of `seed`: `STEPS` steps, each drawing `together` faults for as many
 * distinct nodes of the cluster. Each half of a step (faults in force, then lifted) waits for
 * {@link PROGRESS} more acknowledged writes. Each step is added to `script` as it is drawn.
 */
async function runFaults(
  seed: number,
  progress: Progress,
  script: string[],
  together: number,
  faults: readonly Fault[],
): Promise<void> {
  const draw: Prng = createPrng(seed).fork('faults')
  const live = cluster as LoopbackCluster
  const members = live.options.nodes
  await progress.more(PROGRESS, 'before the first fault')
  for (let step = 0; step < STEPS; step++) {
    const drawn: { fault: Fault; target: string; peer?: string }[] = []
    while (drawn.length < together) {
      const fault = draw.pick(faults)
      const target = draw.pick(members.filter((id) => !drawn.some((d) => d.target === id)))
      if (fault === 'cut')
        drawn.push({ fault, target, peer: draw.pick(members.filter((id) => id !== target)) })
      else drawn.push({ fault, target })
    }
    const said = drawn
      .map(({ fault, target, peer }) => (peer === undefined ? `${fault} ${target}` : `cut ${target}↔${peer}`))
      .join(' + ')
    script.push(said)
    // Every node cut off by a partition is alone: one group each, the rest together.
    const cut = drawn.filter((d) => d.fault === 'partition').map((d) => d.target)
    if (cut.length > 0)
      await live.partition([...cut.map((id) => [id]), members.filter((id) => !cut.includes(id))])
    // Cuts before kills and freezes: both ends of a link take their part while they still answer.
    for (const { target, peer } of drawn) {
      if (peer === undefined) continue
      await live.faults(target, peer, { loss: 1 })
      await live.faults(peer, target, { loss: 1 })
    }
    for (const { fault, target } of drawn) {
      if (fault === 'kill') await live.kill(target, 'SIGKILL')
      else if (fault === 'freeze') live.node(target).child.kill('SIGSTOP')
      else if (fault === 'latency')
        await live.faults(target, null, { latencyMs: draw.int(20, 80), jitterMs: 10 })
      else if (fault === 'loss') await live.faults(target, null, { loss: 0.3 })
    }
    await progress.more(PROGRESS, `under ${said}`)
    // Thawed first: a restart tells every running node where the restarted one listens.
    for (const { fault, target } of drawn) if (fault === 'freeze') live.node(target).child.kill('SIGCONT')
    for (const { fault, target } of drawn) if (fault === 'kill') await live.restart(target)
    await live.heal()
    await progress.more(PROGRESS, `after ${said}`)
  }
}

/**
 * Starts `workers` (each running until `stopped()` says so), runs the fault script of `seed`
 * under them, stops them and waits for them to finish. Resolves with the script as text; a
 * failure says the seed and the faults drawn so far.
 */
async function underFaults(
  seed: number,
  progress: Progress,
  workers: (stopped: () => boolean) => Promise<void>[],
  together = 1,
  faults: readonly Fault[] = FAULTS,
): Promise<string> {
  let stopped = false
  const running = workers(() => stopped)
  const script: string[] = []
  try {
    await runFaults(seed, progress, script, together, faults)
  } catch (error) {
    throw new Error(`seed ${seed}: ${script.join(', ')}: ${(error as Error).message}`)
  } finally {
    stopped = true
    await Promise.all(running)
  }
  return script.join(', ')
}

/**
 * Sync and semi-sync with one follower's ack (a fallback to the leader's disk after 200 ms,
 * counted: the write's `durability` is `leader`) on 3 nodes, one fault at a time; sync on 5
 * nodes, two faults at a time (a majority is still there; semi-sync with 1 ack would need 4
 * votes of 5 to elect, which two faults can deny); and chain on 5 nodes, two faults at a time,
 * among them a link cut between two members, whose leader takes silent and cut-off members out
 * of the chain and counts them again when they are back.
 */
const SINGLE_LEADER_CASES = [
  { replication: { mode: 'sync' }, members: nodes, together: 1, faults: FAULTS },
  {
    replication: { mode: 'semi-sync', acks: 1, timeoutMs: 200 },
    members: nodes,
    together: 1,
    faults: FAULTS,
  },
  { replication: { mode: 'sync' }, members: ['n1', 'n2', 'n3', 'n4', 'n5'], together: 2, faults: FAULTS },
  {
    replication: { mode: 'chain' },
    members: ['n1', 'n2', 'n3', 'n4', 'n5'],
    together: 2,
    faults: CHAIN_FAULTS,
  },
] as const

describe('single-leader node processes under random faults', () => {
  for (const { replication, members, together, faults } of SINGLE_LEADER_CASES)
    for (const seed of SEEDS) {
      const shape = `${replication.mode}, ${members.length} nodes, ${together} fault${together > 1 ? 's' : ''} at once`
      it(`${shape}, seed ${seed}: loses no acknowledged write but a counted fallback, stays linearizable without one, reads its own writes from followers`, {
        timeout: 120_000,
      }, async () => {
        const live = await start(
          'single-leader',
          { replication, heartbeatMs: 40, electionTimeoutMs: 400, leaseMs: 250 },
          members,
        )
        const clientOptions = {
          nodes: live.urls(),
          refreshNodes: async () => live.urls(),
          requestTimeoutMs: 1_000,
          deadlineMs: 5_000,
        }
        const recorder = new HistoryRecorder()
        let moment = 0
        const now = () => ++moment
        const progress = new Progress()
        const acknowledged = new Map<string, { value: JsonValue; durability: 'leader' | 'replicated' }>()
        const ownReadsMissed: string[] = []
        let epochSeen = 0
        const staleAcks: string[] = []
        /** Shared keys for linearizability; a key whose write's fate is open is left for a fresh one. */
        const generation = new Map<number, number>()
        const sharedKeys = new Set<string>()
        const sharedKey = (slot: number) => {
          const key = `s${slot}-${generation.get(slot) ?? 0}`
          sharedKeys.add(key)
          return key
        }
        /** A leader read of `key` by `process`, recorded for the linearizability checker. */
        const recordedRead = async (client: SingleLeaderHttpClient, process: string, key: string) => {
          const handle = recorder.invoke(process, key, 'read', undefined, now())
          const got = await client.read(key)
          recorder.complete(
            handle,
            got.ok ? 'ok' : 'failed',
            now(),
            got.ok ? (got.value ?? undefined) : undefined,
          )
        }
        const worker = async (name: string, stopped: () => boolean) => {
          const client = new SingleLeaderHttpClient({ ...clientOptions, name })
          for (let n = 1; !stopped(); n++) {
            const slot = n % 6
            const shared = n % 2 === 0
            const key = shared ? sharedKey(slot) : `${name}-${n}`
            const value = `${name}.${n}`
            const before = epochSeen
            const handle = recorder.invoke(name, key, 'write', value, now())
            const written = await client.write(key, value)
            if (written.ok) {
              recorder.complete(handle, 'ok', now())
              epochSeen = Math.max(epochSeen, written.epoch)
              if (written.epoch < before) staleAcks.push(`${key} at epoch ${written.epoch} after ${before}`)
              acknowledged.set(key, { value, durability: written.durability })
              progress.ack()
              // Read-your-writes from whichever node the client turns to next (a fallback may
              // be lost by then: its LSN taken by another entry under a newer leader).
              if (!shared && written.durability === 'replicated') {
                const own = await client.read(key, { consistency: 'replica', waitMs: 200 })
                if (own.ok && own.value !== value)
                  ownReadsMissed.push(`${key} read ${String(own.value)} at ${own.node}`)
              }
            } else {
              recorder.complete(handle, written.maybeApplied ? 'unknown' : 'failed', now())
              if (written.maybeApplied && shared) generation.set(slot, (generation.get(slot) ?? 0) + 1)
            }
            await recordedRead(client, name, sharedKey(slot))
          }
        }

        const script = await underFaults(
          seed,
          progress,
          (stopped) => ['c1', 'c2', 'c3'].map((name) => worker(name, stopped)),
          together,
          faults,
        )
        const said = `${shape}, seed ${seed}: ${script}`

        const observer = new SingleLeaderHttpClient(clientOptions)
        const leader = await until(`${said}: one leader every node follows`, async () => {
          const all = Object.values(await observer.statuses())
          const found = all.find((status) => status?.role === 'leader')
          return found !== undefined &&
            all.every(
              (status) => status !== null && status.leader === found?.node && status.epoch === found.epoch,
            )
            ? (found as SingleLeaderStatus)
            : undefined
        })
        expect(progress.acknowledged, said).toBeGreaterThanOrEqual(PROGRESS * (2 * STEPS + 1))
        // Every acknowledged write on a key of its own is still there, but a fallback may be lost.
        const lost: { key: string; durability: string }[] = []
        for (const [key, { value, durability }] of acknowledged) {
          if (sharedKeys.has(key)) continue
          const read = await observer.read(key)
          expect(read.ok, `${said}: ${key}`).toBe(true)
          if (read.ok && read.value !== value) lost.push({ key, durability })
        }
        expect(
          lost.filter((write) => write.durability !== 'leader'),
          said,
        ).toEqual([])
        const fallbacks = [...acknowledged.values()].filter((write) => write.durability === 'leader').length
        if (replication.mode === 'sync') expect(fallbacks, said).toBe(0)
        for (const key of sharedKeys) await recordedRead(observer, 'final', key)
        // A lost fallback breaks linearizability, as it should: checked only without one.
        const verdict = checkLinearizable(recorder.history(), { maxSteps: 20_000_000 })
        if (fallbacks === 0) expect(verdict.violations, said).toEqual([])
        expect(verdict.inconclusive, said).toEqual([])
        expect(ownReadsMissed, said).toEqual([])
        expect(staleAcks, said).toEqual([])
        // Every node ends on the leader's log, and none ever took an entry of an older epoch.
        const end = await until(`${said}: every node to hold the leader’s log`, async () => {
          const all = Object.values(await observer.statuses())
          return all.every((status) => status !== null && status.commitLsn === leader.commitLsn)
            ? (all as SingleLeaderStatus[])
            : undefined
        })
        for (const status of end) expect(status.stats.staleEpochAccepted, said).toBe(0)
      })
    }
})

const quorumSettings = {
  replicas: 3,
  writeQuorum: 2,
  readQuorum: 2,
  readRepair: 'blocking',
  sloppy: false,
  antiEntropyMs: 200,
  requestTimeoutMs: 500,
} as const

/**
 * N=3, W=2, R=2 with blocking read repair: strict on 3 nodes, one fault at a time (every node
 * a home replica of every key; anti-entropy alone must leave the files identical); and sloppy
 * on 5, two faults at a time (stand-ins keep hints for the home replicas they stood in for).
 */
const QUORUM_CASES = [
  { members: nodes, together: 1, sloppy: false },
  { members: ['n1', 'n2', 'n3', 'n4', 'n5'], together: 2, sloppy: true },
] as const

describe('quorum (N=3, W=2, R=2) node processes under random faults', () => {
  for (const { members, together, sloppy } of QUORUM_CASES)
    for (const seed of SEEDS) {
      const shape = `${sloppy ? 'sloppy' : 'strict'}, ${members.length} nodes, ${together} fault${together > 1 ? 's' : ''} at once`
      it(`${shape}, seed ${seed}: every acknowledged put stays readable, hints are delivered and the home replicas' files end identical`, {
        timeout: 120_000,
      }, async () => {
        const settings = { ...quorumSettings, sloppy }
        const live = await start('quorum', settings, members)
        const clientOptions = {
          nodes: live.urls(),
          refreshNodes: async () => live.urls(),
          requestTimeoutMs: 1_500,
          deadlineMs: 5_000,
        }
        const observer = new QuorumHttpClient(clientOptions)
        const statuses = () => Promise.all(members.map((node) => observer.status(node)))
        await until('every node to believe the others up', async () =>
          (await statuses()).every((status) => status !== null && status.up.length === members.length - 1)
            ? true
            : undefined,
        )
        const progress = new Progress()
        const acknowledged = new Map<string, JsonValue>()
        const attempted: string[] = []
        const ownReadsMissed: string[] = []
        const worker = async (name: string, stopped: () => boolean) => {
          const client = new QuorumHttpClient({ ...clientOptions, name })
          for (let n = 1; !stopped(); n++) {
            const key = `${name}-${n}`
            const value = `${name}.${n}`
            attempted.push(key)
            const put = await client.put(key, value)
            if (!put.ok) continue
            acknowledged.set(key, value)
            progress.ack()
            // W + R > N: a strict quorum's read after the put sees it. (A sloppy one's need
            // not: a stand-in may count toward W, and toward R.)
            if (sloppy) continue
            const got = await client.get(key)
            if (got.ok && !got.values.includes(value))
              ownReadsMissed.push(`${key} read ${JSON.stringify(got.values)}`)
          }
        }

        const script = await underFaults(
          seed,
          progress,
          (stopped) => ['c1', 'c2'].map((name) => worker(name, stopped)),
          together,
        )
        const said = `${shape}, seed ${seed}: ${script}`
        expect(progress.acknowledged, said).toBeGreaterThanOrEqual(PROGRESS * (2 * STEPS + 1))
        expect(ownReadsMissed, said).toEqual([])
        // Healed: hinted handoff empties every node's hints.
        await until(`${said}: every hint delivered`, async () =>
          (await statuses()).every((status) => status !== null && status.hints === 0) ? true : undefined,
        )
        for (const [key, value] of acknowledged) {
          const got = await observer.get(key)
          expect(got.ok && got.values.includes(value), `${said}: ${key} ${JSON.stringify(got)}`).toBe(true)
        }
        if (members.length === 3) {
          // Anti-entropy alone leaves each of the three (all home replicas of every key) with
          // every key: the same count on each.
          const settled = await until(`${said}: every key on every node`, async () => {
            const all = await statuses()
            const keys = all[0]?.keys
            return keys !== undefined && all.every((status) => status?.keys === keys)
              ? (all as QuorumStatus[])
              : undefined
          })
          // A put whose fate was open may have left its key too: at least every acknowledged one.
          expect(settled[0]?.keys, said).toBeGreaterThanOrEqual(acknowledged.size)
        } else {
          // Each key read from all three home replicas, repairing the ones that lack a version.
          for (const key of attempted) {
            const got = await observer.get(key, { r: 3, repair: 'blocking' })
            expect(got.ok, `${said}: ${key} ${JSON.stringify(got)}`).toBe(true)
          }
        }
        // Stopped, the SQLite files recover to the same versions of each key on its home
        // replicas, and to none of it elsewhere.
        const dir = scratch as string
        await live.stop()
        cluster = null
        const config = createQuorumConfig({ nodes: members, ...settings })
        const ring = createHashRing(config.nodes, config.vnodes)
        const held = new Map<string, Map<string, string>>()
        for (const node of members) {
          const storage = new SqliteNodeStorage<QuorumRecord>(join(dir, `${node}.sqlite`))
          try {
            const state = createQuorumMachine(node, config).recover(await storage.load(), Date.now())
            for (const [key, versions] of state.store) {
              const byNode = held.get(key) ?? new Map<string, string>()
              byNode.set(node, JSON.stringify(versions.map((v) => v.dot).sort()))
              held.set(key, byNode)
            }
          } finally {
            storage.close()
          }
        }
        const wrong: string[] = []
        for (const [key, byNode] of held) {
          const home = preferenceList(ring, key, config.replicas)
          const homeCopies = home.map((node) => byNode.get(node) ?? 'none')
          if (
            new Set(homeCopies).size !== 1 ||
            [...byNode.keys()].some((node) => !home.includes(node as never))
          )
            wrong.push(`${key}: ${JSON.stringify(Object.fromEntries(byNode))} (home ${home.join(', ')})`)
        }
        expect(wrong, said).toEqual([])
        for (const key of acknowledged.keys()) expect(held.has(key), `${said}: ${key}`).toBe(true)
      })
    }
})
