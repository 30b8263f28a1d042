import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach } from 'vitest'
import { LoopbackCluster } from '../../src/node/loopback-cluster.js'

/**
 * Loopback clusters of `nodes` for one test file (fsync off unless asked for), each with its SQLite files in a
 * directory of its own under one scratch directory: the running one is stopped after each
 * test, and the scratch directory removed after the file.
 */
export function scratchClusters(
  prefix: string,
  nodes: readonly string[],
): {
  start(
    name: string,
    design: 'single-leader' | 'quorum',
    settings: Record<string, unknown>,
    options?: { readonly fsync?: boolean },
  ): Promise<{ dir: string; running: LoopbackCluster }>
} {
  const scratch = mkdtempSync(join(tmpdir(), prefix))
  let cluster: LoopbackCluster | undefined
  afterEach(async () => {
    await cluster?.stop()
    cluster = undefined
  })
  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true })
  })
  return {
    async start(name, design, settings, options = {}) {
      const dir = join(scratch, name)
      mkdirSync(dir)
      cluster = await LoopbackCluster.start({
        design,
        nodes,
        settings,
        dataDir: dir,
        fsync: options.fsync ?? false,
      })
      return { dir, running: cluster }
    },
  }
}
