import { defineConfig } from 'vitest/config'

const source = { conditions: ['@chorus/source'] }

export default defineConfig({
  resolve: source,
  ssr: { resolve: { conditions: ['@chorus/source'], externalConditions: ['@chorus/source'] } },
  test: {
    // In CI a JSON report lets .ci/run print one plain "N passed, N failed" line.
    ...(process.env.CI
      ? { reporters: ['default', 'json'], outputFile: { json: 'artifacts/vitest.json' } }
      : {}),
    projects: [
      { extends: true, test: { name: 'core', root: 'packages/core', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'testkit', root: 'packages/testkit', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'client', root: 'packages/client', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'relay', root: 'packages/relay', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'sim', root: 'test', include: ['sim/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', root: 'test', include: ['integration/**/*.test.ts'] } },
    ],
  },
})
