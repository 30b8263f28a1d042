import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createReplica } from '@chorus/client'
import type { Browser, BrowserContext, Dialog, Locator, Page, WebSocketRoute } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// Named apart from the browser's WebSocket, which functions run in the page use.
import { WebSocket as NodeWebSocket } from 'ws'
import { LIST_PAGE } from '../../apps/notes/src/notes.js'
import { ACTION_NOTICE_MS } from '../../apps/notes/src/notices.js'
import { type RelayProcess, ROOT, runRelayCli, startRelay, tempDir } from '../integration/relay-process.js'
import { launchChromium, launchChromiumProfile, screenshot } from './support/browser.js'

const APP = join(ROOT, 'apps/notes/dist')
const WAIT = { timeout: 20_000 }

/** The attribute, polled until it reads `value`. */
async function attribute(locator: Locator, name: string, value: string): Promise<void> {
  await expect.poll(() => locator.getAttribute(name), WAIT).toBe(value)
}

async function value(locator: Locator, expected: string): Promise<void> {
  await expect.poll(() => locator.inputValue(), WAIT).toBe(expected)
}

async function count(locator: Locator, expected: number): Promise<void> {
  await expect.poll(() => locator.count(), WAIT).toBe(expected)
}

async function visible(locator: Locator): Promise<void> {
  await locator.first().waitFor({ state: 'visible', ...WAIT })
}

/** One device: an isolated browser context (its own IndexedDB) with one page. */
interface Device {
  readonly context: BrowserContext
  readonly page: Page
}

async function device(browser: Browser): Promise<Device> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } })
  const page = await context.newPage()
  page.on('pageerror', (error) => {
    throw error
  })
  return { context, page }
}

/** A relay process serving the app from `dataDir`, and Chromium with two devices on it. */
async function twoDevices(
  dataDir: string,
): Promise<{ relay: RelayProcess; browser: Browser; alice: Device; bob: Device }> {
  const relay = await startRelay({ dataDir, args: ['--static', APP] })
  const browser = await launchChromium()
  return { relay, browser, alice: await device(browser), bob: await device(browser) }
}

function status(page: Page) {
  return page.locator('.sync-status')
}

async function expectSynced(page: Page): Promise<void> {
  await attribute(status(page), 'data-status', 'synced')
  await pending(page, 0)
}

/**
 * Waits for the status to show `count` changes waiting to upload. When it does not, the
 * failure lists the changes in the page's outboxes, read from its IndexedDB databases, so that
 * a wrong count says which change was extra or missing.
 */
async function pending(page: Page, count: number): Promise<void> {
  try {
    await attribute(status(page), 'data-pending', String(count))
  } catch (error) {
    const outbox = await outboxOf(page).catch((reason: unknown) => [`(unreadable: ${String(reason)})`])
    throw new Error(`${(error as Error).message}\nchanges in the outbox:\n${outbox.join('\n') || '(none)'}`, {
      cause: error,
    })
  }
}

/**
 * The changes in every Chorus database of the page's origin, one line each: database,
 * collection/id, operation and counter (the client's IndexedDB layout: outbox chunks hold
 * JSON text of `[collection, id, [replica, counter, hlc, context, type, …]]` triples).
 */
function outboxOf(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const request = <T>(req: IDBRequest<T>) =>
      new Promise<T>((resolve, reject) => {
        req.onsuccess = () => resolve(req.result)
        req.onerror = () => reject(req.error)
      })
    const lines: string[] = []
    for (const { name } of await indexedDB.databases()) {
      if (name === undefined || !name.startsWith('chorus:')) continue
      const db = await request(indexedDB.open(name))
      try {
        if (!db.objectStoreNames.contains('outbox')) continue
        const chunks = await request(db.transaction('outbox').objectStore('outbox').getAll())
        for (const chunk of chunks as { changes: string }[]) {
          for (const [collection, id, version] of JSON.parse(chunk.changes) as [string, string, unknown[]][])
            lines.push(`${name}: ${collection}/${id} ${String(version[4])} #${String(version[1])}`)
        }
      } finally {
        db.close()
      }
    }
    return lines
  })
}

/** The note list's entry whose text contains `title`. */
function noteInList(page: Page, title: string) {
  return page
    .getByRole('region', { name: 'Notes', exact: true })
    .getByRole('button', { name: new RegExp(title) })
}

/** What has focus: its tag and its text (or label), or `the page` when nothing does. */
function focusOf(page: Page): Promise<string> {
  return page.evaluate(() => {
    const element = document.activeElement
    if (element === null || element === document.body) return 'the page'
    return `${element.tagName.toLowerCase()}: ${element.getAttribute('aria-label') ?? element.textContent ?? ''}`
  })
}

async function createNotebook(page: Page, url: string, name: string): Promise<string> {
  await page.goto(url)
  await page.getByLabel('New notebook name').fill(name)
  await page.getByRole('button', { name: 'Create notebook' }).click()
  await page.waitForURL(/#\/notebook\//, WAIT)
  await expectSynced(page)
  return page.url()
}

async function writeNote(page: Page, title: string, body: string): Promise<void> {
  await page.getByRole('button', { name: 'New note' }).click()
  await page.getByLabel('Title', { exact: true }).fill(title)
  await page.getByLabel('Body', { exact: true }).fill(body)
  // Autosave fires when typing stops; leaving the field saves at once.
  await page.getByLabel('Title', { exact: true }).focus()
  await saved(page)
}

/**
 * Waits until the open note's edits are stored (the editor no longer says it is saving): a
 * save that leaving a field starts is written a moment later, so a check of the outbox or
 * of the sync status made before then would not see it yet.
 */
async function saved(page: Page): Promise<void> {
  await expect.poll(() => page.locator('.save-state').textContent(), WAIT).toMatch(/^Edited /)
}

async function openNote(page: Page, title: string): Promise<void> {
  await noteInList(page, title).click()
  await value(page.getByLabel('Title', { exact: true }), title)
}

async function editBody(page: Page, body: string): Promise<void> {
  await page.getByLabel('Body', { exact: true }).fill(body)
  await page.getByLabel('Title', { exact: true }).focus()
  await saved(page)
}

function workOffline(page: Page) {
  return page.getByRole('switch', { name: 'Work offline' })
}

describe('the notes app on two devices, each served by its own relay process, the relays linked', () => {
  const dataA = tempDir('chorus-e2e-link-a-')
  const dataB = tempDir('chorus-e2e-link-b-')
  let relayA: RelayProcess
  let relayB: RelayProcess
  let browser: Browser
  let alice: Device
  let bob: Device

  beforeAll(async () => {
    relayB = await startRelay({ dataDir: dataB.path, args: ['--static', APP] })
    // A site relay that links every notebook its users open to the other one.
    relayA = await startRelay({
      dataDir: dataA.path,
      args: ['--static', APP, '--link', relayB.url, '--link-space', '*'],
    })
    browser = await launchChromium()
    alice = await device(browser)
    bob = await device(browser)
  })

  afterAll(async () => {
    await browser?.close()
    await relayA?.stop('SIGTERM')
    await relayB?.stop('SIGTERM')
    dataA.remove()
    dataB.remove()
  })

  it('a note written through one relay shows on the device of the other, and an edit there comes back', async () => {
    const notebook = await createNotebook(alice.page, `${relayA.http}/`, 'Linked notes')
    await writeNote(alice.page, 'Through relay A', 'written on the site relay')
    await expectSynced(alice.page)
    // Bob opens the same notebook at the other relay.
    await bob.page.goto(notebook.replace(relayA.http, relayB.http))
    await expectSynced(bob.page)
    await visible(noteInList(bob.page, 'Through relay A'))
    await openNote(bob.page, 'Through relay A')
    await value(bob.page.getByLabel('Body', { exact: true }), 'written on the site relay')
    await editBody(bob.page, 'edited through relay B')
    await expectSynced(bob.page)
    await openNote(alice.page, 'Through relay A')
    await value(alice.page.getByLabel('Body', { exact: true }), 'edited through relay B')
  })
})

describe('the notes app on two devices, served by a relay process', () => {
  const data = tempDir('chorus-e2e-')
  let relay: RelayProcess
  let browser: Browser
  let alice: Device
  let bob: Device
  let notebook = ''

  beforeAll(async () => {
    ;({ relay, browser, alice, bob } = await twoDevices(data.path))
  })

  afterAll(async () => {
    await browser?.close()
    await relay?.stop('SIGTERM')
    data.remove()
  })

  it('a note created on one device appears on the other', async () => {
    notebook = await createNotebook(alice.page, `${relay.http}/`, 'Team notes')
    await bob.page.goto(notebook)
    await expectSynced(bob.page)

    await writeNote(alice.page, 'Groceries', 'milk')
    await expectSynced(alice.page)
    await visible(noteInList(bob.page, 'Groceries'))
    await openNote(bob.page, 'Groceries')
    await value(bob.page.getByLabel('Body', { exact: true }), 'milk')
    await screenshot(alice.page, 'notes-synced')

    // The same notebook on a phone-sized screen: everything needed is still reachable.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })
    const small = await phone.newPage()
    await small.goto(notebook)
    await expectSynced(small)
    await visible(noteInList(small, 'Groceries'))
    for (const name of ['New note', 'Conflicts'])
      await visible(small.getByRole(name === 'New note' ? 'button' : 'link', { name }))
    await visible(workOffline(small))
    await screenshot(small, 'notes-phone')
    await phone.close()
  })

  it('a device opening a notebook link has nothing of its own waiting to upload before it first synced', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    // Its sync connection opens but is never answered until let through.
    let blocking = true
    const held: WebSocketRoute[] = []
    await context.routeWebSocket(/\/sync$/, (socket) => {
      if (blocking) held.push(socket)
      else socket.connectToServer()
    })
    await page.goto(notebook)
    await attribute(status(page), 'data-status', 'connecting')
    await visible(page.getByRole('heading', { level: 1 }))
    // Not that the notebook has no notes: that they have not come yet.
    await visible(page.getByText('This notebook has not reached this device yet', { exact: false }))
    expect(await page.getByText('No notes yet', { exact: false }).count()).toBe(0)
    // The app's own first write (this device's name) waits for the first sync.
    await page.waitForTimeout(1_000)
    await pending(page, 0)
    blocking = false
    for (const socket of held) await socket.close()
    await expectSynced(page)
    await visible(noteInList(page, 'Groceries'))
    await context.close()
  })

  it('exports the notebook as one Markdown file, with what the other device wrote', async () => {
    await writeNote(bob.page, 'Trip', 'Tickets\nbooked')
    await expectSynced(bob.page)
    await visible(noteInList(alice.page, 'Trip'))
    await alice.page.getByRole('button', { name: 'Export' }).focus()
    const [file] = await Promise.all([
      alice.page.waitForEvent('download', WAIT),
      alice.page.keyboard.press('Enter'),
    ])
    // Busy for a moment, the button keeps focus: it is not disabled from under it.
    expect(await focusOf(alice.page)).toBe('button: Export')
    expect(file.suggestedFilename()).toBe('team-notes.md')
    const text = await readFile(await file.path(), 'utf8')
    expect(text).toMatch(/^# Team notes\n\nExported on \d{4}-\d\d-\d\d \d\d:\d\d UTC: 2 notes\.\n/)
    // Newest first: Bob's note, then Alice's.
    expect(text.indexOf('## Trip\n')).toBeGreaterThan(0)
    expect(text.indexOf('## Groceries\n')).toBeGreaterThan(text.indexOf('## Trip\n'))
    expect(text).toContain('\n\nTickets\nbooked\n')
    expect(text).toContain('\n\nmilk\n')
  })

  it.each([
    ['the Work offline switch', 'switch'],
    ["the browser's own offline mode", 'browser'],
  ] as const)(
    'edits made offline with %s come back as a conflict that one click settles everywhere',
    async (_, how) => {
      const goOffline = async ({ page, context }: Device) => {
        if (how === 'switch') await workOffline(page).check()
        else await context.setOffline(true)
        await attribute(status(page), 'data-status', 'offline')
      }
      const goOnline = async ({ page, context }: Device) => {
        if (how === 'switch') await workOffline(page).uncheck()
        else await context.setOffline(false)
      }
      for (const { page } of [alice, bob]) await openNote(page, 'Groceries')
      await goOffline(alice)
      await goOffline(bob)
      await editBody(alice.page, `milk, eggs (${how})`)
      await editBody(bob.page, `milk, bread (${how})`)
      await pending(alice.page, 1)
      await pending(bob.page, 1)
      if (how === 'switch') await screenshot(alice.page, 'notes-offline')

      await goOnline(alice)
      await goOnline(bob)
      await expectSynced(alice.page)
      await expectSynced(bob.page)
      // The open note cannot be edited in place while in conflict: an edit would drop the
      // version not shown.
      for (const { page } of [alice, bob]) {
        await visible(page.getByText('This note was changed on two devices at once.', { exact: false }))
        expect(await page.getByLabel('Body', { exact: true }).isEditable()).toBe(false)
        // Nor deleted: an undo would bring back the version shown, and the other would be gone.
        expect(await page.getByRole('button', { name: 'Delete note' }).isDisabled()).toBe(true)
        // A screen reader hears that the sync brought a conflict, as the badge shows it.
        await expect
          .poll(() => page.locator('.conflict-news').textContent(), WAIT)
          .toBe('A note is now in conflict: open Conflicts to choose a version.')
      }

      // Both devices show the conflict, with both versions side by side.
      for (const { page } of [alice, bob]) {
        await page.getByRole('link', { name: 'Conflicts' }).click()
        await count(page.getByRole('button', { name: 'Keep this version' }), 2)
        // Each button says whose version it keeps.
        const keepNames = await page
          .getByRole('button', { name: 'Keep this version' })
          .evaluateAll((buttons) => buttons.map((button) => button.textContent))
        expect(keepNames.some((name) => name?.startsWith('Keep this version from This device, '))).toBe(true)
        expect(new Set(keepNames).size).toBe(2)
        await visible(page.getByText(`milk, eggs (${how})`))
        await visible(page.getByText(`milk, bread (${how})`))
      }
      if (how === 'switch') await screenshot(bob.page, 'notes-conflict')
      // The view's heading has focus; Merge by editing takes it to the merged title, and Escape
      // closes the form.
      const focusedText = (page: Page) => page.evaluate(() => document.activeElement?.textContent ?? '')
      await expect.poll(() => focusedText(alice.page), WAIT).toBe('Conflicts')
      // The top bar's Conflicts link goes to this view, and says it is the one shown.
      const current = alice.page.getByRole('link', { name: 'Conflicts' })
      await attribute(current, 'aria-current', 'page')
      expect(await current.getAttribute('href')).toMatch(/\/conflicts$/)
      await alice.page.getByRole('button', { name: 'Merge by editing' }).click()
      await expect.poll(() => alice.page.evaluate(() => document.activeElement?.tagName), WAIT).toBe('INPUT')
      await alice.page.keyboard.press('Escape')
      await count(alice.page.getByRole('button', { name: 'Save merged version' }), 0)
      // Closed without saving (Escape, Cancel), focus is back on the button that opened the form.
      await expect.poll(() => focusOf(alice.page), WAIT).toBe('button: Merge by editing')
      await alice.page.keyboard.press('Enter')
      await alice.page.getByRole('button', { name: 'Cancel' }).click()
      await expect.poll(() => focusOf(alice.page), WAIT).toBe('button: Merge by editing')

      // Keeping bob's version on alice's device settles it on both.
      await alice.page
        .getByRole('region', { name: /^Version from/ })
        .filter({ hasText: `milk, bread (${how})` })
        .getByRole('button', { name: 'Keep this version' })
        .click()
      for (const { page } of [alice, bob]) {
        await count(page.getByRole('button', { name: 'Keep this version' }), 0)
        await expectSynced(page)
      }
      // Settled, the card is gone and focus is back on the heading, not lost on the page.
      await expect.poll(() => focusedText(alice.page), WAIT).toBe('Conflicts')
      // ‹ Notes gives focus to the notes view's heading, the notebook's name.
      await alice.page.getByRole('link', { name: '‹ Notes' }).click()
      await expect.poll(() => focusOf(alice.page), WAIT).toBe('h1: Team notes')
      for (const { page } of [alice, bob]) {
        await page.goto(notebook)
        await openNote(page, 'Groceries')
        await value(page.getByLabel('Body', { exact: true }), `milk, bread (${how})`)
        expect(await page.getByLabel('Body', { exact: true }).isEditable()).toBe(true)
        expect(await page.getByRole('button', { name: 'Delete note' }).isEnabled()).toBe(true)
      }
    },
  )

  it('two tabs share the notebook: an edit in one shows in the other, and the other keeps syncing when the connected tab closes or freezes', async () => {
    const first = alice.page
    const second = await alice.context.newPage()
    await second.goto(notebook)
    await expectSynced(second)

    // An edit in one tab shows in the other without a reload.
    await writeNote(second, 'From the second tab', 'typed in tab two')
    await visible(noteInList(first, 'From the second tab'))
    await writeNote(first, 'From the first tab', 'typed in tab one')
    await visible(noteInList(second, 'From the first tab'))
    await expectSynced(first)
    await expectSynced(second)
    await screenshot(second, 'notes-two-tabs')

    // The first tab opened first, so it holds the connection. Freeze it, as a browser does
    // to a background tab: the second takes over, and its edits still reach bob.
    const cdp = await alice.context.newCDPSession(first)
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' })
    await writeNote(second, 'While the first tab sleeps', 'tab two took over')
    await expectSynced(second)
    await bob.page.goto(notebook)
    await visible(noteInList(bob.page, 'While the first tab sleeps'))
    await cdp.send('Page.setWebLifecycleState', { state: 'active' })
    await expectSynced(first)

    // Close the tab that now leads: the remaining one carries on.
    await second.close()
    await writeNote(first, 'After closing a tab', 'still syncing')
    await expectSynced(first)
    await visible(noteInList(bob.page, 'After closing a tab'))
  })

  it('Work offline is one setting for the tabs sharing the connection: every tab shows it, and it outlasts the tab that set it', async () => {
    const first = alice.page
    const second = await alice.context.newPage()
    await second.goto(notebook)
    await expectSynced(second)
    await workOffline(second).check()
    // The other tab's switch and status say so too.
    await expect.poll(() => workOffline(first).isChecked(), WAIT).toBe(true)
    await attribute(status(first), 'data-status', 'offline')
    await expect.poll(() => status(first).locator('.sync-label').textContent(), WAIT).toBe('Working offline')
    await second.close()
    // Still offline, and saying so, once the tab that switched is gone; switched back here, the
    // edit made meanwhile reaches the other device.
    await openNote(first, 'Groceries')
    await editBody(first, 'written while working offline')
    await pending(first, 1)
    expect(await workOffline(first).isChecked()).toBe(true)
    // A reload of the last tab keeps it: nothing is uploaded until switched back.
    await first.reload()
    await expect.poll(() => workOffline(first).isChecked(), WAIT).toBe(true)
    await expect.poll(() => status(first).locator('.sync-label').textContent(), WAIT).toBe('Working offline')
    await pending(first, 1)
    await workOffline(first).uncheck()
    await expectSynced(first)
    await bob.page.goto(notebook)
    await openNote(bob.page, 'Groceries')
    await value(bob.page.getByLabel('Body', { exact: true }), 'written while working offline')
  })

  it('what was typed just before a reload or closing the tab is kept, and reaches the other device', async () => {
    await openNote(alice.page, 'Groceries')
    await alice.page.getByLabel('Body', { exact: true }).fill('typed just before a reload')
    // No pause, no leaving the field: the save has not begun when the page goes.
    await alice.page.reload()
    await openNote(alice.page, 'Groceries')
    await value(alice.page.getByLabel('Body', { exact: true }), 'typed just before a reload')
    await expectSynced(alice.page)

    const tab = await alice.context.newPage()
    await tab.goto(notebook)
    await openNote(tab, 'Groceries')
    await tab.getByLabel('Body', { exact: true }).fill('typed just before closing the tab')
    await tab.close({ runBeforeUnload: true })
    await alice.page.reload()
    await openNote(alice.page, 'Groceries')
    await value(alice.page.getByLabel('Body', { exact: true }), 'typed just before closing the tab')
    await expectSynced(alice.page)
    await openNote(bob.page, 'Groceries')
    await value(bob.page.getByLabel('Body', { exact: true }), 'typed just before closing the tab')
  })

  it('what a closing tab typed last is not dropped by a save of the note in another tab, and shows there without reopening', async () => {
    await openNote(alice.page, 'Groceries')
    const tab = await alice.context.newPage()
    await tab.goto(notebook)
    await openNote(tab, 'Groceries')
    await tab.getByLabel('Body', { exact: true }).fill('the last words, typed as the tab closed')
    // As a page ended before its write commits: this tab's IndexedDB writes fail from now on,
    // so the words are in the draft it keeps as it goes, and nowhere else.
    await tab.evaluate(() => {
      const transaction = IDBDatabase.prototype.transaction
      IDBDatabase.prototype.transaction = function (
        this: IDBDatabase,
        ...args: Parameters<typeof transaction>
      ) {
        if (args[1] === 'readwrite') throw new DOMException('the page is going away', 'InvalidStateError')
        return transaction.apply(this, args)
      }
    })
    await tab.close({ runBeforeUnload: true })
    // The tab left open saves the same note (a new title): that once dropped the closed tab's words.
    await alice.page.getByLabel('Title', { exact: true }).fill('Groceries for the week')
    await alice.page.getByLabel('Body', { exact: true }).focus()
    await saved(alice.page)
    await value(alice.page.getByLabel('Body', { exact: true }), 'the last words, typed as the tab closed')
    await value(alice.page.getByLabel('Title', { exact: true }), 'Groceries for the week')
    await expectSynced(alice.page)
    await openNote(bob.page, 'Groceries for the week')
    await value(bob.page.getByLabel('Body', { exact: true }), 'the last words, typed as the tab closed')
    // Back as it was, for the tests after this one.
    await alice.page.getByLabel('Title', { exact: true }).fill('Groceries')
    await alice.page.getByLabel('Body', { exact: true }).focus()
    await saved(alice.page)
    await expectSynced(alice.page)
  })

  it('types into a new note at once, undoes a notebook name edit with Escape, and moves focus with the note opened and deleted', async () => {
    const page = alice.page
    await page.getByRole('button', { name: 'New note' }).click()
    // No wait for the note to load: the keys go to its title, not to the New note button.
    await page.keyboard.type('Buy milk and eggs')
    await value(page.getByLabel('Title', { exact: true }), 'Buy milk and eggs')
    await page.getByLabel('Body', { exact: true }).focus()
    await saved(page)
    await count(noteInList(page, 'Buy milk and eggs'), 1)
    await count(noteInList(page, 'Untitled'), 0)

    const name = page.getByLabel('Notebook name')
    const before = await name.inputValue()
    // The tab's title and the page's heading name the notebook.
    expect(await page.title()).toBe(`${before} · Chorus Notes`)
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(before)
    await count(page.getByRole('main'), 1)
    await name.click()
    await page.keyboard.type(' OOPS')
    await page.keyboard.press('Escape')
    await value(name, before)
    await page.reload()
    await value(page.getByLabel('Notebook name'), before)

    // Opened from the list, focus goes to the note; ‹ Notes gives it back to the list entry.
    await noteInList(page, 'Buy milk and eggs').focus()
    await page.keyboard.press('Enter')
    await value(page.getByLabel('Title', { exact: true }), 'Buy milk and eggs')
    await expect.poll(() => page.evaluate(() => document.activeElement?.className), WAIT).toBe('editor')
    // A region named for the note, so that a screen reader says which note opened.
    expect(
      await page
        .getByRole('region', { name: 'Note: Buy milk and eggs', exact: true })
        .evaluate((region) => region === document.activeElement),
    ).toBe(true)
    // The title is a few Tabs away (the editor's toolbar first), not past the whole list.
    const stops: string[] = []
    for (let press = 0; press < 5; press++) {
      await page.keyboard.press('Tab')
      const at = await page.evaluate(
        () => document.activeElement?.id || document.activeElement?.textContent || '',
      )
      stops.push(at)
      if (at.startsWith('title-')) break
    }
    expect(stops.at(-1), stops.join(' | ')).toMatch(/^title-/)
    // Deleting the note gives focus to New note (its entry is gone), not to the page.
    await page.getByRole('button', { name: 'Delete note' }).click()
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.textContent ?? ''), WAIT)
      .toBe('New note')
  })

  it('a note too long to sync says so and keeps what was typed; its title is saved, and the note once shortened', async () => {
    await writeNote(alice.page, 'Long', 'short for now')
    await expectSynced(alice.page)
    // 3.1 MB typed, 4.6 MB as it travels: a tab takes two bytes in JSON.
    const long = 'x\t'.repeat(1_600_000)
    await alice.page.getByLabel('Title', { exact: true }).fill('Too long')
    await alice.page.getByLabel('Body', { exact: true }).fill(long)
    await alice.page.getByLabel('Title', { exact: true }).focus()
    await expect.poll(() => alice.page.locator('.save-state').textContent(), WAIT).toBe('Not saved: too long')
    await visible(alice.page.getByText(/This note is too long to save \(4\.6 MB\)/))
    await visible(noteInList(bob.page, 'Too long'))
    await editBody(alice.page, 'short again')
    await expectSynced(alice.page)
    // Saved now: the notice that it could not be goes.
    await expect.poll(() => alice.page.getByText(/This note is too long to save/).count(), WAIT).toBe(0)
    await openNote(bob.page, 'Too long')
    await value(bob.page.getByLabel('Body', { exact: true }), 'short again')
  })

  it('a body too long to sync, left by a reload, is not kept to fail at every open: the title is, and nothing is retried', async () => {
    const draftChars = () =>
      alice.page.evaluate(() =>
        Object.keys(localStorage)
          .filter((key) => key.startsWith('chorus-notes:draft:'))
          .reduce((total, key) => total + (localStorage.getItem(key)?.length ?? 0), 0),
      )
    await writeNote(alice.page, 'Huge', 'short')
    await expectSynced(alice.page)
    await alice.page.getByLabel('Title', { exact: true }).fill('Huge, renamed')
    // Above the 4 MiB a change may hold, below what localStorage takes.
    await alice.page.getByLabel('Body', { exact: true }).fill('y'.repeat(4_500_000))
    await alice.page.getByLabel('Title', { exact: true }).focus()
    await expect.poll(() => alice.page.locator('.save-state').textContent(), WAIT).toBe('Not saved: too long')
    // The page asks before leaving such a body (when the browser shows that question): leave.
    const accept = (dialog: Dialog) => void dialog.accept()
    alice.page.on('dialog', accept)
    try {
      await alice.page.reload()
    } finally {
      alice.page.off('dialog', accept)
    }
    await visible(noteInList(alice.page, 'Huge, renamed'))
    // The draft kept as the page went is written at the next open and forgotten.
    await expect.poll(draftChars, WAIT).toBe(0)
    expect(await alice.page.getByText(/before leaving failed/).count()).toBe(0)
  })

  it('a link naming what cannot be a notebook says so, and does not list it', async () => {
    const page = await alice.context.newPage()
    for (const name of ['..', '-abc']) {
      await page.goto(`${relay.http}/#/notebook/${name}`)
      await visible(page.getByRole('heading', { name: 'This link does not open a notebook' }))
    }
    await page.goto(`${relay.http}/`)
    await visible(page.getByRole('heading', { name: /notebooks/i }))
    expect(await page.getByText('Untitled notebook').count()).toBe(0)
    await page.close()
  })

  it('a link the server holds nothing under (a typo) says so once synced, and stores nothing there', async () => {
    const spacesStored = async () => JSON.parse(await (await fetch(`${relay.http}/healthz`)).text()).spaces
    const before = await spacesStored()
    const id = decodeURIComponent(notebook.split('#/notebook/')[1] ?? '')
    const typo = `${id.slice(0, -1)}${id.endsWith('x') ? 'y' : 'x'}`
    // A browser of its own: the notebooks listed on alice's stay as they were.
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${relay.http}/#/notebook/${encodeURIComponent(typo)}`)
    await expectSynced(page)
    await visible(page.getByText('This notebook holds no notes on the server.', { exact: false }))
    // This device's name waits for something to name it in: the server holds no new notebook.
    await page.waitForTimeout(500)
    await expectSynced(page)
    expect(await spacesStored()).toBe(before)
    // Once a note is written there, it is a notebook like any other.
    await writeNote(page, 'On purpose', 'after all')
    await expectSynced(page)
    await expect.poll(spacesStored, WAIT).toBe(before + 1)
    await context.close()
  })

  it('reloads with the relay down, keeps editing, and the edit reaches the other device when it returns', async () => {
    const port = relay.port
    expect(await relay.stop('SIGTERM')).toBe(0)

    await alice.page.reload()
    await visible(noteInList(alice.page, 'Groceries'))
    await openNote(alice.page, 'Groceries')
    await editBody(alice.page, 'written while the relay was down')
    await pending(alice.page, 1)
    // The one change waiting is the edit: a patch of the note, in the notebook's database.
    expect(await outboxOf(alice.page)).toEqual([expect.stringMatching(/^chorus:\S+: notes\/\S+ patch #\d+$/)])
    await screenshot(alice.page, 'notes-relay-down')

    relay = await startRelay({ dataDir: data.path, port, args: ['--static', APP] })
    await expectSynced(alice.page)
    await bob.page.goto(notebook)
    await openNote(bob.page, 'Groceries')
    await value(bob.page.getByLabel('Body', { exact: true }), 'written while the relay was down')
  })

  it("removing a notebook deletes this browser's copy: changes not yet synced are confirmed first, and a tab that has it open goes back to the list", async () => {
    const page = alice.page
    await page.goto(notebook)
    await expectSynced(page)
    const other = await alice.context.newPage()
    await other.goto(notebook)
    await expectSynced(other)
    const database = `chorus:${decodeURIComponent(notebook.split('#/notebook/')[1] ?? '')}`
    const databases = () =>
      page.evaluate(async () => (await indexedDB.databases()).map((entry) => entry.name ?? ''))
    expect(await databases()).toContain(database)

    await workOffline(page).check()
    await writeNote(page, 'Never synced', 'only in this browser')
    await expect.poll(() => status(page).getAttribute('data-pending'), WAIT).not.toBe('0')
    await page.getByRole('link', { name: 'Your notebooks' }).click()
    const remove = page.getByRole('button', { name: 'Remove Team notes from this browser' })
    const warning = page.getByRole('alert').filter({ hasText: 'have not reached the server' })

    // Changes only this browser has: the app asks first, and keeping them deletes nothing.
    await remove.click()
    await visible(warning)
    await screenshot(page, 'notes-remove-unsynced')
    await warning.getByRole('button', { name: 'Keep it' }).click()
    await count(warning, 0)
    // The question gone, focus is back on Remove, not on the page.
    await expect.poll(() => focusOf(page), WAIT).toBe('button: Remove Team notes from this browser')
    expect(await databases()).toContain(database)
    await visible(page.getByRole('link', { name: /Team notes/ }))

    await remove.click()
    await warning.getByRole('button', { name: 'Remove anyway' }).click()
    await count(page.getByRole('link', { name: /Team notes/ }), 0)
    // It was the only notebook: focus goes to the list's heading.
    await expect.poll(() => focusOf(page), WAIT).toBe('h2: Your notebooks')
    await expect.poll(databases, WAIT).not.toContain(database)
    // The other tab had the notebook open: it closed it and went back to the list.
    await other.waitForURL(/#\/$/, WAIT)
    await visible(other.getByText('This notebook was removed from this browser in another tab.'))
    await other.close()

    // The notebook is still on the relay: its link brings it back, without the discarded note.
    await page.goto(notebook)
    await expectSynced(page)
    await visible(noteInList(page, 'Groceries'))
    await count(noteInList(page, 'Never synced'), 0)
    expect(await databases()).toContain(database)
    await bob.page.goto(notebook)
    await expectSynced(bob.page)
    await visible(noteInList(bob.page, 'Groceries'))
  })

  it('shows who else has the notebook open and which note, and stops when they go offline', async () => {
    const link = await createNotebook(alice.page, `${relay.http}/`, 'Together')
    await writeNote(alice.page, 'Agenda', 'items for Monday')
    await bob.page.goto(link)
    await expectSynced(bob.page)
    const alsoHere = (page: Page) => page.locator('.presence-line')
    // Both devices have one name, so each is told apart by the start of its replica id, as
    // Conflicts tells them apart.
    const other = /^Also here: Chromium on Linux \([a-z0-9]{6}\)$/
    await expect.poll(() => alsoHere(bob.page).textContent(), WAIT).toMatch(other)
    await expect.poll(() => alsoHere(alice.page).textContent(), WAIT).toMatch(other)
    // Bob opens the note: alice's list says so beside it.
    await openNote(bob.page, 'Agenda')
    await expect
      .poll(() => noteInList(alice.page, 'Agenda').locator('.note-item-viewers').textContent(), WAIT)
      .toMatch(/^open on Chromium on Linux \([a-z0-9]{6}\)$/)
    await screenshot(alice.page, 'notes-presence')
    // Bob works offline: alice no longer sees him, and he sees no one.
    await workOffline(bob.page).check()
    await count(alsoHere(alice.page), 0)
    await count(alsoHere(bob.page), 0)
    await workOffline(bob.page).uncheck()
    await expect.poll(() => alsoHere(alice.page).textContent(), WAIT).toMatch(other)
    await expect
      .poll(() => noteInList(alice.page, 'Agenda').locator('.note-item-viewers').textContent(), WAIT)
      .toMatch(/^open on Chromium on Linux \([a-z0-9]{6}\)$/)
  })

  it('asks the browser to keep the notebooks, and says whether it agreed', async () => {
    const carol = await device(browser)
    try {
      const page = carol.page
      await createNotebook(page, `${relay.http}/`, 'Kept notes')
      await page.getByRole('link', { name: 'Your notebooks' }).click()
      const keep = page.getByRole('button', { name: 'Keep my notebooks in this browser' })
      const note = page.locator('.storage-note')
      // Chromium keeps a site's data for good only for a site it trusts; this one it does not yet.
      await expect.poll(() => note.textContent(), WAIT).toMatch(/may clear notebooks to free space/)
      await keep.click()
      await expect.poll(() => note.textContent(), WAIT).toMatch(/said no for now/)
      // As a bookmarked or installed site is: the browser grants persistent storage.
      const cdp = await carol.context.newCDPSession(page)
      const { targetInfo } = await cdp.send('Target.getTargetInfo')
      await cdp.send('Browser.grantPermissions', {
        permissions: ['durableStorage'],
        origin: relay.http,
        ...(targetInfo.browserContextId === undefined
          ? {}
          : { browserContextId: targetInfo.browserContextId }),
      })
      await keep.click()
      await expect
        .poll(() => note.textContent(), WAIT)
        .toBe('This browser keeps your notebooks until you remove them.')
      await count(keep, 0)
      await screenshot(page, 'notes-storage-kept')
      // Found so at the next visit, without asking.
      await page.reload()
      await expect
        .poll(() => note.textContent(), WAIT)
        .toBe('This browser keeps your notebooks until you remove them.')
      expect(await page.evaluate(() => navigator.storage.persisted())).toBe(true)
    } finally {
      await carol.context.close()
    }
  })

  it('a notebook deleted on the server says so on every device, and one click removes it from the browser', async () => {
    const doomed = await createNotebook(alice.page, `${relay.http}/`, 'Doomed notes')
    await writeNote(alice.page, 'Last words', 'soon gone')
    await expectSynced(alice.page)
    await bob.page.goto(doomed)
    await expectSynced(bob.page)
    const space = decodeURIComponent(doomed.split('#/notebook/')[1] ?? '')

    // The operator deletes it: the relay is stopped for that, then serves on.
    const port = relay.port
    expect(await relay.stop('SIGTERM')).toBe(0)
    const deleted = await runRelayCli(['delete-space', '--data', data.path, '--space', space])
    expect(deleted.code).toBe(0)
    relay = await startRelay({ dataDir: data.path, port, args: ['--static', APP] })

    const banner = (page: Page) => page.getByRole('alert').filter({ hasText: 'deleted on the server' })
    for (const { page } of [alice, bob]) {
      await visible(banner(page))
      // The status agrees: not a server out of reach.
      await expect.poll(() => status(page).locator('.sync-label').textContent(), WAIT).toBe('Not syncing')
      expect(await page.getByRole('status').filter({ hasText: 'Not syncing' }).count()).toBe(1)
    }
    await screenshot(bob.page, 'notes-deleted-on-server')
    // A device that opens it afresh is told too.
    await bob.page.reload()
    await visible(banner(bob.page))

    await banner(alice.page).getByRole('button', { name: 'Remove it from this browser' }).click()
    await alice.page.waitForURL(/#\/$/, WAIT)
    await count(alice.page.getByRole('link', { name: /Doomed notes/ }), 0)
    await expect
      .poll(
        () => alice.page.evaluate(async () => (await indexedDB.databases()).map((entry) => entry.name)),
        WAIT,
      )
      .not.toContain(`chorus:${space}`)
    // The other notebooks are untouched.
    await alice.page.goto(notebook)
    await expectSynced(alice.page)
  })
})

describe('the notes app on a relay that takes sync connections from its own origin only', () => {
  const data = tempDir('chorus-e2e-origin-')
  const other = tempDir('chorus-e2e-origin-other-')
  let relay: RelayProcess
  let elsewhere: RelayProcess
  let browser: Browser

  beforeAll(async () => {
    // The relay's own origin is known once it has a port: it starts again on that port.
    const first = await startRelay({ dataDir: data.path })
    const port = first.port
    expect(await first.stop('SIGTERM')).toBe(0)
    relay = await startRelay({
      dataDir: data.path,
      port,
      args: ['--static', APP, '--allowed-origin', `http://127.0.0.1:${port}`],
    })
    // Another site: the same app, served from another origin.
    elsewhere = await startRelay({ dataDir: other.path, args: ['--static', APP] })
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await relay?.stop('SIGTERM')
    await elsewhere?.stop('SIGTERM')
    data.remove()
    other.remove()
  })

  it('syncs the app it serves, and refuses a page of another site that opens a socket to it', async () => {
    const { context, page } = await device(browser)
    try {
      await createNotebook(page, `${relay.http}/`, 'Own origin')
      await writeNote(page, 'Allowed', 'from the relay’s own page')
      await expectSynced(page)

      // How a socket from the page to the relay ends: opened, or refused before opening.
      const attempt = (target: Page) =>
        target.evaluate(
          (url) =>
            new Promise<string>((resolve) => {
              const socket = new WebSocket(url)
              socket.onopen = () => {
                socket.close()
                resolve('open')
              }
              socket.onclose = () => resolve('refused')
            }),
          relay.url,
        )
      expect(await attempt(page)).toBe('open')
      const foreign = await context.newPage()
      await foreign.goto(`${elsewhere.http}/`)
      expect(await attempt(foreign)).toBe('refused')
      const metrics = await (await fetch(`${relay.http}/metrics`)).text()
      expect(metrics).toMatch(/^chorus_relay_origins_refused_total 1$/m)
    } finally {
      await context.close()
    }
  })
})

describe('the notes app when another device changes the note being typed into', () => {
  const data = tempDir('chorus-e2e-crossing-')
  let relay: RelayProcess
  let browser: Browser
  let alice: Device
  let bob: Device
  let notebook = ''

  beforeAll(async () => {
    ;({ relay, browser, alice, bob } = await twoDevices(data.path))
  })

  afterAll(async () => {
    await browser?.close()
    await relay?.stop('SIGTERM')
    data.remove()
  })

  /**
   * Types into `page`'s body, a few characters at a time, until `done` holds (at most 60
   * rounds): typing that goes on across what another device does meanwhile.
   */
  async function typeUntil(page: Page, done: () => Promise<boolean>): Promise<void> {
    const body = page.getByLabel('Body', { exact: true })
    for (let round = 0; round < 60 && !(await done()); round++) {
      if (!(await body.isVisible())) return
      // The field may go while it is typed into (the note deleted elsewhere): that ends the typing.
      const typed = await body.pressSequentially(' and', { delay: 40, timeout: 2_000 }).then(
        () => true,
        () => false,
      )
      if (!typed) return
    }
  }

  it('an edit from another device that arrives while typing is merged in and said, not written over', async () => {
    notebook = await createNotebook(alice.page, `${relay.http}/`, 'Crossing')
    await bob.page.goto(notebook)
    await expectSynced(bob.page)
    await writeNote(alice.page, 'Plan', 'v0')
    await expectSynced(alice.page)
    await visible(noteInList(bob.page, 'Plan'))
    await openNote(bob.page, 'Plan')
    await workOffline(bob.page).click()
    await editBody(bob.page, 'v0\nBOB: written while apart')
    await pending(bob.page, 1)

    await openNote(alice.page, 'Plan')
    await alice.page.getByLabel('Body', { exact: true }).click()
    await alice.page.keyboard.press('End')
    await alice.page.getByLabel('Body', { exact: true }).pressSequentially(' alice types', { delay: 40 })
    await workOffline(bob.page).click()
    const merged = alice.page.getByText('This note was changed on another device while you typed', {
      exact: false,
    })
    await typeUntil(alice.page, () => merged.isVisible())
    await visible(merged)
    await alice.page.getByLabel('Title', { exact: true }).focus()
    await saved(alice.page)
    await expectSynced(alice.page)
    await expectSynced(bob.page)

    const text = await alice.page.getByLabel('Body', { exact: true }).inputValue()
    expect(text).toMatch(/^v0 alice types( and)*\nBOB: written while apart$/)
    await value(bob.page.getByLabel('Body', { exact: true }), text)
    for (const page of [alice.page, bob.page]) {
      expect(await page.locator('.conflicts-button .badge').count()).toBe(0)
    }
  })

  it('two devices typing a line each into one note at once end with each line once, not with every saved state of the other', async () => {
    await writeNote(alice.page, 'Together', 'first line')
    await expectSynced(alice.page)
    await visible(noteInList(bob.page, 'Together'))
    await openNote(bob.page, 'Together')
    await value(bob.page.getByLabel('Body', { exact: true }), 'first line')
    const line = (who: string) => Array.from({ length: 24 }, (_, i) => `${who}${i}`).join(' ')
    // Both type at once, slowly enough that each device's autosaves reach the other mid-line.
    await Promise.all(
      [alice, bob].map(async (device, index) => {
        const body = device.page.getByLabel('Body', { exact: true })
        await body.click()
        await device.page.keyboard.press('Control+End')
        await device.page.keyboard.press('Enter')
        await body.pressSequentially(line(index === 0 ? 'a' : 'b'), { delay: 45 })
        await device.page.getByLabel('Title', { exact: true }).focus()
      }),
    )
    for (const page of [alice.page, bob.page]) await saved(page)
    await expectSynced(alice.page)
    await expectSynced(bob.page)
    const settled = async () => {
      const texts = await Promise.all(
        [alice, bob].map((device) => device.page.getByLabel('Body', { exact: true }).inputValue()),
      )
      return texts[0] === texts[1] ? texts[0] : undefined
    }
    await expect.poll(settled, WAIT).toBeDefined()
    const lines = ((await settled()) ?? '').split('\n')
    expect(lines[0]).toBe('first line')
    // Each line once, whole: no line beside an older state of itself (which every autosave of
    // a line the other device was typing used to add), and no words lost or typed into the
    // other's line (which a caret left at its offset, when the other device's save put the
    // lines in another order, or the note shown before its conflict was, used to cause).
    expect(lines.slice(1).sort(), lines.join('\n')).toEqual([line('a'), line('b')])
    // Saves of the two that crossed put the note in conflict; the device with the greatest
    // replica id merged the versions, and none is left.
    for (const page of [alice.page, bob.page]) await count(page.locator('.conflicts-button .badge'), 0)
  })

  it('a note deleted on another device while typed into stays deleted, keeps what was typed to restore it, and breaks no screen', async () => {
    await writeNote(alice.page, 'Doomed', 'start')
    await expectSynced(alice.page)
    await visible(noteInList(bob.page, 'Doomed'))
    await openNote(bob.page, 'Doomed')
    await bob.page.getByLabel('Body', { exact: true }).click()
    await bob.page.keyboard.press('End')
    await bob.page.getByLabel('Body', { exact: true }).pressSequentially(' bob types', { delay: 40 })

    await openNote(alice.page, 'Doomed')
    await alice.page.getByRole('button', { name: 'Delete note' }).click()
    const deleted = bob.page.locator('.deleted-note')
    await typeUntil(bob.page, () => deleted.isVisible())
    await visible(bob.page.getByText('What you typed in it since is below', { exact: false }))
    await expectSynced(bob.page)
    await expectSynced(alice.page)

    // Deleted everywhere: no note half brought back by the typing, and every screen renders,
    // a device that opens the notebook afresh's too.
    const fresh = await device(browser)
    for (const page of [alice.page, bob.page, fresh.page]) {
      if (page === fresh.page) await page.goto(notebook)
      await visible(noteInList(page, 'Plan'))
      await count(noteInList(page, 'Doomed'), 0)
      await count(noteInList(page, 'Untitled'), 0)
    }

    // What bob typed brings the note back whole, on every device.
    await bob.page.getByRole('button', { name: 'Restore the note' }).click()
    await expectSynced(bob.page)
    for (const page of [alice.page, fresh.page]) await visible(noteInList(page, 'Doomed'))
    await openNote(fresh.page, 'Doomed')
    // Typing may have been cut off part way through a word when the deletion arrived.
    expect(await fresh.page.getByLabel('Body', { exact: true }).inputValue()).toMatch(
      /^start bob types( and)*( a?n?)?$/,
    )
    await fresh.context.close()
  })

  it('lists a large notebook a page at a time: Show more goes on where the list ended, and a search pages its matches', async () => {
    const many = await createNotebook(alice.page, `${relay.http}/`, 'Many')
    const space = decodeURIComponent(many.slice(many.indexOf('#/notebook/') + '#/notebook/'.length))
    const writer = await createReplica({ space, storage: 'memory', url: relay.url, WebSocket: NodeWebSocket })
    const total = LIST_PAGE * 2 + 50
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        writer.collection('notes').put(`seeded-${String(i).padStart(4, '0')}`, {
          title: `Seeded ${i}`,
          body: i % 2 === 0 ? 'even' : 'odd',
          createdAt: 1_000 + i,
          updatedAt: 1_000 + i,
        }),
      ),
    )
    await writer.synced()
    await writer.close()
    const items = alice.page.locator('.note-item')
    await count(items, LIST_PAGE)
    await visible(noteInList(alice.page, `Seeded ${total - 1}`))
    const more = alice.page.getByRole('button', { name: /^Show more notes/ })
    expect(await more.textContent()).toBe(`Show more notes (${total - LIST_PAGE} more)`)
    await more.click()
    await count(items, LIST_PAGE * 2)
    // Focus goes on to the first note the click showed.
    await expect
      .poll(() => alice.page.evaluate(() => document.activeElement?.getAttribute('data-note-id')), WAIT)
      .toBe(`seeded-${String(total - 1 - LIST_PAGE).padStart(4, '0')}`)
    await more.click()
    await count(items, total)
    await count(more, 0)
    // A search shows a page of its matches again.
    await alice.page.getByLabel('Search').fill('odd')
    await count(items, LIST_PAGE)
    expect(await more.textContent()).toBe(`Show more notes (${total / 2 - LIST_PAGE} more)`)
    await alice.page.getByLabel('Search').fill('')
    await count(items, LIST_PAGE)
  })
})

describe('the notes app with a keyboard, a screen reader and a small screen', () => {
  const data = tempDir('chorus-e2e-access-')
  let relay: RelayProcess
  let browser: Browser
  let alice: Device
  let notebook = ''

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path, args: ['--static', APP] })
    browser = await launchChromium()
    alice = await device(browser)
  })

  afterAll(async () => {
    await browser?.close()
    await relay?.stop('SIGTERM')
    data.remove()
  })

  it('moving to another screen takes focus to its heading, and removing a notebook to the next one', async () => {
    const page = alice.page
    await createNotebook(page, `${relay.http}/`, 'Second notebook')
    await expect.poll(() => focusOf(page), WAIT).toBe('h1: Second notebook')
    await page.getByRole('link', { name: 'Your notebooks' }).click()
    await expect.poll(() => focusOf(page), WAIT).toBe('h1: Notes')
    notebook = await createNotebook(page, `${relay.http}/`, 'Keyboard notes')
    await expect.poll(() => focusOf(page), WAIT).toBe('h1: Keyboard notes')
    await page.getByRole('link', { name: 'Your notebooks' }).focus()
    await page.keyboard.press('Enter')
    await expect.poll(() => focusOf(page), WAIT).toBe('h1: Notes')

    // Removed, the first notebook's row goes: focus goes on to the next one's Remove, and with
    // the last one gone, to the list's heading.
    const names = await page.locator('.notebook-name').allTextContents()
    expect(names).toHaveLength(2)
    const remove = (name: string) => page.getByRole('button', { name: `Remove ${name} from this browser` })
    await remove(names[0] ?? '').focus()
    await page.keyboard.press('Enter')
    await count(page.locator('.notebook-name'), 1)
    await expect.poll(() => focusOf(page), WAIT).toBe(`button: Remove ${names[1]} from this browser`)
    await page.keyboard.press('Enter')
    await count(page.locator('.notebook-name'), 0)
    await expect.poll(() => focusOf(page), WAIT).toBe('h2: Your notebooks')
    // Still on the relay: its link brings it back.
    await page.goto(notebook)
    await expectSynced(page)
  })

  it('names the notebook, the list and the open note in headings, inside the main landmark', async () => {
    const page = alice.page
    await writeNote(page, 'Alpha', 'the first')
    await writeNote(page, 'Beta', 'the second')
    await expectSynced(page)
    const headings = () =>
      page.evaluate(() =>
        Array.from(document.querySelectorAll('h1, h2, h3')).map(
          (heading) =>
            `${heading.tagName} ${heading.textContent}${heading.closest('main') ? '' : ' (outside main)'}`,
        ),
      )
    expect(await headings()).toEqual(['H1 Keyboard notes', 'H2 Notes', 'H2 Note: Beta'])
    await count(page.getByRole('main'), 1)
    await visible(page.getByRole('region', { name: 'Note: Beta', exact: true }))
  })

  it('a notice stays while focus is on it; Undo gives focus to the note it brings back, Dismiss to the heading', async () => {
    const page = alice.page
    await openNote(page, 'Beta')
    await page.getByRole('button', { name: 'Delete note' }).click()
    const notice = page.locator('.notice').filter({ hasText: 'Deleted “Beta”.' })
    await visible(notice)
    await notice.getByRole('button', { name: 'Undo' }).focus()
    // Longer than any notice is shown: it waits for the user on its button.
    await new Promise((resolve) => setTimeout(resolve, ACTION_NOTICE_MS + 1_000))
    await count(notice, 1)
    await page.keyboard.press('Enter')
    await visible(noteInList(page, 'Beta'))
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.closest('.note-item')?.textContent ?? ''), WAIT)
      .toMatch(/^Beta/)
    await count(notice, 0)

    await noteInList(page, 'Beta').click()
    await page.getByRole('button', { name: 'Delete note' }).click()
    await visible(notice)
    await notice.getByRole('button', { name: 'Dismiss' }).focus()
    await page.keyboard.press('Enter')
    await count(notice, 0)
    await expect.poll(() => focusOf(page), WAIT).toBe('h1: Keyboard notes')
  })

  it('lays out right-to-left text right to left: the note’s fields, its entry in the list, the notebook’s name', async () => {
    const page = alice.page
    await page.goto(notebook)
    await writeNote(page, 'מה שלום?', 'مرحبا بالعالم!')
    const rtl = (locator: Locator) => locator.evaluate((element) => element.matches(':dir(rtl)'))
    expect(await rtl(page.getByLabel('Title', { exact: true }))).toBe(true)
    expect(await rtl(page.getByLabel('Body', { exact: true }))).toBe(true)
    expect(await rtl(noteInList(page, 'מה שלום').getByText('מה שלום?', { exact: true }))).toBe(true)
    // Text that starts left to right stays so.
    await writeNote(page, 'Plain', 'left to right')
    expect(await rtl(page.getByLabel('Title', { exact: true }))).toBe(false)
    const name = page.getByLabel('Notebook name', { exact: true })
    const before = await name.inputValue()
    await name.fill('מחברת')
    expect(await rtl(name)).toBe(true)
    await name.fill(before)
    await name.blur()
  })

  it('says how many notes a search finds once typing pauses, not at each key', async () => {
    const page = alice.page
    await page.evaluate(() => {
      const said: string[] = []
      Object.assign(window, { said })
      const region = document.querySelector('.search-summary')
      if (region === null) throw new Error('no search summary on the page')
      new MutationObserver(() => said.push(region.textContent ?? '')).observe(region, {
        childList: true,
        characterData: true,
        subtree: true,
      })
    })
    const said = () => page.evaluate(() => (window as unknown as { said: string[] }).said.filter(Boolean))
    await page.getByLabel('Search').pressSequentially('alph', { delay: 80 })
    await expect.poll(said, WAIT).toEqual(['1 note matches “alph”.'])
    await page.getByLabel('Search').fill('nothing like it')
    await expect.poll(said, WAIT).toEqual(['1 note matches “alph”.', 'No notes match “nothing like it”.'])
    expect(await page.getByRole('status').filter({ hasText: 'No notes match' }).count()).toBe(1)
    await page.getByLabel('Search').fill('')
  })

  it('the status says once that the server is out of reach, not at each try, and connected only once it is', async () => {
    const page = alice.page
    await expectSynced(page)
    await page.evaluate(() => {
      const heard: string[] = []
      const statuses: string[] = []
      Object.assign(window, { heard, statuses })
      const status = document.querySelector<HTMLElement>('.sync-status')
      const region = status?.querySelector('[role="status"]')
      if (status === undefined || status === null || region === null || region === undefined)
        throw new Error('no sync status on the page')
      new MutationObserver(() => {
        const text = region.textContent ?? ''
        if (heard.at(-1) !== text) heard.push(text)
        const now = status.dataset.status ?? ''
        if (statuses.at(-1) !== now) statuses.push(now)
      }).observe(status, { childList: true, characterData: true, subtree: true, attributes: true })
    })
    const seen = () =>
      page.evaluate(() => {
        const { heard, statuses } = window as unknown as { heard: string[]; statuses: string[] }
        return { heard, statuses }
      })
    const port = relay.port
    expect(await relay.stop('SIGTERM')).toBe(0)
    // The app tries the server again and again: connecting, then offline, each time.
    await expect
      .poll(async () => (await seen()).statuses.filter((status) => status === 'connecting').length, WAIT)
      .toBeGreaterThanOrEqual(2)
    relay = await startRelay({ dataDir: data.path, port, args: ['--static', APP] })
    await expectSynced(page)
    expect((await seen()).heard).toEqual(['Can’t reach the server, retrying', 'Connected'])
  })

  it('the top bar’s Conflicts link goes to Conflicts, and ‹ Notes back gives focus to the notebook’s heading', async () => {
    const page = alice.page
    const link = page.getByRole('link', { name: 'Conflicts' })
    expect(await link.getAttribute('href')).toMatch(/\/conflicts$/)
    expect(await link.getAttribute('aria-current')).toBeNull()
    await link.click()
    await expect.poll(() => focusOf(page), WAIT).toBe('h2: Conflicts')
    await attribute(link, 'aria-current', 'page')
    expect(await link.getAttribute('href')).toMatch(/\/conflicts$/)
    await page.getByRole('link', { name: '‹ Notes' }).focus()
    await page.keyboard.press('Enter')
    await expect.poll(() => focusOf(page), WAIT).toBe('h1: Keyboard notes')
  })

  it('placeholders keep a contrast of 4.5 to 1, in the light and the dark scheme', async () => {
    const page = alice.page
    await page.getByRole('button', { name: 'New note' }).click()
    await value(page.getByLabel('Title', { exact: true }), '')
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme })
      const colours = await page.evaluate(() => {
        const rgb = (text: string) => (text.match(/[\d.]+/g) ?? []).map(Number)
        /** The colour behind `element`: its own background, else its nearest painted ancestor's. */
        const behind = (element: Element | null): number[] => {
          for (let at = element; at !== null; at = at.parentElement) {
            const colour = rgb(getComputedStyle(at).backgroundColor)
            if (colour.length === 3 || (colour[3] ?? 0) > 0) return colour.slice(0, 3)
          }
          return rgb(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3)
        }
        return Array.from(document.querySelectorAll('input[placeholder], textarea[placeholder]')).map(
          (field) => ({
            field: field.getAttribute('placeholder') ?? '',
            text: rgb(getComputedStyle(field, '::placeholder').color),
            opacity: Number(getComputedStyle(field, '::placeholder').opacity),
            background: behind(field),
          }),
        )
      })
      expect(colours.map((colour) => colour.field).sort()).toEqual([
        'Search notes',
        'Title',
        'Untitled notebook',
        'Write something…',
      ])
      for (const { field, text, opacity, background } of colours) {
        expect(opacity, field).toBe(1)
        expect(contrast(text, background), `${field} (${colorScheme})`).toBeGreaterThanOrEqual(4.5)
      }
    }
    await page.emulateMedia({ colorScheme: null })
  })

  it('fits a 320 px screen and a 1280 px one zoomed to 200 %: nothing scrolls sideways or is cut off', async () => {
    for (const viewport of [
      { width: 320, height: 640 },
      { width: 640, height: 400 },
    ]) {
      const small = await browser.newContext({ viewport, deviceScaleFactor: viewport.width === 640 ? 2 : 1 })
      try {
        const page = await small.newPage()
        await page.goto(notebook)
        await expectSynced(page)
        await visible(noteInList(page, 'Alpha'))
        /** The elements matching `selector` that reach past the screen's edges, or past their own box. */
        const outside = (selector: string) =>
          page.evaluate((selector) => {
            const width = document.documentElement.clientWidth
            return Array.from(document.querySelectorAll<HTMLElement>(selector))
              .filter((element) => {
                const box = element.getBoundingClientRect()
                return (
                  box.width > 0 &&
                  (box.left < 0 || box.right > width || element.scrollWidth > element.clientWidth + 1)
                )
              })
              .map((element) => element.className || element.tagName)
          }, selector)
        const sideways = () =>
          page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
        expect(await sideways()).toBe(0)
        expect(await outside('.search, .sidebar-tools .button, .note-item')).toEqual([])

        await page.getByRole('button', { name: 'Share' }).click()
        await visible(page.locator('.share-panel'))
        expect(await outside('.share-panel')).toEqual([])
        expect(await sideways()).toBe(0)
        await page.keyboard.press('Escape')

        // Out of reach, with changes waiting: the whole status shows, on as many lines as it takes.
        await small.setOffline(true)
        await expect
          .poll(() => status(page).locator('.sync-label').textContent(), WAIT)
          .toBe('Can’t reach the server, retrying')
        await writeNote(page, `Waiting ${viewport.width}`, 'to upload')
        await expect
          .poll(() => status(page).locator('.sync-pending').textContent(), WAIT)
          .toMatch(/^\d+ changes waiting to upload$/)
        await page.getByRole('button', { name: '‹ Notes' }).click()
        expect(await outside('.sync-status, .sync-status > span:not(.visually-hidden)')).toEqual([])
        expect(await sideways()).toBe(0)
        await screenshot(page, `notes-narrow-${viewport.width}`)
        await small.setOffline(false)
        await expectSynced(page)
      } finally {
        await small.close()
      }
    }
  })
})

describe('the notes app after a single visit', () => {
  const data = tempDir('chorus-e2e-one-visit-')
  let relay: RelayProcess
  let browser: Browser

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path, args: ['--static', APP] })
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await relay?.stop('SIGTERM')
    data.remove()
  })

  it('opens again with the relay down: the service worker kept the whole app when it installed', async () => {
    const { context, page } = await device(browser)
    const notebook = await createNotebook(page, `${relay.http}/`, 'One visit')
    await writeNote(page, 'Offline ready', 'from the first visit')
    await expectSynced(page)
    // Installed and in charge: what it keeps for offline use, it stored while installing.
    await expect
      .poll(
        () => page.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.active?.state),
        WAIT,
      )
      .toBe('activated')

    expect(await relay.stop('SIGTERM')).toBe(0)
    // The page's own copies are not what is being checked.
    const cdp = await context.newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true })
    await page.goto(notebook)
    await page.reload()
    await visible(noteInList(page, 'Offline ready'))
    await expect.poll(() => status(page).getAttribute('data-status'), WAIT).not.toBe('synced')
    await context.close()
  })
})

describe('the notes app when the browser will store no more for its site', () => {
  const data = tempDir('chorus-e2e-quota-')
  const profile = tempDir('chorus-e2e-profile-')
  let relay: RelayProcess
  let context: BrowserContext

  beforeAll(async () => {
    relay = await startRelay({ dataDir: data.path, args: ['--static', APP] })
    // A profile on disk: Chromium applies a site's quota override there, not in incognito.
    context = await launchChromiumProfile(profile.path)
  })

  afterAll(async () => {
    await context?.close()
    await relay?.stop('SIGTERM')
    data.remove()
    profile.remove()
  })

  it('still starts, with its notes, when its service worker cannot cache the script it fetched', async () => {
    const page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', (error) => {
      throw error
    })
    const notebook = await createNotebook(page, `${relay.http}/`, 'Quota')
    await writeNote(page, 'Kept', 'written before the quota ran out')
    await expectSynced(page)
    // Served through the service worker, which holds the app's files.
    await page.reload()
    await expect.poll(() => page.evaluate(() => navigator.serviceWorker.controller !== null), WAIT).toBe(true)
    const script = await page.evaluate(
      () => (document.querySelector('script[src*="/assets/"]') as HTMLScriptElement | null)?.src ?? '',
    )
    expect(script).toMatch(/\/assets\/.+\.js$/)
    const cachedScript = () =>
      page.evaluate(async (url) => {
        for (const name of await caches.keys()) if (await (await caches.open(name)).match(url)) return true
        return false
      }, script)
    await expect.poll(cachedScript, WAIT).toBe(true)

    // The site's quota used up (Chromium's own, set over the DevTools protocol) and the script
    // not in the cache — as after an update, whose build's files the cache never held.
    await page.evaluate(async (url) => {
      for (const name of await caches.keys()) await (await caches.open(name)).delete(url)
    }, script)
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0)
    const cdp = await context.newCDPSession(page)
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: relay.http, quotaSize: usage + 20_000 })

    // The worker fetches the script and cannot keep it: the page gets it all the same. (It
    // used to wait for the cache to take it, and the app did not start: a blank page.)
    // No copy of the page's own to fall back on: every file is asked of the worker.
    await cdp.send('Network.enable')
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true })
    await page.goto(notebook)
    await page.reload()
    await visible(status(page))
    await expectSynced(page)
    await visible(noteInList(page, 'Kept'))
    expect(await cachedScript()).toBe(false)
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: relay.http })
  })

  it('says a note it could not store is not saved, keeps what was typed and queues nothing', async () => {
    const own = tempDir('chorus-e2e-profile-')
    const browser = await launchChromiumProfile(own.path)
    try {
      const page = browser.pages()[0] ?? (await browser.newPage())
      page.on('pageerror', (error) => {
        throw error
      })
      // Set before the site first stores anything: Chromium takes a site's quota as its
      // storage opens.
      const cdp = await browser.newCDPSession(page)
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: relay.http, quotaSize: 300_000 })
      await createNotebook(page, `${relay.http}/`, 'Nearly full')
      await writeNote(page, 'Small', 'fits')
      await expectSynced(page)

      // More than the room left (random text: the browser compresses what it stores).
      const big = randomBytes(150_000).toString('base64')
      await page.getByRole('button', { name: 'New note' }).click()
      await page.getByLabel('Body', { exact: true }).fill(big)
      await page.getByLabel('Title', { exact: true }).focus()
      await visible(
        page.getByRole('alert').filter({ hasText: "the browser's storage quota for this site is used up" }),
      )
      // Said as it is (it used to read "Saving…" for good), and nothing of it waits to upload.
      await expect.poll(() => page.locator('.save-state').textContent(), WAIT).toBe('Not saved')
      expect(await page.getByLabel('Body', { exact: true }).inputValue()).toBe(big)
      await expectSynced(page)
      await openNote(page, 'Small')
      await value(page.getByLabel('Body', { exact: true }), 'fits')
    } finally {
      await browser.close()
      own.remove()
    }
  })
})

/** The contrast ratio of two sRGB colours, as WCAG defines it. */
function contrast(a: readonly number[], b: readonly number[]): number {
  const luminance = (colour: readonly number[]) => {
    const [r = 0, g = 0, b = 0] = colour.map((channel) => {
      const c = channel / 255
      return c <= 0.040_45 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4
    })
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
  }
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number]
  return (light + 0.05) / (dark + 0.05)
}
