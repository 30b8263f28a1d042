/**
 * A relay in its own process, as operators run one, driven by the sync benchmark over IPC.
 *
 * `argv[2]` is a JSON {@link HostConfig}: the Chorus relay (`startRelay`: SQLite in a temp
 * dir, `ws` on 127.0.0.1 port 0) or the raw forwarding floor. `CHORUS_BENCH_STORE=worker` or
 * `in-thread` picks where the relay's store runs (default: `startRelay`'s), to compare them;
 * `postgres` in the config puts its data in PostgreSQL instead. The host answers `seed`
 * (append records straight into the relay's store), `memory` (heap after `gc()`), `metrics`,
 * `head` (a space's log head) and `close`; `links` links it to other hosts' relays.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeHeapSnapshot } from 'node:v8'
import { asSpaceId, type Change } from '@chorus/core'
import { type CommitTimes, type RelayStoreThread, type RunningRelay, startRelay } from '@chorus/relay'
import { type RawRelay, startRawRelay } from './floors.js'
import { putChange, writerId } from './workload.js'

/** Which relay to run. */
export interface HostConfig {
  readonly kind: 'chorus' | 'raw'
  /** The Chorus relay's per-connection stream window (positions in flight); default the hub's. */
  readonly window?: number
  /** A PostgreSQL connection string: the Chorus relay keeps its data there instead of in SQLite. */
  readonly postgres?: string
  /** Other Chorus relays this one links to (`--link`), and the spaces each keeps in step. */
  readonly links?: readonly { readonly url: string; readonly spaces: readonly string[] }[]
}

/** A request from the benchmark. */
export type HostRequest =
  | { readonly type: 'seed'; readonly space: string; readonly records: number }
  | { readonly type: 'memory' }
  | { readonly type: 'metrics' }
  | { readonly type: 'head'; readonly space: string }
  | { readonly type: 'close' }

/** The host's answers, in request order. */
export type HostReply =
  | { readonly type: 'ready'; readonly url: string }
  | { readonly type: 'seeded'; readonly head: number }
  | { readonly type: 'memory'; readonly heapUsed: number; readonly external: number; readonly rss: number }
  | {
      readonly type: 'metrics'
      readonly bytesOut: number
      readonly bytesIn: number
      readonly framesOut: number
      readonly rateLimited: number
      /** CPU time the relay process has used so far (`process.cpuUsage`), in ms. */
      readonly cpuMs: number
      /** How long the store's commits took so far (null for the raw relay, which stores nothing). */
      readonly commits: CommitTimes | null
    }
  | { readonly type: 'head'; readonly head: number }
  | { readonly type: 'closed' }

const config = JSON.parse(process.argv[2] ?? '{}') as HostConfig
const storeThread = process.env.CHORUS_BENCH_STORE as RelayStoreThread | undefined
const collect = globalThis.gc
let snapshots = 0

function reply(message: HostReply): void {
  process.send?.(message)
}

async function main(): Promise<void> {
  let chorus: RunningRelay | null = null
  let raw: RawRelay | null = null
  const dataDir = mkdtempSync(join(tmpdir(), 'chorus-bench-'))
  if (config.kind === 'chorus') {
    chorus = await startRelay({
      ...(config.postgres === undefined ? { dataDir } : { postgres: config.postgres }),
      port: 0,
      host: '127.0.0.1',
      compaction: { intervalMs: 0 },
      heartbeatMs: 0,
      ...(storeThread === undefined ? {} : { store: storeThread }),
      ...(config.window === undefined ? {} : { session: { window: config.window } }),
      ...(config.links === undefined ? {} : { links: config.links }),
      onError: (error) => console.error('relay host:', error.code, error.message),
    })
  } else {
    raw = await startRawRelay()
  }
  process.on('message', (request: HostRequest) => {
    void handle(request).catch((error: unknown) => {
      console.error('relay host:', error)
      process.exit(1)
    })
  })
  async function handle(request: HostRequest): Promise<void> {
    switch (request.type) {
      case 'seed': {
        if (chorus === null) throw new Error('only the Chorus relay has a store to seed')
        const space = asSpaceId(request.space)
        const writer = writerId(0)
        let head = 0
        for (let start = 0; start < request.records; start += 1000) {
          const batch: Change[] = []
          for (let n = start; n < Math.min(request.records, start + 1000); n++)
            batch.push(putChange(writer, n + 1, n))
          head = (await chorus.store.append(space, writer, batch)).head
        }
        reply({ type: 'seeded', head })
        return
      }
      case 'memory': {
        for (let i = 0; i < 4; i++) collect?.()
        // CHORUS_BENCH_HEAP=prefix writes a heap snapshot per request (prefix-KIND-N), for finding
        // what a connection holds.
        snapshots += 1
        if (process.env.CHORUS_BENCH_HEAP !== undefined)
          writeHeapSnapshot(`${process.env.CHORUS_BENCH_HEAP}-${config.kind}-${snapshots}.heapsnapshot`)
        const usage = process.memoryUsage()
        reply({ type: 'memory', heapUsed: usage.heapUsed, external: usage.external, rss: usage.rss })
        return
      }
      case 'metrics': {
        const metrics = chorus === null ? null : await chorus.relay.metrics()
        reply({
          type: 'metrics',
          bytesOut: metrics?.bytesOut ?? 0,
          bytesIn: metrics?.bytesIn ?? 0,
          framesOut: metrics?.framesOut ?? 0,
          rateLimited: metrics?.rateLimited ?? 0,
          cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
          commits: metrics?.commits ?? null,
        })
        return
      }
      case 'head': {
        // The space's metadata alone: listing the spaces would count their log rows each time.
        const head = chorus === null ? 0 : (await chorus.store.loadSpace(asSpaceId(request.space))).head
        reply({ type: 'head', head })
        return
      }
      case 'close':
        await chorus?.close()
        await raw?.close()
        rmSync(dataDir, { recursive: true, force: true })
        reply({ type: 'closed' })
        process.disconnect?.()
        return
    }
  }
  reply({ type: 'ready', url: chorus?.url ?? (raw as RawRelay).url })
}

void main()
