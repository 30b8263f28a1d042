import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkLinearizable } from '@chorus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LoopbackCluster } from '../src/node/loopback-cluster.js'
import { HistoryRecorder } from '../src/sim/sim-client.js'

interface Status {
  readonly node: string
  readonly role: string
  readonly epoch: number
  readonly leader: string | null
  readonly lastLsn: number
  readonly commitLsn: number
  readonly stats: { readonly staleEpochAccepted: number; readonly staleEpochRefused: number }
}

const nodes = ['n1', 'n2', 'n3']

/**
 * The real-time order of operations, for the linearizability checker: one process records
 * every call and return, so a counter ordered by when they happen is enough (no wall clock).
 */
let moment = 0
const now = () => ++moment

/**
 * Keys every client writes and reads (for linearizability), per step of the fault script. A
 * write cut off by a kill or a freeze stays open in the history; spreading them over more keys,
 * and moving to fresh keys at every step, keeps each key's history short however fast the
 * cluster runs, so the search ends in a verdict.
 */
const SHARED_KEYS = 16

/** A shared key's name: `p<step>-k<slot>-<generation>`. */
const SHARED_KEY = /^p\d+-k\d+-\d+$/

/** Lets other work of this process run (sockets, timers) before polling again. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Polls `check` until it holds; `attempts` bounds it (each attempt is a round trip or a turn). */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  attempts = 20_000,
): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check()) return
    await nextTurn()
  }
  throw new Error(`gave up waiting for ${what}`)
}
const scratch = mkdtempSync(join(tmpdir(), 'chorus-loopback-faults-'))
let cluster: LoopbackCluster

beforeAll(async () => {
  cluster = await LoopbackCluster.start({
    design: 'single-leader',
    nodes,
    settings: { replication: { mode: 'sync' }, heartbeatMs: 40, electionTimeoutMs: 400, leaseMs: 250 },
    dataDir: scratch,
  })
}, 30_000)

afterAll(async () => {
  await cluster?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

/** Every running node's status; a node that does not answer is left out. */
async function statuses(timeoutMs = 1_000): Promise<Status[]> {
  const answers = await Promise.all(
    cluster.running().map((id) => cluster.status(id, timeoutMs).catch(() => null)),
  )
  return answers.flatMap((answer) => {
    const status = (answer?.body as { status?: Status } | undefined)?.status
    return status === undefined ? [] : [status]
  })
}

/**
 * Records every operation's real-time order (one counter in this process), the epochs of the
 * leaders seen so far, and the writes acknowledged with the epoch that acknowledged them.
 */
class Workload {
  readonly recorder = new HistoryRecorder()
  readonly acknowledged: { key: string; value: string; epoch: number; invokedAfterEpoch: number }[] = []
  /** The highest epoch any node was seen leading, as of now. */
  highestLeaderEpoch = 0
  staleEpochAccepted = 0
  private leader: string = nodes[0] as string
  private stopped = false
  private readonly waiters: { readonly target: number; readonly resolve: () => void }[] = []
  /** The fault script's step: shared keys are fresh at every step. */
  step = 0
  /** Every shared key used so far. */
  readonly sharedKeys = new Set<string>()
  /** Per shared slot, how many of its keys were retired (see {@link retire}). */
  private readonly retired = new Map<number, number>()

  /** The key of shared slot `slot` now: `p<step>-k<slot>-<generation>`. */
  sharedKey(slot: number): string {
    const key = `p${this.step}-k${slot}-${this.retired.get(slot) ?? 0}`
    this.sharedKeys.add(key)
    return key
  }

  /**
   * A write whose fate is open may take effect at any later moment, which multiplies the
   * checker's search for every later operation on its key: after one, its slot moves to a
   * fresh key.
   */
  retire(key: string): void {
    const slot = Number(/-k(\d+)-/.exec(key)?.[1])
    this.retired.set(slot, (this.retired.get(slot) ?? 0) + 1)
  }

  /** Resolves once `target` writes in all have been acknowledged. */
  acknowledgedReach(target: number): Promise<void> {
    if (this.acknowledged.length >= target) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push({ target, resolve }))
  }

  observe(all: readonly Status[]): void {
    for (const status of all) {
      if (status.role === 'leader') this.highestLeaderEpoch = Math.max(this.highestLeaderEpoch, status.epoch)
      this.staleEpochAccepted += status.stats.staleEpochAccepted
    }
  }

  stop(): void {
    this.stopped = true
  }

  async client(name: string): Promise<void> {
    for (let n = 1; !this.stopped; n++) {
      // Shared keys (linearizability) and a key of its own per write (every acknowledged write
      // must still be readable at the end).
      const shared = this.sharedKey(n % SHARED_KEYS)
      await this.write(name, n % 2 === 0 ? shared : `${name}-${n}`, `${name}.${n}`)
      await this.read(name, shared)
    }
  }

  async write(name: string, key: string, value: string): Promise<void> {
    const epochBefore = this.highestLeaderEpoch
    const handle = this.recorder.invoke(name, key, 'write', value, now())
    const target = this.leader
    const body = await this.send(target, { type: 'write', id: `${name}-${key}-${value}`, key, value })
    if (body?.type === 'write-ok') {
      this.recorder.complete(handle, 'ok', now())
      this.acknowledged.push({ key, value, epoch: body.epoch as number, invokedAfterEpoch: epochBefore })
      for (const waiter of this.waiters.filter((w) => w.target <= this.acknowledged.length)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
      return
    }
    this.follow(target, body)
    // A refusal that says nothing was written is a failure; anything else (deposed, timeout,
    // a connection cut by a kill) leaves the write's fate open.
    const failed = body?.type === 'rejected' && body.maybeApplied === false
    this.recorder.complete(handle, failed ? 'failed' : 'unknown', now())
    if (!failed && SHARED_KEY.test(key)) this.retire(key)
  }

  async read(name: string, key: string): Promise<void> {
    const handle = this.recorder.invoke(name, key, 'read', undefined, now())
    const target = this.leader
    const body = await this.send(target, {
      type: 'read',
      id: `${name}-r-${handle}`,
      key,
      consistency: 'leader',
      minLsn: 0,
      waitMs: 0,
    })
    if (body?.type === 'read-ok') {
      this.recorder.complete(handle, 'ok', now(), (body.value as string | null) ?? undefined)
      return
    }
    this.follow(target, body)
    this.recorder.complete(handle, 'failed', now())
  }

  private async send(node: string, request: object): Promise<Record<string, unknown> | null> {
    if (!cluster.running().includes(node)) {
      await nextTurn()
      return null
    }
    try {
      const answer = await cluster.request(node, request, 1_500)
      return answer.status === 200 ? (answer.body as Record<string, unknown>) : null
    } catch {
      return null
    }
  }

  private follow(asked: string, body: Record<string, unknown> | null): void {
    const hint = body?.leader
    if (typeof hint === 'string' && hint !== asked && cluster.running().includes(hint)) this.leader = hint
    else this.leader = nodes[(nodes.indexOf(asked) + 1) % nodes.length] as string
  }
}

/** Waits until every running node answers and agrees on one leader and epoch. */
async function awaitStableLeader(workload: Workload): Promise<Status> {
  let stable: Status | undefined
  await until(
    'a stable leader',
    async () => {
      const all = await statuses()
      workload.observe(all)
      const leader = all.find((status) => status.role === 'leader')
      stable =
        leader !== undefined &&
        all.length === cluster.running().length &&
        all.every((status) => status.leader === leader.node && status.epoch === leader.epoch)
          ? leader
          : undefined
      return stable !== undefined
    },
    2_000,
  )
  return stable as Status
}

/**
 * Waits until a majority of the nodes that answer follow a leader of an epoch after `epoch`:
 * the cluster moved on without the node that led `epoch` (dead or frozen).
 */
async function awaitLeaderAfter(workload: Workload, epoch: number): Promise<Status> {
  let found: Status | undefined
  await until(
    `a leader after epoch ${epoch}`,
    async () => {
      const all = await statuses()
      workload.observe(all)
      const leader = all.find((status) => status.role === 'leader' && status.epoch > epoch)
      found =
        leader !== undefined &&
        all.filter((status) => status.leader === leader.node && status.epoch === leader.epoch).length * 2 >
          nodes.length
          ? leader
          : undefined
      return found !== undefined
    },
    2_000,
  )
  return found as Status
}

/**
 * Waits until `count` more writes were acknowledged: the cluster makes progress. It waits on
 * the acknowledgements themselves (the test's timeout bounds it), not on a count of turns of
 * the event loop, which pass faster or slower with the machine.
 */
async function awaitProgress(workload: Workload, count: number): Promise<void> {
  workload.step += 1
  await workload.acknowledgedReach(workload.acknowledged.length + count)
}

/** Polls statuses until `done` settles, so the workload always knows the newest leader epoch. */
async function watch(workload: Workload, done: Promise<unknown>): Promise<void> {
  let over = false
  void done.finally(() => {
    over = true
  })
  while (!over) {
    workload.observe(await statuses())
    await nextTurn()
  }
}

describe('sync single-leader processes under kill -9 and zombie pauses', () => {
  it('loses no acknowledged write, stays linearizable, and accepts nothing from a stale epoch', {
    timeout: 45_000,
  }, async () => {
    const workload = new Workload()
    let leader = await awaitStableLeader(workload)
    const clients = ['c1', 'c2', 'c3', 'c4'].map((name) => workload.client(name))
    // Each step waits for what it needs to have happened, not for a span of time.
    const script = (async () => {
      await awaitProgress(workload, 15)
      // 1. The leader dies with SIGKILL; the others elect a successor and carry on; the dead
      //    node comes back from its file.
      await cluster.kill(leader.node, 'SIGKILL')
      const killed = leader
      leader = await awaitLeaderAfter(workload, killed.epoch)
      await awaitProgress(workload, 10)
      await cluster.restart(killed.node)
      leader = await awaitStableLeader(workload)
      await awaitProgress(workload, 10)
      // 2. The leader freezes (SIGSTOP) with client requests queued at it; once the others
      //    have elected a newer leader and committed under it, it wakes up (SIGCONT) as a zombie.
      const zombie = leader
      cluster.node(zombie.node).child.kill('SIGSTOP')
      leader = await awaitLeaderAfter(workload, zombie.epoch)
      await awaitProgress(workload, 10)
      cluster.node(zombie.node).child.kill('SIGCONT')
      leader = await awaitStableLeader(workload)
      await awaitProgress(workload, 10)
      // 3. Again a kill -9, this time of the leader elected after the zombie.
      await cluster.kill(leader.node, 'SIGKILL')
      const second = leader
      await awaitLeaderAfter(workload, second.epoch)
      await awaitProgress(workload, 10)
      await cluster.restart(second.node)
      await awaitStableLeader(workload)
      await awaitProgress(workload, 10)
    })()
    await Promise.all([script, watch(workload, script)])
    workload.stop()
    await Promise.all(clients)
    const final = await awaitStableLeader(workload)

    // Three leaderships at least, each of a newer epoch.
    expect(final.epoch).toBeGreaterThanOrEqual(3)
    expect(workload.acknowledged.length).toBeGreaterThan(50)

    // Every acknowledged write on a key of its own is still there, read at the final leader.
    const own = workload.acknowledged.filter((write) => !SHARED_KEY.test(write.key))
    expect(own.length).toBeGreaterThan(20)
    for (const write of own) {
      const answer = await cluster.request(final.node, {
        type: 'read',
        id: `final-${write.key}`,
        key: write.key,
        consistency: 'leader',
        minLsn: 0,
        waitMs: 0,
      })
      expect(answer.body, write.key).toMatchObject({ type: 'read-ok', value: write.value })
    }
    // Final leader reads of the shared keys join the history.
    for (const key of workload.sharedKeys) await workload.read('final', key)

    // Pauses leave writes in flight for a long time, which widens the search: give it room,
    // so a busy machine's longer overlaps end in a verdict rather than "inconclusive".
    const verdict = checkLinearizable(workload.recorder.history(), { maxSteps: 20_000_000 })
    expect(verdict.violations).toEqual([])
    expect(verdict.inconclusive).toEqual([])
    expect(verdict.ok).toBe(true)

    // No write was acknowledged by a leader of an older epoch than one already seen leading
    // when the write was sent: a zombie never committed.
    const stale = workload.acknowledged.filter((write) => write.epoch < write.invokedAfterEpoch)
    expect(stale).toEqual([])
    // No node ever took entries from an older epoch (polled throughout), and every node ends
    // on the same log.
    expect(workload.staleEpochAccepted).toBe(0)
    // On a busy machine a status request can miss its deadline; ask until every node answered.
    let end: Status[] = []
    await until(
      'every node to answer',
      async () => {
        end = await statuses(3_000)
        return end.length === nodes.length
      },
      5,
    )
    expect(end).toHaveLength(nodes.length)
    for (const status of end) {
      expect(status, status.node).toMatchObject({ epoch: final.epoch, leader: final.node })
      expect(status.stats.staleEpochAccepted, status.node).toBe(0)
    }
    const stats = await Promise.all(
      nodes.map(
        async (id) =>
          (await cluster.call(id, 'GET', '/control/stats')).body as {
            runtime: { groupCommits: number }
          },
      ),
    )
    // The clients' concurrent writes were committed in groups somewhere.
    expect(stats.some((s) => s.runtime.groupCommits > 0)).toBe(true)
  })
})
