import { createPrng, type LinkFaults, type Prng } from '@chorus/testkit'
import {
  type SingleLeaderClient,
  type SingleLeaderReport,
  SingleLeaderSim,
} from '../src/sim/single-leader-sim.js'
import type { ReplicationMode, SingleLeaderConfigInput } from '../src/single-leader/config.js'

/** Which faults a run injects while its clients work. */
export type FaultScript =
  /** A clean network: nothing fails. */
  | 'none'
  /** Loss, duplication and reordering throughout; partitions, pauses and crashes one at a time. */
  | 'chaos'
  /**
   * The leader is cut off from its followers (clients still reach it), keeps taking writes
   * for a while, then crashes; it restarts once a new leader is in place.
   */
  | 'leader-crash'
  /**
   * The leader is cut off from its followers for 0.8–1.5 s (clients still reach every node),
   * then healed: it lives on beside the leader the followers elect (a semi-sync leader keeps
   * acknowledging, on its own disk, and answering reads).
   */
  | 'leader-cut'
  /**
   * The leader, one follower and every client are cut off from the other members for 1.5 s,
   * then healed: the minority side keeps the clients, the majority side may elect.
   */
  | 'minority-leader'
  /**
   * One link at a time is cut, one way or both, between two nodes drawn at random (two
   * followers, often: in a chain, neighbours that both still answer the leader), 0.6–2 s.
   */
  | 'link-cuts'

/** Options of one seeded single-leader run. */
export interface SingleLeaderRunOptions {
  readonly seed: number
  readonly replication: ReplicationMode
  readonly faults: FaultScript
  /** Virtual ms during which clients issue operations (default 3000). */
  readonly durationMs?: number
  readonly clients?: number
  readonly keys?: number
  /** Member count (default 3). */
  readonly nodes?: number
  /** Message loss on every link under `chaos` (default 0.05). */
  readonly loss?: number
  /** Cluster settings other than the replication mode. */
  readonly config?: Omit<SingleLeaderConfigInput, 'nodes' | 'replication'>
  /**
   * Beside each client, one that writes keys of its own and reads each back at once from a
   * node drawn at random, on the replica route with its token (default false: the runs of
   * earlier rounds, draw for draw). A write acknowledged `replicated` read back as anything
   * else is counted in `ownReadsMissed`.
   */
  readonly ownReads?: boolean
}

/** What one run produced. */
export interface SingleLeaderRun {
  readonly sim: SingleLeaderSim
  readonly report: SingleLeaderReport
  /** The faults injected, with their virtual times, for a failure message. */
  readonly actions: readonly string[]
  /** Own writes acknowledged `replicated` that a replica read with the token did not show. */
  readonly ownReadsMissed: readonly string[]
}

const chaosLinks: Partial<LinkFaults> = {
  latencyMs: 3,
  jitterMs: 4,
  loss: 0.05,
  duplicate: 0.05,
  reorder: 0.05,
}

/** Waits `ms` of virtual time. */
export function sleep(sim: SingleLeaderSim, ms: number): Promise<void> {
  return new Promise((resolve) => sim.scheduler.after(ms, resolve))
}

/**
 * One seeded run: clients write unique values and read from the leader (linearizable reads)
 * while the fault script runs; then every fault ends and the cluster settles for 3 s.
 */
export async function runSingleLeader(options: SingleLeaderRunOptions): Promise<SingleLeaderRun> {
  const durationMs = options.durationMs ?? 3_000
  const sim = new SingleLeaderSim({
    seed: options.seed,
    config: { replication: options.replication, ...options.config },
    clientTimeoutMs: 300,
    nodes: Array.from({ length: options.nodes ?? 3 }, (_, i) => `n${i + 1}`),
    ...(options.faults === 'chaos' ? { faults: { ...chaosLinks, loss: options.loss ?? 0.05 } } : {}),
  })
  await sim.start()
  await sim.awaitLeader()
  const plan = createPrng(`plan:${options.seed}`)
  const stopAt = sim.network.now() + durationMs
  const actions: string[] = []
  const loops = Array.from({ length: options.clients ?? 3 }, (_, i) =>
    clientLoop(sim, sim.client(`c${i + 1}`), plan.fork(`client${i}`), stopAt, options.keys ?? 3),
  )
  const ownReadsMissed: string[] = []
  if (options.ownReads === true) {
    for (let i = 0; i < (options.clients ?? 3); i++) {
      loops.push(ownReadLoop(sim, sim.client(`o${i + 1}`), plan.fork(`own${i}`), stopAt, ownReadsMissed))
    }
  }
  const script =
    options.faults === 'chaos'
      ? chaosScript(sim, plan.fork('faults'), stopAt, actions)
      : options.faults === 'leader-crash'
        ? leaderCrashScript(sim, plan.fork('faults'), actions)
        : options.faults === 'minority-leader'
          ? minorityLeaderScript(sim, plan.fork('faults'), actions)
          : options.faults === 'leader-cut'
            ? leaderCutScript(sim, plan.fork('faults'), actions)
            : options.faults === 'link-cuts'
              ? linkCutScript(sim, plan.fork('faults'), stopAt, actions)
              : Promise.resolve()
  await sim.run(durationMs)
  await sim.until(script)
  sim.heal()
  for (const node of sim.config.nodes) {
    if (!sim.network.isUp(node)) await sim.restart(node)
  }
  await sim.run(3_000)
  await Promise.all(loops)
  return { sim, report: sim.report(), actions, ownReadsMissed }
}

/** Writes keys of its own and reads each back from a random node with the client's token. */
async function ownReadLoop(
  sim: SingleLeaderSim,
  client: SingleLeaderClient,
  prng: Prng,
  stopAt: number,
  missed: string[],
): Promise<void> {
  for (let n = 1; sim.network.now() < stopAt; n++) {
    const key = `${client.name}-${n}`
    const written = await client.write(key, n)
    if (written.ok && written.durability === 'replicated') {
      const node = prng.pick(sim.config.nodes)
      const read = await client.read(key, { node, consistency: 'replica', waitMs: 50 })
      if (read.ok && read.value !== n) missed.push(`${key} read ${String(read.value)} at ${node}`)
    }
    await sleep(sim, prng.int(1, 15))
  }
}

async function clientLoop(
  sim: SingleLeaderSim,
  client: SingleLeaderClient,
  prng: Prng,
  stopAt: number,
  keys: number,
): Promise<void> {
  let written = 0
  while (sim.network.now() < stopAt) {
    const key = `k${prng.int(1, keys)}`
    if (prng.bool(0.5)) await client.write(key, `${client.name}:${++written}`)
    else await client.read(key)
    await sleep(sim, prng.int(1, 15))
  }
}

/**
 * Runs `step` over and over, from 200–500 ms in until 200 ms before `stopAt`, 100–500 ms apart
 * (the draws in that order, as the fault scripts always made them).
 */
async function faultLoop(
  sim: SingleLeaderSim,
  prng: Prng,
  stopAt: number,
  step: () => Promise<void>,
): Promise<void> {
  await sleep(sim, prng.int(200, 500))
  while (sim.network.now() < stopAt - 200) {
    await step()
    await sleep(sim, prng.int(100, 500))
  }
}

function chaosScript(sim: SingleLeaderSim, prng: Prng, stopAt: number, actions: string[]): Promise<void> {
  const nodes = sim.config.nodes
  return faultLoop(sim, prng, stopAt, async () => {
    const leader = sim.leader() ?? prng.pick(nodes)
    const roll = prng.next()
    const at = sim.network.now()
    const lasts = prng.int(200, 900)
    if (roll < 0.35) {
      actions.push(`${at}: isolate ${leader} for ${lasts}`)
      sim.partition([[leader], [...nodes.filter((node) => node !== leader), ...clientsOf(sim)]])
      await sleep(sim, lasts)
      sim.heal()
    } else if (roll < 0.65) {
      actions.push(`${at}: pause ${leader} for ${lasts}`)
      sim.pause(leader, lasts)
      await sleep(sim, lasts)
    } else {
      const victim = prng.bool(0.6) ? leader : prng.pick(nodes)
      actions.push(`${at}: crash ${victim} for ${lasts}`)
      sim.crash(victim)
      await sleep(sim, lasts)
      await sim.restart(victim)
    }
  })
}

function linkCutScript(sim: SingleLeaderSim, prng: Prng, stopAt: number, actions: string[]): Promise<void> {
  const nodes = sim.config.nodes
  return faultLoop(sim, prng, stopAt, async () => {
    const from = prng.pick(nodes)
    const to = prng.pick(nodes.filter((node) => node !== from))
    const both = prng.bool(0.5)
    const lasts = prng.int(600, 2_000)
    actions.push(`${sim.network.now()}: cut ${from} → ${to}${both ? ' both ways' : ''} for ${lasts}`)
    sim.network.cut(from, to)
    if (both) sim.network.cut(to, from)
    await sleep(sim, lasts)
    sim.heal()
  })
}

async function leaderCrashScript(sim: SingleLeaderSim, prng: Prng, actions: string[]): Promise<void> {
  await sleep(sim, prng.int(600, 1_000))
  const leader = cutLeaderOff(sim)
  if (leader === undefined) return
  const lasts = prng.int(50, 150)
  actions.push(`${sim.network.now()}: cut ${leader} off its followers, crash it ${lasts} ms later`)
  await sleep(sim, lasts)
  sim.crash(leader)
  sim.heal()
  await sleep(sim, 1_000)
  await sim.restart(leader)
}

/** Cuts the leader off its followers both ways (clients still reach it); returns it, if any. */
function cutLeaderOff(sim: SingleLeaderSim): string | undefined {
  const leader = sim.leader()
  if (leader === undefined) return undefined
  for (const node of sim.config.nodes) {
    if (node === leader) continue
    sim.network.cut(leader, node)
    sim.network.cut(node, leader)
  }
  return leader
}

async function leaderCutScript(sim: SingleLeaderSim, prng: Prng, actions: string[]): Promise<void> {
  await sleep(sim, prng.int(600, 1_000))
  const leader = cutLeaderOff(sim)
  if (leader === undefined) return
  const lasts = prng.int(800, 1_500)
  actions.push(`${sim.network.now()}: cut ${leader} off its followers for ${lasts} ms`)
  await sleep(sim, lasts)
  sim.heal()
}

async function minorityLeaderScript(sim: SingleLeaderSim, prng: Prng, actions: string[]): Promise<void> {
  await sleep(sim, prng.int(600, 1_000))
  const leader = sim.leader()
  if (leader === undefined) return
  const nodes = sim.config.nodes
  const buddy = nodes[(nodes.indexOf(leader) + 1) % nodes.length] as string
  const majority = nodes.filter((node) => node !== leader && node !== buddy)
  actions.push(`${sim.network.now()}: cut ${leader}, ${buddy} and the clients off ${majority.join(', ')}`)
  sim.partition([[leader, buddy, ...clientsOf(sim)], majority])
  majoritySideLeaders.set(sim, [])
  const watch = async () => {
    for (let t = 0; t < 1_500; t += 50) {
      const elected = majority.find((node) => sim.host(node).state?.role === 'leader')
      if (elected !== undefined) majoritySideLeaders.get(sim)?.push(elected)
      await sleep(sim, 50)
    }
  }
  await watch()
  sim.heal()
}

/** Leaders seen on the majority side during a `minority-leader` split, per run. */
export const majoritySideLeaders = new WeakMap<SingleLeaderSim, string[]>()

function clientsOf(sim: SingleLeaderSim): string[] {
  return sim.network.nodes().filter((name) => !sim.config.nodes.includes(name as never))
}
