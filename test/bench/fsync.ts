/**
 * What one disk flush costs on this machine: the floor under every relay commit, which is
 * flushed before the relay acknowledges or forwards a change (see the relay README, *What
 * forwarding costs*).
 *
 * Appends 4 KiB to a file in the temp directory (where the benchmarks' relays keep their data)
 * and calls `fdatasync` on it, `SAMPLES` times per run, for `RUNS` runs, each on a new file;
 * prints p50 / p99 / max per run and writes `test/bench/results/fsync.json`.
 */
import {
  closeSync,
  fdatasyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join } from 'node:path'

const SAMPLES = 2_000
const RUNS = 2
const BLOCK = Buffer.alloc(4_096, 0x61)

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

function run(dir: string, index: number): { p50Ms: number; p99Ms: number; maxMs: number } {
  const fd = openSync(join(dir, `flush-${index}`), 'a')
  const samples: number[] = []
  try {
    for (let i = 0; i < SAMPLES; i++) {
      writeSync(fd, BLOCK)
      const start = performance.now()
      fdatasyncSync(fd)
      samples.push(performance.now() - start)
    }
  } finally {
    closeSync(fd)
  }
  samples.sort((a, b) => a - b)
  return { p50Ms: quantile(samples, 0.5), p99Ms: quantile(samples, 0.99), maxMs: samples.at(-1) as number }
}

const dir = mkdtempSync(join(tmpdir(), 'chorus-fsync-'))
const runs: { p50Ms: number; p99Ms: number; maxMs: number }[] = []
try {
  for (let i = 0; i < RUNS; i++) {
    const result = run(dir, i)
    runs.push(result)
    console.log(
      `run ${i + 1}: fdatasync of a 4 KiB append, p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms, max ${result.maxMs.toFixed(3)} ms (${SAMPLES} samples)`,
    )
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

const resultsDir = new URL('./results/', import.meta.url)
mkdirSync(resultsDir, { recursive: true })
writeFileSync(
  new URL('fsync.json', resultsDir),
  `${JSON.stringify(
    {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: availableParallelism(),
        dir: tmpdir(),
      },
      samplesPerRun: SAMPLES,
      blockBytes: BLOCK.length,
      runs,
    },
    null,
    2,
  )}\n`,
)
