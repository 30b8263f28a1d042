import { SingleLeaderSim } from '../sim/single-leader-sim.js'
import type { ReplicationMode } from '../single-leader/config.js'
import { readableData } from '../single-leader/state.js'
import { type CompareClock, virtualClock } from './clock.js'
import type { CompareTarget, OperationOutcome, ReadRoute } from './target.js'
import { TargetNetwork } from './target-network.js'

/** Options for {@link SingleLeaderTarget}. */
export interface SingleLeaderTargetOptions {
  readonly seed: number
  readonly nodes: readonly string[]
  readonly clients: readonly string[]
  readonly replication: ReplicationMode
  readonly clientTimeoutMs: number
}

/**
 * The single-leader design in the comparison: a {@link SingleLeaderSim}. Clients write to the
 * leader (following `not-leader` hints) and read at the leader (linearizable reads). The fault
 * scripts act on whichever node leads when the fault starts.
 */
export class SingleLeaderTarget implements CompareTarget {
  readonly sim: SingleLeaderSim
  private readonly options: SingleLeaderTargetOptions
  private victim: string | null = null
  private firstLeader: string | null = null
  private readonly wire: TargetNetwork<string>
  private virtual: CompareClock | null = null

  constructor(options: SingleLeaderTargetOptions) {
    this.options = options
    this.sim = new SingleLeaderSim({
      seed: options.seed,
      nodes: options.nodes,
      config: { replication: options.replication },
      clientTimeoutMs: options.clientTimeoutMs,
    })
    this.wire = new TargetNetwork(this.sim.network, (frame) => frame)
  }

  get clock(): CompareClock {
    this.virtual ??= virtualClock(this.sim.scheduler)
    return this.virtual
  }

  async start(): Promise<void> {
    await this.sim.start()
    for (const client of this.options.clients) this.sim.client(client)
    await this.sim.awaitLeader()
    await this.sim.run(200)
    this.firstLeader = this.sim.leader() ?? null
  }

  async write(client: string, key: string, value: string): Promise<OperationOutcome> {
    const outcome = await this.sim.client(client).write(key, value)
    return outcome.ok ? { ok: true } : { ok: false, maybeApplied: outcome.maybeApplied }
  }

  async read(client: string, key: string, route: ReadRoute): Promise<OperationOutcome> {
    const outcome =
      route === 'primary'
        ? await this.sim.client(client).read(key)
        : await this.sim
            .client(client)
            .read(key, { node: this.follower(client), consistency: 'replica', minLsn: 0 })
    return outcome.ok ? { ok: true, value: outcome.value, siblings: 1 } : { ok: false, maybeApplied: false }
  }

  partition(): void {
    const leader = this.central()
    const nodes = this.options.nodes
    const buddy = nodes[(nodes.indexOf(leader) + 1) % nodes.length] as string
    const [first, ...others] = this.options.clients
    const minority = [leader, buddy, ...(first === undefined ? [] : [first])]
    const majority = [...nodes.filter((node) => node !== leader && node !== buddy), ...others]
    this.sim.partition([minority, majority])
  }

  heal(): void {
    this.sim.heal()
    this.wire.clearLinkFaults()
  }

  slowLink(extraMs: number): void {
    const leader = this.central()
    const far = this.follower(this.options.clients[0] ?? '')
    if (far === leader) return
    this.wire.slowLink(leader, far, extraMs)
  }

  /**
   * The follower `client` reads from on the `nearest` route: the k-th node after the leader
   * at the start for the k-th client (`c1` reads from the node after the leader).
   */
  private follower(client: string): string {
    const nodes = this.options.nodes
    const index = Math.max(0, this.options.clients.indexOf(client))
    const first = nodes.indexOf(this.firstLeader ?? (nodes[0] as string))
    return nodes[(first + 1 + (index % (nodes.length - 1))) % nodes.length] as string
  }

  stall(): void {
    const leader = this.central()
    this.victim = leader
    this.wire.cutOff(leader, this.options.nodes)
  }

  crash(): void {
    this.victim ??= this.central()
    this.sim.crash(this.victim)
    this.sim.heal()
  }

  async restart(): Promise<void> {
    if (this.victim !== null) await this.sim.restart(this.victim)
    this.victim = null
  }

  setLoss(rate: number): void {
    this.wire.setLoss(rate)
  }

  async converged(): Promise<boolean> {
    const leader = this.sim.leader()
    if (leader === undefined) return false
    const states = this.sim.states()
    if (states.length < this.options.nodes.length) return false
    const reference = this.sim.host(leader).state
    if (reference === null) return false
    const expected = fingerprint(reference)
    return states.every((state) => fingerprint(state) === expected)
  }

  async lostAcknowledged(): Promise<number> {
    const leader = this.sim.leader()
    const state = leader === undefined ? null : this.sim.host(leader).state
    // Without a leader nothing can be read back: every acknowledged write counts as lost.
    return state === null ? this.sim.acknowledged.length : this.sim.lostWrites(state).length
  }

  fallbacks(): number {
    return this.sim.report().semiSyncFallbacks
  }

  bytesOnWire(): number {
    return this.wire.bytesOnWire()
  }

  countBytesFromNow(): void {
    this.wire.countBytesFromNow()
  }

  private central(): string {
    return this.sim.leader() ?? (this.options.nodes[0] as string)
  }
}

function fingerprint(state: Parameters<typeof readableData>[0]): string {
  return JSON.stringify([...readableData(state)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
