import { describe, expect, it } from 'vitest'
import { singleLeaderLabel } from '../../src/model/message-label.js'

describe('singleLeaderLabel', () => {
  it('labels elections, pre-votes and snapshot chunks as the nodes send them', () => {
    expect(singleLeaderLabel(JSON.stringify({ type: 'vote-request', epoch: 2, force: false }))).toBe('vote?')
    expect(singleLeaderLabel(JSON.stringify({ type: 'pre-vote-request', epoch: 2 }))).toBe('pre-vote?')
    expect(singleLeaderLabel(JSON.stringify({ type: 'pre-vote', epoch: 2, granted: true, current: 1 }))).toBe(
      'pre-vote yes',
    )
    expect(
      singleLeaderLabel(JSON.stringify({ type: 'pre-vote', epoch: 2, granted: false, current: 1 })),
    ).toBe('pre-vote no')
    expect(singleLeaderLabel(JSON.stringify({ type: 'snapshot', lsn: 40 }))).toBe('snapshot 40')
    expect(singleLeaderLabel(JSON.stringify({ type: 'snapshot', lsn: 40, chunk: 1, chunks: 3 }))).toBe(
      'snapshot 40 (2/3)',
    )
  })
})
