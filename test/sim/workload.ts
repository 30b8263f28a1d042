import {
  type Change,
  ErrorCode,
  isChorusError,
  type JsonObject,
  type ReplicaEngine,
  type ResolverKind,
  type SpaceId,
  type WriteIntent,
} from '@chorus/core'
import {
  checkAcknowledgedWrites,
  createSimCluster,
  type Prng,
  type SimCluster,
  sweepSeeds,
} from '@chorus/testkit'

/** How hard a simulated run is: the ranges each seed draws from. */
export interface Severity {
  readonly maxLoss: number
  readonly maxDuplicate: number
  readonly maxReorder: number
  readonly maxSkewMs: number
}

/** The issue's bar: loss ≤ 30 %, duplication ≤ 50 %, reordering, skew ±10 minutes. */
export const FULL_SEVERITY: Severity = {
  maxLoss: 0.3,
  maxDuplicate: 0.5,
  maxReorder: 0.3,
  maxSkewMs: 600_000,
}

const COLLECTION = 'notes'
const FIELDS = ['title', 'body', 'done', 'tags'] as const

function randomValue(prng: Prng, author: string): JsonObject {
  const value: Record<string, string | boolean | string[]> = {}
  for (const field of FIELDS) {
    if (!prng.bool(0.75)) continue
    if (field === 'done') value[field] = prng.bool()
    else if (field === 'tags') value[field] = [author, `t${prng.int(0, 3)}`]
    else value[field] = `${field} by ${author} #${prng.int(0, 999)}`
  }
  return value
}

function randomIntent(prng: Prng, author: string): WriteIntent {
  const roll = prng.next()
  if (roll < 0.45) return { type: 'put', value: randomValue(prng, author) }
  if (roll < 0.9) {
    const fields = randomValue(prng, author)
    return {
      type: 'patch',
      fields: Object.keys(fields).length > 0 ? fields : { title: `patched by ${author}` },
    }
  }
  return { type: 'delete' }
}

/** What a run did, for the failure message and for tests that look closer. */
export interface RunReport {
  readonly seed: number
  readonly resolver: ResolverKind
  readonly replicas: number
  readonly actions: string[]
  readonly settled: boolean
  readonly problems: readonly string[]
  readonly cluster: SimCluster
  /** Whether the hubs were linked, each over its own store (see `runScenario`'s `topology`). */
  readonly linked: boolean
  /** Whether connections were a WebSocket's (see `runScenario`'s `topology`). */
  readonly reliable: boolean
  /** Records per snapshot page, when the run drew a small number (else the protocol's). */
  readonly snapshotPage: number | undefined
  /** Asks of where the hub's log ends that were answered and checked (see `Barrier`). */
  readonly barriersChecked: number
}

/**
 * One seeded run: replicas write on overlapping records while the network drops,
 * duplicates, reorders and partitions, nodes crash and restart, a replica may be wiped and
 * the hub's log compacted; then every fault ends and the cluster must settle and pass
 * every checker.
 */
export async function runScenario(
  seed: number,
  resolver: ResolverKind,
  severity = FULL_SEVERITY,
  topology: {
    readonly linked?: boolean
    readonly hubs?: number
    readonly pings?: boolean
    /**
     * Connections as a WebSocket's (`SimClusterOptions.reliable`): in order, whole, or broken,
     * with the sessions speaking `resend` and `resume`, as `@chorus/client` and the relay do.
     * A third of such runs have snapshots of one to three records a page, so that a replica
     * reads most snapshots over several pages and a break can cut one part way.
     */
    readonly reliable?: boolean
  } = {},
): Promise<RunReport> {
  const plan = (await import('@chorus/testkit')).createPrng(`${resolver}:${seed}`)
  const replicas = plan.int(3, 8)
  // A quarter of the runs have a hub that reads frames of a few KiB, so replicas size their
  // uploads to what it names (drawn apart from `plan`, as the restores are).
  const framePlan = (await import('@chorus/testkit')).createPrng(`frames:${resolver}:${seed}`)
  // Half the runs make one or two replicas two instances over one store, as two browser tabs
  // share one database; half the writes there go to the instance without the connection,
  // running on while the network delivers to the other (drawn apart from `plan`).
  const twinPlan = (await import('@chorus/testkit')).createPrng(`twins:${resolver}:${seed}`)
  const twins = twinPlan.bool(1 / 2) ? twinPlan.int(1, 2) : 0
  // A third of the runs have two hubs over one store, as two relays share one PostgreSQL
  // database: replicas connect to either, and each hub hears of the other's appends late.
  const hubPlan = (await import('@chorus/testkit')).createPrng(`hubs:${resolver}:${seed}`)
  // Or, linked, two or three hubs each over a store of its own, linked in a chain over the
  // network as relays linked with --link are; replicas connect to either.
  const linked = topology.linked === true
  // A fixed count (`topology.hubs`, or SIM_HUBS) draws nothing, so a seed replays the same.
  const fixedHubs =
    topology.hubs ?? (process.env.SIM_HUBS !== undefined ? Number(process.env.SIM_HUBS) : undefined)
  const hubs = fixedHubs !== undefined ? fixedHubs : linked ? hubPlan.int(2, 3) : hubPlan.bool(1 / 3) ? 2 : 1
  const reliable = topology.reliable === true
  // Over WebSocket-like connections, a third of the runs read snapshots over pages of one to
  // three records (drawn apart from `plan`, as the restores are).
  const pagePlan = (await import('@chorus/testkit')).createPrng(`pages:${resolver}:${seed}`)
  const snapshotPage = reliable && pagePlan.bool(1 / 3) ? pagePlan.int(1, 3) : undefined
  // And a third of them slow links, a few bytes a ms, so that a snapshot or a batch takes a
  // while to arrive and a break can fall in the middle of it.
  const bytesPerMs = reliable && pagePlan.bool(1 / 3) ? pagePlan.int(1, 20) : 0
  // And a third of them hubs that stop reading more to send to a connection with a few KiB on
  // their way to it (`sendBuffer`), until those arrive, as the relay does for a slow reader.
  const sendBuffer = reliable && pagePlan.bool(1 / 3) ? pagePlan.int(1, 8) * 1024 : undefined
  const hubMaxFrameBytes =
    process.env.SMALL_FRAMES === '1' || framePlan.bool(1 / 4) ? framePlan.int(4, 16) * 1024 : undefined
  const cluster = await createSimCluster({
    seed,
    replicas,
    resolvers: { [COLLECTION]: resolver },
    ...(hubMaxFrameBytes === undefined ? {} : { hubMaxFrameBytes }),
    twins,
    hubs,
    linked,
    reliable,
    ...(snapshotPage === undefined ? {} : { snapshotPage }),
    ...(sendBuffer === undefined ? {} : { sendBuffer }),
    maxSkewMs: severity.maxSkewMs,
    faults: {
      latencyMs: plan.int(1, 40),
      jitterMs: plan.int(0, 40),
      loss: plan.next() * severity.maxLoss,
      duplicate: plan.next() * severity.maxDuplicate,
      reorder: plan.next() * severity.maxReorder,
      bytesPerMs,
    },
  })
  const names = cluster.names()
  const hubNames = cluster.hubNames()
  const ids = Array.from({ length: plan.int(3, 8) }, (_, i) => `note-${i}`)
  const actions: string[] = []
  const phases = plan.int(6, 14)
  let wiped = false
  // A third of the runs back the hub up after one phase and restore it after a later one
  // (drawn apart from `plan`, so each seed's other actions are those it always had).
  const restorePlan = (await import('@chorus/testkit')).createPrng(`restore:${resolver}:${seed}`)
  const backupAfter = restorePlan.bool(1 / 3) ? restorePlan.int(0, phases - 2) : -1
  const restoreAfter = backupAfter < 0 ? -1 : restorePlan.int(backupAfter + 1, phases - 1)
  let backup: ReturnType<SimCluster['backupHub']> | null = null
  // Half the compactions also collect the deletions at or below the new floor, and the hub
  // tells the replicas (drawn apart from `plan`, as the restores are).
  const collectPlan = (await import('@chorus/testkit')).createPrng(`collect:${resolver}:${seed}`)
  // A replica wiped after the backup could never send again what the restore takes from the
  // hub: its writes would stay only on the replicas that had them (a documented limit, see
  // docs/PROTOCOL.md). So runs with a restore wipe no replica before it has settled.
  if (backupAfter >= 0) wiped = true
  // Now and then a replica asks the hub where its log ends, as `synced()` does (drawn apart
  // from `plan`; off for the seeds kept for old failures, whose runs it would change): once
  // answered and synced, it must hold everything the store held at the ask. Not with linked
  // hubs, each over a store of its own, which a change reaches one after the other.
  const pingPlan = (await import('@chorus/testkit')).createPrng(`ping:${resolver}:${seed}`)
  const pinging = topology.pings !== false && !linked
  let barriers: Barrier[] = []
  const barrierProblems: string[] = []
  const checked = { count: 0 }
  let restores = 0
  // Checked the moment the replica says it is synced after the answer: later, what was on its
  // way may have arrived and hide a replica that said so too early.
  const checking: Promise<void>[] = []
  /** `name` asks the hub where its log ends (if it is up), noting what the hub holds now. */
  const askLogEnd = async (name: string): Promise<void> => {
    const engine = cluster.engine(name)
    if (engine === null) return
    const { changes } = await cluster.hubStore.readSnapshot(cluster.space as SpaceId, null, 1_000_000)
    barriers.push({ name, engine, ask: engine.ping(), held: changes, restores })
  }
  if (pinging) {
    cluster.onReplicaStatus = (name, engine) => {
      const due = barriers.filter((barrier) => barrier.name === name && barrier.engine === engine)
      if (due.length === 0) return
      barriers = barriers.filter((barrier) => !due.includes(barrier))
      checking.push(
        checkBarriers(cluster, due, restores, barrierProblems, checked).then((left) => {
          barriers.push(...left)
        }),
      )
    }
  }
  for (let phase = 0; phase < phases; phase++) {
    if (phase === backupAfter + 1) {
      backup = cluster.backupHub()
      actions.push('back the hub up')
    }
    if (phase === restoreAfter + 1 && backup !== null) {
      cluster.restoreHub(backup)
      restores += 1
      actions.push('restore the hub from its backup')
    }
    const roll = plan.next()
    if (roll < 0.12) {
      const groups = splitRandomly(plan, [...hubNames, ...names])
      cluster.net.partition(groups)
      actions.push(`partition ${groups.map((g) => g.join('+')).join(' | ')}`)
    } else if (roll < 0.18) {
      const [from, to] = plan.shuffle([...hubNames, ...names]) as [string, string]
      cluster.net.cut(from, to)
      actions.push(`cut ${from}->${to}`)
    } else if (roll < 0.26) {
      cluster.net.heal()
      actions.push('heal')
    } else if (roll < 0.36) {
      const name = plan.pick(names)
      if (cluster.isUp(name)) cluster.crash(name)
      else await cluster.restart(name)
      actions.push(`${cluster.isUp(name) ? 'restart' : 'crash'} ${name}`)
    } else if (roll < 0.42) {
      const hub = hubs === 1 ? 'hub' : hubPlan.pick(hubNames)
      if (cluster.isUp(hub)) cluster.crashHub(hub)
      else cluster.restartHub(hub)
      actions.push(`${cluster.isUp(hub) ? 'restart' : 'crash'} ${hub}`)
    } else if (roll < 0.45 && !wiped) {
      wiped = true
      const name = plan.pick(names)
      await cluster.wipe(name)
      actions.push(`wipe ${name}`)
    } else if (roll < 0.47) {
      cluster.hubStore.failWrites = !cluster.hubStore.failWrites
      actions.push(`hub disk ${cluster.hubStore.failWrites ? 'full' : 'freed'}`)
    } else if (roll < 0.5) {
      const name = plan.pick(names)
      const store = cluster.store(name)
      store.failWrites = !store.failWrites
      actions.push(`${name} disk ${store.failWrites ? 'full' : 'freed'}`)
    } else if (roll < 0.54) {
      const { head } = await cluster.hubStore.loadSpace(cluster.space as SpaceId)
      const upTo = plan.int(0, head)
      if (collectPlan.bool(1 / 2)) {
        const collected = cluster.compactHub(upTo)
        actions.push(`compact log to ${upTo}, collecting ${collected} deletions`)
      } else {
        cluster.hubStore.truncateLog(cluster.space as SpaceId, upTo)
        actions.push(`compact log to ${upTo}`)
      }
    } else {
      const writes = plan.int(1, 12)
      for (let i = 0; i < writes; i++) {
        const name = plan.pick(names)
        const id = plan.pick(ids)
        await cluster.read(name, COLLECTION, id)
        const intent = randomIntent(plan, name)
        const atTwin = cluster.hasTwin(name) && twinPlan.bool(1 / 2)
        if (!(atTwin && cluster.writeAtTwin(name, COLLECTION, id, intent, twinPlan.int(0, 60))))
          await writeOrRefused(cluster, name, id, intent)
        await cluster.read(name, COLLECTION, id)
        await settleConflict(cluster, plan, name)
        await cluster.run(plan.int(0, 300))
        // Amid the writes, while others' changes may be on their way to the one that asks.
        if (pinging && pingPlan.bool(1 / 4)) await askLogEnd(pingPlan.pick(names))
      }
      actions.push(`${writes} writes`)
    }
    await cluster.run(plan.int(200, 4000))
    if (pinging) {
      await Promise.all(checking.splice(0))
      if (pingPlan.bool(1 / 3)) await askLogEnd(pingPlan.pick(names))
    }
  }
  if (restoreAfter === phases - 1 && backup !== null) {
    cluster.restoreHub(backup)
    restores += 1
    actions.push('restore the hub from its backup')
  }
  cluster.hubStore.failWrites = false
  for (const name of names) cluster.store(name).failWrites = false
  let settled = await cluster.settle()
  if (backup !== null && settled) {
    // The restored hub must hold everything again: a replica that starts over with nothing
    // has only the hub to learn it from, and must end up equal to the others.
    const name = plan.pick(names)
    await cluster.wipe(name)
    actions.push(`wipe ${name} after the restore`)
    settled = await cluster.settle()
  }
  await Promise.all(checking.splice(0))
  for (const name of names) for (const id of ids) await cluster.read(name, COLLECTION, id)
  const verdict = await cluster.check()
  const problems = [
    ...(settled ? [] : ['did not settle within 10 virtual minutes', ...(await cluster.describeHubs())]),
    ...verdict.problems,
    ...barrierProblems.map((problem) => `synced: ${problem}`),
  ]
  return {
    seed,
    resolver,
    replicas,
    actions,
    settled,
    problems,
    cluster,
    linked,
    reliable,
    snapshotPage,
    barriersChecked: checked.count,
  }
}

/** A replica's ask of where the hub's log ends, and what the hub held when it was made. */
interface Barrier {
  readonly name: string
  /** The engine asked: a restart or wipe makes another, and ends the check. */
  readonly engine: ReplicaEngine
  readonly ask: number
  readonly held: readonly Change[]
  /** Restores of the hub so far: one after the ask ends the check (the copy lost changes). */
  readonly restores: number
}

/**
 * Checks the asks the hub has answered, where the replica has caught up since (`synced`): it
 * must cover every version the hub held at the ask, or the hub collected it. Returns the
 * asks still waiting.
 */
async function checkBarriers(
  cluster: SimCluster,
  barriers: readonly Barrier[],
  restores: number,
  problems: string[],
  checked: { count: number },
): Promise<Barrier[]> {
  const waiting: Barrier[] = []
  for (const barrier of barriers) {
    const { name, engine, ask } = barrier
    if (cluster.engine(name) !== engine || barrier.restores !== restores) continue
    if (engine.session().syncAnswered < ask || engine.status() !== 'synced') {
      waiting.push(barrier)
      continue
    }
    checked.count += 1
    // Every version the hub held counts as acknowledged: the replica must hold it or what
    // replaced it, or the hub collected it.
    const held = new Map<string, number>()
    for (const { dot } of barrier.held) held.set(dot[0], Math.max(held.get(dot[0]) ?? 0, dot[1]))
    const records = await cluster.store(name).allRecords()
    const verdict = checkAcknowledgedWrites([{ name, records }], barrier.held, held, cluster.collected)
    for (const problem of verdict.problems)
      problems.push(`${name} reported synced after its ask ${ask} was answered, held at the ask: ${problem}`)
  }
  return waiting
}

/** A write on a full disk must be refused with `storage-failed` and leave nothing behind. */
async function writeOrRefused(
  cluster: SimCluster,
  name: string,
  id: string,
  intent: WriteIntent,
): Promise<void> {
  const store = cluster.store(name)
  if (!store.failWrites) {
    await cluster.write(name, COLLECTION, id, intent)
    return
  }
  const engine = cluster.engine(name)
  if (engine === null) return
  const before = await store.outboxSize()
  const error: unknown = await cluster.write(name, COLLECTION, id, intent).then(
    () => undefined,
    (reason: unknown) => reason,
  )
  if (!isChorusError(error, ErrorCode.StorageFailed)) {
    throw new Error(`a write on a full disk at ${name} was not refused with storage-failed: ${String(error)}`)
  }
  if ((await store.outboxSize()) !== before)
    throw new Error(`a refused write at ${name} left a change in the outbox`)
}

/** Sometimes a user settles a conflict they see, as the notes app's "Keep this version" does. */
async function settleConflict(cluster: SimCluster, plan: Prng, name: string): Promise<void> {
  const engine = cluster.engine(name)
  if (engine === null || !plan.bool(0.3)) return
  const conflicts = await engine.conflicts()
  const conflict = conflicts[0]
  if (conflict === undefined) return
  const chosen = plan.pick(conflict.versions)
  const value = chosen.value ?? { title: `restored by ${name}` }
  await writeOrRefused(cluster, name, conflict.id, { type: 'put', value })
  cluster.conflictsSettled += 1
}

function splitRandomly(prng: Prng, nodes: readonly string[]): string[][] {
  const shuffled = prng.shuffle(nodes)
  const cut = prng.int(1, shuffled.length - 1)
  return [shuffled.slice(0, cut), shuffled.slice(cut)]
}

/** Seeds for this run: `SEED` replays one; `SOAK` runs 25 times as many; `SEEDS_FROM` starts elsewhere (see `sweepSeeds`). */
export function seedsFromEnv(count: number): readonly number[] {
  return sweepSeeds(process.env, count).seeds
}

/** The failure message: what broke, how to replay it, and what the run did. */
export function describeFailure(report: RunReport): string {
  return [
    `seed ${report.seed} (${report.resolver}, ${report.replicas} replicas, ${report.cluster.hubNames().length} hubs${report.linked ? ' linked' : ''}${report.reliable ? `, WebSocket-like connections${report.snapshotPage === undefined ? '' : `, ${report.snapshotPage} records a page`}` : ''}) failed:`,
    ...report.problems.slice(0, 20).map((p) => `  ${p}`),
    `replay: SEED=${report.seed} pnpm exec vitest run --project sim`,
    `actions: ${report.actions.join('; ')}`,
    `errors: ${report.cluster.errors.map((e) => `${e.code}: ${e.message}`).join('; ') || 'none'}`,
  ].join('\n')
}
