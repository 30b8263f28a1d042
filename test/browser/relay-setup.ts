import type { TestProject } from 'vitest/node'
import { runRelayCli, startRelay, tempDir } from '../integration/relay-process.js'

/** The space the tokens of the relay with auth name. */
export const READ_ONLY_SPACE = 'read-only-tabs'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The sync URL of a relay the browser tests share (a relay process, real SQLite, port 0). */
    relayUrl: string
    /** The sync URL of a second one that checks tokens. */
    authRelayUrl: string
    /** Tokens for it: reading and writing {@link READ_ONLY_SPACE}. */
    readToken: string
    writeToken: string
  }
}

/**
 * Starts the relay processes of the browser tests, on free loopback ports — an open one and
 * one with auth, with a token of each kind minted for the latter — and stops them after.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const data = tempDir('chorus-browser-relay-')
  const authData = tempDir('chorus-browser-auth-relay-')
  const secret = 'browser-test-secret-with-enough-entropy-0123456789'
  const relay = await startRelay({ dataDir: data.path })
  const authRelay = await startRelay({ dataDir: authData.path, authSecret: secret })
  project.provide('relayUrl', relay.url)
  project.provide('authRelayUrl', authRelay.url)
  // The operator's way to mint them: the CLI.
  const token = async (sub: string, access: 'read' | 'write') => {
    const args = ['token', '--secret', secret, '--sub', sub, '--space', `${READ_ONLY_SPACE}:${access}`]
    const minted = await runRelayCli(args)
    if (minted.code !== 0) throw new Error(`chorus-relay token failed: ${minted.stderr}`)
    return minted.stdout.trim()
  }
  project.provide('readToken', await token('reader', 'read'))
  project.provide('writeToken', await token('writer', 'write'))
  return async () => {
    await Promise.all([relay.stop('SIGTERM'), authRelay.stop('SIGTERM')])
    data.remove()
    authData.remove()
  }
}
