/**
 * The core benchmark: what Chorus's record model costs, next to the floor of a plain `Map`.
 *
 * One run measures, side by side:
 * 1. **apply** — 100k puts from four replicas (contexts of two entries) into empty records,
 *    then 100k updates made with `makeChange` that supersede them, through `applyChange` on a
 *    `Map<string, RecordState>`; the floor does the same `set()`s of the values into a
 *    `Map<string, object>`. Reports ops/s and Chorus time ÷ floor time (goal ≤ 3×).
 * 2. **heap** — the heap 100k records retain (one version each, a context of three replicas, a
 *    ~100-character body), decoded from JSON text as they would arrive from the wire or a
 *    database; the floor retains the same values in a `Map`. Measured with `gc()` between
 *    snapshots of `heapUsed` (goal ≤ 75 MB, 1 MB = 10⁶ bytes).
 * 3. **conflicts** — 1,000 records each written concurrently by k replicas (k = 2…10) from a
 *    common base: time to detect (apply every version, count records with siblings) and to
 *    resolve (`resolver.resolve` on every record) with `lww`, `merge` and `manual` (goal:
 *    1k conflicts detected and resolved in ≤ 100 ms).
 *
 * Every figure is the median of several timed runs after warm-up runs. Goals are reported,
 * never asserted: this is a benchmark, not a test.
 *
 * Run with `pnpm bench:core` (`tsx --expose-gc --conditions=@chorus/source test/bench/run.ts`); it
 * prints a table and writes `test/bench/results/core.json` (git-ignored). Takes about a minute.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { performance } from 'node:perf_hooks'
import {
  applyChange,
  asRecordId,
  asReplicaId,
  type Change,
  createLwwResolver,
  createManualResolver,
  createMergeResolver,
  formatHlc,
  hasSiblings,
  type JsonObject,
  makeChange,
  type RecordState,
  type ReplicaId,
  type Resolver,
  recordKey,
  versionValue,
  type WriteIntent,
} from '@chorus/core'

const RECORDS = 100_000
const CONFLICT_RECORDS = 1_000
const COLLECTION = 'notes'
const WALL = 1_750_000_000_000
const REPLICAS: readonly ReplicaId[] = ['mbp-7qf2', 'phone-k3x9', 'tab-2mz8', 'desk-91hc'].map(asReplicaId)
const LOREM =
  'Pick up the prints, call the landlord about the boiler, and draft the agenda for Thursday before noon. '
const lww = createLwwResolver()

const gc = requireGc()

function requireGc(): () => void {
  const collect = globalThis.gc
  if (typeof collect !== 'function') {
    throw new Error(
      'the heap benchmark needs gc(): run it with `pnpm bench` or `tsx --expose-gc --conditions=@chorus/source test/bench/run.ts`',
    )
  }
  return () => {
    collect()
    collect()
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Runs `fn` `warmup` times untimed, then `runs` times, collecting garbage before each. */
function repeat<TResult>(warmup: number, runs: number, fn: () => TResult): TResult[] {
  for (let i = 0; i < warmup; i++) {
    gc()
    fn()
  }
  const out: TResult[] = []
  for (let i = 0; i < runs; i++) {
    gc()
    out.push(fn())
  }
  return out
}

function recordIdOf(n: number): string {
  return `0197a3c2-5e1b-7${n.toString(16).padStart(3, '0').slice(-3)}-8f00-${n.toString(16).padStart(12, '0')}`
}

function bodyOf(n: number): string {
  return `${n}: ${LOREM}`.slice(0, 100)
}

function stamp(wall: number, replica: ReplicaId) {
  return formatHlc({ wall, counter: 0, replica })
}

// 1. apply ------------------------------------------------------------------------------------

interface ApplyTimes {
  readonly pass1: number
  readonly pass2: number
}

function applyWorkload(): { first: Change[]; second: Change[] } {
  const counters = new Map<ReplicaId, number>()
  const next = (replica: ReplicaId): number => {
    const counter = (counters.get(replica) ?? 0) + 1
    counters.set(replica, counter)
    return counter
  }
  const first: Change[] = []
  for (let n = 0; n < RECORDS; n++) {
    const replica = REPLICAS[n % REPLICAS.length] as ReplicaId
    const seenA = REPLICAS[(n + 1) % REPLICAS.length] as ReplicaId
    const seenB = REPLICAS[(n + 2) % REPLICAS.length] as ReplicaId
    first.push({
      collection: COLLECTION,
      id: asRecordId(recordIdOf(n)),
      dot: [replica, next(replica)],
      context: { [seenA]: (n >> 2) + 1, [seenB]: (n >> 2) + 3 },
      hlc: stamp(WALL + n, replica),
      op: { type: 'put', value: { title: `note ${n}`, body: bodyOf(n), done: false } },
    })
  }
  const second: Change[] = []
  for (let n = 0; n < RECORDS; n++) {
    const base = first[n] as Change
    const replica = REPLICAS[(n + 3) % REPLICAS.length] as ReplicaId
    second.push(
      makeChange({
        collection: COLLECTION,
        id: base.id,
        record: applyChange(undefined, base).state,
        resolver: lww,
        intent: { type: 'put', value: { title: `note ${n}`, body: bodyOf(n), done: true } },
        dot: [replica, next(replica)],
        hlc: stamp(WALL + RECORDS + n, replica),
      }),
    )
  }
  return { first, second }
}

function applyChorus(changes: readonly Change[], records: Map<string, RecordState>): void {
  for (const change of changes) {
    const key = recordKey(change.collection, change.id)
    records.set(key, applyChange(records.get(key), change).state)
  }
}

function applyFloor(changes: readonly Change[], values: Map<string, object>): void {
  for (const change of changes)
    values.set(recordKey(change.collection, change.id), versionValue(change) ?? {})
}

/** Times both passes into a fresh map; returns the times and the map for checking. */
function timePasses<TMap>(
  create: () => TMap,
  apply: (changes: readonly Change[], into: TMap) => void,
  passes: { readonly first: readonly Change[]; readonly second: readonly Change[] },
): { times: ApplyTimes; into: TMap } {
  const into = create()
  const t0 = performance.now()
  apply(passes.first, into)
  const t1 = performance.now()
  apply(passes.second, into)
  const t2 = performance.now()
  return { times: { pass1: t1 - t0, pass2: t2 - t1 }, into }
}

function summariseApply(times: readonly ApplyTimes[]) {
  const totalMs = median(times.map((t) => t.pass1 + t.pass2))
  return {
    pass1Ms: median(times.map((t) => t.pass1)),
    pass2Ms: median(times.map((t) => t.pass2)),
    totalMs,
    opsPerSec: (2 * RECORDS) / (totalMs / 1000),
    totalSamplesMs: times.map((t) => Math.round((t.pass1 + t.pass2) * 10) / 10),
  }
}

function benchApply() {
  const passes = applyWorkload()
  const last = passes.second[RECORDS - 1]
  const chorus = (): ApplyTimes => {
    const { times, into } = timePasses(() => new Map<string, RecordState>(), applyChorus, passes)
    const sample = into.get(recordKey(COLLECTION, recordIdOf(RECORDS - 1)))
    if (into.size !== RECORDS || sample?.versions.length !== 1 || sample.versions[0] !== last)
      throw new Error('apply benchmark: the second pass did not supersede the first')
    return times
  }
  const floor = (): ApplyTimes => {
    const { times, into } = timePasses(() => new Map<string, object>(), applyFloor, passes)
    if (into.size !== RECORDS) throw new Error('apply benchmark: the floor lost records')
    return times
  }
  const runs = 11
  repeat(4, 0, chorus)
  repeat(4, 0, floor)
  const chorusTimes: ApplyTimes[] = []
  const floorTimes: ApplyTimes[] = []
  // Interleaved, so that a change in the machine's speed hits both sides alike.
  for (let i = 0; i < runs; i++) {
    chorusTimes.push(...repeat(0, 1, chorus))
    floorTimes.push(...repeat(0, 1, floor))
  }
  const c = summariseApply(chorusTimes)
  const f = summariseApply(floorTimes)
  const ratio = c.totalMs / f.totalMs
  return { changes: 2 * RECORDS, runs, chorus: c, floor: f, ratio, goal: { maxRatio: 3, met: ratio <= 3 } }
}

// 2. heap -------------------------------------------------------------------------------------

/** A record's first version as JSON text, the way the wire or a database hands it over. */
function changeText(n: number): string {
  const replica = REPLICAS[n % REPLICAS.length] as ReplicaId
  const context: Record<string, number> = {}
  for (let i = 1; i <= 3; i++) context[REPLICAS[(n + i) % REPLICAS.length] as ReplicaId] = (n >> 2) + i
  return JSON.stringify({
    collection: COLLECTION,
    id: recordIdOf(n),
    dot: [replica, (n >> 2) + 1],
    context,
    hlc: stamp(WALL + n, replica),
    op: { type: 'put', value: noteValue(n) },
  })
}

function noteValue(n: number): JsonObject {
  return { title: `note ${n}`, body: bodyOf(n), done: false }
}

function buildChorusRecords(): Map<string, RecordState> {
  const records = new Map<string, RecordState>()
  for (let n = 0; n < RECORDS; n++) {
    const change = JSON.parse(changeText(n)) as Change
    const key = recordKey(change.collection, change.id)
    records.set(key, applyChange(records.get(key), change).state)
  }
  return records
}

function buildFloorValues(): Map<string, object> {
  const values = new Map<string, object>()
  for (let n = 0; n < RECORDS; n++) {
    const text = JSON.stringify(noteValue(n))
    values.set(recordKey(COLLECTION, recordIdOf(n)), JSON.parse(text) as object)
  }
  return values
}

/** Bytes of heap that what `build` returns keeps alive. */
function retainedBytes(build: () => Map<string, unknown>): number {
  gc()
  const before = process.memoryUsage().heapUsed
  const built = build()
  gc()
  const after = process.memoryUsage().heapUsed
  if (built.size !== RECORDS) throw new Error('heap benchmark: records were lost')
  return after - before
}

function benchHeap() {
  const runs = 3
  const chorusSamples = repeat(1, runs, () => retainedBytes(buildChorusRecords))
  const floorSamples = repeat(1, runs, () => retainedBytes(buildFloorValues))
  const chorus = median(chorusSamples)
  const floor = median(floorSamples)
  const perHundredK = (bytes: number) => (bytes / 1e6) * (100_000 / RECORDS)
  return {
    records: RECORDS,
    runs,
    unit: 'MB (10^6 bytes) per 100k records',
    chorusMB: perHundredK(chorus),
    floorMB: perHundredK(floor),
    chorusBytesPerRecord: chorus / RECORDS,
    floorBytesPerRecord: floor / RECORDS,
    ratio: chorus / floor,
    samplesBytes: { chorus: chorusSamples, floor: floorSamples },
    goal: { maxMB: 75, met: perHundredK(chorus) <= 75 },
  }
}

// 3. conflicts --------------------------------------------------------------------------------

const resolvers: readonly Resolver[] = [createLwwResolver(), createMergeResolver(), createManualResolver()]

/** For each record: a base version, then k concurrent versions made on top of it. */
function conflictWorkload(k: number): Change[][] {
  const writers = Array.from({ length: k }, (_, j) => asReplicaId(`writer-${j + 1}`))
  const origin = asReplicaId('origin')
  const out: Change[][] = []
  for (let n = 0; n < CONFLICT_RECORDS; n++) {
    const id = asRecordId(recordIdOf(n))
    const base = makeChange({
      collection: COLLECTION,
      id,
      record: undefined,
      resolver: lww,
      intent: { type: 'put', value: noteValue(n) },
      dot: [origin, n + 1],
      hlc: stamp(WALL + n, origin),
    })
    const record = applyChange(undefined, base).state
    const versions = [base]
    for (const [j, writer] of writers.entries()) {
      const intent: WriteIntent =
        j % 2 === 0
          ? { type: 'patch', fields: { title: `note ${n}, edited by ${writer}`, [`tag${j}`]: j } }
          : { type: 'put', value: { ...noteValue(n), done: true, editor: writer } }
      versions.push(
        makeChange({
          collection: COLLECTION,
          id,
          record,
          resolver: lww,
          intent,
          dot: [writer, n + 1],
          hlc: stamp(WALL + 10_000 + n * 16 + ((j * 7) % k), writer),
        }),
      )
    }
    out.push(versions)
  }
  return out
}

function detect(workload: readonly Change[][]): RecordState[] {
  const states: RecordState[] = []
  let conflicts = 0
  for (const versions of workload) {
    let state: RecordState | undefined
    for (const version of versions) state = applyChange(state, version).state
    if (hasSiblings(state)) conflicts++
    states.push(state as RecordState)
  }
  if (conflicts !== workload.length) throw new Error('conflict benchmark: a conflict was not detected')
  return states
}

function resolveAll(resolver: Resolver, states: readonly RecordState[]): number {
  let fields = 0
  for (const state of states) fields += Object.keys(resolver.resolve(state.versions).value ?? {}).length
  return fields
}

function timed(fn: () => unknown): number {
  const t0 = performance.now()
  fn()
  return performance.now() - t0
}

function benchConflicts() {
  const runs = 9
  const rows = []
  for (let k = 2; k <= 10; k++) {
    const workload = conflictWorkload(k)
    const states = detect(workload)
    if (states.some((state) => state.versions.length !== k))
      throw new Error(`conflict benchmark: expected ${k} versions per record`)
    const detectMs = median(repeat(3, runs, () => timed(() => detect(workload))))
    const resolveMs: Record<string, number> = {}
    const totalMs: Record<string, number> = {}
    for (const resolver of resolvers) {
      resolveMs[resolver.kind] = median(repeat(3, runs, () => timed(() => resolveAll(resolver, states))))
      totalMs[resolver.kind] = detectMs + (resolveMs[resolver.kind] as number)
    }
    rows.push({ k, detectMs, resolveMs, totalMs })
  }
  const worstMs = Math.max(...rows.flatMap((row) => Object.values(row.totalMs)))
  return { records: CONFLICT_RECORDS, runs, rows, goal: { maxMs: 100, worstMs, met: worstMs <= 100 } }
}

// report --------------------------------------------------------------------------------------

function fixed(value: number, digits = 1): string {
  return value.toFixed(digits)
}

function table(title: string, head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join('  ')
  return [title, line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), ''].join('\n')
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED'
}

const started = performance.now()
const apply = benchApply()
const heap = benchHeap()
const conflicts = benchConflicts()
const cpu = cpus()[0]?.model ?? 'unknown'
const results = {
  meta: {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    cpu,
    cores: availableParallelism(),
    memoryGB: Math.round(totalmem() / 1e9),
    durationSec: (performance.now() - started) / 1000,
  },
  apply,
  heap,
  conflicts,
}

const resultsDir = new URL('./results/', import.meta.url)
mkdirSync(resultsDir, { recursive: true })
const resultsFile = new URL('core.json', resultsDir)
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`)

const out = [
  `Chorus core benchmark — node ${results.meta.node}, ${results.meta.cores} cores (${cpu}), ${results.meta.date}`,
  '',
  table(
    `1. Apply ${RECORDS / 1000}k puts + ${RECORDS / 1000}k superseding updates (median of ${apply.runs})`,
    ['', 'pass 1 ms', 'pass 2 ms', 'total ms', 'ops/s'],
    (
      [
        ['Chorus applyChange', apply.chorus],
        ['floor Map.set', apply.floor],
      ] as const
    ).map(([name, row]) => [
      name,
      fixed(row.pass1Ms),
      fixed(row.pass2Ms),
      fixed(row.totalMs),
      Math.round(row.opsPerSec).toLocaleString('en'),
    ]),
  ),
  `Chorus ÷ floor: ${fixed(apply.ratio, 2)}×  (goal ≤ ${apply.goal.maxRatio}×: ${verdict(apply.goal.met)})`,
  '',
  table(
    `2. Heap for ${RECORDS / 1000}k records (median of ${heap.runs})`,
    ['', 'MB / 100k', 'bytes / record'],
    [
      ['Chorus records (versions + contexts)', fixed(heap.chorusMB), fixed(heap.chorusBytesPerRecord, 0)],
      ['floor Map of values', fixed(heap.floorMB), fixed(heap.floorBytesPerRecord, 0)],
    ],
  ),
  `Chorus ÷ floor: ${fixed(heap.ratio, 2)}×  (goal ≤ ${heap.goal.maxMB} MB: ${verdict(heap.goal.met)})`,
  '',
  table(
    `3. ${CONFLICT_RECORDS.toLocaleString('en')} conflicts, k concurrent versions each: ms (median of ${conflicts.runs})`,
    ['k', 'detect', 'lww', 'merge', 'manual', 'worst total'],
    conflicts.rows.map((row) => [
      String(row.k),
      fixed(row.detectMs, 2),
      fixed(row.resolveMs.lww ?? Number.NaN, 2),
      fixed(row.resolveMs.merge ?? Number.NaN, 2),
      fixed(row.resolveMs.manual ?? Number.NaN, 2),
      fixed(Math.max(...Object.values(row.totalMs)), 2),
    ]),
  ),
  `worst detect + resolve: ${fixed(conflicts.goal.worstMs, 2)} ms  (goal ≤ ${conflicts.goal.maxMs} ms: ${verdict(conflicts.goal.met)})`,
  '',
  `wrote ${resultsFile.pathname} in ${fixed(results.meta.durationSec)} s`,
]
console.log(out.join('\n'))
