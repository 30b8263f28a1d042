// The entry of a worker thread of `@chorus/server/node`: imports the module named by
// `workerData.module` (a file path), which then does the worker's work.
//
// The node runs from TypeScript source under tsx in development, tests and benchmarks, and
// from `dist` when built. A worker does not always inherit tsx's loader (under vitest it does
// not), so for a `.ts` module this file registers tsx first; a `.js` module (built code) is
// imported directly and needs no tsx. This file is plain JavaScript outside `src`, so the same
// relative path reaches it from `src/node/` and from `dist/node/`.
import { pathToFileURL } from 'node:url'
import { workerData } from 'node:worker_threads'

const path = workerData?.module
if (typeof path !== 'string' || path === '') throw new TypeError('workerData.module must name a module file')
if (path.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api')
  register()
}
await import(pathToFileURL(path).href)
