/**
 * The browser benchmark: Chorus in real Chromium, next to raw Dexie on the same browser as
 * the floor.
 *
 * A page built for the benchmark (`browser/`: `@chorus/client` and `dexie` bundled by Vite
 * into a temp dir, production mode) is served from 127.0.0.1 (port 0) by a small static
 * server and opened in Debian's Chromium (playwright-core, `CHROMIUM_ARGS`, headless) with a
 * fresh profile in a temp dir, so IndexedDB is on disk as for a user (an incognito-style
 * context would keep it in memory). Notes are the notes app's shape — `title`, `body`,
 * `createdAt`, `updatedAt` — with about 200 characters of English prose in title and body,
 * under UUID v7 ids (`browser/notes.ts`); both sides write and read the same notes.
 *
 * 1. **local writes** — 10k notes into a fresh database: Chorus `collection.put` × 10k issued
 *    together (`Promise.all`, so they commit in batches) vs one Dexie `bulkPut` of the same
 *    notes (goal: ≤ 1.25× the floor); then Chorus puts awaited one by one vs Dexie `put`s
 *    awaited one by one. Time from the first write issued to the last one resolved; opening
 *    the database is not counted. A Chorus write stores the record (with its version and
 *    context) and an outbox entry, and commits with `durability: 'strict'` (flushed before
 *    it resolves: it is the only copy until the relay has it); Dexie uses the browser's
 *    default durability (`'default'`). For reference, the same `bulkPut` with Dexie's
 *    `chromeTransactionDurability: 'strict'`, the durability a Chorus write has.
 * 2. **cold reload** — 10k notes already stored (Chorus: written by `put`s, so the outbox
 *    holds them too; Dexie: a `bulkPut`), then a fresh page load (a new page, navigated to
 *    the benchmark page) that opens the database and shows the notes, newest first:
 *    - *open*: from just before the database is opened (`createReplica` / `db.open()`) to
 *      the open resolving;
 *    - *first 100*: from the open resolving to the 100 newest notes rendered in the DOM
 *      (goal ≤ 50 ms, and ≤ 1.25× the floor);
 *    - *all*: from the open resolving to all 10k notes read into the page (goal ≤ 1.25×
 *      the floor). The page keeps 100 in the DOM, as a virtualised list would.
 *    The floor is Dexie: `orderBy('id').reverse().limit(100)`, render, then the rest with
 *    `where('id').below(last).reverse()`. Chorus reads the same way through its collection
 *    API. Beside it, *subscribe*: what a live list does (`collection.subscribe`, sort,
 *    render the first 100), reported for reference.
 *
 * 3. **a live list after one edit** — 10k notes already stored; a live list of them
 *    (Chorus `collection.subscribe`; Dexie `liveQuery(() => table.toArray())`), then
 *    `LIVE_EDITS` single-note edits one at a time (Chorus `patch`, Dexie `update` of the title):
 *    time from the edit issued to the list delivering it, median over the runs' edits. No
 *    goal: it is what a notes list costs while someone types. Chorus used to list the whole
 *    collection again after every change (118.8 ms median here); a live query now reads
 *    only the records a change names and patches its rows.
 *
 * Timed figures are medians of `RUNS` runs after a warm-up run (every sample is in the JSON).
 * Goals are reported, never asserted: this is a benchmark, not a test.
 *
 * Run with `pnpm bench:browser` (`tsx test/bench/browser.ts`, about 2 minutes; `ONLY=3` runs one section); it prints a
 * table and writes `test/bench/results/browser.json`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { extname, join, normalize, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { build, defaultClientConditions } from 'vite'
import { CHROMIUM_ARGS, requireChromium } from '../support/chromium.js'
import type { LoadKind, LoadTimes } from './browser/main.js'
import { renderTable } from './table.js'
import { median } from './workload.js'

const NOTES = 10_000
const RUNS = 5
const WRITE_RUNS = 3
/** Runs of the one-by-one writes (tens of seconds each); `ONE_BY_ONE_RUNS=0` leaves them out. */
const ONE_BY_ONE_RUNS = Number(process.env.ONE_BY_ONE_RUNS ?? 1)
const GOAL_RATIO = 1.25
const GOAL_FIRST_MS = 50
const only = new Set((process.env.ONLY ?? '1,2,3').split(',').map(Number))
/** Single-note edits timed in section 3, per run. */
const LIVE_EDITS = 20

function log(line: string): void {
  process.stderr.write(`${line}\n`)
}

// the page ------------------------------------------------------------------------------------

/** Builds the benchmark page into a temp dir, as users get an app: production mode, minified. */
async function buildPage(outDir: string): Promise<void> {
  const root = fileURLToPath(new URL('./browser/', import.meta.url))
  const previous = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  try {
    await build({
      root,
      configFile: false,
      mode: 'production',
      logLevel: 'warn',
      resolve: { conditions: ['@chorus/source', ...defaultClientConditions] },
      // Profiles keep their function names: unminified when `CHORUS_BENCH_PROFILE` is set.
      build: { outDir, emptyOutDir: true, target: 'es2022', minify: profileDir() === null },
    })
  } finally {
    process.env.NODE_ENV = previous
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
}

/** Serves `dir` on 127.0.0.1, port 0. */
async function serve(dir: string): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname
    const file = normalize(join(dir, path === '/' ? 'index.html' : path))
    if (!file.startsWith(dir)) {
      response.writeHead(403).end()
      return
    }
    try {
      const body = readFileSync(file)
      response
        .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
        .end(body)
    } catch {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const { port } = server.address() as AddressInfo
  return { server, url: `http://127.0.0.1:${port}/` }
}

// 1. local writes -----------------------------------------------------------------------------

interface WriteSamples {
  together: number[]
  bulkPut: number[]
  bulkPutStrict: number[]
  sequential: number[]
  puts: number[]
}

let dbCount = 0
function freshDb(prefix: string): string {
  dbCount += 1
  return `${prefix}-${dbCount}`
}

/** Where `CHORUS_BENCH_PROFILE` asks for CPU profiles to go; null without it. */
function profileDir(): string | null {
  const dir = process.env.CHORUS_BENCH_PROFILE
  return dir === undefined || dir === '' ? null : dir
}

/** With `CHORUS_BENCH_PROFILE=dir`, runs `work` under Chromium's CPU profiler and saves the profile there. */
async function profiled<TResult>(page: Page, name: string, work: () => Promise<TResult>): Promise<TResult> {
  const dir = profileDir()
  if (dir === null) return work()
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 })
  await cdp.send('Profiler.start')
  try {
    return await work()
  } finally {
    const { profile } = await cdp.send('Profiler.stop')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile))
    await cdp.detach()
  }
}

async function timedWrite(
  page: Page,
  kind: 'chorus' | 'dexie' | 'dexie-strict',
  batched: boolean,
  count = NOTES,
): Promise<number> {
  const db = freshDb(`write-${kind}`)
  const ms = await profiled(page, `write-${kind}-${batched ? 'together' : 'one-by-one'}-${count}`, () =>
    page.evaluate(
      ({ kind, db, count, batched }) =>
        kind === 'chorus'
          ? window.bench.writeChorus(db, count, batched)
          : window.bench.writeDexie(db, count, batched, kind === 'dexie-strict'),
      { kind, db, count, batched },
    ),
  )
  await page.evaluate((db) => window.bench.deleteDatabase(db), db)
  return ms
}

async function benchWrites(page: Page) {
  log('1. local writes…')
  const samples: WriteSamples = { together: [], bulkPut: [], bulkPutStrict: [], sequential: [], puts: [] }
  for (let i = 0; i <= WRITE_RUNS; i++) {
    const together = await timedWrite(page, 'chorus', true)
    const bulkPut = await timedWrite(page, 'dexie', true)
    const bulkPutStrict = await timedWrite(page, 'dexie-strict', true)
    log(
      `   ${i === 0 ? 'warm-up ' : ''}chorus together ${together.toFixed(0)} ms, bulkPut ${bulkPut.toFixed(0)} ms (strict ${bulkPutStrict.toFixed(0)} ms)`,
    )
    if (i === 0) continue
    samples.together.push(together)
    samples.bulkPut.push(bulkPut)
    samples.bulkPutStrict.push(bulkPutStrict)
  }
  // Awaited one by one, 10k writes take tens of seconds: a warm-up of a tenth, then timed runs.
  if (ONE_BY_ONE_RUNS > 0) {
    await timedWrite(page, 'chorus', false, NOTES / 10)
    await timedWrite(page, 'dexie', false, NOTES / 10)
  }
  for (let i = 0; i < ONE_BY_ONE_RUNS; i++) {
    const sequential = await timedWrite(page, 'chorus', false)
    const puts = await timedWrite(page, 'dexie', false)
    log(`   chorus one by one ${sequential.toFixed(0)} ms, puts ${puts.toFixed(0)} ms`)
    samples.sequential.push(sequential)
    samples.puts.push(puts)
  }
  const together = median(samples.together)
  const bulkPut = median(samples.bulkPut)
  const sequential = median(samples.sequential)
  const puts = median(samples.puts)
  return {
    notes: NOTES,
    runs: WRITE_RUNS,
    oneByOneRuns: ONE_BY_ONE_RUNS,
    together: {
      chorusMs: together,
      floorMs: bulkPut,
      ratio: together / bulkPut,
      goal: { maxRatio: GOAL_RATIO, met: together / bulkPut <= GOAL_RATIO },
      floorStrictMs: median(samples.bulkPutStrict),
    },
    oneByOne: { chorusMs: sequential, floorMs: puts, ratio: sequential / puts },
    samplesMs: samples,
  }
}

// 2. cold reload ------------------------------------------------------------------------------

/** A Chorus database and a Dexie one, each holding the same {@link NOTES} notes. */
async function storedNotes(page: Page, prefix: string): Promise<{ chorusDb: string; dexieDb: string }> {
  const chorusDb = freshDb(`${prefix}-chorus`)
  const dexieDb = freshDb(`${prefix}-dexie`)
  await page.evaluate(
    ({ chorusDb, dexieDb, count }) =>
      Promise.all([
        window.bench.writeChorus(chorusDb, count, true),
        window.bench.writeDexie(dexieDb, count, true),
      ]),
    { chorusDb, dexieDb, count: NOTES },
  )
  return { chorusDb, dexieDb }
}

async function dropDatabases(page: Page, dbs: { chorusDb: string; dexieDb: string }): Promise<void> {
  await page.evaluate(
    ({ chorusDb, dexieDb }) =>
      Promise.all([window.bench.deleteDatabase(chorusDb), window.bench.deleteDatabase(dexieDb)]),
    dbs,
  )
}

interface LoadFigures {
  readonly openMs: number
  readonly firstMs: number
  readonly allMs: number
}

function figures(times: LoadTimes): LoadFigures {
  return {
    openMs: times.opened - times.start,
    firstMs: times.first - times.opened,
    allMs: times.all - times.opened,
  }
}

async function coldLoad(
  context: BrowserContext,
  base: string,
  kind: LoadKind,
  db: string,
  profile: string | null,
): Promise<LoadTimes> {
  const page = await context.newPage()
  try {
    const load = async () => {
      await page.goto(`${base}?load=${kind}&db=${encodeURIComponent(db)}`)
      return page.evaluate(() => window.benchLoad ?? Promise.reject(new Error('no load ran')))
    }
    const times = profile === null ? await load() : await profiled(page, profile, load)
    if (times.count !== NOTES) throw new Error(`${kind} loaded ${times.count} notes, expected ${NOTES}`)
    return times
  } finally {
    await page.close()
  }
}

async function benchColdReload(context: BrowserContext, page: Page, base: string) {
  log('2. cold reload…')
  const { chorusDb, dexieDb } = await storedNotes(page, 'load')
  const kinds: readonly LoadKind[] = ['dexie', 'chorus', 'chorus-subscribe']
  const samples: Record<LoadKind, LoadFigures[]> = { dexie: [], chorus: [], 'chorus-subscribe': [] }
  for (let i = 0; i <= RUNS; i++) {
    const shown: string[] = []
    for (const kind of kinds) {
      const times = await coldLoad(
        context,
        base,
        kind,
        kind === 'dexie' ? dexieDb : chorusDb,
        i === 1 ? `load-${kind}` : null,
      )
      shown.push(times.firstId)
      const f = figures(times)
      log(
        `   ${i === 0 ? 'warm-up ' : ''}${kind}: open ${f.openMs.toFixed(1)} ms, first 100 ${f.firstMs.toFixed(1)} ms, all ${f.allMs.toFixed(1)} ms`,
      )
      if (i > 0) samples[kind].push(f)
    }
    if (new Set(shown).size !== 1)
      throw new Error(`the pages showed different first notes: ${shown.join(', ')}`)
  }
  const summary = (kind: LoadKind) => ({
    openMs: median(samples[kind].map((f) => f.openMs)),
    firstMs: median(samples[kind].map((f) => f.firstMs)),
    allMs: median(samples[kind].map((f) => f.allMs)),
    samplesMs: samples[kind],
  })
  const floor = summary('dexie')
  const chorus = summary('chorus')
  const subscribe = summary('chorus-subscribe')
  await dropDatabases(page, { chorusDb, dexieDb })
  return {
    notes: NOTES,
    runs: RUNS,
    chorus,
    floor,
    subscribe,
    firstRatio: chorus.firstMs / floor.firstMs,
    allRatio: chorus.allMs / floor.allMs,
    goal: {
      maxRatio: GOAL_RATIO,
      maxFirstMs: GOAL_FIRST_MS,
      firstMet: chorus.firstMs <= GOAL_FIRST_MS && chorus.firstMs / floor.firstMs <= GOAL_RATIO,
      allMet: chorus.allMs / floor.allMs <= GOAL_RATIO,
    },
  }
}

// 3. a live list after one edit ----------------------------------------------------------------

async function benchLiveEdits(page: Page) {
  log('3. a live list after one edit…')
  const { chorusDb, dexieDb } = await storedNotes(page, 'live')
  const samples = { chorus: [] as number[], dexie: [] as number[] }
  for (let i = 0; i <= WRITE_RUNS; i++) {
    const chorus = await profiled(page, `live-chorus-${i}`, () =>
      page.evaluate(({ db, count, edits }) => window.bench.liveChorus(db, count, edits), {
        db: chorusDb,
        count: NOTES,
        edits: LIVE_EDITS,
      }),
    )
    const dexie = await page.evaluate(({ db, count, edits }) => window.bench.liveDexie(db, count, edits), {
      db: dexieDb,
      count: NOTES,
      edits: LIVE_EDITS,
    })
    log(
      `   ${i === 0 ? 'warm-up ' : ''}chorus median ${median(chorus).toFixed(1)} ms, Dexie liveQuery median ${median(dexie).toFixed(1)} ms`,
    )
    if (i === 0) continue
    samples.chorus.push(...chorus)
    samples.dexie.push(...dexie)
  }
  await dropDatabases(page, { chorusDb, dexieDb })
  return {
    notes: NOTES,
    edits: samples.chorus.length,
    chorusMs: median(samples.chorus),
    floorMs: median(samples.dexie),
    samplesMs: samples,
  }
}

// run -----------------------------------------------------------------------------------------

const started = performance.now()
const work = mkdtempSync(join(tmpdir(), 'chorus-bench-browser-'))
const outDir = resolve(work, 'page')
const profile = resolve(work, 'profile')
log('building the page…')
await buildPage(outDir)
const { server, url } = await serve(outDir)
const context = await chromium.launchPersistentContext(profile, {
  executablePath: requireChromium(),
  args: [...CHROMIUM_ARGS],
})
let writes: Awaited<ReturnType<typeof benchWrites>> | null = null
let reload: Awaited<ReturnType<typeof benchColdReload>> | null = null
let live: Awaited<ReturnType<typeof benchLiveEdits>> | null = null
let browserVersion: string
try {
  const page = await context.newPage()
  page.on('pageerror', (error) => log(`page error: ${error.message}`))
  await page.goto(url)
  browserVersion = context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent))
  if (only.has(1)) writes = await benchWrites(page)
  if (only.has(2)) reload = await benchColdReload(context, page, url)
  if (only.has(3)) live = await benchLiveEdits(page)
} finally {
  await context.close()
  server.close()
  rmSync(work, { recursive: true, force: true })
}

const results = {
  meta: {
    date: new Date().toISOString(),
    browser: browserVersion,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGB: Math.round(totalmem() / 1e9),
    durationSec: (performance.now() - started) / 1000,
  },
  localWrites: writes,
  coldReload: reload,
  liveEdits: live,
}

const resultsDir = new URL('./results/', import.meta.url)
mkdirSync(resultsDir, { recursive: true })
const resultsFile = new URL(only.size === 3 ? 'browser.json' : 'browser-partial.json', resultsDir)
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`)

function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–'
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED'
}

type TableRow = readonly [string, string, string, string, string, string]
const rows: TableRow[] = []
if (writes !== null) {
  rows.push(
    [
      '1. 10k writes issued together (ms)',
      fixed(writes.together.chorusMs, 0),
      fixed(writes.together.floorMs, 0),
      fixed(writes.together.ratio, 2),
      `≤ ${GOAL_RATIO}× bulkPut`,
      verdict(writes.together.goal.met),
    ],
    [
      '1. …floor with durability strict (ms)',
      fixed(writes.together.chorusMs, 0),
      fixed(writes.together.floorStrictMs, 0),
      fixed(writes.together.chorusMs / writes.together.floorStrictMs, 2),
      '(reference)',
      '',
    ],
    [
      '1. 10k writes one by one (ms)',
      fixed(writes.oneByOne.chorusMs, 0),
      fixed(writes.oneByOne.floorMs, 0),
      fixed(writes.oneByOne.ratio, 2),
      '(Dexie put each)',
      '',
    ],
  )
}
if (reload !== null) {
  const { chorus, floor, subscribe } = reload
  rows.push(
    [
      '2. cold reload: open (ms)',
      fixed(chorus.openMs),
      fixed(floor.openMs),
      fixed(chorus.openMs / floor.openMs, 2),
      '',
      '',
    ],
    [
      '2. cold reload: open → first 100 (ms)',
      fixed(chorus.firstMs),
      fixed(floor.firstMs),
      fixed(reload.firstRatio, 2),
      `≤ ${GOAL_FIRST_MS} ms, ≤ ${GOAL_RATIO}×`,
      verdict(reload.goal.firstMet),
    ],
    [
      '2. cold reload: open → all 10k (ms)',
      fixed(chorus.allMs),
      fixed(floor.allMs),
      fixed(reload.allRatio, 2),
      `≤ ${GOAL_RATIO}×`,
      verdict(reload.goal.allMet),
    ],
    [
      '2. …subscribe: open → first 100 = all (ms)',
      fixed(subscribe.firstMs),
      fixed(floor.firstMs),
      fixed(subscribe.firstMs / floor.firstMs, 2),
      '(reference)',
      '',
    ],
  )
}
if (live !== null) {
  rows.push([
    '3. live list of 10k, one edit → shown (ms)',
    fixed(live.chorusMs),
    fixed(live.floorMs),
    fixed(live.chorusMs / live.floorMs, 2),
    '(Dexie liveQuery)',
    '',
  ])
}
const head: TableRow = ['', 'Chorus', 'floor', 'ratio', 'goal', '']
console.log(
  renderTable(
    `Chorus browser benchmark — Chromium ${results.meta.browser}, ${results.meta.cores} cores (${results.meta.cpu}), ${results.meta.date}`,
    head,
    rows,
    `wrote ${fileURLToPath(resultsFile)} in ${fixed(results.meta.durationSec)} s`,
  ),
)
