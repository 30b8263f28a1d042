import type { CompareRow } from './run.js'
import { compareScenarios } from './scenarios.js'

/** The median of a design's figure over several seeds, and its least and greatest. */
export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
}

/** The figures of one design under one scenario over several seeds. */
export interface SpreadRow {
  readonly scenario: CompareRow['scenario']
  readonly mode: CompareRow['mode']
  readonly design: string
  readonly clock: CompareRow['clock']
  /** The seeds the rows came from, in the order they ran. */
  readonly seeds: readonly number[]
  readonly availability: Spread
  /** Null when no seed's run had a successful write. */
  readonly writeP50Ms: Spread | null
  readonly writeP99Ms: Spread | null
  readonly staleReads: Spread
  readonly acceptedDuringFault: Spread
  readonly lostAcknowledged: Spread
  readonly conflicts: Spread
  readonly bytesOnWire: Spread
  /** Seeds whose replicas did not converge within the limit. */
  readonly unconverged: number
}

/**
 * The median (the lower middle value of an even count: a figure one of the runs measured), least
 * and greatest of `values`; null for none.
 */
export function spreadOf(values: readonly number[]): Spread | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return {
    median: sorted[Math.floor((sorted.length - 1) / 2)] as number,
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
  }
}

const numbers = (rows: readonly CompareRow[], pick: (row: CompareRow) => number | null) =>
  rows.map(pick).filter((value): value is number => value !== null)

/** Groups rows of runs with different seeds by scenario and design, and gives each group's spread. */
export function summarizeSeeds(rows: readonly CompareRow[]): SpreadRow[] {
  const groups = new Map<string, CompareRow[]>()
  for (const row of rows) {
    const key = `${row.scenario}\u0000${row.design}`
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [row])
    else group.push(row)
  }
  return [...groups.values()].map((group) => {
    const first = group[0] as CompareRow
    const whole = (pick: (row: CompareRow) => number) => spreadOf(group.map(pick)) as Spread
    return {
      scenario: first.scenario,
      mode: first.mode,
      design: first.design,
      clock: first.clock,
      seeds: group.map((row) => row.seed),
      availability: whole((row) => row.availability),
      writeP50Ms: spreadOf(numbers(group, (row) => row.writeP50Ms)),
      writeP99Ms: spreadOf(numbers(group, (row) => row.writeP99Ms)),
      staleReads: whole((row) => row.staleReads),
      acceptedDuringFault: whole((row) => row.acceptedDuringFault),
      lostAcknowledged: whole((row) => row.lostAcknowledged),
      conflicts: whole((row) => row.conflicts),
      bytesOnWire: whole((row) => row.bytesOnWire),
      unconverged: group.filter((row) => row.convergenceMs === null).length,
    }
  })
}

/** `median (min–max)`, or the one figure when every seed gave it; `format` writes each number. */
function cell(spread: Spread | null, format: (value: number) => string = String): string {
  if (spread === null) return '—'
  if (spread.min === spread.max) return format(spread.median)
  return `${format(spread.median)} (${format(spread.min)}–${format(spread.max)})`
}

/**
 * Rows of several seeds as Markdown: one table per scenario, one row per design, each figure
 * its median over the seeds with its range.
 */
export function formatSpreadTable(rows: readonly CompareRow[]): string {
  const summary = summarizeSeeds(rows)
  const out: string[] = []
  for (const scenario of compareScenarios) {
    const group = summary.filter((row) => row.scenario === scenario.name)
    if (group.length === 0) continue
    out.push(`### ${scenario.name}: ${scenario.description}`, '')
    out.push(
      '| design | seeds | avail. | write p50 ms | write p99 ms | stale reads | writes in fault | lost acked | conflicts surfaced | KiB on wire | not converged |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    )
    for (const row of group) {
      const ms = (value: number) => (row.clock === 'wall' ? value.toFixed(1) : String(value))
      out.push(
        `| ${row.design} | ${row.seeds.length} | ${cell(row.availability, (value) => `${(value * 100).toFixed(1)}%`)} | ${cell(row.writeP50Ms, ms)} | ${cell(row.writeP99Ms, ms)} | ${cell(row.staleReads)} | ${cell(row.acceptedDuringFault)} | ${cell(row.lostAcknowledged)} | ${cell(row.conflicts)} | ${cell(row.bytesOnWire, (value) => (value / 1024).toFixed(0))} | ${row.unconverged} |`,
      )
    }
    out.push('')
  }
  out.push(
    'Each figure is the median over the seeds, with the least and greatest in brackets when they differ (the median of an even count is the lower middle run).',
  )
  return out.join('\n').trimEnd()
}
