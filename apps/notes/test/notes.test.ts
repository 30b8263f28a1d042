import type { ConflictVersion, JsonObject, ReplicaId, Row } from '@chorus/client'
import { newRecordId } from '@chorus/client'
import { describe, expect, it } from 'vitest'
import { distinctDeviceLabels, guessDeviceName } from '../src/device.js'
import { exportFileName, notebookMarkdown } from '../src/export.js'
import { timeAgo } from '../src/format.js'
import { isSpaceId, newSpaceId } from '../src/ids.js'
import { caretAfterMerge, mergeDraft, mergeTyped } from '../src/merge-draft.js'
import { displayTitle, type Note, newestFirst, preview, search } from '../src/notes.js'
import { parseRoute, spaceFromInput } from '../src/route.js'

const row = (id: string, title: string, body: string, createdAt: number): Row<Note> => ({
  id: id as Row<Note>['id'],
  value: { title, body, createdAt, updatedAt: createdAt },
})

const version = (value: JsonObject | null, wall: number): ConflictVersion => ({
  value,
  replicaId: 'a'.repeat(32) as ReplicaId,
  hlc: `${String(wall).padStart(15, '0')}.000000@${'a'.repeat(32)}` as ConflictVersion['hlc'],
})

describe('routes and links', () => {
  it('reads the start page, a notebook and its conflicts from the hash', () => {
    expect(parseRoute('')).toEqual({ name: 'home' })
    expect(parseRoute('#/')).toEqual({ name: 'home' })
    expect(parseRoute('#/notebook/abc-123')).toEqual({ name: 'notebook', space: 'abc-123', view: 'notes' })
    expect(parseRoute('#/notebook/abc-123/conflicts')).toEqual({
      name: 'notebook',
      space: 'abc-123',
      view: 'conflicts',
    })
    expect(parseRoute('#/notebook/has%20space').name).toBe('invalid')
    expect(parseRoute('#/notebook/%E0%A4%A').name).toBe('invalid')
    expect(parseRoute('#/elsewhere').name).toBe('invalid')
    // Names the client refuses are no notebook's: a link to one says so, and offers no retry.
    for (const name of ['..', '.', '-abc', '_x'])
      expect(parseRoute(`#/notebook/${name}`).name).toBe('invalid')
  })

  it('finds the notebook in a pasted link, hash or bare id', () => {
    expect(spaceFromInput(' https://notes.example/#/notebook/k3x9 ')).toBe('k3x9')
    expect(spaceFromInput('http://127.0.0.1:8787/#/notebook/k3x9/conflicts')).toBe('k3x9')
    expect(spaceFromInput('#/notebook/k3x9')).toBe('k3x9')
    expect(spaceFromInput('k3x9')).toBe('k3x9')
    expect(spaceFromInput('https://notes.example/')).toBeUndefined()
    expect(spaceFromInput('not an id')).toBeUndefined()
    expect(spaceFromInput('..')).toBeUndefined()
  })
})

describe('ids', () => {
  it('makes notebook ids that are valid space ids, and note ids that sort by creation time', () => {
    const space = newSpaceId()
    expect(isSpaceId(space)).toBe(true)
    expect(space).toMatch(/^[a-z2-9]{20}$/)
    const earlier = newRecordId(1_700_000_000_000)
    const later = newRecordId(1_700_000_000_001)
    expect(earlier).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(earlier < later).toBe(true)
    expect(earlier.slice(0, 13)).toBe('018bcfe5-6800')
  })
})

describe('the note list', () => {
  const rows = [
    row('a', 'Groceries', 'Milk\nCafé beans', 1),
    row('b', '', 'Call the bank\nabout the card', 3),
    row('c', 'Trip', 'Pack the charger', 2),
  ]

  it('puts the newest note first', () => {
    expect(newestFirst(rows).map((item) => item.id)).toEqual(['b', 'c', 'a'])
  })

  it('finds notes by every word of the query, ignoring case and accents', () => {
    expect(search(rows, 'cafe').map((item) => item.id)).toEqual(['a'])
    expect(search(rows, 'THE charger').map((item) => item.id)).toEqual(['c'])
    expect(search(rows, 'the').map((item) => item.id)).toEqual(['b', 'c'])
    expect(search(rows, '  ')).toBe(rows)
  })

  it('titles an untitled note by its first line', () => {
    expect(displayTitle({ title: '', body: 'Call the bank\nabout the card' })).toBe('Call the bank')
    expect(displayTitle({ title: ' ', body: '' })).toBe('Untitled')
  })
})

describe('merging conflicting versions', () => {
  it('starts from the newest version and adds the lines only the older ones have', () => {
    const draft = mergeDraft(
      [
        version(
          { title: 'Packing', body: 'Passport\nCharger\nPhrasebook', createdAt: 10, updatedAt: 20 },
          20,
        ),
        version(
          { title: 'Packing list', body: 'Passport\nCharger\n\nRain jacket', createdAt: 10, updatedAt: 21 },
          21,
        ),
        version(null, 15),
      ],
      99,
    )
    expect(draft).toEqual({
      title: 'Packing list',
      body: 'Passport\nCharger\n\nRain jacket\nPhrasebook',
      createdAt: 10,
      updatedAt: 99,
    })
  })

  it('gives an empty note when every version is a deletion', () => {
    expect(mergeDraft([version(null, 1), version(null, 2)], 5)).toEqual({
      title: '',
      body: '',
      createdAt: 5,
      updatedAt: 5,
    })
  })
})

describe('merging what another device wrote into what is being typed', () => {
  it('adds the lines the others added, after what is typed, and nothing both already hold', () => {
    expect(mergeTyped('v0 and mine', 'v0', ['v0\nBOB: theirs\n\nand more'])).toBe(
      'v0 and mine\nBOB: theirs\nand more',
    )
    // A line they changed comes in changed, beside the line as typed.
    expect(mergeTyped('one\ntwo', 'one\ntwo', ['one\nTWO'])).toBe('one\ntwo\nTWO')
  })

  it('leaves what is typed as it is when the others only removed lines, or wrote what it holds', () => {
    expect(mergeTyped('a\nb', 'a\nb\nc', ['a'])).toBe('a\nb')
    expect(mergeTyped('a\nb', 'a', ['a\nb'])).toBe('a\nb')
    expect(mergeTyped('', '', ['theirs'])).toBe('theirs')
  })

  it('takes in place the growing line another device types, and never brings back a line typed here and changed since', () => {
    // B typed "bob-1" below L1 while A typed "alice-1": A's save came in and was merged.
    const seen = new Set(['L1', 'alice-1'])
    const typed = new Set(['bob-1', 'bob-12'])
    // A's line grew, and A took in B's older line: B, typing on, gets A's line as it is now,
    // where A's older one was, and not its own older line.
    expect(mergeTyped('L1\nbob-123\nalice-1', 'L1\nalice-1', ['L1\nalice-12\nbob-1'], { seen, typed })).toBe(
      'L1\nbob-123\nalice-12',
    )
    // A line typed here is never taken for another device's, however alike.
    expect(mergeTyped('L1\nbob-123', 'L1', ['L1\nbob-1234 (theirs)'], { seen: new Set(['L1']), typed })).toBe(
      'L1\nbob-123\nbob-1234 (theirs)',
    )
    // A line of theirs still in their text stays; what they add beside it comes below.
    expect(
      mergeTyped('L1\nmine\nalice-1', 'L1\nalice-1', ['L1\nalice-1\nalice-2'], { seen, typed: new Set() }),
    ).toBe('L1\nmine\nalice-1\nalice-2')
  })

  it('never brings back a line that came from elsewhere and was changed here since', () => {
    // B extends line 1 while A types in line 2: A's save still holds line 1 as it was.
    const seen = new Set(['alpha line', 'beta line', 'gamma line'])
    const typed = new Set(['alpha line b0', 'alpha line b0 b1'])
    expect(
      mergeTyped(
        'alpha line b0 b1\nbeta line\ngamma line',
        'alpha line b0\nbeta line\ngamma line',
        ['alpha line\nbeta m0 line\ngamma line'],
        { seen, typed },
      ),
    ).toBe('alpha line b0 b1\nbeta m0 line\ngamma line')
  })

  it('takes in place a line typed here that another device typed words into, not only at its end', () => {
    // A typed the note; B inserts words in the middle of its third line while A types in the second.
    const seen = new Set<string>()
    const typed = new Set(['line one', 'alpha beta gamma', 'delta epsilon zeta', 'alpha a0 beta gamma'])
    const mine = 'line one\nalpha a0 a1 beta gamma\ndelta epsilon zeta'
    const theirs = ['line one\nalpha a0 beta gamma\ndelta epsilon b0 b1 zeta']
    expect(mergeTyped(mine, mine, theirs, { seen, typed, caretLine: 'alpha a0 a1 beta gamma' })).toBe(
      'line one\nalpha a0 a1 beta gamma\ndelta epsilon b0 b1 zeta',
    )
    // Words taken out of it as well are not an insertion: theirs comes beside.
    expect(
      mergeTyped(mine, mine, ['line one\nalpha a0 beta gamma\ndelta b0 zeta'], {
        seen,
        typed,
        caretLine: 'alpha a0 a1 beta gamma',
      }),
    ).toBe(`${mine}\ndelta b0 zeta`)
  })

  it('takes in place a line typed here that another device extended, unless the caret is in it', () => {
    // A typed the note; B extends its first line while A types in the second.
    const seen = new Set<string>()
    const typed = new Set(['alpha line', 'beta line', 'gamma line', 'beta m0 line'])
    const mine = 'alpha line\nbeta m0 m1 line\ngamma line'
    const theirs = ['alpha line b0\nbeta m0 line\ngamma line']
    expect(mergeTyped(mine, mine, theirs, { seen, typed, caretLine: 'beta m0 m1 line' })).toBe(
      'alpha line b0\nbeta m0 m1 line\ngamma line',
    )
    // The line the caret is in is not changed under it: theirs comes beside.
    expect(mergeTyped(mine, mine, theirs, { seen, typed, caretLine: 'alpha line' })).toBe(
      `${mine}\nalpha line b0`,
    )
    // Nor is a line typed here that they did not only extend.
    expect(mergeTyped(mine, mine, ['ALPHA line\nbeta m0 line\ngamma line'], { seen, typed })).toBe(
      `${mine}\nALPHA line`,
    )
  })

  it('drops the lines another device deleted from the note it wrote over this one, and only those', () => {
    const seen = new Set(['first', 'keep', 'drop me 1', 'drop me 2'])
    const typed = new Set(['B: b0', 'B: b0 b1'])
    const mine = 'first\nkeep\ndrop me 1\ndrop me 2\nB: b0 b1'
    const base = 'first\nkeep\ndrop me 1\ndrop me 2\nB: b0'
    // The stored note, written over the base: they deleted two lines.
    expect(mergeTyped(mine, base, ['first\nkeep\nB: b0'], { seen, typed }, true)).toBe(
      'first\nkeep\nB: b0 b1',
    )
    // A conflict's version may just not have had the lines yet: nothing is dropped then.
    expect(mergeTyped(mine, base, ['first\nkeep\nB: b0'], { seen, typed }, false)).toBe(mine)
    // A line typed here is never dropped, nor one that was not in the base.
    expect(
      mergeTyped(
        'first\nmine',
        'first\nmine',
        ['first'],
        { seen: new Set(['first']), typed: new Set(['mine']) },
        true,
      ),
    ).toBe('first\nmine')
  })

  it('takes the latest state of a line another device typed when the versions of a conflict hold two of its states', () => {
    const seen = new Set(['L1', 'bob-1'])
    const typed = new Set(['alice-1'])
    // Two versions hold B's line at two moments of its typing, in either order.
    for (const others of [
      ['L1\nbob-12\nalice-1', 'L1\nbob-1234'],
      ['L1\nbob-1234', 'L1\nbob-12\nalice-1'],
    ]) {
      expect(mergeTyped('L1\nbob-1\nalice-12', 'L1\nbob-1\nalice-1', others, { seen, typed })).toBe(
        'L1\nbob-1234\nalice-12',
      )
    }
    // A line both versions added, at two states: once, the longer.
    expect(mergeTyped('mine', 'mine', ['mine\nnew li', 'mine\nnew line'])).toBe('mine\nnew line')
    // Lines that share only a start are two lines: both are kept.
    expect(mergeTyped('mine', 'mine', ['mine\nMonday: call', 'mine\nMonday: shop'])).toBe(
      'mine\nMonday: call\nMonday: shop',
    )
  })

  it('reads a record lacking fields as a note, so that no list or title breaks on it', () => {
    const partial = { body: 'typed after a deletion' } as unknown as Note
    expect(displayTitle(partial)).toBe('typed after a deletion')
    expect(preview(partial)).toBe('')
  })
})

describe('the caret after lines from elsewhere are merged in', () => {
  const at = (text: string, caret: number) => `${text.slice(0, caret)}|${text.slice(caret)}`

  it('stays where it is when the text before it is unchanged', () => {
    const before = 'first\nA: a1 a2'
    const after = 'first\nA: a1 a2\nB: b1'
    expect(caretAfterMerge(before, after, before.length, before.length)).toEqual({
      start: before.length,
      end: before.length,
    })
  })

  it('moves by what was added above it when the text after it is unchanged', () => {
    const before = 'first\nA: a1 a2'
    const after = 'first\nB: b1\nA: a1 a2'
    const moved = caretAfterMerge(before, after, 9, 9)
    expect(at(after, moved.start)).toBe('first\nB: b1\nA: |a1 a2')
  })

  it('stays in its line when another device put the lines in another order', () => {
    // Typed here: A's line above B's; the other device saved B's line above A's.
    const before = 'first line\nA: a1 a2 a3 \nB: b1 b2'
    const after = 'first line\nB: b1 b2 b3\nA: a1 a2 a3 '
    const caret = before.indexOf(' \nB:') + 1
    const moved = caretAfterMerge(before, after, caret, caret)
    expect(at(after, moved.start)).toBe('first line\nB: b1 b2 b3\nA: a1 a2 a3 |')
    expect(moved.end).toBe(moved.start)
  })

  it('stays in its line, at the same place, when that line was extended elsewhere', () => {
    const before = 'B: b1\nA: a1 a2\nC: c1'
    const after = 'top\nA: a1 a2 more\nB: b1 b2'
    const caret = before.indexOf('a2')
    const moved = caretAfterMerge(before, after, caret, caret + 2)
    expect(at(after, moved.start)).toBe('top\nA: a1 |a2 more\nB: b1 b2')
    expect(after.slice(moved.start, moved.end)).toBe('a2')
  })

  it('at the end of the text, stays in its line when lines come in both above and below it', () => {
    // A line above was extended elsewhere, and another device's new line put below this one.
    const before = 'first line\nA: a1\nB: b1 b2'
    const after = 'first line\nA: a1 a2 a3\nB: b1 b2\nC: c1'
    const moved = caretAfterMerge(before, after, before.length, before.length)
    expect(at(after, moved.start)).toBe('first line\nA: a1 a2 a3\nB: b1 b2|\nC: c1')
    // Only lines below: it stays where it was.
    const below = caretAfterMerge(before, `${before}\nC: c1`, before.length, before.length)
    expect(below.start).toBe(before.length)
  })

  it('at the start of the text, stays in its line when lines come in above it', () => {
    const before = 'B: b1\nlast'
    const after = 'A: a1\nB: b1\nlast'
    const moved = caretAfterMerge(before, after, 0, 0)
    expect(at(after, moved.start)).toBe('A: a1\n|B: b1\nlast')
  })

  it('goes to the nearest of equal lines, and an empty line matches only an empty line', () => {
    const before = 'x\n\ny\n\nz'
    const after = 'q\n\ny\n\nz!'
    // The caret on the second empty line: neither the text before it nor after it is unchanged.
    const caret = before.lastIndexOf('\n\n') + 1
    const moved = caretAfterMerge(before, after, caret, caret)
    expect(moved.start).toBe(after.lastIndexOf('\n\n') + 1)
    expect(caretAfterMerge('a\n\nb', 'c\nd', 2, 2)).toEqual({ start: 2, end: 2 })
  })
})

describe('device names', () => {
  it('tells apart devices of one name by their replica ids, and leaves a name of one device as it is', () => {
    const labels = distinctDeviceLabels(
      new Map([
        ['a1b2c3d4e5', 'Chromium on Linux'],
        ['f6e5d4c3b2', 'Chromium on Linux'],
        ['0011223344', 'Safari on macOS'],
      ]),
    )
    expect([...labels.values()]).toEqual([
      'Chromium on Linux (a1b2c3)',
      'Chromium on Linux (f6e5d4)',
      'Safari on macOS',
    ])
  })

  it('names the browser and the system', () => {
    expect(
      guessDeviceName(
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
      ),
    ).toBe('Safari on macOS')
    expect(
      guessDeviceName(
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/139.0 Safari/537.36',
      ),
    ).toBe('Chromium on Linux')
    expect(
      guessDeviceName('Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'),
    ).toBe('Firefox on Windows')
    expect(guessDeviceName('curl/8.0')).toBe('Browser')
  })
})

describe('times', () => {
  it('says how long ago, and never "in a minute"', () => {
    const now = Date.UTC(2025, 5, 15, 12)
    expect(timeAgo(now - 10_000, now)).toBe('just now')
    expect(timeAgo(now + 90_000, now)).toBe('just now')
    // In the reader's language: "5 minutes ago", "3 hours ago", "yesterday" in English.
    const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
    expect(timeAgo(now - 5 * 60_000, now)).toBe(relative.format(-5, 'minute'))
    expect(timeAgo(now - 3 * 3_600_000, now)).toBe(relative.format(-3, 'hour'))
    expect(timeAgo(now - 24 * 3_600_000, now)).toBe(relative.format(-1, 'day'))
  })
})

describe('export', () => {
  const at = (text: string) => Date.parse(`${text}Z`)

  it('writes a notebook as one Markdown document, newest note first, bodies as they are', () => {
    const rows = [
      row('n1', 'Groceries', 'milk\neggs', at('2026-11-20T09:15:00')),
      { ...row('n2', '', 'Call Ana\nabout the trip', at('2026-11-24T18:02:00')) },
      row('n3', '  Empty  ', '', at('2026-11-22T07:00:00')),
    ]
    const edited = {
      ...rows[0],
      value: { ...rows[0]?.value, updatedAt: at('2026-11-21T10:00:00') },
    } as Row<Note>
    expect(
      notebookMarkdown(' Team notes ', [edited, rows[1], rows[2]] as Row<Note>[], at('2026-11-25T08:40:30')),
    ).toBe(`# Team notes

Exported on 2026-11-25 08:40 UTC: 3 notes.

## Call Ana

_Written 2026-11-24 18:02 UTC_

Call Ana
about the trip

## Empty

_Written 2026-11-22 07:00 UTC_

## Groceries

_Written 2026-11-20 09:15 UTC, edited 2026-11-21 10:00 UTC_

milk
eggs
`)
    expect(notebookMarkdown('', [], at('2026-11-25T08:40:00'))).toBe(
      '# Untitled notebook\n\nExported on 2026-11-25 08:40 UTC: 0 notes.\n',
    )
  })

  it('keeps a body’s indentation and escapes Markdown in names and titles', () => {
    const at = (iso: string) => Date.parse(`${iso}Z`)
    const notes = [
      row('a', 'Code', '\n    npm install\n    npm test\n\n', at('2026-11-24T10:00:00')),
      row('b', 'Version 2 #', 'see *this*', at('2026-11-23T10:00:00')),
      row('c', '#', '', at('2026-11-22T10:00:00')),
      row('d', '<b>bold</b> & [link](x) `code` _x_', '', at('2026-11-21T10:00:00')),
    ]
    const text = notebookMarkdown('C# *team*', notes, at('2026-11-25T08:40:00'))
    expect(text.split('\n\n')).toEqual([
      '# C\\# \\*team\\*',
      'Exported on 2026-11-25 08:40 UTC: 4 notes.',
      '## Code',
      '_Written 2026-11-24 10:00 UTC_',
      // An indented code block stays one; the blank line before it and the blank end go.
      '    npm install\n    npm test',
      '## Version 2 \\#',
      '_Written 2026-11-23 10:00 UTC_',
      'see *this*',
      '## \\#',
      '_Written 2026-11-22 10:00 UTC_',
      '## \\<b\\>bold\\</b\\> \\& \\[link\\](x) \\`code\\` \\_x\\_',
      '_Written 2026-11-21 10:00 UTC_\n',
    ])
  })

  it('names the file after the notebook, in plain lower-case words', () => {
    expect(exportFileName('Team notes')).toBe('team-notes.md')
    expect(exportFileName('  Café & Crème: 2026 / Q4!  ')).toBe('café-crème-2026-q4.md')
    expect(exportFileName('日本語のノート')).toBe('日本語のノート.md')
    expect(exportFileName('')).toBe('notebook.md')
    expect(exportFileName('***')).toBe('notebook.md')
    expect(exportFileName('x'.repeat(100))).toBe(`${'x'.repeat(60)}.md`)
  })
})
