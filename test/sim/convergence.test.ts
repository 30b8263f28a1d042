import type { ResolverKind } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { describeFailure, runScenario, seedsFromEnv } from './workload.js'

const SEEDS_PER_RESOLVER = 100
const resolvers: ResolverKind[] = ['lww', 'merge', 'manual']

describe.each(resolvers)('simulation with the %s resolver', (resolver) => {
  const seeds = seedsFromEnv(SEEDS_PER_RESOLVER)
  it(`converges with no lost acknowledged write over ${seeds.length} seeds`, {
    timeout: 600_000,
  }, async () => {
    let writes = 0
    for (const seed of seeds) {
      const report = await runScenario(seed, resolver)
      if (report.problems.length > 0) expect.fail(describeFailure(report))
      writes += report.cluster.writes.length
    }
    // The runs must have done real work, or passing means nothing.
    expect(writes).toBeGreaterThan(seeds.length * 5)
  })
})
