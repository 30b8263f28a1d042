import type { TestProject } from 'vitest/node'
import { startRelay, tempDir } from '../integration/relay-process.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The sync URL of a relay the browser tests share (a relay process, real SQLite, port 0). */
    relayUrl: string
  }
}

/** Starts one relay process for the browser tests, on a free loopback port, and stops it after. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const data = tempDir('chorus-browser-relay-')
  const relay = await startRelay({ dataDir: data.path })
  project.provide('relayUrl', relay.url)
  return async () => {
    await relay.stop('SIGTERM')
    data.remove()
  }
}
