import { describe, expect, it } from 'vitest'
import {
  COMMIT_BUCKETS_MS,
  CommitHistogram,
  type RelayMetrics,
  renderPrometheus,
  zeroCounters,
} from '../src/index.js'
import { sample } from './support/harness.js'

function metricsWith(commits: CommitHistogram): RelayMetrics {
  return {
    connections: 0,
    sendBacklog: 0,
    spaces: 0,
    logEntries: 0,
    ...zeroCounters(),
    sessionsRefused: {},
    commits: commits.times(),
    lag: [],
  }
}

describe('commit times', () => {
  it('counts each commit in every bucket whose bound it does not pass, and keeps sum and max', () => {
    const histogram = new CommitHistogram()
    for (const ms of [0.2, 0.5, 0.7, 3, 12, 2000]) histogram.observe(ms)
    const times = histogram.times()
    expect(times.count).toBe(6)
    expect(times.sumMs).toBeCloseTo(2016.4)
    expect(times.maxMs).toBe(2000)
    const expected: Record<number, number> = {
      0.5: 2,
      1: 3,
      2: 3,
      5: 4,
      10: 4,
      25: 5,
      50: 5,
      100: 5,
      250: 5,
      1000: 5,
    }
    expect(times.atMost).toEqual(COMMIT_BUCKETS_MS.map((bound) => expected[bound]))
  })

  it('renders a Prometheus histogram in seconds, +Inf holding every commit', () => {
    const histogram = new CommitHistogram()
    for (const ms of [0.4, 8, 40]) histogram.observe(ms)
    const text = renderPrometheus(metricsWith(histogram))
    expect(text).toContain('# TYPE chorus_relay_append_commit_seconds histogram')
    expect(sample(text, 'chorus_relay_append_commit_seconds_bucket{le="0.0005"}')).toBe(1)
    expect(sample(text, 'chorus_relay_append_commit_seconds_bucket{le="0.01"}')).toBe(2)
    expect(sample(text, 'chorus_relay_append_commit_seconds_bucket{le="0.05"}')).toBe(3)
    expect(sample(text, 'chorus_relay_append_commit_seconds_bucket{le="+Inf"}')).toBe(3)
    expect(sample(text, 'chorus_relay_append_commit_seconds_count')).toBe(3)
    expect(sample(text, 'chorus_relay_append_commit_seconds_sum')).toBeCloseTo(0.0484)
  })
})

describe('refused sessions', () => {
  it('renders one counter sample per refusal code, in code order', () => {
    const metrics = {
      ...metricsWith(new CommitHistogram()),
      sessionsRefused: { unauthenticated: 3, forbidden: 1 },
    }
    const text = renderPrometheus(metrics)
    expect(text).toContain('# TYPE chorus_relay_sessions_refused_total counter')
    expect(sample(text, 'chorus_relay_sessions_refused_total{code="forbidden"}')).toBe(1)
    expect(sample(text, 'chorus_relay_sessions_refused_total{code="unauthenticated"}')).toBe(3)
    expect(text.indexOf('code="forbidden"')).toBeLessThan(text.indexOf('code="unauthenticated"'))
  })
})

describe('links', () => {
  it('renders a link_up gauge per link, labelled by URL and escaped, and none without links', () => {
    const base = metricsWith(new CommitHistogram())
    expect(renderPrometheus(base)).not.toContain('chorus_relay_link_up')
    const text = renderPrometheus({
      ...base,
      links: [
        { url: 'ws://10.0.0.2:8787/sync', up: 1 },
        { url: 'wss://x.example/sync?a="b"', up: 0 },
      ],
    })
    expect(text).toContain('# TYPE chorus_relay_link_up gauge')
    expect(text).toContain('chorus_relay_link_up{url="ws://10.0.0.2:8787/sync"} 1')
    expect(text).toContain('chorus_relay_link_up{url="wss://x.example/sync?a=\\"b\\""} 0')
  })
})
