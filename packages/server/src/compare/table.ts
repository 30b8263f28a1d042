import type { CompareRow } from './run.js'
import { compareScenarios } from './scenarios.js'

/** Milliseconds: whole virtual ones as they are, wall-clock ones to 0.1 ms. */
const msOf = (row: CompareRow) => (value: number | null) =>
  value === null ? '—' : row.clock === 'wall' ? value.toFixed(1) : String(value)
const pct = (value: number | null) => (value === null ? '—' : `${(value * 100).toFixed(1)}%`)

/** Stale reads; with reads on the `nearest` route, how many of those were stale, of how many. */
const staleCell = (row: CompareRow) =>
  row.nearestReads === 0
    ? String(row.staleReads)
    : `${row.staleReads} (nearest ${row.staleNearestReads} of ${row.nearestReads})`

/** What the simulated network's latencies are, said under a table of virtual-time rows. */
export const VIRTUAL_TIME_NOTE =
  'Latencies and times are virtual milliseconds of the simulated network (5 ms one-way per link).'

/**
 * The comparison as Markdown: one table per scenario, one row per design, with a line saying
 * what the fault was, then `notes` (default: that latencies are virtual time), one paragraph each.
 */
export function formatCompareTable(
  rows: readonly CompareRow[],
  notes: readonly string[] = [VIRTUAL_TIME_NOTE],
): string {
  const out: string[] = []
  for (const scenario of compareScenarios) {
    const group = rows.filter((row) => row.scenario === scenario.name)
    if (group.length === 0) continue
    out.push(`### ${scenario.name}: ${scenario.description}`, '')
    out.push(
      '| design | settings | ops | avail. | minority avail. | write p50/p99 ms | read p50/p99 ms | server ack p50/p99 ms | stale reads | writes in fault | lost acked | conflicts surfaced / resolved | converged after ms | KiB on wire |',
      '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    )
    for (const row of group) {
      const ms = msOf(row)
      out.push(
        `| ${row.design} | ${row.settings} | ${row.operations} | ${pct(row.availability)} | ${pct(row.minorityAvailability)} | ${ms(row.writeP50Ms)} / ${ms(row.writeP99Ms)} | ${ms(row.readP50Ms)} / ${ms(row.readP99Ms)} | ${ms(row.serverAckP50Ms)} / ${ms(row.serverAckP99Ms)} | ${staleCell(row)} | ${row.acceptedDuringFault} | ${row.lostAcknowledged} | ${row.conflicts} / ${row.conflictsResolved} | ${ms(row.convergenceMs)} | ${(row.bytesOnWire / 1024).toFixed(0)} |`,
      )
    }
    out.push('')
  }
  out.push(notes.join('\n\n'))
  return out.join('\n').trimEnd()
}
