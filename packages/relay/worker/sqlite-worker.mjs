// Starts the relay's SQLite worker (see src/worker-relay-store.ts) from plain JavaScript, so
// it loads the same way from src/ (TypeScript, in development and tests) and from dist/.
// A `.ts` module gets tsx's loader first: a worker thread started under vitest has none.
import { workerData } from 'node:worker_threads'

const { module } = workerData
if (module.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api')
  register()
}
await import(module)
