/**
 * The multi-leader design as real processes: a Chorus relay process (the `chorus-relay` CLI,
 * SQLite in a temp dir) and one `@chorus/client` replica per client in this process, each
 * reaching the relay through a TCP proxy of its own.
 */
import { createReplica, type Replica } from '@chorus/client'
import {
  asRecordId,
  type Change,
  coversDot,
  type Dot,
  type JsonObject,
  MemoryReplicaStore,
  recordContext,
  type StoredRecord,
} from '@chorus/core'
import type { CompareTarget, OperationOutcome } from '@chorus/server'
import { TcpProxy, wallClock } from '@chorus/server/node'
import { createPrng } from '@chorus/testkit'
import { WebSocket } from 'ws'
import { type RelayProcess, startRelay, tempDir } from '../../integration/relay-process.js'

const SPACE = 'compare'
const COLLECTION = 'compare'

/** Reconnect fast (the default backoff reaches 30 s): the runs last seconds. */
const RECONNECT = { baseMs: 50, maxMs: 500 } as const

/** Options for {@link RelayReplicasTarget}. */
export interface RelayReplicasTargetOptions {
  readonly seed: number
  readonly clients: readonly string[]
}

/** A replica's memory store that remembers the dot of each local write, in order. */
class WatchedStore extends MemoryReplicaStore {
  readonly local: Change[] = []

  override async commitLocal(write: {
    record: StoredRecord
    change: Change
    clock: Parameters<MemoryReplicaStore['commitLocal']>[0]['clock']
  }): Promise<void> {
    await super.commitLocal(write)
    this.local.push(write.change)
  }

  override async commitLocalBatch(
    batch: Parameters<MemoryReplicaStore['commitLocalBatch']>[0],
  ): Promise<void> {
    await super.commitLocalBatch(batch)
    this.local.push(...batch.changes)
  }
}

interface Client {
  readonly name: string
  readonly replica: Replica
  readonly store: WatchedStore
  readonly proxy: TcpProxy
  /** When each write not yet known acknowledged by the relay was made, oldest first. */
  readonly unacknowledged: number[]
  /** Writes made (the relay acknowledges a replica's writes in order). */
  written: number
}

/**
 * Chorus itself in the real comparison. Every client is a replica — a full leader that
 * acknowledges a write once it is in its own store, and reads locally — with the `lww`
 * resolver, which keeps concurrent versions as siblings and reads the winner.
 *
 * Faults are done for real: a partition resets `c1`'s connection at its proxy and refuses new
 * ones until healed (the replica goes on locally and reconnects with its backoff); a stall
 * freezes the relay (SIGSTOP), a crash kills it (SIGKILL) and a restart starts a new relay
 * process on the same data dir and port; the slow link delays `c1`'s proxy both ways. TCP does
 * not lose frames, so loss is what TCP makes of it: each chunk crossing a proxy is, with the
 * given probability, held back with everything behind it for a retransmission timeout (200 ms).
 *
 * Bytes on the wire are every TCP byte through the proxies (WebSocket frames, HTTP upgrade
 * included). A write's server acknowledgement is when the replica's count of unacknowledged
 * changes (`pending`) shows the relay acknowledged it.
 */
export class RelayReplicasTarget implements CompareTarget {
  readonly clock = wallClock()
  private readonly options: RelayReplicasTargetOptions
  private readonly data = tempDir('chorus-compare-relay-')
  private relay: RelayProcess | null = null
  private port = 0
  private readonly clients = new Map<string, Client>()
  private readonly ackLatencies: number[] = []
  private finished = false
  private finalBytes: number | null = null
  private lost = 0

  constructor(options: RelayReplicasTargetOptions) {
    this.options = options
  }

  async start(): Promise<void> {
    this.relay = await startRelay({ dataDir: this.data.path })
    this.port = this.relay.port
    const prng = createPrng(this.options.seed).fork('proxies')
    for (const name of this.options.clients) {
      const proxy = await TcpProxy.start(this.port, () => prng.next())
      const store = new WatchedStore()
      const replica = await createReplica({
        space: SPACE,
        url: `ws://127.0.0.1:${proxy.port}/sync`,
        storage: store,
        WebSocket: WebSocket as never,
        resolvers: { [COLLECTION]: 'lww' },
        reconnect: RECONNECT,
        tabs: false,
        networkEvents: null,
      })
      const client: Client = { name, replica, store, proxy, unacknowledged: [], written: 0 }
      replica.on('status', () => this.sampleAcks(client))
      this.clients.set(name, client)
    }
    await Promise.all([...this.clients.values()].map((client) => client.replica.synced()))
  }

  async write(name: string, key: string, value: string): Promise<OperationOutcome> {
    const client = this.client(name)
    // A local write's context is everything its replica holds of the record: it supersedes
    // every sibling there, so one made over two or more settles a conflict.
    const before = await client.store.getRecord(COLLECTION, asRecordId(key))
    await client.replica.collection(COLLECTION).put(key, { v: value })
    client.written++
    client.unacknowledged.push(this.clock.now())
    this.sampleAcks(client)
    return { ok: true, superseded: before?.versions.length ?? 0 }
  }

  async read(name: string, key: string): Promise<OperationOutcome> {
    const client = this.client(name)
    const state = await client.store.getRecord(COLLECTION, asRecordId(key))
    if (state === undefined || state.versions.length === 0) return { ok: true, value: null, siblings: 0 }
    const resolved = (await client.replica.collection(COLLECTION).get(key)) as JsonObject | undefined
    const value = resolved?.v
    return {
      ok: true,
      value: typeof value === 'string' ? value : null,
      siblings: state.versions.length,
      versions: state.versions.map((version) => `${version.dot[0]}:${version.dot[1]}`),
    }
  }

  partition(): void {
    this.first().proxy.setFaults({ blocked: true })
  }

  heal(): void {
    for (const client of this.clients.values()) client.proxy.heal()
  }

  slowLink(extraMs: number): void {
    this.first().proxy.setFaults({ delayMs: extraMs })
  }

  setLoss(rate: number): void {
    for (const client of this.clients.values()) client.proxy.setFaults({ loss: rate })
  }

  stall(): void {
    this.relay?.child.kill('SIGSTOP')
  }

  async crash(): Promise<void> {
    const relay = this.relay
    if (relay === null) return
    this.relay = null
    await relay.stop('SIGKILL')
  }

  async restart(): Promise<void> {
    if (this.relay !== null) return
    this.relay = await startRelay({ dataDir: this.data.path, port: this.port })
  }

  /** Every replica has its writes acknowledged, is caught up, and holds the same versions. */
  async converged(): Promise<boolean> {
    const clients = [...this.clients.values()]
    if (clients.some((client) => client.replica.pending > 0 || client.replica.status !== 'synced'))
      return false
    const prints = await Promise.all(clients.map((client) => fingerprint(client.store)))
    return prints.every((print) => print === prints[0])
  }

  async lostAcknowledged(): Promise<number> {
    return this.lost
  }

  bytesOnWire(): number {
    if (this.finalBytes !== null) return this.finalBytes
    let bytes = 0
    for (const client of this.clients.values()) bytes += client.proxy.bytes
    return bytes
  }

  countBytesFromNow(): void {
    for (const client of this.clients.values()) client.proxy.resetBytes()
  }

  serverAckLatencies(): number[] {
    return [...this.ackLatencies]
  }

  /**
   * Counts the local writes some replica does not reflect (neither holds them nor holds a
   * version whose writer had seen them), then closes the replicas, the proxies and the relay.
   */
  async finish(): Promise<void> {
    if (this.finished) return
    this.finished = true
    this.finalBytes = this.bytesOnWire()
    const clients = [...this.clients.values()]
    try {
      this.lost = await countLost(clients)
      await Promise.all(clients.map((client) => client.replica.close()))
    } finally {
      await Promise.all(clients.map((client) => client.proxy.close()))
      const relay = this.relay
      this.relay = null
      if (relay !== null) {
        relay.child.kill('SIGCONT')
        await relay.stop('SIGTERM')
      }
      this.data.remove()
    }
  }

  private client(name: string): Client {
    const client = this.clients.get(name)
    if (client === undefined) throw new RangeError(`no client ${name}`)
    return client
  }

  private first(): Client {
    return this.client(this.options.clients[0] ?? '')
  }

  /** The relay acknowledged every write of `client` but its last `pending`. */
  private sampleAcks(client: Client): void {
    const acknowledged = client.written - client.replica.pending
    const now = this.clock.now()
    while (client.written - client.unacknowledged.length < acknowledged) {
      const at = client.unacknowledged.shift()
      if (at === undefined) break
      this.ackLatencies.push(now - at)
    }
  }
}

/** The dots each record of a store holds: equal for two stores that hold the same versions. */
async function fingerprint(store: MemoryReplicaStore): Promise<string> {
  const records = await store.allRecords()
  return JSON.stringify(
    records
      .map((record) => [
        record.collection,
        record.id,
        record.state.versions.map((version) => dotText(version.dot)).sort(),
      ])
      .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
  )
}

async function countLost(clients: readonly Client[]): Promise<number> {
  const contexts = await Promise.all(
    clients.map(async (client) => {
      const byRecord = new Map<string, ReturnType<typeof recordContext>>()
      for (const record of await client.store.allRecords()) {
        byRecord.set(`${record.collection}/${record.id}`, recordContext(record.state))
      }
      return byRecord
    }),
  )
  let lost = 0
  for (const client of clients) {
    for (const change of client.store.local) {
      const missing = contexts.some((byRecord) => {
        const context = byRecord.get(`${change.collection}/${change.id}`)
        return context === undefined || !coversDot(context, change.dot)
      })
      if (missing) lost++
    }
  }
  return lost
}

function dotText(dot: Dot): string {
  return `${dot[0]}:${dot[1]}`
}
