import { existsSync } from 'node:fs'

/**
 * Flags for a headless Chromium in CI: no sandbox (containers), no GPU, and nothing that
 * reaches out to the network on its own.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
] as const

/**
 * The Chromium to drive: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium`.
 *
 * When it is missing, launching fails with Playwright's "executable doesn't exist" and the
 * path: browser tests fail, they never skip. `.ci/run` installs Debian's `chromium` package.
 */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
}

/** Throws with what to do when {@link chromiumPath} names no file. */
export function requireChromium(): string {
  const path = chromiumPath()
  if (!existsSync(path)) {
    throw new Error(`no Chromium at ${path}: install it (apt-get install chromium) or set CHROMIUM_PATH`)
  }
  return path
}
