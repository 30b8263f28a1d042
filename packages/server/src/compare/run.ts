import { ChorusError, ErrorCode } from '@chorus/core'
import { createPrng, findStaleReads, type Scheduler } from '@chorus/testkit'
import { HistoryRecorder } from '../sim/sim-client.js'
import { type CompareDesign, type CompareMode, compareDesigns } from './designs.js'
import {
  type CompareScenario,
  compareScenarios,
  type FaultWindow,
  ROUND_MS,
  type ScenarioName,
} from './scenarios.js'
import { type CompareTarget, clientNames, type ReadRoute, sleep } from './target.js'

/** The workload and timeline of a comparison (every time in virtual ms). */
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

/** One design under one scenario: what the comparison measured. Latencies are virtual ms. */
export interface CompareRow {
  readonly scenario: ScenarioName
  readonly mode: CompareMode
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
   * the relay acknowledged it, sampled every 5 ms.
   */
  readonly serverAckP50Ms: number | null
  readonly serverAckP99Ms: number | null
  /** Reads that returned a value a write completed before the read began had already replaced. */
  readonly staleReads: number
  /** Reads on the `nearest` route (a follower, for single-leader; only the `lag` workload makes them). */
  readonly nearestReads: number
  /** Of {@link staleReads}, those on the `nearest` route; the rest were on the `primary` route. */
  readonly staleNearestReads: number
  /** Writes acknowledged that were issued while the fault was in force. */
  readonly acceptedDuringFault: number
  /** Writes acknowledged that were issued while a partition was in force (0 in other scenarios). */
  readonly acceptedDuringPartition: number
  /** Acknowledged writes no replica reflects at the end. */
  readonly lostAcknowledged: number
  /** Semi-sync writes acknowledged on the leader alone after the ack timeout (0 for other designs). */
  readonly fallbacks: number
  /** Conflicts surfaced: reads that returned concurrent versions (siblings) instead of one value. */
  readonly conflicts: number
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
  readonly superseded: number
}

/**
 * Runs every design under every scenario with the same seeded workload and fault script, in
 * simulation (virtual time), and returns one row per pair. The same options give the same rows.
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
  await target.start()
  const scheduler = target.scheduler
  target.countBytesFromNow()
  const t0 = scheduler.now()
  const window = settings.fault
  scenario.schedule(target, t0, window)
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
    const invokedAt = scheduler.now()
    const handle = recorder.invoke(client, key, kind, kind === 'write' ? value : undefined, invokedAt)
    const outcome =
      kind === 'write' ? await target.write(client, key, value) : await target.read(client, key, route)
    const completedAt = scheduler.now()
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
      superseded: outcome.ok ? (outcome.superseded ?? 0) : 0,
    })
    return outcome.ok
  }
  const workload = createPrng(options.seed).fork('workload')
  const loops = clients.map(async (client, index) => {
    const prng = workload.fork(client)
    for (let n = 1; scheduler.now() < stopAt; n++) {
      const value = `${client}.${n}`
      if (scenario.workload === 'contended') {
        // Both sites start each round at the same moment; the others only watch the key.
        const round = t0 + Math.ceil((scheduler.now() - t0 + 1) / ROUND_MS) * ROUND_MS
        await sleep(scheduler, round - scheduler.now())
        if (scheduler.now() >= stopAt) break
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
      await sleep(scheduler, prng.int(0, 2 * settings.thinkMs))
    }
  })
  await drive(scheduler, Promise.all(loops))
  const lastOperation = t0 + Math.max(0, ...operations.map((op) => op.completedAt))
  let convergenceMs: number | null = null
  for (let waited = 0; waited <= settings.convergeWithinMs; waited += 10) {
    if (await target.converged()) {
      convergenceMs = scheduler.now() - lastOperation
      break
    }
    await scheduler.runFor(10)
  }
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
  const writes = latencies('write')
  const serverAcks = target.serverAckLatencies?.() ?? writes
  const history = recorder.history()
  const stale = new Set(findStaleReads(history).map((found) => found.read.invoke))
  const isStale = (op: OperationRecord) => stale.has(history[op.invoke]?.invoke ?? -1)
  const nearest = operations.filter((op) => op.kind === 'read' && op.route === 'nearest')
  const acceptedDuringFault = scenario.faulty
    ? operations.filter((op) => op.kind === 'write' && op.ok && during(op)).length
    : 0
  return {
    scenario: scenario.name,
    mode: design.mode,
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
    conflicts: operations.filter((op) => op.kind === 'read' && op.siblings > 1).length,
    conflictsResolved: operations.filter((op) => op.kind === 'write' && op.ok && op.superseded > 1).length,
    convergenceMs: end.convergenceMs,
    bytesOnWire: target.bytesOnWire(),
  }
}

/** The nearest-rank percentile `p` of `values`; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1] ?? null
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

/** Steps the scheduler until `promise` settles (every client operation does, by its timeout). */
async function drive<T>(scheduler: Scheduler, promise: Promise<T>): Promise<T> {
  let done = false
  const settle = () => {
    done = true
  }
  promise.then(settle, settle)
  while (!done) if (!(await scheduler.step())) break
  return promise
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
