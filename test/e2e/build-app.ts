import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'

/**
 * Builds the notes app once before the end-to-end tests, the way `pnpm start` does, so they
 * drive exactly what a user gets from the relay.
 */
export default async function setup(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../apps/notes')
  // Vitest sets NODE_ENV=test, which would give React's development build: build what users get.
  const previous = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  try {
    await build({ root, mode: 'production', logLevel: 'warn', configFile: resolve(root, 'vite.config.ts') })
  } finally {
    process.env.NODE_ENV = previous
  }
}
