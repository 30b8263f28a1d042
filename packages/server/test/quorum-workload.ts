import { createPrng, type LinkFaults, type Prng } from '@chorus/testkit'
import { MemoryNodeStorage } from '../src/memory-node-storage.js'
import type { QuorumConfigInput } from '../src/quorum/config.js'
import type { QuorumRecord } from '../src/quorum/messages.js'
import { type QuorumClient, type QuorumReport, QuorumSim } from '../src/sim/quorum-sim.js'
import type { AppendResult } from '../src/storage.js'

/** Options of one seeded quorum run. */
export interface QuorumRunOptions {
  readonly seed: number
  readonly config: Omit<QuorumConfigInput, 'nodes'>
  /** Link faults throughout the run (default: a clean 5 ms network). */
  readonly links?: Partial<LinkFaults>
  /** Crash and restart nodes, one at a time, while clients work. */
  readonly crashes?: boolean
  /** Virtual ms during which clients issue operations (default 3000). */
  readonly durationMs?: number
  readonly clients?: number
  readonly keys?: number
  /** Virtual ms to run after the workload, with every fault ended (default 2000). */
  readonly settleMs?: number
  /**
   * Chance that a node's append of new versions fails (default 0): the node rebuilds itself
   * from its storage, as a process that died after its stores left and before its own commit.
   */
  readonly failingCommits?: number
}

/**
 * A simulated disk whose appends of versions fail when `fails` says so: what a node sent
 * ahead of such an append is out, and what it appended is not.
 */
export class FailingStorage extends MemoryNodeStorage<QuorumRecord> {
  fails: (records: readonly QuorumRecord[]) => boolean

  constructor(fails: (records: readonly QuorumRecord[]) => boolean = () => false) {
    super()
    this.fails = fails
  }

  override async append(
    records: readonly QuorumRecord[],
    epoch: number | null,
    replace = false,
  ): Promise<AppendResult> {
    if (this.fails(records)) return { ok: false, reason: 'failed', message: 'the commit failed (test)' }
    return super.append(records, epoch, replace)
  }
}

/** What one run produced. */
export interface QuorumRun {
  readonly sim: QuorumSim
  readonly report: QuorumReport
  readonly actions: readonly string[]
}

/** Waits `ms` of virtual time. */
export function pause(sim: QuorumSim, ms: number): Promise<void> {
  return new Promise((resolve) => sim.scheduler.after(ms, resolve))
}

/**
 * One seeded run: each client picks a coordinator at random for every request, writes unique
 * values and reads; optionally nodes crash and restart one at a time. Then every fault ends
 * and the cluster runs on for `settleMs`.
 */
export async function runQuorum(options: QuorumRunOptions): Promise<QuorumRun> {
  const plan = createPrng(`quorum:${options.seed}`)
  const failing = options.failingCommits ?? 0
  const disks = plan.fork('disks')
  const sim = new QuorumSim({
    seed: options.seed,
    config: options.config,
    clientTimeoutMs: 600,
    ...(options.links === undefined ? {} : { faults: options.links }),
    ...(failing === 0
      ? {}
      : {
          storage: () =>
            new FailingStorage(
              (records) => records.some((record) => record.type === 'version') && disks.bool(failing),
            ),
        }),
  })
  await sim.start()
  const durationMs = options.durationMs ?? 3_000
  const stopAt = sim.network.now() + durationMs
  const actions: string[] = []
  const loops = Array.from({ length: options.clients ?? 3 }, (_, i) =>
    clientLoop(sim, sim.client(`c${i + 1}`), plan.fork(`client${i}`), stopAt, options.keys ?? 3),
  )
  const script =
    options.crashes === true ? crashScript(sim, plan.fork('faults'), stopAt, actions) : Promise.resolve()
  await sim.run(durationMs)
  await sim.until(script)
  sim.heal()
  await sim.until(Promise.all(loops))
  await sim.run(options.settleMs ?? 2_000)
  return { sim, report: sim.report(), actions }
}

async function clientLoop(sim: QuorumSim, client: QuorumClient, prng: Prng, stopAt: number, keys: number) {
  let written = 0
  while (sim.network.now() < stopAt) {
    const node = prng.pick(sim.config.nodes)
    const key = `k${prng.int(1, keys)}`
    if (prng.bool(0.5)) await client.put(node, key, `${client.name}:${++written}`)
    else await client.get(node, key)
    await pause(sim, prng.int(1, 15))
  }
}

async function crashScript(sim: QuorumSim, prng: Prng, stopAt: number, actions: string[]): Promise<void> {
  await pause(sim, prng.int(100, 400))
  while (sim.network.now() < stopAt - 200) {
    const victim = prng.pick(sim.config.nodes)
    const lasts = prng.int(200, 800)
    actions.push(`${sim.network.now()}: crash ${victim} for ${lasts}`)
    sim.crash(victim)
    await pause(sim, lasts)
    await sim.restart(victim)
    await pause(sim, prng.int(100, 400))
  }
}
