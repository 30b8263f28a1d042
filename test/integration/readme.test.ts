import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatWithOptions } from 'node:util'
import { afterAll, describe, expect, it, vi } from 'vitest'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const scratch = join(root, 'test/.snippets')
const packages = readdirSync(join(root, 'packages')).filter((name) => {
  try {
    return readFileSync(join(root, 'packages', name, 'README.md'), 'utf8').includes('```ts\n')
  } catch {
    return false
  }
})

/**
 * The first TypeScript block of a README (or the first after `heading`), and the output its
 * `// …` comments promise.
 */
function snippetOf(readme: string, heading?: string): { code: string; expected: string[] } {
  const from = heading === undefined ? 0 : readme.indexOf(`\n${heading}\n`)
  if (from < 0) throw new Error(`no heading ${heading}`)
  const start = readme.indexOf('```ts\n', from) + '```ts\n'.length
  const code = readme.slice(start, readme.indexOf('```\n', start))
  const expected: string[] = []
  const lines = code.split('\n')
  lines.forEach((line, i) => {
    const next = lines[i + 1]
    if (line.includes('console.log(') && next?.trimStart().startsWith('// ')) {
      expected.push(
        next
          .trimStart()
          .slice(3)
          .replace(/\s+\(.*\)$/, ''),
      )
    }
  })
  return { code, expected }
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('package README snippets run and print what they say', () => {
  it('finds the package READMEs with snippets', () => {
    expect(packages).toEqual(expect.arrayContaining(['core', 'testkit']))
  })

  // Later blocks that print what they say too, by the heading they follow.
  const more = [['testkit', '## Checking histories']] as const

  it.each([...packages.map((name) => [name, '(its first block)'] as const), ...more])(
    '@chorus/%s %s',
    async (name, where) => {
      const heading = where.startsWith('#') ? where : undefined
      const readme = readFileSync(join(root, 'packages', name, 'README.md'), 'utf8')
      const { code, expected } = snippetOf(readme, heading)
      expect(expected.length).toBeGreaterThan(0)
      mkdirSync(scratch, { recursive: true })
      const file = join(
        scratch,
        `${name}${heading === undefined ? '' : `-${more.findIndex(([, h]) => h === heading)}`}.ts`,
      )
      writeFileSync(file, code)
      const printed: string[] = []
      const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
        printed.push(formatWithOptions({ breakLength: Number.POSITIVE_INFINITY }, ...args))
      })
      try {
        await import(/* @vite-ignore */ file)
      } finally {
        spy.mockRestore()
      }
      expect(printed).toEqual(expected)
    },
  )
})
