import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { ROOT } from '../../integration/relay-process.js'
import { CHROMIUM_ARGS, requireChromium } from '../../support/chromium.js'

/** Where screenshots go for a person to look at (git-ignored). */
export const SCREENSHOTS = join(ROOT, 'artifacts', 'screenshots')

/** Launches Debian's Chromium headless, with a fresh temporary profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: requireChromium(), args: [...CHROMIUM_ARGS] })
}

/** Launches it with a profile kept in `dir` (a persistent context) instead of a temporary one. */
export function launchChromiumProfile(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, {
    executablePath: requireChromium(),
    args: [...CHROMIUM_ARGS],
  })
}

/** Saves a full-page screenshot as `artifacts/screenshots/<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })
}
