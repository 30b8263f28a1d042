import { digestOf } from '../quorum/versions.js'
import { QuorumSim } from '../sim/quorum-sim.js'
import { type CompareClock, virtualClock } from './clock.js'
import type { CompareTarget, OperationOutcome } from './target.js'
import { TargetNetwork } from './target-network.js'

/** Options for {@link QuorumTarget}. */
export interface QuorumTargetOptions {
  readonly seed: number
  readonly nodes: readonly string[]
  readonly clients: readonly string[]
  readonly replicas: number
  readonly writeQuorum: number
  readonly readQuorum: number
  readonly sloppy: boolean
  readonly clientTimeoutMs: number
  /** Merkle anti-entropy period (ms); the comparison turns it on so replicas can converge. */
  readonly antiEntropyMs: number
  /** How concurrent puts are kept: as siblings (the default), or last-write-wins, which drops all but one. */
  readonly conflicts?: 'siblings' | 'lww'
}

/**
 * The quorum design in the comparison: a {@link QuorumSim}. Each client sends its requests to
 * a node of its own (`c1` to the first, the others spread over the rest) and moves to the next
 * node only when its node does not answer at all, as a Dynamo client with a preferred
 * coordinator does. Puts carry the client's context, so only truly concurrent puts become
 * siblings.
 */
export class QuorumTarget implements CompareTarget {
  readonly sim: QuorumSim
  private readonly options: QuorumTargetOptions
  private readonly coordinator = new Map<string, number>()
  private victim: string | null = null
  /** Siblings in each client's last answer for a key (`client/key`). */
  private readonly shown = new Map<string, number>()
  private readonly wire: TargetNetwork<string>
  private virtual: CompareClock | null = null

  constructor(options: QuorumTargetOptions) {
    this.options = options
    this.sim = new QuorumSim({
      seed: options.seed,
      nodes: options.nodes,
      config: {
        replicas: options.replicas,
        writeQuorum: options.writeQuorum,
        readQuorum: options.readQuorum,
        sloppy: options.sloppy,
        antiEntropyMs: options.antiEntropyMs,
        ...(options.conflicts === undefined ? {} : { conflicts: options.conflicts }),
      },
      clientTimeoutMs: options.clientTimeoutMs,
    })
    this.wire = new TargetNetwork(this.sim.network, (frame) => frame)
    const spread = Math.max(
      1,
      Math.floor((options.nodes.length - 1) / Math.max(1, options.clients.length - 1)),
    )
    options.clients.forEach((client, i) => {
      this.coordinator.set(client, (i * spread) % options.nodes.length)
    })
  }

  get clock(): CompareClock {
    this.virtual ??= virtualClock(this.sim.scheduler)
    return this.virtual
  }

  async start(): Promise<void> {
    await this.sim.start()
    for (const client of this.options.clients) this.sim.client(client)
    // Nodes believe their peers down until they have heard from them.
    await this.sim.run(300)
  }

  async write(client: string, key: string, value: string): Promise<OperationOutcome> {
    // The put carries the context of the client's last answer for the key: it supersedes the
    // siblings that answer showed.
    const shown = this.shown.get(`${client}/${key}`) ?? 0
    const outcome = await this.sim.client(client).put(this.node(client), key, value)
    if (outcome.ok) {
      this.shown.set(`${client}/${key}`, outcome.values.length)
      return { ok: true, superseded: shown }
    }
    this.moveOn(client, outcome.reason)
    return { ok: false, maybeApplied: outcome.maybeApplied }
  }

  async read(client: string, key: string): Promise<OperationOutcome> {
    const outcome = await this.sim.client(client).get(this.node(client), key)
    if (outcome.ok) {
      this.shown.set(`${client}/${key}`, outcome.values.length)
      return {
        ok: true,
        value: outcome.value,
        siblings: outcome.values.length,
        versions: outcome.values.map((value) => JSON.stringify(value)),
      }
    }
    this.moveOn(client, outcome.reason)
    return { ok: false, maybeApplied: false }
  }

  partition(): void {
    const [first, ...others] = this.options.clients
    const cut = Math.max(1, Math.floor((this.options.nodes.length - 1) / 2))
    const minority = [...this.options.nodes.slice(0, cut), ...(first === undefined ? [] : [first])]
    const majority = [...this.options.nodes.slice(cut), ...others]
    this.sim.partition([minority, majority])
  }

  heal(): void {
    this.sim.heal()
    this.wire.clearLinkFaults()
  }

  slowLink(extraMs: number): void {
    const [central, far] = this.options.nodes
    if (central === undefined || far === undefined) return
    this.wire.slowLink(central, far, extraMs)
  }

  stall(): void {
    const victim = this.options.nodes[0] as string
    this.victim = victim
    this.wire.cutOff(victim, this.options.nodes)
  }

  crash(): void {
    this.victim ??= this.options.nodes[0] as string
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
    const states = this.sim.states()
    if (states.length < this.options.nodes.length) return false
    if (states.some((state) => state.hints.size > 0)) return false
    for (const key of this.sim.keys()) {
      const digests = new Set(this.sim.homes(key).map((node) => digestOf(this.sim.stored(node, key))))
      if (digests.size > 1) return false
    }
    return true
  }

  async lostAcknowledged(): Promise<number> {
    return this.sim.report().lostAcknowledgedPuts
  }

  bytesOnWire(): number {
    return this.wire.bytesOnWire()
  }

  countBytesFromNow(): void {
    this.wire.countBytesFromNow()
  }

  private node(client: string): string {
    return this.options.nodes[this.coordinator.get(client) ?? 0] as string
  }

  /** A node that does not answer is presumed down: the client moves on to the next one. */
  private moveOn(client: string, reason: string): void {
    if (reason !== 'timeout') return
    this.coordinator.set(client, ((this.coordinator.get(client) ?? 0) + 1) % this.options.nodes.length)
  }
}
