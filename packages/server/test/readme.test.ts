import { readFileSync } from 'node:fs'
import { inspect } from 'node:util'
import { expect, it } from 'vitest'
import * as server from '../src/index.js'

/**
 * Runs the README's snippet: its `import` line is replaced by the package's exports, and every
 * `console.log(x)` must print exactly the `// …` comment on the line after it.
 */
it('the README snippet runs and prints what it says', async () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const snippet = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  if (snippet === undefined) throw new Error('README.md has no ts snippet')
  const lines = snippet.split('\n')
  const expected = lines.filter((line) => line.startsWith('// ')).map((line) => line.slice(3))
  const body = lines.filter((line) => !line.startsWith('import ')).join('\n')
  const printed: string[] = []
  const log = (value: unknown) => printed.push(inspect(value, { breakLength: Number.POSITIVE_INFINITY }))
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...values: unknown[]) => Promise<void>
  const names = Object.keys(server)
  await new AsyncFunction(...names, 'console', body)(
    ...names.map((name) => (server as Record<string, unknown>)[name]),
    { log },
  )
  expect(expected.length).toBeGreaterThan(0)
  expect(printed).toEqual(expected)
})
