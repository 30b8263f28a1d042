import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatWithOptions } from 'node:util'
import { expect, it } from 'vitest'
import * as server from '../src/index.js'
import * as serverNode from '../src/node.js'
import { runCliProcess } from './support/cli-process.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const snippets = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] as string)

/**
 * Runs a README snippet: its `import` lines are replaced by the exports of `exports` (and the
 * values of `given`), and every `console.log(x)` must print exactly the `// …` comment on the
 * line after it (a `//` line that does not follow a `console.log` is a comment).
 */
async function runSnippet(
  snippet: string,
  exports: Record<string, unknown>,
  given: Record<string, unknown> = {},
): Promise<void> {
  const lines = snippet.split('\n')
  const expected = lines
    .filter((line, n) => line.startsWith('// ') && lines[n - 1]?.includes('console.log('))
    .map((line) => line.slice(3))
  const body = lines.filter((line) => !line.startsWith('import ')).join('\n')
  const printed: string[] = []
  // As Node's console.log prints them (strings as they are, other values inspected), on one line.
  const log = (...values: unknown[]) =>
    printed.push(formatWithOptions({ breakLength: Number.POSITIVE_INFINITY }, ...values))
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...values: unknown[]) => Promise<void>
  const scope = { ...exports, ...given }
  const names = Object.keys(scope)
  await new AsyncFunction(...names, 'console', body)(...names.map((name) => scope[name]), { log })
  expect(expected.length).toBeGreaterThan(0)
  expect(printed).toEqual(expected)
}

it('the README snippet runs and prints what it says', async () => {
  await runSnippet(snippets[0] as string, server)
})

it('the README client snippet runs against a chorus-cluster process and prints what it says', async () => {
  const snippet = snippets.find((text) => text.includes('SingleLeaderHttpClient'))
  if (snippet === undefined) throw new Error('README.md has no SingleLeaderHttpClient snippet')
  const data = mkdtempSync(join(tmpdir(), 'chorus-readme-cluster-'))
  const cli = runCliProcess('packages/server/src/cli/cluster-cli.ts', [
    '--mode',
    'single-leader',
    '--replication',
    'sync',
    '--data',
    data,
  ])
  try {
    const control = (await cli.line(/^control (http:\/\/127\.0\.0\.1:\d+)$/))[1] as string
    await runSnippet(snippet, serverNode, { control })
  } finally {
    cli.child.kill('SIGTERM')
    await cli.exited
    rmSync(data, { recursive: true, force: true })
  }
}, 60_000)
