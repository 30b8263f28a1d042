import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'

/** The apps the relay serves, built in order: the notes app, then the replication lab. */
const APPS = ['apps/notes', 'apps/lab']

/**
 * Builds the apps once before the end-to-end tests, the way `pnpm start` does, so they drive
 * exactly what a user gets from the relay.
 */
export default async function setup(): Promise<void> {
  const repository = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
  // Vitest sets NODE_ENV=test, which would give React's development build: build what users get.
  const previous = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  try {
    for (const app of APPS) {
      const root = resolve(repository, app)
      await build({ root, mode: 'production', logLevel: 'warn', configFile: resolve(root, 'vite.config.ts') })
    }
  } finally {
    process.env.NODE_ENV = previous
  }
}
