import { coversDot, type JsonObject, recordContext, recordKey, type VersionVector } from '@chorus/core'
import { createSimCluster, type Scheduler, type SimCluster, type SimEnvelope } from '@chorus/testkit'
import { type CompareClock, virtualClock } from './clock.js'
import type { CompareTarget, OperationOutcome } from './target.js'
import { TargetNetwork } from './target-network.js'

const COLLECTION = 'compare'
const HUB = 'hub'

/** Options for {@link MultiLeaderTarget}. */
export interface MultiLeaderTargetOptions {
  readonly seed: number
  readonly clients: readonly string[]
  /** How often a server acknowledgement is looked for (virtual ms): the resolution of `serverAckLatencies`. */
  readonly ackSampleMs: number
}

interface PendingAck {
  readonly replica: string
  readonly counter: number
  readonly at: number
}

/**
 * Chorus itself in the comparison: `@chorus/testkit`'s {@link SimCluster}, which runs the real
 * replica and hub engines of `@chorus/core` (the code `@chorus/client` and `@chorus/relay`
 * wrap) on the same simulated network. Every client is a replica — a full leader that writes
 * and reads locally — and the hub is the relay. Records use the `lww` resolver, which keeps
 * concurrent versions as siblings and reads the winner.
 */
export class MultiLeaderTarget implements CompareTarget {
  private cluster: SimCluster | null = null
  private network: TargetNetwork<SimEnvelope> | null = null
  private readonly options: MultiLeaderTargetOptions
  private pending: PendingAck[] = []
  private readonly ackLatencies: number[] = []
  private virtual: CompareClock | null = null

  constructor(options: MultiLeaderTargetOptions) {
    this.options = options
  }

  /** The simulation's virtual time (after {@link start}). */
  get clock(): CompareClock {
    this.virtual ??= virtualClock(this.scheduler)
    return this.virtual
  }

  private get scheduler(): Scheduler {
    return this.sim.net.scheduler
  }

  /** The simulated cluster (after {@link start}). */
  get sim(): SimCluster {
    if (this.cluster === null) throw new RangeError('the multi-leader target has not started')
    return this.cluster
  }

  /** The cluster's network, with the comparison's faults and byte count (after {@link start}). */
  private get wire(): TargetNetwork<SimEnvelope> {
    if (this.network === null) throw new RangeError('the multi-leader target has not started')
    return this.network
  }

  async start(): Promise<void> {
    this.cluster = await createSimCluster({
      seed: this.options.seed,
      replicas: this.options.clients.length,
      names: this.options.clients,
      resolvers: { [COLLECTION]: 'lww' },
      tickMs: 50,
      retransmitMs: 500,
    })
    this.network = new TargetNetwork(this.cluster.net, (envelope) => envelope.frame)
    for (let waited = 0; waited < 10_000 && !(await this.sim.settled()); waited += 50) await this.sim.run(50)
    this.sampleAcks()
  }

  async write(client: string, key: string, value: string): Promise<OperationOutcome> {
    const engine = this.sim.engine(client)
    if (engine === null) return { ok: false, maybeApplied: false }
    // A local write's context is everything its replica holds of the record: it supersedes
    // every sibling there, so one made over two or more settles a conflict.
    const written = await this.local(async () => {
      const before = await engine.record(COLLECTION, key)
      const change = await this.sim.write(client, COLLECTION, key, { type: 'put', value: { v: value } })
      return { change, superseded: before?.versions.length ?? 0 }
    })
    if (written.change === undefined) return { ok: false, maybeApplied: false }
    const { dot } = written.change
    this.pending.push({ replica: dot[0], counter: dot[1], at: this.scheduler.now() })
    return { ok: true, superseded: written.superseded }
  }

  async read(client: string, key: string): Promise<OperationOutcome> {
    const engine = this.sim.engine(client)
    if (engine === null) return { ok: false, maybeApplied: false }
    const state = await this.local(() => engine.record(COLLECTION, key))
    if (state === undefined || state.versions.length === 0) return { ok: true, value: null, siblings: 0 }
    const resolved = this.sim.resolvers(COLLECTION).resolve(state.versions).value as JsonObject | undefined
    const value = resolved?.v
    return {
      ok: true,
      value: typeof value === 'string' ? value : null,
      siblings: state.versions.length,
      versions: state.versions.map((version) => `${version.dot[0]}:${version.dot[1]}`),
    }
  }

  partition(): void {
    const [first, ...others] = this.options.clients
    this.sim.net.partition([first === undefined ? [] : [first], [HUB, ...others]])
  }

  heal(): void {
    this.sim.net.heal()
    this.wire.clearLinkFaults()
  }

  slowLink(extraMs: number): void {
    const far = this.options.clients[0]
    if (far === undefined) return
    this.wire.slowLink(HUB, far, extraMs)
  }

  stall(): void {
    this.wire.cutOff(HUB, this.options.clients)
  }

  crash(): void {
    this.sim.crashHub()
    this.sim.net.heal()
  }

  async restart(): Promise<void> {
    this.sim.restartHub()
  }

  setLoss(rate: number): void {
    this.wire.setLoss(rate)
  }

  async converged(): Promise<boolean> {
    if (!(await this.sim.settled())) return false
    return (await this.sim.check()).convergence.ok
  }

  /**
   * Local writes (a replica's acknowledgement to its application) that some replica does not
   * reflect: neither holds them nor holds a version whose writer had seen them.
   */
  async lostAcknowledged(): Promise<number> {
    const contexts = (await this.sim.snapshots()).map((snapshot) => {
      const byRecord = new Map<string, VersionVector>()
      for (const record of snapshot.records) {
        byRecord.set(recordKey(record.collection, record.id), recordContext(record.state))
      }
      return byRecord
    })
    return this.sim.writes.filter((write) =>
      contexts.some((byRecord) => {
        const context = byRecord.get(recordKey(write.collection, write.id))
        return context === undefined || !coversDot(context, write.dot)
      }),
    ).length
  }

  bytesOnWire(): number {
    return this.network?.bytesOnWire() ?? 0
  }

  countBytesFromNow(): void {
    this.wire.countBytesFromNow()
  }

  serverAckLatencies(): number[] {
    return [...this.ackLatencies]
  }

  /**
   * Runs a replica's local work as one scheduler task. The engines await their store many
   * times; run from outside a task, the simulation would advance virtual time meanwhile and
   * charge a local write for network time it never used.
   */
  private local<T>(work: () => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.scheduler.after(0, () => work().then(resolve, reject))
    })
  }

  private sampleAcks(): void {
    this.scheduler.after(this.options.ackSampleMs, () => {
      const now = this.scheduler.now()
      this.pending = this.pending.filter((write) => {
        if ((this.sim.acked.get(write.replica) ?? 0) < write.counter) return true
        this.ackLatencies.push(now - write.at)
        return false
      })
      this.sampleAcks()
    })
  }
}
