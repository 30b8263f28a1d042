/**
 * The sync benchmark: Chorus replicas and the Chorus relay over real sockets, next to floors
 * measured in the same run.
 *
 * Every relay runs in a child process of its own (`relay-host.ts`), as an operator runs one:
 * the Chorus relay is `startRelay` (SQLite in a temp dir, WAL, `synchronous = FULL`, so every
 * commit is fsynced; `ws` on 127.0.0.1 port 0); the floor is a raw `ws` server that forwards
 * every frame to every other client and stores nothing. Neither compresses. Replicas and load
 * generators run in this process, so on a 2-core machine the relay gets one core and every
 * replica shares the other. Records are notes of ~150 bytes of JSON (`workload.ts`: made-up
 * words, uuid-shaped ids, about as compressible as prose).
 *
 * 1. **initial sync** — a fresh replica of a space whose relay holds 100k records (appended
 *    straight into the relay's store beforehand, one replica's puts): time from
 *    `createReplica` to `synced()` with `storage: 'memory'` (goal ≤ 2 s) and into
 *    fake-indexeddb (≤ 6 s). The replica bootstraps from snapshot pages of 200 records.
 *    Bytes: TCP payload bytes of the replica's socket, both ways (HTTP upgrade and WebSocket
 *    framing included) ÷ the JSON payload of the records: the UTF-8 length of one JSON array
 *    of `{ id, value }`, what a plain REST endpoint would send (≤ 1.15×). The floor: the same
 *    records as JSON pages of 200 through the raw relay to a client that parses them into a
 *    `Map`, or `bulkPut`s each page into Dexie on fake-indexeddb. The replica gets
 *    fake-indexeddb's `IDBKeyRange` beside its factory, as the Dexie floor does. For
 *    reference, with memory storage: the heap this process holds per record once synced
 *    (after `gc()`, less the heap after the run, when all of it is garbage), the replica's
 *    against the floor's `Map` of parsed values — each record's versions, dot, stamp and
 *    context against the bare value.
 * 2. **latency** — 10 replicas (memory storage), each writing every 10 ms (1,000 writes/s in
 *    total) for `LATENCY_SECONDS` after a warm-up second. Commit-to-visible-everywhere is, per
 *    write, the time from its `put()` resolving (committed locally) to the last of the other 9
 *    replicas emitting its remote `change` event (applied to its store): p50 ≤ 2 ms, p99 ≤
 *    10 ms. The tail is this process's major garbage collections: the ten replicas' records
 *    grow its heap from about 20 to 95 MB during the run (every write is a new note, held ten
 *    times), and V8 collects at each step of that growth, pausing all ten replicas at once
 *    (9–13 ms pauses and marking steps of up to 12 ms in a `--trace-gc` run). With 60 MB of
 *    unrelated objects held before the run, V8 sized the heap larger from the start and p99
 *    came out at 4.8–5.3 ms against 11.5–13.6 ms without, alternated (an experiment, not
 *    how the benchmark runs). Then the relay alone: 10 bare protocol clients (`WireClient`) send the same load
 *    as one-change `changes` frames through the Chorus relay and through the raw relay; the
 *    figure per change is its send → received by the last of the 9 others. Goal: the Chorus
 *    relay's p99 ≤ 1.5× the raw relay's. The Chorus relay fsyncs each commit before it
 *    forwards; the floor stores nothing. The CPU time each relay process used for its run is
 *    in the JSON (and printed) too.
 * 3. **reconnect** — 10 replicas (memory storage) each write 1,000 records offline, then all
 *    connect at once: time until every replica holds all 10,000 records and has none pending
 *    (≤ 1 s). Round trips: every run is repeated with each message delayed by `DELAY_MS` each
 *    way (an RTT of 2 × `DELAY_MS` after the WebSocket handshake, which is not delayed), long
 *    next to the processing, and round trips = (delayed − undelayed median time) ÷ RTT: how
 *    many network round trips the slowest replica waits for on top of its processing (≤ 2).
 *    Processing that overlaps a wait hides part of one, so this errs low; delayed time ÷ RTT,
 *    which counts all processing as waiting, errs high — both are in the JSON. Bytes: TCP
 *    payload bytes of all 10 sockets, both ways, ÷ the minimum: each replica uploading its
 *    own 1,000 records once and downloading the other 9,000 once, each record counted as its
 *    JSON `{ id, value }` (≤ 1.2×). The hub streams at most `windowBytes` (4 MiB, the replica's
 *    own changes costing nothing) and `window` log positions (20,000) ahead of a replica's
 *    acks; it used to stream at most 2,000 positions, so the section runs again with the
 *    relay's `session.window` at `FORMER_WINDOW`, for comparison in the same run.
 * 4. **fan-out** — one writer sends `FANOUT_CHANGES` changes in frames of 100 to 100
 *    subscribers (bare clients that acknowledge every 500 positions and, like replicas of
 *    older builds, offer no protocol feature, so they get change objects): changes delivered per
 *    second until the last subscriber has them all, Chorus relay ÷ raw broadcast (≥ 0.7×).
 *    Memory: the relay process's heap + external memory (after `gc()`) with 500 more idle
 *    connections minus before, per connection, after 500 others warmed the code paths up. Every idle connection has exchanged one
 *    message each way: a Chorus one said hello to an empty space and was answered; a raw one
 *    sent a hello that the raw relay echoed (Chorus ÷ raw ≤ 1.2×). The CPU time each relay
 *    process used per run is in the JSON too: on a busy machine it varies less than the rate.
 * 5. **local writes** — 10k puts into a fresh replica on fake-indexeddb (no relay), issued
 *    together (`Promise.all`) and awaited one by one, vs one Dexie `bulkPut` of the same 10k
 *    values on a fresh fake-indexeddb (goal for the former ≤ 1.25×); 10k Dexie `put`s awaited
 *    one by one are the floor for the latter. The ids and values are made before the clock
 *    starts, for Chorus as for Dexie (runs before this build made each note inside Chorus's
 *    timed loop, about 20 ms of 10k). A Chorus write also stores its change in the
 *    outbox and its clock. For reference, the same 10k puts issued together into a replica
 *    with `storage: 'memory'`: what the engine costs (validating, copying and freezing each
 *    value, stamping it, making its change) before any IndexedDB work. Chorus is given
 *    fake-indexeddb's `IDBKeyRange` with its factory, as the Dexie floor is (and as the client
 *    README tells Node users); runs before this build's `IDBKeyRange` option gave it none, so
 *    its batches read their records with one request each. Also for reference: the records,
 *    outbox chunks and metadata those writes store, made by the client's own layout encoders
 *    from changes made beforehand and written in one transaction of raw IndexedDB calls —
 *    what the layout costs before any engine work (on its own above 1.25× `bulkPut`).
 * 6. **conflicts after a change** — a replica on fake-indexeddb holding `CONFLICT_RECORDS`
 *    notes (resolver `manual`): `conflicts()` over every record, which `useConflicts` ran after
 *    each remote change before this build, against `conflicts({ collection, ids })` over the
 *    one record a change names, which it runs now. No goal: the figure is the price of a
 *    change in a large notebook.
 * 7. **relays on PostgreSQL** — section 2's relay forwarding against a relay on SQLite, one on
 *    PostgreSQL, and two relays sharing one PostgreSQL database with the clients spread over
 *    both, beside the raw floor (a throwaway PostgreSQL server the benchmark starts). No goal:
 *    the figures are what the shared store costs.
 * 8. **linked relays** — section 2's relay forwarding against one relay on SQLite and two
 *    relays with SQLite files of their own, one linked to the other (`--link`), the clients
 *    spread over both, beside the raw floor; and a catch-up: a relay holding `LINK_RECORDS`
 *    records, and a new relay linked to it, timed from the new relay's start (listening) to
 *    its log holding them all, against a fresh replica (memory storage) syncing the same
 *    records from the first relay, from `createReplica` to `synced()`. No goal: the figures
 *    are what a link costs.
 *
 * Replicas offer the protocol's optional `compact` feature, as every replica of this build
 * does, so the relay sends them batches as compact rows (see docs/PROTOCOL.md).
 *
 * Timed figures are medians of several runs after a warm-up run (the counts and samples are
 * in the JSON). Goals are reported, never asserted: this is a benchmark, not a test.
 *
 * Run with `pnpm bench:sync` (`tsx --expose-gc --conditions=@chorus/source test/bench/sync.ts`,
 * about 3 minutes); it prints a table and writes `test/bench/results/sync.json`. `ONLY=1,3`
 * runs some sections (and writes `sync-partial.json`); `CHORUS_BENCH_PROFILE=dir` writes CPU
 * profiles of the relay processes there, and of each timed Chorus run of section 5 (which runs
 * in this process: `local-writes-<kind>-<run>.cpuprofile`; profiling slows those runs).
 * `CHORUS_BENCH_TRACE=1` splits section 2's end-to-end times (see `LatencySegments`); its
 * JSON also gives, always, how long the relay's commits took during each timed run.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { performance } from 'node:perf_hooks'
import { createReplica, type Replica } from '@chorus/client'
import { type Change, encodeMessage, type JsonObject, recordKey, type SpaceId } from '@chorus/core'
import { COMMIT_BUCKETS_MS } from '@chorus/relay'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { encodeOutbox, encodeSoleVersion } from '../../packages/client/src/storage/idb-layout.js'
import { startPostgres } from '../../packages/relay/test/support/postgres-server.js'
import { dexieBulkPut, openDexie } from './floors.js'
import { type HostedRelay, startHostedRelay } from './relay-client.js'
import type { HostReply } from './relay-host.js'
import { Meter, meteredWebSocket, WireClient } from './sockets.js'
import { renderTable } from './table.js'
import {
  COLLECTION,
  jsonPayloadBytes,
  median,
  NOTE_IDS,
  noteId,
  noteValue,
  percentile,
  putChange,
  SPACE,
  sleep,
  until,
  writerId,
} from './workload.js'

const INITIAL_RECORDS = 100_000
const LATENCY_REPLICAS = 10
const LATENCY_INTERVAL_MS = 10
const LATENCY_SECONDS = 10
const RECONNECT_REPLICAS = 10
const RECONNECT_WRITES = 1000
const DELAY_MS = 400
/** The hub's former stream window, in positions; the reconnect runs again with it. */
const FORMER_WINDOW = 2_000
const FANOUT_SUBSCRIBERS = 100
const FANOUT_CHANGES = 20_000
const IDLE_CONNECTIONS = 500
const LOCAL_WRITES = 10_000
const CONFLICT_RECORDS = 10_000
const SECTIONS = 8
const only = new Set(
  (process.env.ONLY ?? Array.from({ length: SECTIONS }, (_, i) => i + 1).join(',')).split(',').map(Number),
)

const collect = globalThis.gc
if (typeof collect !== 'function') {
  throw new Error('the sync benchmark needs gc(): run it with `pnpm bench:sync`')
}
function gc(): void {
  collect?.()
  collect?.()
}

function log(line: string): void {
  process.stderr.write(`${line}\n`)
}

let dbCount = 0
function freshDbName(): string {
  dbCount += 1
  return `bench-${dbCount}`
}

// 1. initial sync -----------------------------------------------------------------------------

interface InitialRun {
  readonly ms: number
  readonly wireBytes: number
  readonly payloadBytes: number
  /** This process's heap once synced (after `gc()`), in bytes; see {@link heldBytes}. */
  readonly heapSynced: number
}

/**
 * What a run's replica (or floor client) held once synced: the heap then, less the heap
 * once the run is over and all it made is garbage (measured after the run's function
 * returned, so nothing of it is still referenced; garbage of earlier runs cannot count).
 */
function heldBytes(run: InitialRun): number {
  gc()
  return run.heapSynced - process.memoryUsage().heapUsed
}

async function chorusInitialSync(relay: HostedRelay, storage: 'memory' | 'indexeddb'): Promise<InitialRun> {
  gc()
  const meter = new Meter()
  const start = performance.now()
  const replica = await createReplica({
    space: SPACE,
    url: relay.url,
    WebSocket: meteredWebSocket(meter),
    storage,
    dbName: freshDbName(),
    indexedDB: new IDBFactory(),
    IDBKeyRange,
    tickMs: 100,
  })
  await replica.synced()
  const ms = performance.now() - start
  gc()
  const heapSynced = process.memoryUsage().heapUsed
  const rows = await replica.collection(COLLECTION).list()
  if (rows.length !== INITIAL_RECORDS)
    throw new Error(`initial sync: ${rows.length} records, expected ${INITIAL_RECORDS}`)
  await replica.close()
  return { ms, wireBytes: meter.wireBytes(), payloadBytes: meter.payloadIn + meter.payloadOut, heapSynced }
}

/** The floor: the records as JSON pages of 200 through the raw relay, parsed (and stored). */
async function floorInitialSync(
  relay: HostedRelay,
  pages: readonly string[],
  storage: 'memory' | 'indexeddb',
): Promise<InitialRun> {
  gc()
  const db = storage === 'indexeddb' ? await openDexie(freshDbName()) : null
  const records = new Map<string, JsonObject>()
  let received = 0
  let stored = 0
  let queue = Promise.resolve()
  const meter = new Meter()
  const receiver = await WireClient.open(relay.url, {
    mode: 'raw',
    replicaId: 'floor-receiver',
    space: SPACE,
  })
  receiver.socket.on('message', (data: Buffer) => {
    meter.payloadIn += data.byteLength
    const page = JSON.parse(data.toString('utf8')) as { id: string; value: JsonObject }[]
    received += page.length
    if (db === null) {
      for (const row of page) records.set(row.id, row.value)
      stored += page.length
    } else {
      queue = queue.then(async () => {
        await db.table('notes').bulkPut(page)
        stored += page.length
      })
    }
  })
  const sender = await WireClient.open(relay.url, {
    mode: 'raw',
    replicaId: 'floor-sender',
    space: SPACE,
  })
  const start = performance.now()
  for (const page of pages) sender.send(page)
  await until(() => stored >= INITIAL_RECORDS, 'the floor receiver to store every record')
  const ms = performance.now() - start
  gc()
  const heapSynced = process.memoryUsage().heapUsed
  if (received !== INITIAL_RECORDS || records.size !== (db === null ? INITIAL_RECORDS : 0))
    throw new Error('initial sync floor: records were lost')
  sender.close()
  receiver.close()
  db?.close()
  // The socket's listener (and so the map) may outlive this call while the socket closes.
  records.clear()
  return { ms, wireBytes: Number.NaN, payloadBytes: meter.payloadIn, heapSynced }
}

async function benchInitialSync() {
  log('1. initial sync…')
  const rows = Array.from({ length: INITIAL_RECORDS }, (_, n) => ({ id: noteId(n), value: noteValue(n) }))
  const jsonBytes = jsonPayloadBytes(rows)
  const pages: string[] = []
  for (let i = 0; i < rows.length; i += 200) pages.push(JSON.stringify(rows.slice(i, i + 200)))
  const chorus = await startHostedRelay({ kind: 'chorus' })
  const raw = await startHostedRelay({ kind: 'raw' })
  await chorus.request({ type: 'seed', space: SPACE, records: INITIAL_RECORDS })
  const out: {
    memory?: StorageFigures
    indexeddb?: StorageFigures
    bytes?: BytesFigures
  } = {}
  for (const [storage, runs] of [
    ['memory', 3],
    ['indexeddb', 2],
  ] as const) {
    await chorusInitialSync(chorus, storage)
    await floorInitialSync(raw, pages, storage)
    const chorusRuns: InitialRun[] = []
    const floorRuns: InitialRun[] = []
    const held = { chorus: [] as number[], floor: [] as number[] }
    for (let i = 0; i < runs; i++) {
      chorusRuns.push(await chorusInitialSync(chorus, storage))
      held.chorus.push(heldBytes(chorusRuns.at(-1) as InitialRun))
      floorRuns.push(await floorInitialSync(raw, pages, storage))
      held.floor.push(heldBytes(floorRuns.at(-1) as InitialRun))
      log(
        `   ${storage}: chorus ${chorusRuns.at(-1)?.ms.toFixed(0)} ms, floor ${floorRuns.at(-1)?.ms.toFixed(0)} ms`,
      )
    }
    const ms = median(chorusRuns.map((run) => run.ms))
    const floorMs = median(floorRuns.map((run) => run.ms))
    const goalMs = storage === 'memory' ? 2000 : 6000
    out[storage] = {
      runs,
      chorusMs: ms,
      floorMs,
      ratio: ms / floorMs,
      samplesMs: { chorus: chorusRuns.map((run) => run.ms), floor: floorRuns.map((run) => run.ms) },
      // Memory storage only: with fake-indexeddb the heap holds its copy as well.
      heldBytesPerRecord:
        storage === 'memory'
          ? { chorus: median(held.chorus) / INITIAL_RECORDS, floor: median(held.floor) / INITIAL_RECORDS }
          : null,
      goal: { maxMs: goalMs, met: ms <= goalMs },
    }
    if (storage === 'memory') {
      const first = chorusRuns[0] as InitialRun
      out.bytes = {
        jsonPayloadBytes: jsonBytes,
        chorusWireBytes: first.wireBytes,
        chorusPayloadBytes: first.payloadBytes,
        floorPayloadBytes: (floorRuns[0] as InitialRun).payloadBytes,
        ratio: first.wireBytes / jsonBytes,
        payloadRatio: first.payloadBytes / jsonBytes,
        goal: { maxRatio: 1.15, met: first.wireBytes / jsonBytes <= 1.15 },
      }
    }
  }
  await chorus.close()
  await raw.close()
  const { memory, indexeddb, bytes } = out
  if (memory === undefined || indexeddb === undefined || bytes === undefined) throw new Error('unreachable')
  return { records: INITIAL_RECORDS, memory, indexeddb, bytes }
}

interface StorageFigures {
  readonly runs: number
  readonly chorusMs: number
  readonly floorMs: number
  readonly ratio: number
  readonly samplesMs: { readonly chorus: number[]; readonly floor: number[] }
  readonly heldBytesPerRecord: { readonly chorus: number; readonly floor: number } | null
  readonly goal: { readonly maxMs: number; readonly met: boolean }
}

interface BytesFigures {
  readonly jsonPayloadBytes: number
  readonly chorusWireBytes: number
  readonly chorusPayloadBytes: number
  readonly floorPayloadBytes: number
  readonly ratio: number
  readonly payloadRatio: number
  readonly goal: { readonly maxRatio: number; readonly met: boolean }
}

// 2. latency ----------------------------------------------------------------------------------

async function openReplicas(
  relay: HostedRelay,
  count: number,
  meter: Meter,
  options: { space: string; autoConnect: boolean; delayMs?: number },
): Promise<Replica[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      createReplica({
        space: options.space,
        url: relay.url,
        storage: 'memory',
        autoConnect: options.autoConnect,
        WebSocket: meteredWebSocket(meter, options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
        tickMs: 100,
      }),
    ),
  )
}

function summariseLatency(samples: readonly number[]) {
  return {
    samples: samples.length,
    p50Ms: percentile(samples, 50),
    p90Ms: percentile(samples, 90),
    p99Ms: percentile(samples, 99),
    maxMs: Math.max(...samples),
  }
}

/**
 * Where a write's time to visible everywhere goes, per measured write (`CHORUS_BENCH_TRACE=1`):
 * from its commit to its upload leaving the writer's socket (negative: the upload leaves
 * before the write's promise settles), from there to the last reader's socket taking the
 * frame (the relay's commit and forwarding, the network, and any pause of this process,
 * which hosts all ten replicas), and from that to the last reader's change event.
 */
const TRACE = process.env.CHORUS_BENCH_TRACE === '1'

interface LatencySegments {
  readonly toUpload: number[]
  readonly throughRelay: number[]
  readonly toEvent: number[]
}

/** The relay's commits between two `metrics` replies: how many, and how many took longer than 5 and 10 ms. */
function commitsBetween(before: HostReply, after: HostReply) {
  if (
    before.type !== 'metrics' ||
    after.type !== 'metrics' ||
    before.commits === null ||
    after.commits === null
  )
    return null
  const over = (ms: number) => {
    const i = COMMIT_BUCKETS_MS.indexOf(ms)
    const within = (after.commits?.atMost[i] ?? 0) - (before.commits?.atMost[i] ?? 0)
    return count - within
  }
  const count = after.commits.count - before.commits.count
  return {
    count,
    meanMs: count === 0 ? 0 : (after.commits.sumMs - before.commits.sumMs) / count,
    over5Ms: over(5),
    over10Ms: over(10),
  }
}

async function chorusEndToEnd(
  relay: HostedRelay,
): Promise<{ latencies: number[]; segments: LatencySegments }> {
  gc()
  const meter = new Meter()
  const trace = { ids: NOTE_IDS, sent: new Map<string, number>(), arrived: new Map<string, number[]>() }
  // Matching ids in every frame costs the benchmark's process some time: only when asked.
  if (TRACE) meter.trace = trace
  const replicas = await openReplicas(relay, LATENCY_REPLICAS, meter, {
    space: 'latency',
    autoConnect: true,
  })
  await Promise.all(replicas.map((replica) => replica.synced()))
  const committed = new Map<string, number>()
  const seen = new Map<string, number[]>()
  for (const replica of replicas) {
    replica.on('change', (event) => {
      if (event.origin !== 'remote') return
      const at = performance.now()
      for (const id of event.ids) {
        const times = seen.get(id) ?? []
        times.push(at)
        seen.set(id, times)
      }
    })
  }
  const warmupMs = 1000
  const totalMs = warmupMs + LATENCY_SECONDS * 1000
  const started = performance.now()
  let writes = 0
  const timers = replicas.map((replica, r) =>
    setTimeout(
      () => {
        let n = 0
        const notes = replica.collection(COLLECTION)
        const timer = setInterval(() => {
          if (performance.now() - started > totalMs) {
            clearInterval(timer)
            return
          }
          const id = noteId(n++, r)
          const measured = performance.now() - started >= warmupMs
          writes++
          void notes.put(id, noteValue(n)).then(() => {
            if (measured) committed.set(id, performance.now())
          })
        }, LATENCY_INTERVAL_MS)
        timers.push(timer)
      },
      (r * LATENCY_INTERVAL_MS) / LATENCY_REPLICAS,
    ),
  )
  await sleep(totalMs + 50)
  await until(
    () => [...committed.keys()].every((id) => (seen.get(id)?.length ?? 0) >= LATENCY_REPLICAS - 1),
    'every write to be visible everywhere',
    30_000,
  )
  for (const timer of timers) clearTimeout(timer)
  const latencies: number[] = []
  const segments: LatencySegments = { toUpload: [], throughRelay: [], toEvent: [] }
  for (const [id, at] of committed) {
    const visible = Math.max(...(seen.get(id) as number[]))
    latencies.push(visible - at)
    const sent = trace.sent.get(id)
    const arrived = trace.arrived.get(id)
    if (sent === undefined || arrived === undefined) continue
    const last = Math.max(...arrived)
    segments.toUpload.push(sent - at)
    segments.throughRelay.push(last - sent)
    segments.toEvent.push(visible - last)
  }
  if (writes < LATENCY_REPLICAS * LATENCY_SECONDS * (1000 / LATENCY_INTERVAL_MS) * 0.8)
    log(`   note: only ${writes} writes were issued (timers fell behind)`)
  await Promise.all(replicas.map((replica) => replica.close()))
  meter.trace = null
  return { latencies, segments }
}

/**
 * The relay alone: bare clients send one-change frames; send → last of the others received,
 * and the CPU time the relay process used meanwhile.
 */
async function relayForwarding(
  relay: HostedRelay,
  space: string,
  others: readonly HostedRelay[] = [],
): Promise<{ latencies: number[]; relayCpuMs: number; hops: { sameRelay: number[]; otherRelay: number[] } }> {
  gc()
  const mode = relay.kind === 'chorus' ? 'chorus' : 'raw'
  // With `others`, the clients are spread over the relays in turn (relays sharing a store).
  const relays = [relay, ...others]
  const cpu = async () => (await Promise.all(relays.map(relayCpuMs))).reduce((sum, ms) => sum + ms, 0)
  const sentAt = new Map<string, number>()
  const arrivals = new Map<string, number[]>()
  // With several relays: each frame's last arrival at a client of its writer's relay, and at
  // one of another relay (through the database's notice).
  const writers = new Map(Array.from({ length: LATENCY_REPLICAS }, (_, r) => [writerId(r) as string, r]))
  const lastOn = { same: new Map<string, number>(), other: new Map<string, number>() }
  const clients = await Promise.all(
    Array.from({ length: LATENCY_REPLICAS }, (_, r) =>
      WireClient.open((relays[r % relays.length] as HostedRelay).url, {
        mode,
        replicaId: writerId(r),
        space,
        onChanges: (_from, _to, data) => {
          const at = performance.now()
          const message = JSON.parse(data.toString('utf8')) as { batch: Change[] }
          for (const change of message.batch) {
            const key = `${change.dot[0]}:${change.dot[1]}`
            const times = arrivals.get(key) ?? []
            times.push(at)
            arrivals.set(key, times)
            const writer = writers.get(change.dot[0]) ?? 0
            const hop = writer % relays.length === r % relays.length ? lastOn.same : lastOn.other
            hop.set(key, Math.max(hop.get(key) ?? 0, at))
          }
        },
      }),
    ),
  )
  const warmupMs = 1000
  const totalMs = warmupMs + LATENCY_SECONDS * 1000
  const cpuBefore = await cpu()
  const started = performance.now()
  const measuredKeys: string[] = []
  const timers: NodeJS.Timeout[] = []
  await new Promise<void>((resolve) => {
    let running = clients.length
    clients.forEach((client, r) => {
      const replica = writerId(r)
      let counter = 0
      timers.push(
        setTimeout(
          () => {
            const timer = setInterval(() => {
              if (performance.now() - started > totalMs) {
                clearInterval(timer)
                if (--running === 0) resolve()
                return
              }
              counter++
              const change = putChange(replica, counter, counter, r)
              const frame = encodeMessage({
                type: 'changes',
                space: space as SpaceId,
                from: counter - 1,
                to: counter,
                batch: [change],
              })
              const key = `${replica}:${counter}`
              sentAt.set(key, performance.now())
              if (performance.now() - started >= warmupMs) measuredKeys.push(key)
              client.send(frame)
            }, LATENCY_INTERVAL_MS)
            timers.push(timer)
          },
          (r * LATENCY_INTERVAL_MS) / LATENCY_REPLICAS,
        ),
      )
    })
  })
  await until(
    () => measuredKeys.every((key) => (arrivals.get(key)?.length ?? 0) >= LATENCY_REPLICAS - 1),
    'every frame to reach every other client',
    30_000,
  )
  const relayCpu = (await cpu()) - cpuBefore
  for (const timer of timers) clearTimeout(timer)
  for (const client of clients) client.close()
  return {
    latencies: measuredKeys.map(
      (key) => Math.max(...(arrivals.get(key) as number[])) - (sentAt.get(key) as number),
    ),
    relayCpuMs: relayCpu,
    hops: {
      sameRelay: hopLatencies(lastOn.same, measuredKeys, sentAt),
      otherRelay: hopLatencies(lastOn.other, measuredKeys, sentAt),
    },
  }
}

/** Send → last arrival in `last`, for the keys measured that have one. */
function hopLatencies(
  last: ReadonlyMap<string, number>,
  keys: readonly string[],
  sentAt: ReadonlyMap<string, number>,
): number[] {
  const out: number[] = []
  for (const key of keys) {
    const at = last.get(key)
    if (at !== undefined) out.push(at - (sentAt.get(key) as number))
  }
  return out
}

async function benchLatency() {
  log('2. latency…')
  const chorus = await startHostedRelay({ kind: 'chorus' })
  const raw = await startHostedRelay({ kind: 'raw' })
  const commitsAtStart = await chorus.request({ type: 'metrics' })
  const measured = await chorusEndToEnd(chorus)
  const commitsAfterEndToEnd = await chorus.request({ type: 'metrics' })
  const endToEnd = summariseLatency(measured.latencies)
  const segments = TRACE
    ? {
        toUploadMs: summariseLatency(measured.segments.toUpload),
        throughRelayMs: summariseLatency(measured.segments.throughRelay),
        toEventMs: summariseLatency(measured.segments.toEvent),
      }
    : null
  const endToEndCommits = commitsBetween(commitsAtStart, commitsAfterEndToEnd)
  log(`   end to end: p50 ${endToEnd.p50Ms.toFixed(2)} ms, p99 ${endToEnd.p99Ms.toFixed(2)} ms`)
  log(
    `   relay commits: ${endToEndCommits?.count}, mean ${endToEndCommits?.meanMs.toFixed(2)} ms, over 5 ms: ${endToEndCommits?.over5Ms}, over 10 ms: ${endToEndCommits?.over10Ms}`,
  )
  if (segments !== null) {
    log(
      `   writer socket → last reader socket: p50 ${segments.throughRelayMs.p50Ms.toFixed(2)} ms, p99 ${segments.throughRelayMs.p99Ms.toFixed(2)} ms`,
    )
  }
  const forwardedChorus = await relayForwarding(chorus, 'forwarding')
  const forwardingCommits = commitsBetween(commitsAfterEndToEnd, await chorus.request({ type: 'metrics' }))
  const forwardedRaw = await relayForwarding(raw, 'forwarding')
  const relayChorus = {
    ...summariseLatency(forwardedChorus.latencies),
    relayCpuMs: forwardedChorus.relayCpuMs,
  }
  const relayRaw = { ...summariseLatency(forwardedRaw.latencies), relayCpuMs: forwardedRaw.relayCpuMs }
  log(
    `   relay: chorus p99 ${relayChorus.p99Ms.toFixed(2)} ms (relay CPU ${Math.round(relayChorus.relayCpuMs)} ms), raw p99 ${relayRaw.p99Ms.toFixed(2)} ms (${Math.round(relayRaw.relayCpuMs)} ms)`,
  )
  await chorus.close()
  await raw.close()
  const ratio = relayChorus.p99Ms / relayRaw.p99Ms
  return {
    replicas: LATENCY_REPLICAS,
    writesPerSecond: (LATENCY_REPLICAS * 1000) / LATENCY_INTERVAL_MS,
    seconds: LATENCY_SECONDS,
    endToEnd: {
      ...endToEnd,
      segments,
      relayCommits: endToEndCommits,
      goal: { maxP50Ms: 2, maxP99Ms: 10, met: endToEnd.p50Ms <= 2 && endToEnd.p99Ms <= 10 },
    },
    relay: {
      chorus: { ...relayChorus, relayCommits: forwardingCommits },
      floor: relayRaw,
      p99Ratio: ratio,
      goal: { maxRatio: 1.5, met: ratio <= 1.5 },
    },
  }
}

// 3. reconnect --------------------------------------------------------------------------------

interface ReconnectRun {
  readonly ms: number
  readonly wireBytes: number
  readonly framesOut: number
  readonly framesIn: number
}

let reconnectSpaces = 0

async function reconnectRun(relay: HostedRelay, delayMs: number): Promise<ReconnectRun> {
  gc()
  reconnectSpaces += 1
  const meter = new Meter()
  const replicas = await openReplicas(relay, RECONNECT_REPLICAS, meter, {
    space: `reconnect-${reconnectSpaces}`,
    autoConnect: false,
    delayMs,
  })
  await Promise.all(
    replicas.map((replica, r) => {
      const notes = replica.collection(COLLECTION)
      return Promise.all(
        Array.from({ length: RECONNECT_WRITES }, (_, n) => notes.put(noteId(n, r), noteValue(n))),
      )
    }),
  )
  const remote = replicas.map(() => 0)
  replicas.forEach((replica, r) => {
    replica.on('change', (event) => {
      if (event.origin === 'remote') remote[r] = (remote[r] as number) + event.ids.length
    })
  })
  const others = (RECONNECT_REPLICAS - 1) * RECONNECT_WRITES
  const start = performance.now()
  for (const replica of replicas) replica.connect()
  await until(
    () => replicas.every((replica, r) => replica.pending === 0 && (remote[r] as number) >= others),
    'every replica to converge',
    60_000,
  )
  const ms = performance.now() - start
  await sleep(delayMs * 2 + 20)
  const wireBytes = meter.wireBytes()
  await Promise.all(replicas.map((replica) => replica.close()))
  return { ms, wireBytes, framesOut: meter.framesOut, framesIn: meter.framesIn }
}

async function reconnectPairs(relay: HostedRelay): Promise<{ fast: ReconnectRun[]; slow: ReconnectRun[] }> {
  await reconnectRun(relay, 0)
  const fast: ReconnectRun[] = []
  const slow: ReconnectRun[] = []
  for (let i = 0; i < 3; i++) {
    fast.push(await reconnectRun(relay, 0))
    slow.push(await reconnectRun(relay, DELAY_MS))
    log(
      `   converged in ${fast.at(-1)?.ms.toFixed(0)} ms; with ${2 * DELAY_MS} ms RTT ${slow.at(-1)?.ms.toFixed(0)} ms`,
    )
  }
  return { fast, slow }
}

async function benchReconnect() {
  log('3. reconnect…')
  const relay = await startHostedRelay({ kind: 'chorus' })
  const { fast, slow } = await reconnectPairs(relay)
  await relay.close()
  log(`   again, with the relay's former stream window of ${FORMER_WINDOW} positions…`)
  const formerRelay = await startHostedRelay({ kind: 'chorus', window: FORMER_WINDOW })
  const former = await reconnectPairs(formerRelay)
  await formerRelay.close()
  const formerMs = median(former.fast.map((run) => run.ms))
  const formerDelayedMs = median(former.slow.map((run) => run.ms))
  const ms = median(fast.map((run) => run.ms))
  const delayedMs = median(slow.map((run) => run.ms))
  const roundTrips = (delayedMs - ms) / (2 * DELAY_MS)
  const records = Array.from({ length: RECONNECT_REPLICAS * RECONNECT_WRITES }, (_, i) => ({
    id: noteId(i % RECONNECT_WRITES, Math.floor(i / RECONNECT_WRITES)),
    value: noteValue(i % RECONNECT_WRITES),
  }))
  // Every replica sends its own records and receives everyone else's: each record crosses
  // the wire once up and (replicas − 1) times down, i.e. the whole set once per replica.
  const minimumBytes = RECONNECT_REPLICAS * jsonPayloadBytes(records)
  const wireBytes = median(fast.map((run) => run.wireBytes))
  return {
    replicas: RECONNECT_REPLICAS,
    writesEach: RECONNECT_WRITES,
    runs: fast.length,
    convergeMs: ms,
    convergeSamplesMs: fast.map((run) => run.ms),
    delayedConvergeMs: delayedMs,
    delayedSamplesMs: slow.map((run) => run.ms),
    rttMs: 2 * DELAY_MS,
    roundTrips,
    roundTripsUpperBound: delayedMs / (2 * DELAY_MS),
    formerWindow: {
      window: FORMER_WINDOW,
      convergeMs: formerMs,
      delayedConvergeMs: formerDelayedMs,
      roundTrips: (formerDelayedMs - formerMs) / (2 * DELAY_MS),
      roundTripsUpperBound: formerDelayedMs / (2 * DELAY_MS),
    },
    framesPerReplica: {
      out: median(fast.map((run) => run.framesOut)) / RECONNECT_REPLICAS,
      in: median(fast.map((run) => run.framesIn)) / RECONNECT_REPLICAS,
    },
    bytes: { wireBytes, minimumBytes, ratio: wireBytes / minimumBytes },
    goal: {
      maxMs: 1000,
      maxRoundTrips: 2,
      maxBytesRatio: 1.2,
      met: ms <= 1000 && roundTrips <= 2 && wireBytes / minimumBytes <= 1.2,
    },
  }
}

// 4. fan-out ----------------------------------------------------------------------------------

function fanoutFrames(space: string): string[] {
  const writer = writerId(999)
  const frames: string[] = []
  for (let from = 0; from < FANOUT_CHANGES; from += 100) {
    const batch = Array.from({ length: 100 }, (_, i) => putChange(writer, from + i + 1, from + i, 999))
    frames.push(encodeMessage({ type: 'changes', space: space as SpaceId, from, to: from + 100, batch }))
  }
  return frames
}

let fanoutSpaces = 0

interface FanoutRun {
  /** Changes delivered per second. */
  readonly rate: number
  /** CPU time the relay process used for the run (user + system): less noisy than the rate on a busy machine. */
  readonly relayCpuMs: number
}

async function relayCpuMs(relay: HostedRelay): Promise<number> {
  const reply = await relay.request({ type: 'metrics' })
  if (reply.type !== 'metrics') throw new Error(`the relay host answered ${reply.type} to metrics`)
  return reply.cpuMs
}

async function fanoutRun(relay: HostedRelay): Promise<FanoutRun> {
  gc()
  fanoutSpaces += 1
  const space = `fanout-${fanoutSpaces}`
  const mode = relay.kind === 'chorus' ? 'chorus' : 'raw'
  const frames = fanoutFrames(space)
  const counts: number[] = []
  const subscribers: WireClient[] = []
  for (let s = 0; s < FANOUT_SUBSCRIBERS; s++) {
    counts.push(0)
    subscribers.push(
      await WireClient.open(relay.url, {
        mode,
        replicaId: `subscriber-${s}`,
        space,
        onChanges: (from, to) => {
          counts[s] = (counts[s] as number) + (to - from)
        },
      }),
    )
  }
  const writer = await WireClient.open(relay.url, {
    mode,
    replicaId: writerId(999),
    space,
  })
  const cpuBefore = await relayCpuMs(relay)
  const start = performance.now()
  for (const frame of frames) writer.send(frame)
  await until(() => counts.every((count) => count >= FANOUT_CHANGES), 'every subscriber to get every change')
  const ms = performance.now() - start
  const cpuAfter = await relayCpuMs(relay)
  writer.close()
  for (const subscriber of subscribers) subscriber.close()
  return { rate: (FANOUT_CHANGES * FANOUT_SUBSCRIBERS) / (ms / 1000), relayCpuMs: cpuAfter - cpuBefore }
}

async function idleMemory(
  kind: 'chorus' | 'raw',
): Promise<{ bytesPerConnection: number; rssPerConnection: number }> {
  const relay = await startHostedRelay({ kind })
  const open = async (count: number, offset: number) => {
    const clients: WireClient[] = []
    for (let i = 0; i < count; i++) {
      const client = await WireClient.open(relay.url, {
        mode: kind,
        replicaId: `idle-${offset + i}`,
        space: 'idle',
      })
      if (kind === 'raw') await client.greet()
      clients.push(client)
    }
    return clients
  }
  // A first batch as large as the measured one warms up the code paths and buffers every
  // connection uses: with 50 it did not, and the machine code the JIT compiled for those paths
  // while the measured batch came in (one-time, about 200 B a connection for the raw relay and
  // 400 for Chorus, by heap snapshot) was counted as per-connection memory.
  const warm = await open(2 * IDLE_CONNECTIONS, 0)
  await sleep(200)
  const before = await relay.request({ type: 'memory' })
  const idle = await open(IDLE_CONNECTIONS, 2 * IDLE_CONNECTIONS)
  await sleep(200)
  const after = await relay.request({ type: 'memory' })
  for (const client of [...warm, ...idle]) client.close()
  await relay.close()
  if (before.type !== 'memory' || after.type !== 'memory') throw new Error('unexpected host reply')
  return {
    bytesPerConnection:
      (after.heapUsed + after.external - before.heapUsed - before.external) / IDLE_CONNECTIONS,
    rssPerConnection: (after.rss - before.rss) / IDLE_CONNECTIONS,
  }
}

async function benchFanout() {
  log('4. fan-out…')
  const chorus = await startHostedRelay({ kind: 'chorus' })
  const raw = await startHostedRelay({ kind: 'raw' })
  await fanoutRun(chorus)
  await fanoutRun(raw)
  const chorusRuns: FanoutRun[] = []
  const rawRuns: FanoutRun[] = []
  for (let i = 0; i < 3; i++) {
    const chorusRun = await fanoutRun(chorus)
    const rawRun = await fanoutRun(raw)
    chorusRuns.push(chorusRun)
    rawRuns.push(rawRun)
    log(
      `   chorus ${Math.round(chorusRun.rate)} changes/s (relay CPU ${Math.round(chorusRun.relayCpuMs)} ms), raw ${Math.round(rawRun.rate)} (${Math.round(rawRun.relayCpuMs)} ms)`,
    )
  }
  await chorus.close()
  await raw.close()
  const chorusRate = median(chorusRuns.map((run) => run.rate))
  const rawRate = median(rawRuns.map((run) => run.rate))
  const chorusCpu = median(chorusRuns.map((run) => run.relayCpuMs))
  const rawCpu = median(rawRuns.map((run) => run.relayCpuMs))
  const chorusMemory = await idleMemory('chorus')
  const rawMemory = await idleMemory('raw')
  const memoryRatio = chorusMemory.bytesPerConnection / rawMemory.bytesPerConnection
  log(
    `   idle connection: chorus ${Math.round(chorusMemory.bytesPerConnection)} B, raw ${Math.round(rawMemory.bytesPerConnection)} B`,
  )
  return {
    subscribers: FANOUT_SUBSCRIBERS,
    changes: FANOUT_CHANGES,
    runs: chorusRuns.length,
    throughput: {
      unit: 'changes delivered per second',
      chorus: chorusRate,
      floor: rawRate,
      ratio: chorusRate / rawRate,
      samples: { chorus: chorusRuns.map((run) => run.rate), floor: rawRuns.map((run) => run.rate) },
      goal: { minRatio: 0.7, met: chorusRate / rawRate >= 0.7 },
    },
    relayCpuMsPerRun: {
      chorus: chorusCpu,
      floor: rawCpu,
      ratio: chorusCpu / rawCpu,
      samples: {
        chorus: chorusRuns.map((run) => run.relayCpuMs),
        floor: rawRuns.map((run) => run.relayCpuMs),
      },
    },
    idleMemory: {
      connections: IDLE_CONNECTIONS,
      chorus: chorusMemory,
      floor: rawMemory,
      ratio: memoryRatio,
      goal: { maxRatio: 1.2, met: memoryRatio <= 1.2 },
    },
  }
}

// 5. local writes -----------------------------------------------------------------------------

/** The notes section 5 writes, made before any clock starts (as the Dexie floor's rows are). */
interface LocalNotes {
  readonly ids: readonly string[]
  readonly values: readonly JsonObject[]
}

async function chorusLocalWrites(
  notesToWrite: LocalNotes,
  together: boolean,
  storage: 'indexeddb' | 'memory' = 'indexeddb',
  profileAs: string | null = null,
): Promise<number> {
  const { ids, values } = notesToWrite
  gc()
  const replica = await createReplica({
    space: SPACE,
    storage,
    dbName: freshDbName(),
    indexedDB: new IDBFactory(),
    IDBKeyRange,
  })
  const notes = replica.collection(COLLECTION)
  const profile = profileAs === null ? null : await startProfile()
  const start = performance.now()
  if (together) {
    await Promise.all(ids.map((id, n) => notes.put(id, values[n] as JsonObject)))
  } else {
    for (let n = 0; n < ids.length; n++) await notes.put(ids[n] as string, values[n] as JsonObject)
  }
  const ms = performance.now() - start
  if (profile !== null && profileAs !== null) await profile.stop(profileAs)
  if (replica.pending !== ids.length) throw new Error('local writes: a write is missing from the outbox')
  await replica.close()
  return ms
}

/**
 * With `CHORUS_BENCH_PROFILE=dir`, a CPU profile of this process (section 5 runs here, not in
 * a relay process); `stop(name)` writes it there as `name.cpuprofile`. Null without it.
 */
async function startProfile(): Promise<{ stop(name: string): Promise<void> } | null> {
  const dir = process.env.CHORUS_BENCH_PROFILE
  if (dir === undefined || dir === '') return null
  const { Session } = await import('node:inspector/promises')
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return {
    async stop(name) {
      const { profile } = await session.post('Profiler.stop')
      session.disconnect()
      mkdirSync(dir, { recursive: true })
      writeFileSync(`${dir}/${name}.cpuprofile`, JSON.stringify(profile))
    },
  }
}

async function dexiePuts(rows: readonly { id: string }[]): Promise<number> {
  gc()
  const db = await openDexie(freshDbName())
  const start = performance.now()
  for (const row of rows) await db.table('notes').put(row)
  const ms = performance.now() - start
  db.close()
  return ms
}

/**
 * What Chorus's IndexedDB layout alone costs the same 10k puts: the records, outbox chunks and
 * metadata a Chorus write stores, made by the client's own encoders (`encodeSoleVersion`,
 * `encodeOutbox`) from changes made before the clock starts, in one transaction of raw
 * IndexedDB calls on a fresh fake-indexeddb — no engine, no validation, no reads.
 */
async function layoutWrites(changes: readonly Change[]): Promise<number> {
  gc()
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = new IDBFactory().open(freshDbName(), 1)
    request.onupgradeneeded = () => {
      for (const store of ['meta', 'records', 'outbox']) request.result.createObjectStore(store)
    }
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  const start = performance.now()
  await new Promise<void>((resolve, reject) => {
    const tx = db.transaction(['meta', 'records', 'outbox'], 'readwrite')
    const records = tx.objectStore('records')
    for (const change of changes)
      records.put(encodeSoleVersion(change), recordKey(change.collection, change.id))
    const outbox = tx.objectStore('outbox')
    encodeOutbox(changes, (key, chunk) => outbox.put(chunk, key))
    tx.objectStore('meta').put({ counter: changes.length }, 'replica')
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
  })
  const ms = performance.now() - start
  db.close()
  return ms
}

async function benchLocalWrites() {
  log('5. local writes…')
  const rows = Array.from({ length: LOCAL_WRITES }, (_, n) => ({ id: noteId(n), ...noteValue(n) }))
  // Made once, outside every timed run: the runs time writing, not making up notes.
  const localNotes: LocalNotes = {
    ids: Array.from({ length: LOCAL_WRITES }, (_, n) => noteId(n)),
    values: Array.from({ length: LOCAL_WRITES }, (_, n) => noteValue(n)),
  }
  const changes = Array.from({ length: LOCAL_WRITES }, (_, n) => putChange(writerId(5), n + 1, n))
  const samples = {
    sequential: [] as number[],
    together: [] as number[],
    memory: [] as number[],
    bulkPut: [] as number[],
    puts: [] as number[],
    layout: [] as number[],
  }
  const runs = 3
  for (let i = 0; i <= runs; i++) {
    const sequential = await chorusLocalWrites(localNotes, false, 'indexeddb', `local-writes-sequential-${i}`)
    const together = await chorusLocalWrites(localNotes, true, 'indexeddb', `local-writes-together-${i}`)
    const memory = await chorusLocalWrites(localNotes, true, 'memory', `local-writes-memory-${i}`)
    gc()
    const bulkPut = await dexieBulkPut(rows)
    const puts = await dexiePuts(rows)
    const layout = await layoutWrites(changes)
    if (i === 0) continue
    samples.sequential.push(sequential)
    samples.together.push(together)
    samples.memory.push(memory)
    samples.bulkPut.push(bulkPut)
    samples.puts.push(puts)
    samples.layout.push(layout)
    log(
      `   chorus ${sequential.toFixed(0)} / ${together.toFixed(0)} ms (memory ${memory.toFixed(0)} ms, layout alone ${layout.toFixed(0)} ms), bulkPut ${bulkPut.toFixed(0)} ms, puts ${puts.toFixed(0)} ms`,
    )
  }
  const together = median(samples.together)
  const bulkPut = median(samples.bulkPut)
  return {
    writes: LOCAL_WRITES,
    runs,
    chorusSequentialMs: median(samples.sequential),
    chorusTogetherMs: together,
    chorusMemoryTogetherMs: median(samples.memory),
    dexieBulkPutMs: bulkPut,
    dexiePutsMs: median(samples.puts),
    layoutAloneMs: median(samples.layout),
    ratio: together / bulkPut,
    sequentialRatio: median(samples.sequential) / median(samples.puts),
    samplesMs: samples,
    goal: { maxRatio: 1.25, met: together / bulkPut <= 1.25 },
  }
}

// 7. relays on PostgreSQL -------------------------------------------------------------------

/** How many alternated runs of each relay setup section 7 times. */
const POSTGRES_RUNS = 2

/**
 * Section 2's forwarding run (10 clients, 1,000 one-change frames a second) against a relay
 * on SQLite, a relay on PostgreSQL, and two relays sharing one PostgreSQL database with the
 * clients spread over both (every frame reaches half its readers through the other relay,
 * told by the database's `NOTIFY`), beside the raw floor; the relays' mean commit time.
 */
async function benchPostgres() {
  log('7. relays on PostgreSQL…')
  const postgres = await startPostgres()
  try {
    const setups = {
      sqlite: [await startHostedRelay({ kind: 'chorus' })],
      postgres: [await startHostedRelay({ kind: 'chorus', postgres: await postgres.createDatabase() })],
      twoRelays: await (async () => {
        const shared = await postgres.createDatabase()
        return [
          await startHostedRelay({ kind: 'chorus', postgres: shared }),
          await startHostedRelay({ kind: 'chorus', postgres: shared }),
        ]
      })(),
      raw: [await startHostedRelay({ kind: 'raw' })],
    }
    /** Two relays: send → last reader on the writer's relay, and on the other one (p50s per run). */
    const hops = { sameRelayP50: [] as number[], otherRelayP50: [] as number[] }
    const runs: Record<
      keyof typeof setups,
      { p50: number[]; p99: number[]; cpu: number[]; commitMs: number[] }
    > = {
      sqlite: { p50: [], p99: [], cpu: [], commitMs: [] },
      postgres: { p50: [], p99: [], cpu: [], commitMs: [] },
      twoRelays: { p50: [], p99: [], cpu: [], commitMs: [] },
      raw: { p50: [], p99: [], cpu: [], commitMs: [] },
    }
    for (let run = 0; run < POSTGRES_RUNS; run++) {
      for (const [name, relays] of Object.entries(setups) as [keyof typeof setups, HostedRelay[]][]) {
        const [first, ...others] = relays as [HostedRelay, ...HostedRelay[]]
        const before = await Promise.all(relays.map((relay) => relay.request({ type: 'metrics' })))
        const forwarded = await relayForwarding(first, `postgres-${run}`, others)
        const after = await Promise.all(relays.map((relay) => relay.request({ type: 'metrics' })))
        const commits = relays.map((_, i) => commitsBetween(before[i] as HostReply, after[i] as HostReply))
        const counted = commits.reduce((sum, c) => sum + (c?.count ?? 0), 0)
        const total = commits.reduce((sum, c) => sum + (c === null ? 0 : c.meanMs * c.count), 0)
        const latency = summariseLatency(forwarded.latencies)
        runs[name].p50.push(latency.p50Ms)
        runs[name].p99.push(latency.p99Ms)
        runs[name].cpu.push(forwarded.relayCpuMs)
        if (counted > 0) runs[name].commitMs.push(total / counted)
        if (name === 'twoRelays') {
          hops.sameRelayP50.push(percentile(forwarded.hops.sameRelay, 50))
          hops.otherRelayP50.push(percentile(forwarded.hops.otherRelay, 50))
        }
      }
    }
    for (const relays of Object.values(setups)) for (const relay of relays) await relay.close()
    const figures = (name: keyof typeof setups) => ({
      p50Ms: median(runs[name].p50),
      p99Ms: median(runs[name].p99),
      relayCpuMs: median(runs[name].cpu),
      commitMeanMs: runs[name].commitMs.length === 0 ? null : median(runs[name].commitMs),
      runs: runs[name],
    })
    const result = {
      runs: POSTGRES_RUNS,
      sqlite: figures('sqlite'),
      postgres: figures('postgres'),
      twoRelays: {
        ...figures('twoRelays'),
        sameRelayP50Ms: median(hops.sameRelayP50),
        otherRelayP50Ms: median(hops.otherRelayP50),
        hops,
      },
      floor: figures('raw'),
    }
    log(
      `   two relays, p50 to the last reader on the writer's relay ${fixed(result.twoRelays.sameRelayP50Ms, 2)} ms, on the other ${fixed(result.twoRelays.otherRelayP50Ms, 2)} ms`,
    )
    log(
      `   forwarding p50 / p99: SQLite ${fixed(result.sqlite.p50Ms, 2)} / ${fixed(result.sqlite.p99Ms, 2)} ms, PostgreSQL ${fixed(result.postgres.p50Ms, 2)} / ${fixed(result.postgres.p99Ms, 2)} ms, two relays ${fixed(result.twoRelays.p50Ms, 2)} / ${fixed(result.twoRelays.p99Ms, 2)} ms, raw ${fixed(result.floor.p50Ms, 2)} / ${fixed(result.floor.p99Ms, 2)} ms`,
    )
    return result
  } finally {
    await postgres.stop()
  }
}

// 8. linked relays -------------------------------------------------------------------------

/** How many alternated runs of each relay setup section 8 times. */
const LINK_RUNS = 2
/** Records the catch-up of section 8 carries over a link. */
const LINK_RECORDS = 20_000

/**
 * Section 2's forwarding run against one relay, two linked relays (clients spread over both:
 * every frame reaches half its readers over the link) and the raw floor; then a new relay
 * linked to one holding `LINK_RECORDS` records, against a fresh replica syncing them.
 */
async function benchLinked() {
  log('8. linked relays…')
  const spaces = [...Array.from({ length: LINK_RUNS }, (_, run) => `linked-${run}`), 'catch-up']
  const hub = await startHostedRelay({ kind: 'chorus' })
  const setups = {
    one: [await startHostedRelay({ kind: 'chorus' })],
    linked: [await startHostedRelay({ kind: 'chorus', links: [{ url: hub.url, spaces }] }), hub],
    raw: [await startHostedRelay({ kind: 'raw' })],
  }
  const hops = { sameRelayP50: [] as number[], otherRelayP50: [] as number[] }
  const runs: Record<keyof typeof setups, { p50: number[]; p99: number[]; cpu: number[] }> = {
    one: { p50: [], p99: [], cpu: [] },
    linked: { p50: [], p99: [], cpu: [] },
    raw: { p50: [], p99: [], cpu: [] },
  }
  for (let run = 0; run < LINK_RUNS; run++) {
    for (const [name, relays] of Object.entries(setups) as [keyof typeof setups, HostedRelay[]][]) {
      const [first, ...others] = relays as [HostedRelay, ...HostedRelay[]]
      const forwarded = await relayForwarding(first, `linked-${run}`, others)
      const latency = summariseLatency(forwarded.latencies)
      runs[name].p50.push(latency.p50Ms)
      runs[name].p99.push(latency.p99Ms)
      runs[name].cpu.push(forwarded.relayCpuMs)
      if (name === 'linked') {
        hops.sameRelayP50.push(percentile(forwarded.hops.sameRelay, 50))
        hops.otherRelayP50.push(percentile(forwarded.hops.otherRelay, 50))
      }
    }
  }
  for (const relays of [setups.one, setups.raw]) for (const relay of relays) await relay.close()
  await (setups.linked[0] as HostedRelay).close()

  // Catch-up: the hub holds the records; a new relay links to it and reads them all.
  await hub.request({ type: 'seed', space: 'catch-up', records: LINK_RECORDS })
  const startedAt = performance.now()
  const follower = await startHostedRelay({ kind: 'chorus', links: [{ url: hub.url, spaces }] })
  const listeningMs = performance.now() - startedAt
  const linkStart = performance.now()
  const deadline = performance.now() + 120_000
  for (;;) {
    const reply = (await follower.request({ type: 'head', space: 'catch-up' })) as { head: number }
    if (reply.head >= LINK_RECORDS) break
    if (performance.now() > deadline)
      throw new Error('timed out waiting for the linked relay to hold every record')
    await sleep(10)
  }
  const linkMs = performance.now() - linkStart
  await follower.close()
  const replicaStart = performance.now()
  const replica = await createReplica({
    space: 'catch-up',
    url: hub.url,
    storage: 'memory',
    WebSocket: meteredWebSocket(new Meter()) as never,
  })
  await replica.synced()
  const replicaMs = performance.now() - replicaStart
  await replica.close()
  await hub.close()

  const figures = (name: keyof typeof setups) => ({
    p50Ms: median(runs[name].p50),
    p99Ms: median(runs[name].p99),
    relayCpuMs: median(runs[name].cpu),
    runs: runs[name],
  })
  const result = {
    runs: LINK_RUNS,
    one: figures('one'),
    linked: {
      ...figures('linked'),
      sameRelayP50Ms: median(hops.sameRelayP50),
      otherRelayP50Ms: median(hops.otherRelayP50),
      hops,
    },
    floor: figures('raw'),
    catchUp: { records: LINK_RECORDS, linkedRelayMs: linkMs, relayStartMs: listeningMs, replicaMs },
  }
  log(
    `   linked, p50 to the last reader on the writer's relay ${fixed(result.linked.sameRelayP50Ms, 2)} ms, on the other ${fixed(result.linked.otherRelayP50Ms, 2)} ms`,
  )
  log(
    `   forwarding p50 / p99: one relay ${fixed(result.one.p50Ms, 2)} / ${fixed(result.one.p99Ms, 2)} ms, linked ${fixed(result.linked.p50Ms, 2)} / ${fixed(result.linked.p99Ms, 2)} ms, raw ${fixed(result.floor.p50Ms, 2)} / ${fixed(result.floor.p99Ms, 2)} ms`,
  )
  log(
    `   catch-up of ${LINK_RECORDS} records: linked relay ${fixed(linkMs, 0)} ms after listening, fresh replica ${fixed(replicaMs, 0)} ms`,
  )
  return result
}

// 6. conflicts after a change --------------------------------------------------------------

async function benchConflicts() {
  log('6. conflicts after a change…')
  const replica = await createReplica({
    space: SPACE,
    storage: 'indexeddb',
    dbName: freshDbName(),
    indexedDB: new IDBFactory(),
    IDBKeyRange,
    resolvers: { [COLLECTION]: 'manual' },
  })
  const notes = replica.collection(COLLECTION)
  await Promise.all(Array.from({ length: CONFLICT_RECORDS }, (_, n) => notes.put(noteId(n), noteValue(n))))
  const samples = { all: [] as number[], named: [] as number[] }
  const runs = 5
  for (let i = 0; i <= runs; i++) {
    gc()
    let start = performance.now()
    await replica.conflicts()
    const all = performance.now() - start
    start = performance.now()
    await replica.conflicts({ collection: COLLECTION, ids: [noteId(i * 997)] })
    const named = performance.now() - start
    if (i === 0) continue
    samples.all.push(all)
    samples.named.push(named)
  }
  await replica.close()
  log(`   every record ${fixed(median(samples.all))} ms, the one named ${fixed(median(samples.named), 2)} ms`)
  return {
    records: CONFLICT_RECORDS,
    runs,
    everyRecordMs: median(samples.all),
    recordsNamedMs: median(samples.named),
    samplesMs: samples,
  }
}

// report --------------------------------------------------------------------------------------

function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–'
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED'
}

const started = performance.now()
const initial = only.has(1) ? await benchInitialSync() : null
const latency = only.has(2) ? await benchLatency() : null
const reconnect = only.has(3) ? await benchReconnect() : null
const fanout = only.has(4) ? await benchFanout() : null
const local = only.has(5) ? await benchLocalWrites() : null
const conflicts = only.has(6) ? await benchConflicts() : null
const postgresRelays = only.has(7) ? await benchPostgres() : null
const linkedRelays = only.has(8) ? await benchLinked() : null

const results = {
  meta: {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGB: Math.round(totalmem() / 1e9),
    durationSec: (performance.now() - started) / 1000,
  },
  initialSync: initial,
  latency,
  reconnect,
  fanout,
  localWrites: local,
  conflicts,
  postgresRelays,
  linkedRelays,
}

const resultsDir = new URL('./results/', import.meta.url)
mkdirSync(resultsDir, { recursive: true })
const resultsFile = new URL(only.size === SECTIONS ? 'sync.json' : 'sync-partial.json', resultsDir)
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`)

type Row = readonly [string, string, string, string, string]
const rows: Row[] = []
if (initial !== null) {
  const { memory, indexeddb: idb, bytes } = initial
  rows.push(
    [
      '1. initial sync 100k, memory (ms)',
      fixed(memory.chorusMs, 0),
      fixed(memory.floorMs, 0),
      `≤ ${memory.goal.maxMs}`,
      verdict(memory.goal.met),
    ],
    [
      '1. …heap held per record, memory (B)',
      fixed(memory.heldBytesPerRecord?.chorus ?? Number.NaN, 0),
      fixed(memory.heldBytesPerRecord?.floor ?? Number.NaN, 0),
      '(reference)',
      '',
    ],
    [
      '1. initial sync 100k, fake-indexeddb (ms)',
      fixed(idb.chorusMs, 0),
      fixed(idb.floorMs, 0),
      `≤ ${idb.goal.maxMs}`,
      verdict(idb.goal.met),
    ],
    [
      '1. wire bytes ÷ JSON payload',
      fixed(bytes.ratio, 2),
      `(payload only ${fixed(bytes.payloadRatio, 2)})`,
      '≤ 1.15',
      verdict(bytes.goal.met),
    ],
  )
}
if (latency !== null) {
  const e = latency.endToEnd
  rows.push(
    ['2. commit→visible everywhere p50 (ms)', fixed(e.p50Ms, 2), '', '≤ 2', verdict(e.p50Ms <= 2)],
    ['2. commit→visible everywhere p99 (ms)', fixed(e.p99Ms, 2), '', '≤ 10', verdict(e.p99Ms <= 10)],
    [
      '2. relay forwarding p50 (ms)',
      fixed(latency.relay.chorus.p50Ms, 2),
      fixed(latency.relay.floor.p50Ms, 2),
      '',
      '',
    ],
    [
      '2. relay forwarding p99 (ms)',
      fixed(latency.relay.chorus.p99Ms, 2),
      fixed(latency.relay.floor.p99Ms, 2),
      '≤ 1.5× floor',
      verdict(latency.relay.goal.met),
    ],
  )
}
if (reconnect !== null) {
  rows.push(
    [
      '3. reconnect 10×1000: converge (ms)',
      fixed(reconnect.convergeMs, 0),
      '',
      '≤ 1000',
      verdict(reconnect.convergeMs <= 1000),
    ],
    [
      '3. round trips per replica (≤ upper bound)',
      fixed(reconnect.roundTrips, 1),
      `(≤ ${fixed(reconnect.roundTripsUpperBound, 1)})`,
      '≤ 2',
      verdict(reconnect.roundTrips <= 2),
    ],
    [
      `3. …former window ${reconnect.formerWindow.window}: converge (ms)`,
      fixed(reconnect.formerWindow.convergeMs, 0),
      '',
      '',
      '',
    ],
    [
      `3. …former window ${reconnect.formerWindow.window}: round trips`,
      fixed(reconnect.formerWindow.roundTrips, 1),
      `(≤ ${fixed(reconnect.formerWindow.roundTripsUpperBound, 1)})`,
      '',
      '',
    ],
    [
      '3. wire bytes ÷ minimum',
      fixed(reconnect.bytes.ratio, 2),
      '',
      '≤ 1.2',
      verdict(reconnect.bytes.ratio <= 1.2),
    ],
  )
}
if (fanout !== null) {
  rows.push(
    [
      '4. fan-out to 100 (changes/s)',
      fixed(fanout.throughput.chorus, 0),
      fixed(fanout.throughput.floor, 0),
      '≥ 0.7× floor',
      verdict(fanout.throughput.goal.met),
    ],
    [
      '4. memory per idle connection (B)',
      fixed(fanout.idleMemory.chorus.bytesPerConnection, 0),
      fixed(fanout.idleMemory.floor.bytesPerConnection, 0),
      '≤ 1.2× floor',
      verdict(fanout.idleMemory.goal.met),
    ],
  )
}
if (local !== null) {
  rows.push(
    [
      '5. 10k local writes, issued together (ms)',
      fixed(local.chorusTogetherMs, 0),
      fixed(local.dexieBulkPutMs, 0),
      '≤ 1.25× bulkPut',
      verdict(local.goal.met),
    ],
    [
      '5. …the same into memory storage (ms)',
      fixed(local.chorusMemoryTogetherMs, 0),
      fixed(local.dexieBulkPutMs, 0),
      '(reference)',
      '',
    ],
    [
      '5. …its IndexedDB layout alone, raw (ms)',
      fixed(local.layoutAloneMs, 0),
      fixed(local.dexieBulkPutMs, 0),
      '(reference)',
      '',
    ],
    [
      '5. 10k local writes, awaited one by one (ms)',
      fixed(local.chorusSequentialMs, 0),
      fixed(local.dexiePutsMs, 0),
      '(Dexie put each)',
      '',
    ],
  )
}
if (conflicts !== null) {
  rows.push([
    `6. conflicts after a change, ${conflicts.records.toLocaleString('en')} records (ms)`,
    fixed(conflicts.recordsNamedMs, 2),
    fixed(conflicts.everyRecordMs, 1),
    '(scan: former)',
    '',
  ])
}
if (postgresRelays !== null) {
  const pair = (figures: { p50Ms: number; p99Ms: number }) =>
    `${fixed(figures.p50Ms, 2)} / ${fixed(figures.p99Ms, 2)}`
  const floor = pair(postgresRelays.floor)
  rows.push(
    ['7. forwarding p50 / p99, relay on SQLite (ms)', pair(postgresRelays.sqlite), floor, '(reference)', ''],
    ['7. …relay on PostgreSQL (ms)', pair(postgresRelays.postgres), floor, '(reference)', ''],
    ['7. …two relays, one PostgreSQL (ms)', pair(postgresRelays.twoRelays), floor, '(reference)', ''],
  )
}
if (linkedRelays !== null) {
  const pair = (figures: { p50Ms: number; p99Ms: number }) =>
    `${fixed(figures.p50Ms, 2)} / ${fixed(figures.p99Ms, 2)}`
  const floor = pair(linkedRelays.floor)
  const { catchUp } = linkedRelays
  rows.push(
    ['8. forwarding p50 / p99, one relay (ms)', pair(linkedRelays.one), floor, '(reference)', ''],
    ['8. …two linked relays (ms)', pair(linkedRelays.linked), floor, '(reference)', ''],
    [
      `8. catch-up of ${catchUp.records / 1000}k: linked relay vs replica (ms)`,
      fixed(catchUp.linkedRelayMs, 0),
      fixed(catchUp.replicaMs, 0),
      '(reference)',
      '',
    ],
  )
}
const head: Row = ['', 'Chorus', 'floor', 'goal', '']
console.log(
  renderTable(
    `Chorus sync benchmark — node ${results.meta.node}, ${results.meta.cores} cores (${results.meta.cpu}), ${results.meta.date}`,
    head,
    rows,
    `wrote ${resultsFile.pathname} in ${fixed(results.meta.durationSec)} s`,
  ),
)
