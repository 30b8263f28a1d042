import { ChorusError, ErrorCode } from '@chorus/core'
import { createPrng, findStaleReads } from '@chorus/testkit'
import { HistoryRecorder } from '../sim/sim-client.js'
import type { CompareClock } from './clock.js'
import { type CompareDesign, type CompareMode, compareDesigns } from './designs.js'
import {
  type CompareScenario,
  compareScenarios,
  type FaultStep,
  type FaultWindow,
  ROUND_MS,
  type ScenarioName,
} from './scenarios.js'
import { type CompareTarget, clientNames, type ReadRoute } from './target.js'

/** The workload and timeline of a comparison (every time in ms of the targets' clock). */
export interface CompareOptions {
  readonly seed: number
  readonly scenarios?: readonly CompareScenario[]
  readonly designs?: readonly CompareDesign[]
  /** Concurrent clients, each doing one operation at a time (default 3). */
  readonly clients?: number
  /** Keys the clients share (default 4). */
  readonly keys?: number
  /** Fraction of operations that are writes (default 0.5). */
  readonly writeRatio?: number
  /** Clients start operations until this long after the start (default 5000). */
  readonly durationMs?: number
  /** A client's mean pause between one operation's end and the next one's start, drawn from 0…2× (default 20). */
  readonly thinkMs?: number
  /** The fault window (default 1000–3000). */
  readonly fault?: FaultWindow
  /** How long to wait for replicas to converge after the last operation (default 20000). */
  readonly convergeWithinMs?: number
}

/** The key both sites write in the `contended` workload. */
const SHARED_KEY = 'shared'

/** The fields every row of the comparison's JSON has, as the issue that asked for it names them. */
export const COMPARE_JSON_FIELDS = [
  'scenario',
  'mode',
  'writeP50Ms',
  'writeP99Ms',
  'staleReads',
  'acceptedDuringPartition',
  'lostAcknowledged',
  'conflicts',
  'bytesOnWire',
] as const

/**
 * One design under one scenario: what the comparison measured. Latencies and times are ms of
 * the target's clock ({@link clock}).
 */
export interface CompareRow {
  readonly scenario: ScenarioName
  readonly mode: CompareMode
  /** `virtual`: a simulation's time (deterministic per seed); `wall`: real processes, real time. */
  readonly clock: CompareClock['kind']
  /** The design's name (`quorum-n3w2r2`, …) and its settings for people. */
  readonly design: string
  readonly settings: string
  readonly seed: number
  readonly operations: number
  /** Fraction of operations that succeeded (a timeout is a failure). */
  readonly availability: number
  readonly writeAvailability: number
  readonly readAvailability: number
  /** Availability of `c1` — the client on the minority side — while the partition lasts; null in other scenarios. */
  readonly minorityAvailability: number | null
  /** From a client's request to its acknowledgement; null when nothing succeeded. */
  readonly writeP50Ms: number | null
  readonly writeP99Ms: number | null
  readonly readP50Ms: number | null
  readonly readP99Ms: number | null
  /**
   * From a write to a server holding it durably. Equal to the write latency where the client's
   * acknowledgement comes from a server; for multi-leader (acknowledged locally) the time until
   * the relay acknowledged it.
   */
  readonly serverAckP50Ms: number | null
  readonly serverAckP99Ms: number | null
  /** Reads that returned a value a write completed before the read began had already replaced. */
  readonly staleReads: number
  /** Reads on the `nearest` route (a follower, for single-leader; only the `lag` workload makes them). */
  readonly nearestReads: number
  /** Of {@link staleReads}, those on the `nearest` route; the rest were on the `primary` route. */
  readonly staleNearestReads: number
  /** Writes acknowledged whose request was in flight at some time while the fault was in force. */
  readonly acceptedDuringFault: number
  /** The same while a partition was in force (0 in other scenarios). */
  readonly acceptedDuringPartition: number
  /** Acknowledged writes no replica reflects at the end. */
  readonly lostAcknowledged: number
  /** Semi-sync writes acknowledged on the leader alone after the ack timeout (0 for other designs). */
  readonly fallbacks: number
  /**
   * Conflicts surfaced: the distinct sets of concurrent versions (siblings) of a key that reads
   * returned instead of one value; a conflict read many times counts once.
   */
  readonly conflicts: number
  /** Reads that returned siblings (each read of a conflict counts). */
  readonly readsWithSiblings: number
  /** Conflicts resolved: acknowledged writes that superseded two or more siblings (its writer's replica held them, or its writer's last answer showed them). */
  readonly conflictsResolved: number
  /** From the last operation's end until every replica held the same data; null if not within the limit. */
  readonly convergenceMs: number | null
  /** Bytes of every frame sent (clients' and servers') from the workload's start to convergence. */
  readonly bytesOnWire: number
}

interface OperationRecord {
  readonly client: string
  readonly kind: 'write' | 'read'
  readonly route: ReadRoute
  /** The operation's invocation number in the recorded history. */
  readonly invoke: number
  readonly invokedAt: number
  readonly completedAt: number
  readonly ok: boolean
  readonly siblings: number
  /** For a read with siblings: the key and the versions, sorted (one conflict's identity). */
  readonly conflict: string | null
  readonly superseded: number
}

/**
 * Runs every design under every scenario with the same seeded workload and fault script, and
 * returns one row per pair. Designs run on their targets' clocks: in simulation (virtual
 * time) the same options give the same rows; real processes give rows of one measured run.
 */
export async function runComparison(
  options: CompareOptions,
  onRow?: (row: CompareRow) => void,
): Promise<CompareRow[]> {
  const rows: CompareRow[] = []
  for (const scenario of options.scenarios ?? compareScenarios) {
    for (const design of options.designs ?? compareDesigns) {
      const row = await runOne(design, scenario, options)
      onRow?.(row)
      rows.push(row)
    }
  }
  return rows
}

/** Runs one design under one scenario (see {@link runComparison}). */
export async function runOne(
  design: CompareDesign,
  scenario: CompareScenario,
  options: CompareOptions,
): Promise<CompareRow> {
  const settings = checkOptions(options)
  const clients = clientNames(settings.clients)
  const target = design.create(options.seed, clients)
  try {
    return await measure(design, scenario, options, settings, clients, target)
  } finally {
    await target.finish?.()
  }
}

async function measure(
  design: CompareDesign,
  scenario: CompareScenario,
  options: CompareOptions,
  settings: ReturnType<typeof checkOptions>,
  clients: readonly string[],
  target: CompareTarget,
): Promise<CompareRow> {
  await target.start()
  const clock = target.clock
  target.countBytesFromNow()
  const t0 = clock.now()
  const window = settings.fault
  let faultsOver = false
  const faults = runFaultScript(target, t0, scenario.steps(window)).then(() => {
    faultsOver = true
  })
  // A failed step is reported below, once the workload is over.
  faults.catch(() => undefined)
  const recorder = new HistoryRecorder()
  const operations: OperationRecord[] = []
  const stopAt = t0 + settings.durationMs
  const operate = async (
    client: string,
    kind: 'write' | 'read',
    key: string,
    value: string,
    route: ReadRoute,
  ) => {
    const invokedAt = clock.now()
    const handle = recorder.invoke(client, key, kind, kind === 'write' ? value : undefined, invokedAt)
    const outcome =
      kind === 'write' ? await target.write(client, key, value) : await target.read(client, key, route)
    const completedAt = clock.now()
    if (outcome.ok) recorder.complete(handle, 'ok', completedAt, outcome.value ?? undefined)
    else recorder.complete(handle, outcome.maybeApplied ? 'unknown' : 'failed', completedAt)
    operations.push({
      client,
      kind,
      route,
      invoke: handle,
      invokedAt: invokedAt - t0,
      completedAt: completedAt - t0,
      ok: outcome.ok,
      siblings: outcome.ok ? (outcome.siblings ?? 1) : 0,
      conflict:
        outcome.ok && (outcome.siblings ?? 1) > 1
          ? JSON.stringify([key, [...(outcome.versions ?? [])].sort()])
          : null,
      superseded: outcome.ok ? (outcome.superseded ?? 0) : 0,
    })
    return outcome.ok
  }
  const workload = createPrng(options.seed).fork('workload')
  const loops = clients.map(async (client, index) => {
    const prng = workload.fork(client)
    for (let n = 1; clock.now() < stopAt; n++) {
      const value = `${client}.${n}`
      if (scenario.workload === 'contended') {
        // Both sites start each round at the same moment; the others only watch the key.
        const round = t0 + Math.ceil((clock.now() - t0 + 1) / ROUND_MS) * ROUND_MS
        await clock.sleep(round - clock.now())
        if (clock.now() >= stopAt) break
        await operate(client, 'read', SHARED_KEY, value, 'primary')
        if (index < 2) await operate(client, 'write', SHARED_KEY, value, 'primary')
        continue
      }
      const key = `k${prng.int(1, settings.keys)}`
      if (scenario.workload === 'read-after-write') {
        if (await operate(client, 'write', key, value, 'primary')) {
          await operate(client, 'read', key, value, 'nearest')
          await operate(client, 'read', key, value, 'primary')
        }
      } else {
        await operate(client, prng.bool(settings.writeRatio) ? 'write' : 'read', key, value, 'primary')
      }
      await clock.sleep(prng.int(0, 2 * settings.thinkMs))
    }
  })
  await clock.drive(Promise.all(loops))
  // The last step (a restart of real processes, say) may still be under way.
  if (!faultsOver) await clock.drive(faults)
  await faults
  const lastOperation = t0 + Math.max(0, ...operations.map((op) => op.completedAt))
  let convergenceMs: number | null = null
  const deadline = clock.now() + settings.convergeWithinMs
  while (clock.now() <= deadline) {
    if (await target.converged()) {
      convergenceMs = clock.now() - lastOperation
      break
    }
    await clock.pass(clock.pollMs)
  }
  await target.finish?.()
  const lostAcknowledged = await target.lostAcknowledged()
  return summarize(design, scenario, options.seed, window, operations, recorder, target, {
    convergenceMs,
    lostAcknowledged,
  })
}

function summarize(
  design: CompareDesign,
  scenario: CompareScenario,
  seed: number,
  window: FaultWindow,
  operations: readonly OperationRecord[],
  recorder: HistoryRecorder,
  target: CompareTarget,
  end: { readonly convergenceMs: number | null; readonly lostAcknowledged: number },
): CompareRow {
  const ratio = (list: readonly OperationRecord[]) =>
    list.length === 0 ? 1 : round(list.filter((op) => op.ok).length / list.length, 4)
  const latencies = (kind: 'write' | 'read') =>
    operations.filter((op) => op.kind === kind && op.ok).map((op) => op.completedAt - op.invokedAt)
  const during = (op: OperationRecord) => op.invokedAt >= window.startMs && op.invokedAt < window.endMs
  // A write the fault overlapped at any time between its request and its answer.
  const overlaps = (op: OperationRecord) => op.invokedAt < window.endMs && op.completedAt >= window.startMs
  const writes = latencies('write')
  const serverAcks = target.serverAckLatencies?.() ?? writes
  const history = recorder.history()
  const stale = new Set(findStaleReads(history).map((found) => found.read.invoke))
  const isStale = (op: OperationRecord) => stale.has(history[op.invoke]?.invoke ?? -1)
  const nearest = operations.filter((op) => op.kind === 'read' && op.route === 'nearest')
  const acceptedDuringFault = scenario.faulty
    ? operations.filter((op) => op.kind === 'write' && op.ok && overlaps(op)).length
    : 0
  return {
    scenario: scenario.name,
    mode: design.mode,
    clock: target.clock.kind,
    design: design.name,
    settings: design.settings,
    seed,
    operations: operations.length,
    availability: ratio(operations),
    writeAvailability: ratio(operations.filter((op) => op.kind === 'write')),
    readAvailability: ratio(operations.filter((op) => op.kind === 'read')),
    minorityAvailability:
      scenario.name === 'partition'
        ? ratio(operations.filter((op) => op.client === 'c1' && during(op)))
        : null,
    writeP50Ms: percentile(writes, 50),
    writeP99Ms: percentile(writes, 99),
    readP50Ms: percentile(latencies('read'), 50),
    readP99Ms: percentile(latencies('read'), 99),
    serverAckP50Ms: percentile(serverAcks, 50),
    serverAckP99Ms: percentile(serverAcks, 99),
    staleReads: stale.size,
    nearestReads: nearest.length,
    staleNearestReads: nearest.filter(isStale).length,
    acceptedDuringFault,
    acceptedDuringPartition: scenario.name === 'partition' ? acceptedDuringFault : 0,
    lostAcknowledged: end.lostAcknowledged,
    fallbacks: target.fallbacks?.() ?? 0,
    conflicts: new Set(operations.flatMap((op) => (op.conflict === null ? [] : [op.conflict]))).size,
    readsWithSiblings: operations.filter((op) => op.kind === 'read' && op.siblings > 1).length,
    conflictsResolved: operations.filter((op) => op.kind === 'write' && op.ok && op.superseded > 1).length,
    convergenceMs: end.convergenceMs,
    bytesOnWire: target.bytesOnWire(),
  }
}

/** The nearest-rank percentile `p` of `values` (to 0.01); null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  const value = sorted[rank - 1]
  return value === undefined ? null : round(value, 2)
}

/**
 * Runs the fault script on the target's clock from `t0`: each step at its time, and not
 * before the step ahead of it has taken effect (a real crash must be over before its restart
 * begins). Resolves when every step is done.
 */
function runFaultScript(target: CompareTarget, t0: number, steps: readonly FaultStep[]): Promise<void> {
  const clock = target.clock
  let pending: Promise<void> | null = null
  const done = steps.map(
    (step) =>
      new Promise<void>((resolve, reject) => {
        clock.at(t0 + step.atMs, () => {
          // A step that takes effect at once (every simulated one) runs inside the clock's
          // task, as if the fault script were part of the simulation.
          const run = () => Promise.resolve(step.act(target))
          if (pending === null) {
            const result = step.act(target)
            if (result === undefined) {
              resolve()
              return
            }
            pending = result
          } else {
            pending = pending.then(run)
          }
          const mine: Promise<void> = pending
          mine.then(() => {
            if (pending === mine) pending = null
            resolve()
          }, reject)
        })
      }),
  )
  return Promise.all(done).then(() => undefined)
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

function checkOptions(options: CompareOptions) {
  const fail = (message: string): never => {
    throw new ChorusError(ErrorCode.InvalidArgument, message)
  }
  const whole = (name: string, value: number, min: number) => {
    if (!Number.isSafeInteger(value) || value < min)
      fail(`${name} must be a whole number of at least ${min}, got ${value}`)
    return value
  }
  if (!Number.isSafeInteger(options.seed)) fail(`seed must be an integer, got ${options.seed}`)
  const writeRatio = options.writeRatio ?? 0.5
  if (!(writeRatio >= 0 && writeRatio <= 1)) fail(`writeRatio must be from 0 to 1, got ${writeRatio}`)
  const durationMs = whole('durationMs', options.durationMs ?? 5_000, 1)
  const fault = options.fault ?? { startMs: 1_000, endMs: 3_000 }
  whole('fault.startMs', fault.startMs, 0)
  if (!Number.isSafeInteger(fault.endMs) || fault.endMs <= fault.startMs || fault.endMs > durationMs) {
    fail('the fault window must end after it starts and no later than durationMs')
  }
  return {
    clients: whole('clients', options.clients ?? 3, 1),
    keys: whole('keys', options.keys ?? 4, 1),
    writeRatio,
    durationMs,
    thinkMs: whole('thinkMs', options.thinkMs ?? 20, 0),
    fault,
    convergeWithinMs: whole('convergeWithinMs', options.convergeWithinMs ?? 20_000, 0),
  }
}
