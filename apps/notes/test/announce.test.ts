import type { SyncStatus } from '@chorus/client'
import { describe, expect, it } from 'vitest'
import { CONNECTED, heardSyncStatus, searchSummary } from '../src/announce.js'

/** What a screen reader hears through a run of statuses: each change of the text, in order. */
function heard(run: readonly [SyncStatus, string][]): string[] {
  const said: string[] = []
  let last = ''
  for (const [status, label] of run) {
    const text = heardSyncStatus(status, label, last)
    if (text !== last) said.push(text)
    last = text
  }
  return said
}

const unreachable: [SyncStatus, string] = ['offline', 'Can’t reach the server, retrying']
const connecting: [SyncStatus, string] = ['connecting', 'Connecting…']

describe('the sync status a screen reader hears', () => {
  it('says connected only once connected', () => {
    expect(heard([connecting])).toEqual(['Connecting…'])
    expect(heard([connecting, ['syncing', 'Syncing…'], ['synced', 'Synced']])).toEqual([
      'Connecting…',
      CONNECTED,
    ])
  })

  it('says once that the server is out of reach, not at each try to reach it', () => {
    expect(
      heard([
        ['synced', 'Synced'],
        unreachable,
        connecting,
        unreachable,
        connecting,
        unreachable,
        connecting,
        ['syncing', 'Syncing…'],
        ['synced', 'Synced'],
      ]),
    ).toEqual([CONNECTED, 'Can’t reach the server, retrying', CONNECTED])
  })

  it('says working offline, and connecting again on the way back', () => {
    expect(heard([['synced', 'Synced'], ['offline', 'Working offline'], connecting])).toEqual([
      CONNECTED,
      'Working offline',
    ])
    // A connection lost and tried again at once: connecting, no longer connected.
    expect(heard([['synced', 'Synced'], connecting, ['synced', 'Synced']])).toEqual([
      CONNECTED,
      'Connecting…',
      CONNECTED,
    ])
  })
})

describe('what a search says', () => {
  it('counts the matches, or says there are none, and nothing without a query', () => {
    expect(searchSummary('milk', 1)).toBe('1 note matches “milk”.')
    expect(searchSummary(' milk ', 12)).toBe('12 notes match “milk”.')
    expect(searchSummary('milk', 0)).toBe('No notes match “milk”.')
    expect(searchSummary('  ', 3)).toBe('')
  })
})
