import { closeSync, openSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { isChorusError } from '@chorus/core'
import { compareDesign, compareDesigns } from '../compare/designs.js'
import { type CompareRow, runComparison } from '../compare/run.js'
import { compareScenario, compareScenarios } from '../compare/scenarios.js'
import { formatSpreadTable } from '../compare/spread.js'
import { formatCompareTable } from '../compare/table.js'
import { messageOf } from '../error-message.js'
import {
  type CliIo,
  ExitCode,
  intFlag,
  processIo,
  runIfEntryPoint,
  UsageError,
  usageFailure,
} from './cli-io.js'

const USAGE = `Usage:
  chorus-compare [--scenario NAME]... [--design NAME]... [--seed 1] [--seeds 1] [--json FILE]
                 [--duration-ms 5000] [--clients 3] [--keys 4]

Runs one seeded workload (clients reading and writing shared keys) under one fault script
against every design, in simulation (virtual time: deterministic, a few seconds for all), and
prints a Markdown table per scenario. --json writes the rows as a JSON array.
--seeds N runs seeds --seed to --seed + N - 1 and prints each figure's median over them with
its range (the JSON has every seed's rows).
The same comparison on real processes and the wall clock (Chorus's relay and clients
included) runs from the repository: pnpm compare:real (pnpm compare runs both).
Scenarios: ${compareScenarios.map((scenario) => scenario.name).join(', ')} (default: all)
Designs:   ${compareDesigns.map((design) => design.name).join(', ')} (default: all)
Exit codes: 0 done, 1 a runtime failure (the JSON file cannot be written), 2 a bad command line.`

/**
 * Runs `chorus-compare` with `argv` (without `node` and the script); resolves with the exit
 * code. The table goes to `io.out`, progress to `io.err`.
 */
export async function runCompareCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(USAGE)
    return ExitCode.Ok
  }
  let options: Parameters<typeof runComparison>[0]
  let json: string | undefined
  let seeds = 1
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        scenario: { type: 'string', multiple: true },
        design: { type: 'string', multiple: true },
        seed: { type: 'string' },
        seeds: { type: 'string' },
        json: { type: 'string' },
        'duration-ms': { type: 'string' },
        clients: { type: 'string' },
        keys: { type: 'string' },
      },
    })
    const named = <T>(list: readonly string[] | undefined, find: (name: string) => T): T[] | undefined => {
      try {
        return list?.map(find)
      } catch (error) {
        throw new UsageError(isChorusError(error) ? error.message : String(error))
      }
    }
    const scenarios = named(values.scenario, compareScenario)
    const designs = named(values.design, compareDesign)
    const durationMs = intFlag('duration-ms', values['duration-ms'], 5_000, 3_000, 600_000)
    options = {
      seed: intFlag('seed', values.seed, 1, 0, Number.MAX_SAFE_INTEGER),
      durationMs,
      fault: { startMs: Math.round(durationMs / 5), endMs: Math.round((durationMs * 3) / 5) },
      clients: intFlag('clients', values.clients, 3, 2, 16),
      keys: intFlag('keys', values.keys, 4, 1, 1_000),
      ...(scenarios === undefined ? {} : { scenarios }),
      ...(designs === undefined ? {} : { designs }),
    }
    seeds = intFlag('seeds', values.seeds, 1, 1, 1_000)
    if (options.seed + seeds - 1 > Number.MAX_SAFE_INTEGER)
      throw new UsageError('--seed + --seeds is too large')
    if (values.json === '') throw new UsageError('--json needs a file name')
    json = values.json
  } catch (error) {
    return usageFailure(io, 'chorus-compare', USAGE, error)
  }
  try {
    // A file that cannot be written fails now, not after the whole run.
    if (json !== undefined) checkWritable(json)
    const rows: CompareRow[] = []
    for (let seed = options.seed; seed < options.seed + seeds; seed++) {
      rows.push(
        ...(await runComparison({ ...options, seed }, (row) =>
          io.err(
            `chorus-compare: seed ${seed}: ${row.scenario} / ${row.design}: ${row.operations} operations`,
          ),
        )),
      )
    }
    io.out(seeds === 1 ? formatCompareTable(rows) : formatSpreadTable(rows))
    if (json !== undefined) {
      writeFileSync(json, `${JSON.stringify(rows, null, 2)}\n`)
      io.err(`chorus-compare: wrote ${rows.length} rows to ${json}`)
    }
    return ExitCode.Ok
  } catch (error) {
    io.err(`chorus-compare: ${messageOf(error)}`)
    return ExitCode.Failed
  }
}

/** Throws, saying why, unless `file` can be written: its directory exists and takes files, and the file, if there, may be overwritten. */
function checkWritable(file: string): void {
  try {
    // Opened as the end of the run will, without truncating it: a directory or a file that
    // cannot be written fails here (permission checks alone pass a directory).
    closeSync(openSync(file, 'a'))
  } catch (error) {
    throw new Error(`cannot write the --json file ${file}: ${messageOf(error)}`)
  }
}

runIfEntryPoint(import.meta.url, 'chorus-compare', runCompareCli)
