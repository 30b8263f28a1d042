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

/** The first TypeScript block of a README, and the output its `// …` comments promise. */
function snippetOf(readme: string): { code: string; expected: string[] } {
  const start = readme.indexOf('```ts\n') + '```ts\n'.length
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

  it.each(packages)('@chorus/%s', async (name) => {
    const { code, expected } = snippetOf(readFileSync(join(root, 'packages', name, 'README.md'), 'utf8'))
    expect(expected.length).toBeGreaterThan(0)
    mkdirSync(scratch, { recursive: true })
    const file = join(scratch, `${name}.ts`)
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
  })
})
