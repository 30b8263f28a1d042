import { playwright } from '@vitest/browser-playwright'
import { defaultClientConditions } from 'vite'
import { defineConfig } from 'vitest/config'
import { CHROMIUM_ARGS, chromiumPath } from './test/support/chromium.js'

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
      {
        extends: true,
        // Seeded fault runs and real node processes: generous time on a busy 2-core machine.
        test: {
          name: 'server',
          root: 'packages/server',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: { name: 'react', root: 'packages/react', include: ['test/**/*.test.{ts,tsx}'] },
      },
      { extends: true, test: { name: 'notes-app', root: 'apps/notes', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'lab', root: 'apps/lab', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'sim', root: 'test', include: ['sim/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', root: 'test', include: ['integration/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          // The notes app, built and served by a relay process, driven in Chromium by playwright-core.
          name: 'e2e',
          root: 'test',
          include: ['e2e/**/*.test.ts'],
          globalSetup: ['e2e/build-app.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Real Chromium (Debian's, driven by Playwright): real IndexedDB, Web Locks, BroadcastChannel.
        resolve: { conditions: ['@chorus/source', ...defaultClientConditions] },
        test: {
          name: 'browser',
          root: 'test',
          include: ['browser/**/*.test.ts'],
          globalSetup: ['browser/relay-setup.ts'],
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({
              launchOptions: { executablePath: chromiumPath(), args: [...CHROMIUM_ARGS] },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
})
