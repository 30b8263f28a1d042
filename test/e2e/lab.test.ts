import { join } from 'node:path'
import type { Browser, Locator, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RelayProcess, ROOT, startRelay, tempDir } from '../integration/relay-process.js'
import { launchChromium, screenshot } from './support/browser.js'

const NOTES = join(ROOT, 'apps/notes/dist')
const LAB = join(ROOT, 'apps/lab/dist')
const WAIT = { timeout: 30_000 }

/** The scoreboard's figure for `metric`, as a number. */
async function metric(page: Page, name: string): Promise<number> {
  const text = await page
    .getByRole('region', { name: 'Scoreboard' })
    .locator(`[data-metric="${name}"]`)
    .textContent()
  return Number(text)
}

/** Polls the figure until `check` holds for it. */
async function expectMetric(page: Page, name: string, check: (value: number) => boolean): Promise<number> {
  await expect.poll(async () => check(await metric(page, name)), WAIT).toBe(true)
  return metric(page, name)
}

/** The lab's root, whose data attributes say whether it is busy and whether the story ended. */
function lab(page: Page): Locator {
  return page.locator('.lab')
}

async function idle(page: Page): Promise<void> {
  await expect.poll(() => lab(page).getAttribute('data-busy'), WAIT).toBe('no')
}

async function openLab(page: Page, url: string): Promise<void> {
  await page.goto(url)
  await page.getByRole('heading', { name: 'Replication lab' }).waitFor(WAIT)
  await idle(page)
}

/** Loads a preset from the list, paused at virtual time 0. */
async function loadPreset(page: Page, id: string): Promise<void> {
  const before = Number(await lab(page).getAttribute('data-lab'))
  await page.locator(`[data-preset="${id}"]`).click()
  await expect
    .poll(async () => Number(await lab(page).getAttribute('data-lab')), WAIT)
    .toBeGreaterThan(before)
  await idle(page)
  await expect
    .poll(() => page.locator(`[data-preset="${id}"]`).getAttribute('aria-pressed'), WAIT)
    .toBe('true')
}

/** Runs the loaded story to its end at once and waits until the page says it has played out. */
async function skipToEnd(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Skip to end' }).click()
  await expect.poll(() => lab(page).getAttribute('data-ended'), WAIT).toBe('true')
  await idle(page)
}

/** Changes a setting in the Design panel and waits for the fresh lab it starts. */
async function changeSetting(page: Page, change: () => Promise<void>): Promise<void> {
  const before = Number(await lab(page).getAttribute('data-lab'))
  await change()
  await expect
    .poll(async () => Number(await lab(page).getAttribute('data-lab')), WAIT)
    .toBeGreaterThan(before)
  await idle(page)
}

function nodeCard(page: Page, id: string): Locator {
  return page.locator(`[data-node="${id}"]`)
}

/** A full-page screenshot from the top, so the sticky playback bar sits where a person sees it. */
async function shot(page: Page, name: string): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0))
  await screenshot(page, name)
}

async function timelineText(page: Page): Promise<string> {
  return (await page.getByRole('region', { name: 'Timeline' }).locator('ol').textContent()) ?? ''
}

describe('the replication lab, built and served by a relay process at /lab', () => {
  const data = tempDir('chorus-e2e-lab-')
  let relay: RelayProcess
  let browser: Browser
  let page: Page
  let url = ''

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path, args: ['--static', NOTES, '--static', `/lab=${LAB}`] })
    browser = await launchChromium()
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } })
    page = await context.newPage()
    page.on('pageerror', (error) => {
      throw error
    })
    url = `${relay.http}/lab/`
  })

  afterAll(async () => {
    await browser?.close()
    await relay?.stop('SIGTERM')
    data.remove()
  })

  it('is linked from the notes app and opens at /lab as well as /lab/', async () => {
    await page.goto(`${relay.http}/`)
    await page.getByRole('link', { name: 'replication lab' }).click()
    await page.waitForURL(`${relay.http}/lab/`, WAIT)
    await idle(page)
    await page.goto(`${relay.http}/lab`)
    await page.waitForURL(`${relay.http}/lab/`, WAIT)
    await idle(page)
    await expect.poll(() => page.getByRole('link', { name: 'Notes app' }).getAttribute('href')).toBe('/')
  })

  it('loses exactly the acknowledged write of an asynchronous leader crash, and none with sync replication', async () => {
    await openLab(page, url)
    await loadPreset(page, 'async-leader-crash')
    await skipToEnd(page)
    await expectMetric(page, 'lostAcknowledgedWrites', (value) => value === 1)
    expect(await metric(page, 'acknowledgedWrites')).toBeGreaterThanOrEqual(2)
    // The scoreboard names the write that was lost: x = 5, and nothing else.
    const lost = page
      .getByRole('region', { name: 'Scoreboard' })
      .getByRole('list', { name: 'Lost after acknowledgement' })
      .getByRole('listitem')
    expect(await lost.allTextContents()).toEqual(['x = 5 (c1, epoch 1, LSN 3)'])
    await shot(page, 'lab-async-leader-crash')

    // The same story, switched to synchronous replication in the Design panel.
    await changeSetting(page, () => page.getByRole('radio', { name: 'Sync', exact: true }).check())
    expect(await lab(page).getAttribute('data-ended')).toBe('false')
    await skipToEnd(page)
    expect(await metric(page, 'lostAcknowledgedWrites')).toBe(0)

    await loadPreset(page, 'sync-leader-crash')
    await skipToEnd(page)
    expect(await metric(page, 'lostAcknowledgedWrites')).toBe(0)
    expect(await metric(page, 'acknowledgedWrites')).toBeGreaterThanOrEqual(1)
    await shot(page, 'lab-sync-leader-crash')
  })

  it('shows split brain with fencing off, and a rejected write and no divergence with it on', async () => {
    await openLab(page, url)
    await loadPreset(page, 'partition-split-brain')
    const fencing = page.getByRole('switch', { name: 'Fencing' })
    expect(await fencing.isChecked()).toBe(false)
    await skipToEnd(page)
    await expectMetric(page, 'leaders', (value) => value === 2)
    expect(await metric(page, 'divergentReplicas')).toBeGreaterThan(0)
    expect(await page.locator('[data-node][data-role="leader"]').count()).toBe(2)
    // The diverged replica's value is marked on its card.
    expect(await page.locator('[data-node] tr.differs').count()).toBeGreaterThan(0)
    await shot(page, 'lab-partition-split-brain')

    await changeSetting(page, () => fencing.check())
    await skipToEnd(page)
    await expectMetric(page, 'rejectedWrites', (value) => value >= 1)
    expect(await metric(page, 'divergentReplicas')).toBe(0)
    expect(await metric(page, 'leaders')).toBe(1)
    expect(await page.locator('[data-outcome="rejected"]').count()).toBeGreaterThan(0)

    await loadPreset(page, 'partition-fenced')
    await skipToEnd(page)
    await expectMetric(page, 'rejectedWrites', (value) => value >= 1)
    expect(await metric(page, 'divergentReplicas')).toBe(0)
    await shot(page, 'lab-partition-fenced')

    await loadPreset(page, 'manual-promote-split-brain')
    await skipToEnd(page)
    await expectMetric(page, 'leaders', (value) => value === 2)
    expect(await metric(page, 'divergentReplicas')).toBeGreaterThan(0)
    await shot(page, 'lab-manual-promote-split-brain')
  })

  it('reads no stale value when W + R > N with blocking read repair, and some when W + R ≤ N', async () => {
    await openLab(page, url)
    await loadPreset(page, 'quorum-strict')
    await skipToEnd(page)
    await expectMetric(page, 'acknowledgedWrites', (value) => value > 0)
    expect(await metric(page, 'staleReads')).toBe(0)
    await shot(page, 'lab-quorum-strict')

    await loadPreset(page, 'quorum-weak')
    await skipToEnd(page)
    await expectMetric(page, 'staleReads', (value) => value > 0)
    await shot(page, 'lab-quorum-weak')
  })

  it('shows the stale read from a lagging follower and the multi-leader conflict', async () => {
    await openLab(page, url)
    await loadPreset(page, 'lagging-follower-read')
    await skipToEnd(page)
    await expectMetric(page, 'staleReads', (value) => value > 0)
    expect(await page.locator('[data-outcome="stale"]').count()).toBeGreaterThan(0)
    await shot(page, 'lab-lagging-follower-read')

    // A link within the page to another story (the hash changes, the page does not reload)
    // loads that story, as opening the link afresh would.
    const before = Number(await lab(page).getAttribute('data-lab'))
    await page.evaluate(() => {
      window.location.hash = '#preset=multi-leader-conflict'
    })
    await expect
      .poll(async () => Number(await lab(page).getAttribute('data-lab')), WAIT)
      .toBeGreaterThan(before)
    await idle(page)
    await expect
      .poll(() => page.locator('[data-preset="multi-leader-conflict"]').getAttribute('aria-pressed'), WAIT)
      .toBe('true')
    await skipToEnd(page)
    await expectMetric(page, 'conflicts', (value) => value > 0)
    // No leader among multi-leader replicas, and the relay stores rather than reads values.
    expect(await page.locator('.legend').textContent()).not.toContain('leader')
    expect(await page.locator('[data-node="relay"]').textContent()).toContain('stores and forwards changes')
    await shot(page, 'lab-multi-leader-conflict')
  })

  it('replays to the same timeline from the same seed, after playing and acting by hand', async () => {
    await openLab(page, url)
    await loadPreset(page, 'lagging-follower-read')
    // With jitter every message's delay is drawn from the seed: replay must draw the same.
    await changeSetting(page, () => page.getByRole('slider', { name: 'Jitter' }).fill('30'))
    await page.getByRole('combobox', { name: 'Speed' }).selectOption({ label: '1/4×' })
    await page.getByRole('button', { name: 'Play', exact: true }).click()
    await expect
      .poll(
        async () => Number(await page.getByRole('status', { name: 'Virtual time' }).getAttribute('data-now')),
        WAIT,
      )
      .toBeGreaterThan(200)
    await page.getByRole('button', { name: 'Pause', exact: true }).click()
    await page.getByRole('textbox', { name: 'Value' }).fill('42')
    await page.getByRole('button', { name: 'Write', exact: true }).click()
    await skipToEnd(page)
    const before = await timelineText(page)
    expect(before).toContain('42')
    expect(await page.getByRole('slider', { name: 'Jitter' }).inputValue()).toBe('30')

    const number = Number(await lab(page).getAttribute('data-lab'))
    await page.getByRole('button', { name: 'Replay' }).click()
    await expect.poll(async () => Number(await lab(page).getAttribute('data-lab')), WAIT).toBe(number + 1)
    await idle(page)
    expect(await timelineText(page)).toBe(before)
  })

  it('names every control as written: Latency, Cut network, Heal, Promote follower, Fencing, Kill, Restart, Replay', async () => {
    await openLab(page, url)
    expect(await page.getByRole('radio', { name: 'Single-leader' }).isChecked()).toBe(true)
    // The virtual clock changes at every frame: a screen reader is not told each one.
    expect(await page.getByRole('status', { name: 'Virtual time' }).getAttribute('aria-live')).toBe('off')
    // Before anything has run there is nothing to replay.
    expect(await page.getByRole('button', { name: 'Replay' }).isDisabled()).toBe(true)
    // A setting changed with the keyboard starts the lab over; focus stays on the control, so
    // the next key moves the slider on.
    const jitter = page.getByRole('slider', { name: 'Jitter' })
    await jitter.focus()
    const start = Number(await jitter.inputValue())
    await changeSetting(page, () => page.keyboard.press('ArrowRight'))
    const once = Number(await jitter.inputValue())
    await expect.poll(() => jitter.evaluate((element) => element === document.activeElement), WAIT).toBe(true)
    await changeSetting(page, () => page.keyboard.press('ArrowRight'))
    expect(Number(await jitter.inputValue())).toBeGreaterThan(once)
    expect(once).toBeGreaterThan(start)
    await changeSetting(page, () => jitter.fill(String(start)))
    await page.getByRole('combobox', { name: 'Speed' }).selectOption({ label: '4×' })

    const latency = page.getByRole('slider', { name: 'Latency n1–n2' })
    await latency.fill('500')
    await expect.poll(() => timelineText(page), WAIT).toMatch(/500/)
    // An action, even at virtual time 0, is something to replay.
    await expect.poll(() => page.getByRole('button', { name: 'Replay' }).isDisabled(), WAIT).toBe(false)

    await page.getByRole('button', { name: 'Cut network n1–n3' }).click()
    await page.locator('[data-link="n1–n3"] .tag').waitFor(WAIT)
    await page.getByRole('button', { name: 'Heal' }).click()
    await page.getByRole('button', { name: 'Cut network n1–n3' }).waitFor(WAIT)

    // The client's Node list says which node is down or paused, before a request to it times out.
    const nodeOptions = () =>
      page
        .getByRole('combobox', { name: 'Node' })
        .locator('option')
        .evaluateAll((options) => options.map((option) => option.textContent))
    await page.getByRole('button', { name: 'Kill n3' }).click()
    await expect.poll(() => nodeCard(page, 'n3').getAttribute('data-up'), WAIT).toBe('false')
    await expect.poll(nodeOptions, WAIT).toEqual(['n1', 'n2', 'n3 (down)'])
    await page.getByRole('button', { name: 'Restart n3' }).click()
    await expect.poll(() => nodeCard(page, 'n3').getAttribute('data-up'), WAIT).toBe('true')

    // Pause stops a node with its state kept; it stays paused while the lab is paused.
    await page.getByRole('button', { name: 'Pause n3' }).click()
    await expect.poll(() => nodeCard(page, 'n3').getAttribute('data-paused'), WAIT).toBe('true')
    await expect.poll(nodeOptions, WAIT).toEqual(['n1', 'n2', 'n3 (paused)'])

    await page.getByRole('button', { name: 'Promote follower n2' }).click()
    await page.getByRole('button', { name: 'Play', exact: true }).click()
    await expect.poll(() => nodeCard(page, 'n2').getAttribute('data-role'), WAIT).toBe('leader')
    await page.getByRole('button', { name: 'Pause', exact: true }).click()

    for (const [role, name] of [
      ['switch', 'Fencing'],
      ['button', 'Replay'],
      ['button', 'Heal'],
      ['slider', 'Latency n2–n3'],
      ['button', 'Kill n1'],
    ] as const) {
      expect(await page.getByRole(role, { name }).count(), name).toBe(1)
    }
    await shot(page, 'lab-free-play')
  })

  it('keeps its controls honest: a paused node cannot be promoted, focus stays near a control that went, settings put back are the story’s', async () => {
    await openLab(page, url)
    const pause = page.getByRole('button', { name: 'Pause n2' })
    await pause.focus()
    await page.keyboard.press('Enter')
    await expect.poll(() => nodeCard(page, 'n2').getAttribute('data-paused'), WAIT).toBe('true')
    expect(await page.getByRole('button', { name: 'Promote follower n2' }).isDisabled()).toBe(true)
    expect(await page.getByRole('img', { name: /^Cluster:/ }).getAttribute('aria-label')).toContain(
      'n2 follower, paused',
    )
    // Pause n2 is disabled now: focus went to the first control of n2's card, not the page.
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.textContent ?? ''), WAIT)
      .toBe('Kill n2')
    // So does Skip to end, disabled once a story ended: focus stays in the playback bar.
    await page.goto(`${url}#preset=async-leader-crash`)
    await idle(page)
    await page.getByRole('button', { name: 'Skip to end' }).focus()
    await page.keyboard.press('Enter')
    await expect
      .poll(
        () =>
          page.evaluate(() =>
            document.activeElement?.closest('[role="toolbar"]')?.getAttribute('aria-label'),
          ),
        WAIT,
      )
      .toBe('Playback')
    // A seed field emptied goes back to the seed in use.
    const seed = page.getByRole('textbox', { name: 'Seed' })
    const before = await seed.inputValue()
    await seed.fill('')
    await seed.press('Tab')
    await expect.poll(() => seed.inputValue(), WAIT).toBe(before)

    // A story's setting changed and put back is the story's again.
    await page.goto(`${url}#preset=partition-split-brain`)
    await idle(page)
    const jitter = page.getByRole('slider', { name: 'Jitter' })
    await changeSetting(page, () => jitter.fill('10'))
    await page.getByText('Played with changed settings').waitFor(WAIT)
    await changeSetting(page, () => jitter.fill('0'))
    expect(await page.getByText('Played with changed settings').count()).toBe(0)
    // Back to the lab's own address: free play, as opening it shows.
    await page.evaluate(() => {
      window.location.hash = ''
    })
    await page.getByRole('heading', { name: 'Free play' }).waitFor(WAIT)
  })

  it("leaves the lab to the network: offline, the notes app's address still opens the notes app after the lab was opened", async () => {
    const context = await browser.newContext()
    const tab = await context.newPage()
    await tab.goto(`${relay.http}/`)
    // The notes app's service worker controls the page once it has installed and claimed it.
    await tab.waitForFunction(() => navigator.serviceWorker.controller !== null, null, WAIT)
    await tab.goto(url)
    await idle(tab)
    const port = relay.port
    expect(await relay.stop('SIGTERM')).toBe(0)
    try {
      // Served from the notes app's cache: the notes app, not the lab it once kept as its shell.
      await tab.goto(`${relay.http}/`)
      await tab.getByLabel('New notebook name').waitFor(WAIT)
      expect(await tab.getByRole('heading', { name: 'Replication lab' }).count()).toBe(0)
    } finally {
      relay = await startRelay({
        dataDir: data.path,
        port,
        args: ['--static', NOTES, '--static', `/lab=${LAB}`],
      })
      await context.close()
    }
  })

  it('fits a 320 px screen: the header’s link to the notes app is not pushed off it, a long value wraps, and focus is never under the playback bar', async () => {
    const narrow = await browser.newContext({ viewport: { width: 320, height: 640 } })
    try {
      const page = await narrow.newPage()
      await openLab(page, url)
      const fit = () =>
        page.evaluate(() => ({
          overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
          linkRight: document.querySelector('.lab-header a')?.getBoundingClientRect().right ?? 0,
        }))
      expect((await fit()).overflow).toBe(0)
      expect((await fit()).linkRight).toBeLessThanOrEqual(320)

      // The longest key and value the fields take, in the timeline and in every node's values.
      await page.getByRole('textbox', { name: 'Key' }).fill('k'.repeat(12))
      await page.getByRole('textbox', { name: 'Value' }).fill('abcdefghijklmnopqrstuvwx')
      await page.getByRole('button', { name: 'Write', exact: true }).click()
      await page.getByRole('button', { name: 'Play', exact: true }).click()
      await expect
        .poll(async () => (await timelineText(page)).includes('abcdefghijklmnopqrstuvwx'), WAIT)
        .toBe(true)
      await page.getByRole('button', { name: 'Pause', exact: true }).click()
      await idle(page)
      expect((await fit()).overflow).toBe(0)

      // Going back up with Shift+Tab, each control that takes focus shows below the bar, which
      // wraps to several rows here.
      await page.getByRole('button', { name: 'Read', exact: true }).focus()
      const hidden: string[] = []
      for (let step = 0; step < 40; step++) {
        await page.keyboard.press('Shift+Tab')
        const seen = await page.evaluate(() => {
          const focused = document.activeElement as HTMLElement | null
          const bar = document.querySelector('.transport')
          if (focused === null || bar === null || bar.contains(focused)) return null
          const box = focused.getBoundingClientRect()
          return {
            name: focused.textContent?.trim() ?? '',
            bottom: box.bottom,
            barBottom: bar.getBoundingClientRect().bottom,
          }
        })
        if (seen === null) break
        if (seen.bottom <= seen.barBottom + 1)
          hidden.push(`${seen.name}: ${seen.bottom} under ${seen.barBottom}`)
      }
      expect(hidden).toEqual([])
    } finally {
      await narrow.close()
    }
  })

  it('fits a phone screen with the diagram, scoreboard and controls reachable', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })
    const small = await phone.newPage()
    await openLab(small, `${url}#preset=partition-split-brain`)
    await skipToEnd(small)
    await expectMetric(small, 'leaders', (value) => value === 2)
    for (const name of ['Play', 'Skip to end', 'Replay', 'Heal']) {
      await small.getByRole('button', { name, exact: true }).waitFor(WAIT)
    }
    const width = await small.evaluate(() => document.documentElement.scrollWidth)
    expect(width).toBeLessThanOrEqual(390)
    // Tab follows the page down: every control that takes focus, in document order, sits no
    // higher than the one before it (beside it in a row at most a little higher).
    const backwards = await small.evaluate(() => {
      window.scrollTo(0, 0)
      const controls = Array.from(
        document.querySelectorAll<HTMLElement>('button, input, select, textarea, [tabindex="0"]'),
      ).filter((element) => !(element as HTMLButtonElement).disabled && element.getClientRects().length > 0)
      const steps: string[] = []
      let previous = Number.NEGATIVE_INFINITY
      for (const control of controls) {
        const top = control.getBoundingClientRect().top + window.scrollY
        if (top < previous - 30)
          steps.push(
            `${control.textContent?.trim() || control.getAttribute('aria-label')} at ${Math.round(top)} after ${Math.round(previous)}`,
          )
        previous = top
      }
      return steps
    })
    expect(backwards).toEqual([])
    await shot(small, 'lab-phone')
    await phone.close()
  })
})
