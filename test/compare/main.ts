/**
 * `pnpm compare` and `pnpm compare:real`: the comparison of the replication designs.
 *
 *   tsx --conditions=@chorus/source test/compare/main.ts both|real [--scenario NAME]...
 *       [--design NAME]... [--seed 1] [--json FILE]
 *
 * `both` runs the simulated comparison (virtual time, every design of `@chorus/server`'s
 * `chorus-compare`) and then the real one (processes on loopback, wall clock, one design per
 * mode, Chorus's relay and clients included), and prints a table for each, labelled; `real`
 * runs only the real one. `--json FILE` writes every row as one JSON array (each row says its
 * `clock`: `virtual` or `wall`).
 */
import { closeSync, openSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  type CompareDesign,
  type CompareRow,
  type CompareScenario,
  compareDesigns,
  compareScenario,
  formatCompareTable,
  runComparison,
  VIRTUAL_TIME_NOTE,
} from '@chorus/server'
import { REAL_NOTES, realDesigns, runRealComparison } from './real/real-comparison.js'

const USAGE = `Usage: main.ts both|real [--scenario NAME]... [--design NAME]... [--seed 1] [--json FILE]`

/** A bad command line: reported with the usage, exit code 2. */
class UsageError extends Error {}

function parse(argv: readonly string[]) {
  let parsed: ReturnType<typeof parseOptions>
  try {
    parsed = parseOptions(argv)
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  const { values, positionals } = parsed
  const which = positionals[0]
  if (values.help !== true && ((which !== 'both' && which !== 'real') || positionals.length > 1)) {
    throw new UsageError('say which comparison to run: both or real')
  }
  let scenarios: CompareScenario[] | undefined
  try {
    scenarios = values.scenario?.map(compareScenario)
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  const seed = values.seed === undefined ? 1 : Number(values.seed)
  if (values.seed?.trim() === '' || !Number.isSafeInteger(seed))
    throw new UsageError(`--seed must be an integer, got ${JSON.stringify(values.seed)}`)
  if (values.json === '') throw new UsageError('--json needs a file name')
  // `real` runs only the real designs: a simulated-only one would run nothing.
  const runnable = which === 'real' ? realDesigns : [...compareDesigns, ...realDesigns]
  const known = new Set(runnable.map((design) => design.name))
  for (const name of values.design ?? []) {
    if (!known.has(name))
      throw new UsageError(
        `unknown design ${JSON.stringify(name)}${which === 'real' ? ' for the real comparison' : ''}; use one of ${[...known].join(', ')}`,
      )
  }
  if (values.json !== undefined) {
    try {
      // Opened as the end of the run will, without truncating it: fails now, not after the run.
      closeSync(openSync(values.json, 'a'))
    } catch (error) {
      throw new UsageError(
        `cannot write the --json file ${values.json}: ${error instanceof Error ? error.message : String(error)}`,
      )
    }
  }
  return { help: values.help === true, which, scenarios, seed, json: values.json, designs: values.design }
}

function parseOptions(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      scenario: { type: 'string', multiple: true },
      design: { type: 'string', multiple: true },
      seed: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}

async function main(argv: readonly string[]): Promise<number> {
  let options: ReturnType<typeof parse>
  try {
    options = parse(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`compare: ${error.message}\n${USAGE}`)
    return 2
  }
  if (options.help) {
    console.log(USAGE)
    return 0
  }
  const { which, scenarios, seed } = options
  const pick = (all: readonly CompareDesign[]) =>
    options.designs === undefined ? all : all.filter((design) => options.designs?.includes(design.name))
  const progress = (row: CompareRow) =>
    console.error(
      `compare (${row.clock === 'wall' ? 'real' : 'simulated'}): ${row.scenario} / ${row.design}: ${row.operations} operations`,
    )
  const rows: CompareRow[] = []
  if (which === 'both') {
    const simulated = await runComparison(
      { seed, designs: pick(compareDesigns), ...(scenarios === undefined ? {} : { scenarios }) },
      progress,
    )
    rows.push(...simulated)
    console.log('## Simulated: every design on the simulated network (virtual time)\n')
    console.log(formatCompareTable(simulated, [VIRTUAL_TIME_NOTE]))
    console.log('')
  }
  const started = performance.now()
  const real = await runRealComparison(
    { seed, designs: pick(realDesigns), ...(scenarios === undefined ? {} : { scenarios }) },
    progress,
  )
  rows.push(...real)
  console.log('## Real processes: one design per mode on loopback (wall clock)\n')
  console.log(formatCompareTable(real, REAL_NOTES))
  console.error(`compare: the real comparison took ${Math.round((performance.now() - started) / 1_000)} s`)
  if (options.json !== undefined) {
    writeFileSync(options.json, `${JSON.stringify(rows, null, 2)}\n`)
    console.error(`compare: wrote ${rows.length} rows to ${options.json}`)
  }
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    console.error(`compare: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  },
)
