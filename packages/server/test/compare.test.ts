import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isChorusError } from '@chorus/core'
import { seedFromEnv } from '@chorus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CliIo } from '../src/cli/cli-io.js'
import { runCompareCli } from '../src/cli/compare-cli.js'
import {
  COMPARE_JSON_FIELDS,
  type CompareRow,
  compareDesign,
  compareDesigns,
  compareScenario,
  formatCompareTable,
  formatSpreadTable,
  percentile,
  runComparison,
  runOne,
  SingleLeaderTarget,
  spreadOf,
  summarizeSeeds,
} from '../src/index.js'

const replay = seedFromEnv(process.env, 0)
const seeds = replay === 0 ? [1, 2] : [replay]
const runs = new Map<number, CompareRow[]>()

beforeAll(async () => {
  for (const seed of seeds) runs.set(seed, await runComparison({ seed }))
}, 60_000)

function row(seed: number, scenario: string, design: string): CompareRow {
  const found = runs
    .get(seed)
    ?.find((candidate) => candidate.scenario === scenario && candidate.design === design)
  if (found === undefined) throw new Error(`no row ${scenario} / ${design} for SEED=${seed}`)
  return found
}

describe.each(seeds)('chorus-compare, SEED=%i (replay with SEED=n)', (seed) => {
  it('under a partition, multi-leader and a sloppy quorum stay available on the minority side; sync single-leader does not', () => {
    const multi = row(seed, 'partition', 'multi-leader')
    const sync = row(seed, 'partition', 'single-leader-sync')
    const strict = row(seed, 'partition', 'quorum-n3w2r2')
    const sloppy = row(seed, 'partition', 'quorum-sloppy-n3w2r2')
    const minority = (r: CompareRow) => r.minorityAvailability ?? Number.NaN
    expect(minority(multi)).toBe(1)
    expect(multi.availability).toBe(1)
    // A leader cut off from the majority loses its lease: the minority side can neither write nor read.
    expect(minority(sync)).toBeLessThan(0.1)
    expect(minority(sloppy)).toBeGreaterThan(minority(strict))
    expect(minority(sloppy)).toBeGreaterThan(0.5)
    expect(minority(sync)).toBeLessThan(minority(sloppy))
    // The minority's writes under multi-leader are kept, and show up as conflicts, not losses.
    expect(multi.acceptedDuringFault).toBeGreaterThan(sync.acceptedDuringFault)
    expect(multi.conflicts).toBeGreaterThan(0)
    expect(multi.lostAcknowledged).toBe(0)
  })

  it('async single-leader loses acknowledged writes when its leader crashes before replicating; sync, chain, multi-leader and quorum lose none', () => {
    expect(row(seed, 'leader-crash', 'single-leader-async').lostAcknowledged).toBeGreaterThan(0)
    for (const design of [
      'single-leader-sync',
      'single-leader-chain',
      'multi-leader',
      'quorum-n3w2r2',
      'quorum-n3w3r1',
    ]) {
      expect(row(seed, 'leader-crash', design).lostAcknowledged, design).toBe(0)
    }
    // The old leader's acknowledged but unreplicated writes are the ones a partition loses too.
    expect(row(seed, 'partition', 'single-leader-async').lostAcknowledged).toBeGreaterThan(0)
    expect(row(seed, 'partition', 'single-leader-async').conflicts).toBe(0)
  })

  it('leader reads of sync and chain single-leader are never stale; multi-leader’s local reads are, and cost no network time', () => {
    for (const scenario of ['none', 'partition', 'leader-crash', 'lossy-link']) {
      for (const design of ['single-leader-sync', 'single-leader-chain']) {
        expect(row(seed, scenario, design).staleReads, `${scenario} / ${design}`).toBe(0)
      }
      const multi = row(seed, scenario, 'multi-leader')
      expect(multi.staleReads, scenario).toBeGreaterThan(0)
      expect(multi.writeP99Ms).toBe(0)
      expect(multi.readP99Ms).toBe(0)
      expect(multi.serverAckP50Ms).toBeGreaterThan(0)
    }
  })

  it('semi-sync (5 nodes, 1 ack, elections need 4 votes) loses only writes acknowledged after a counted fallback', () => {
    for (const r of runs.get(seed) ?? []) {
      if (r.mode !== 'single-leader-semi-sync') continue
      expect(r.lostAcknowledged, r.scenario).toBeLessThanOrEqual(r.fallbacks)
    }
    expect(row(seed, 'partition', 'single-leader-semi-sync').lostAcknowledged).toBe(0)
    expect(row(seed, 'leader-crash', 'single-leader-semi-sync').fallbacks).toBeGreaterThan(0)
  })

  it('lag: reading back a write at an async follower can be stale; leader reads never are', () => {
    const async = row(seed, 'lag', 'single-leader-async')
    expect(async.nearestReads).toBeGreaterThan(0)
    expect(async.staleNearestReads).toBeGreaterThan(0)
    for (const design of [
      'single-leader-async',
      'single-leader-semi-sync',
      'single-leader-sync',
      'single-leader-chain',
    ]) {
      const r = row(seed, 'lag', design)
      // Every stale read was a follower read: the leader's reads (primary route) never are.
      expect(r.staleReads, design).toBe(r.staleNearestReads)
    }
    // A multi-leader replica reads its own writes locally, and a W2 R2 quorum overlaps them.
    expect(row(seed, 'lag', 'multi-leader').staleReads).toBe(0)
    expect(row(seed, 'lag', 'quorum-n3w2r2').staleReads).toBe(0)
    // The slow link slows the chain (the far follower is in it), not the async leader.
    expect(row(seed, 'lag', 'single-leader-chain').writeP99Ms).toBeGreaterThan(async.writeP99Ms ?? Infinity)
  })

  it('concurrent-writes: a last-write-wins quorum drops acknowledged writes, and the row counts them', () => {
    const lww = row(seed, 'concurrent-writes', 'quorum-lww-n3w2r2')
    expect(lww.lostAcknowledged).toBeGreaterThan(0)
    expect(row(seed, 'concurrent-writes', 'quorum-n3w2r2').lostAcknowledged).toBe(0)
  })

  it('concurrent-writes: multi-leader and quorum surface the conflict and settle it; single-leader serialises', () => {
    for (const design of ['multi-leader', 'quorum-n3w2r2', 'quorum-sloppy-n3w2r2']) {
      const r = row(seed, 'concurrent-writes', design)
      expect(r.conflicts, design).toBeGreaterThan(0)
      expect(r.conflictsResolved, design).toBeGreaterThan(0)
      expect(r.lostAcknowledged, design).toBe(0)
    }
    for (const design of [
      'single-leader-async',
      'single-leader-semi-sync',
      'single-leader-sync',
      'single-leader-chain',
    ]) {
      const r = row(seed, 'concurrent-writes', design)
      expect(r.conflicts, design).toBe(0)
      expect(r.conflictsResolved, design).toBe(0)
      expect(r.staleReads, design).toBe(0)
      expect(r.lostAcknowledged, design).toBe(0)
    }
  })

  it('counts a conflict once however often it is read', () => {
    let readAgain = 0
    for (const r of runs.get(seed) ?? []) {
      expect(r.conflicts, `${r.scenario} / ${r.design}`).toBeLessThanOrEqual(r.readsWithSiblings)
      if (r.conflicts < r.readsWithSiblings) readAgain++
    }
    expect(readAgain).toBeGreaterThan(0)
  })

  it('every design converges once the faults are over, and each row is internally consistent', () => {
    for (const r of runs.get(seed) ?? []) {
      const label = `${r.scenario} / ${r.design}`
      expect(r.convergenceMs, label).not.toBeNull()
      expect(r.operations, label).toBeGreaterThan(0)
      expect(r.availability, label).toBeGreaterThan(0)
      expect(r.availability, label).toBeLessThanOrEqual(1)
      if (r.writeP50Ms !== null) expect(r.writeP50Ms, label).toBeLessThanOrEqual(r.writeP99Ms ?? -1)
      expect(r.bytesOnWire, label).toBeGreaterThan(0)
      if (r.scenario === 'none') expect(r.availability, label).toBe(1)
    }
    expect(runs.get(seed)).toHaveLength(6 * compareDesigns.length)
    const modes = [
      'multi-leader',
      'single-leader-async',
      'single-leader-semi-sync',
      'single-leader-sync',
      'quorum',
      'quorum-sloppy',
    ]
    for (const r of runs.get(seed) ?? []) {
      expect(modes, r.design).toContain(r.mode)
      expect(r.acceptedDuringPartition, r.scenario).toBe(
        r.scenario === 'partition' ? r.acceptedDuringFault : 0,
      )
      expect(r.staleNearestReads).toBeLessThanOrEqual(Math.min(r.staleReads, r.nearestReads))
    }
  })
})

describe('chorus-compare, the harness itself', () => {
  it('counts as accepted during a partition every write acknowledged while it lasted, those asked for just before it too', async () => {
    let acknowledgedWhilePartitioned = 0
    for (const name of ['single-leader-async', 'single-leader-sync']) {
      const design = compareDesign(name)
      for (let seed = 1; seed <= 10; seed++) {
        let target: SingleLeaderTarget | null = null
        const created = {
          ...design,
          create: (s: number, clients: readonly string[]) => {
            const made = design.create(s, clients)
            if (made instanceof SingleLeaderTarget) target = made
            return made
          },
        }
        const row = await runOne(created, compareScenario('partition'), { seed })
        const own = (target as SingleLeaderTarget | null)?.sim.report().writesAcceptedDuringPartition
        if (own === undefined) throw new Error(`${name}: no single-leader target`)
        // The cluster's own count: writes a node acknowledged while the partition was up.
        expect(row.acceptedDuringPartition, `${name}, SEED=${seed}`).toBeGreaterThanOrEqual(own)
        acknowledgedWhilePartitioned += own
      }
    }
    expect(acknowledgedWhilePartitioned).toBeGreaterThan(0)
  })

  it('gives the same rows for the same seed', async () => {
    const options = {
      seed: 7,
      scenarios: [compareScenario('partition')],
      designs: [compareDesign('multi-leader'), compareDesign('quorum-sloppy-n3w2r2')],
    }
    expect(await runComparison(options)).toEqual(await runComparison(options))
  })

  it('refuses bad options with invalid-argument', async () => {
    for (const bad of [
      () => compareDesign('paxos'),
      () => compareScenario('meteor'),
      () => runComparison({ seed: 1, durationMs: 1_000, fault: { startMs: 500, endMs: 2_000 } }),
      () => runComparison({ seed: 1, writeRatio: 2 }),
    ]) {
      const error = await (async () => bad())().then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(isChorusError(error) && error.code === 'invalid-argument', String(error)).toBe(true)
    }
  })

  it('takes nearest-rank percentiles', () => {
    expect(percentile([], 50)).toBeNull()
    expect(percentile([5, 1, 3, 2, 4], 50)).toBe(3)
    expect(percentile([5, 1, 3, 2, 4], 99)).toBe(5)
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        99,
      ),
    ).toBe(99)
  })

  it('sums seeds up as medians and ranges, one row per scenario and design', () => {
    expect(spreadOf([])).toBeNull()
    expect(spreadOf([7])).toEqual({ median: 7, min: 7, max: 7 })
    expect(spreadOf([9, 1, 5])).toEqual({ median: 5, min: 1, max: 9 })
    // An even count: the lower middle run, a figure one run measured.
    expect(spreadOf([4, 1, 3, 10])).toEqual({ median: 3, min: 1, max: 10 })
    const all = [...seeds.flatMap((seed) => runs.get(seed) ?? [])]
    const summary = summarizeSeeds(all)
    expect(summary).toHaveLength((runs.get(seeds[0] as number) ?? []).length)
    for (const entry of summary) {
      expect(entry.seeds).toEqual(seeds)
      const mine = all.filter((r) => r.scenario === entry.scenario && r.design === entry.design)
      expect(entry.lostAcknowledged).toEqual(spreadOf(mine.map((r) => r.lostAcknowledged)))
    }
    const table = formatSpreadTable(all)
    expect(table.match(/^### /gm)).toHaveLength(6)
    expect(table).toMatch(/median over the seeds/)
  })

  it('formats one table per scenario', () => {
    const table = formatCompareTable(runs.get(seeds[0] as number) ?? [])
    expect(table.match(/^### /gm)).toHaveLength(6)
    expect(table).toContain('| multi-leader |')
    expect(table).toMatch(/virtual milliseconds/)
  })
})

describe('chorus-compare command line', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'chorus-compare-cli-'))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))
  const capture = () => {
    const out: string[] = []
    const err: string[] = []
    const io: CliIo = { out: (line) => out.push(line), err: (line) => err.push(line) }
    return { io, out, err }
  }

  it('prints the table and writes the rows as JSON', async () => {
    const file = join(scratch, 'rows.json')
    const { io, out } = capture()
    const args = ['--scenario', 'leader-crash', '--design', 'single-leader-async', '--design', 'multi-leader']
    expect(await runCompareCli([...args, '--seed', '3', '--json', file], io)).toBe(0)
    expect(out.join('\n')).toMatch(
      /### leader-crash[\s\S]*\| single-leader-async \|[\s\S]*\| multi-leader \|/,
    )
    const rows = JSON.parse(readFileSync(file, 'utf8')) as CompareRow[]
    expect(rows.map((r) => [r.scenario, r.mode])).toEqual([
      ['leader-crash', 'single-leader-async'],
      ['leader-crash', 'multi-leader'],
    ])
    for (const r of rows) {
      for (const field of COMPARE_JSON_FIELDS) expect(r, field).toHaveProperty(field)
      expect([
        'multi-leader',
        'single-leader-async',
        'single-leader-semi-sync',
        'single-leader-sync',
        'quorum',
        'quorum-sloppy',
      ]).toContain(r.mode)
    }
  })

  it('with --seeds, runs each seed and prints medians with their ranges', async () => {
    const file = join(scratch, 'seeds.json')
    const { io, out } = capture()
    const args = [
      '--scenario',
      'leader-crash',
      '--design',
      'single-leader-async',
      '--design',
      'single-leader-sync',
    ]
    expect(await runCompareCli([...args, '--seed', '5', '--seeds', '3', '--json', file], io)).toBe(0)
    const rows = JSON.parse(readFileSync(file, 'utf8')) as CompareRow[]
    expect(rows.map((r) => [r.seed, r.mode])).toEqual([
      [5, 'single-leader-async'],
      [5, 'single-leader-sync'],
      [6, 'single-leader-async'],
      [6, 'single-leader-sync'],
      [7, 'single-leader-async'],
      [7, 'single-leader-sync'],
    ])
    // Each seed's row is the one a run of that seed alone gives.
    const alone = await runComparison({
      seed: 6,
      scenarios: [compareScenario('leader-crash')],
      designs: [compareDesign('single-leader-async')],
    })
    expect(rows[2]).toEqual(alone[0])
    // The table's async row: the median of the three seeds' lost writes, with their range.
    const lost = rows.filter((r) => r.mode === 'single-leader-async').map((r) => r.lostAcknowledged)
    const spread = spreadOf(lost)
    const expected =
      spread?.min === spread?.max ? `${spread?.median}` : `${spread?.median} (${spread?.min}–${spread?.max})`
    const asyncLine = out
      .join('\n')
      .split('\n')
      .find((line) => line.startsWith('| single-leader-async |'))
    expect(asyncLine?.split(' | ')[7]).toBe(expected)
    expect(asyncLine?.split(' | ')[1]).toBe('3')
  })

  it.each([
    [['--scenario', 'meteor']],
    [['--design', 'paxos']],
    [['--seed', '-1']],
    [['--duration-ms', '10']],
    [['--frobnicate']],
    [['--json', '']],
    [['--seeds', '0']],
  ])('refuses %j with the usage and exit code 2', async (args) => {
    const { io, err } = capture()
    expect(await runCompareCli(args, io)).toBe(2)
    expect(err.join('\n')).toMatch(/^chorus-compare: [\s\S]+\n\nUsage:/)
  })

  it('exits 1 when the JSON file cannot be written', async () => {
    const { io, err } = capture()
    const args = [
      '--scenario',
      'none',
      '--design',
      'multi-leader',
      '--json',
      join(scratch, 'missing', 'rows.json'),
    ]
    expect(await runCompareCli(args, io)).toBe(1)
    expect(err.at(-1)).toMatch(/^chorus-compare: cannot write the --json file .*missing\/rows\.json: /)
    // Said before the run, not after it: no scenario ran.
    expect(err.some((line) => line.includes('operations'))).toBe(false)
    // A directory passes a permission check, but is no file to write.
    const { io: dirIo, err: dirErr } = capture()
    expect(await runCompareCli([...args.slice(0, -1), scratch], dirIo)).toBe(1)
    expect(dirErr.at(-1)).toMatch(/^chorus-compare: cannot write the --json file .*EISDIR/)
    expect(dirErr.some((line) => line.includes('operations'))).toBe(false)
  })
})
