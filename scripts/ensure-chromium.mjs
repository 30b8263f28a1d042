#!/usr/bin/env node
// Makes sure the browser tests have a Chromium to drive, so `pnpm test` works on a fresh
// Debian machine: Playwright cannot download browsers here, so Debian's `chromium` package
// is installed with apt-get when it is missing (as root, or through passwordless sudo).
// With neither, it stops with what to do: browser tests never skip silently.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
if (existsSync(path)) process.exit(0)
if (process.env.CHROMIUM_PATH !== undefined) {
  console.error(`CHROMIUM_PATH=${path} names no file: point it at a Chromium or Chrome binary`)
  process.exit(1)
}

const hasAptGet = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const hasSudo = !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0
if (!hasAptGet || (!isRoot && !hasSudo)) {
  console.error(
    'The browser tests need Chromium at /usr/bin/chromium (or CHROMIUM_PATH). Install it with ' +
      '`sudo apt-get install chromium` (Debian/Ubuntu) or point CHROMIUM_PATH at a Chrome binary.',
  )
  process.exit(1)
}

console.error('Installing Debian chromium for the browser tests…')
const run = (args) => {
  const [command, ...rest] = isRoot ? args : ['sudo', '-n', ...args]
  execFileSync(command, rest, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
}
run(['apt-get', 'update', '-qq'])
run(['apt-get', 'install', '-y', '-qq', 'chromium'])
if (!existsSync(path)) {
  console.error(`apt-get finished but ${path} is still missing`)
  process.exit(1)
}
