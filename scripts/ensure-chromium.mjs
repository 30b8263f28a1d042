#!/usr/bin/env node
// Makes sure the browser tests have a Chromium to drive, so `pnpm test` works on a fresh
// Debian machine: Playwright cannot download browsers here, so Debian's `chromium` package
// is installed with apt-get when it is missing (as root, or through passwordless sudo).
// With neither, it stops with what to do: browser tests never skip silently.
import { existsSync } from 'node:fs'
import { canInstall, installDebianPackage } from './debian-install.mjs'

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
if (existsSync(path)) process.exit(0)
if (process.env.CHROMIUM_PATH !== undefined) {
  console.error(`CHROMIUM_PATH=${path} names no file: point it at a Chromium or Chrome binary`)
  process.exit(1)
}

if (!canInstall()) {
  console.error(
    'The browser tests need Chromium at /usr/bin/chromium (or CHROMIUM_PATH). Install it with ' +
      '`sudo apt-get install chromium` (Debian/Ubuntu) or point CHROMIUM_PATH at a Chrome binary.',
  )
  process.exit(1)
}

console.error('Installing Debian chromium for the browser tests…')
installDebianPackage('chromium')
if (!existsSync(path)) {
  console.error(`apt-get finished but ${path} is still missing`)
  process.exit(1)
}
