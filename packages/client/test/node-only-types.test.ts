import { execFile } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const run = promisify(execFile)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const tsc = resolve(root, 'node_modules/typescript/bin/tsc')

it('publishes types a Node project without the DOM library compiles against (skipLibCheck off)', async () => {
  // The package's declarations, as published: built from the sources now.
  await run(process.execPath, [tsc, '-b', resolve(root, 'packages/client')], { cwd: root })
  const fixture = resolve(root, 'packages/client/test/fixtures/node-only-types')
  const checked = await run(process.execPath, [tsc, '-p', fixture], { cwd: fixture }).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  )
  // Once: "Cannot find name 'IDBFactory'" from the options' types, 5 times.
  expect(checked).toBe('')
}, 180_000)
