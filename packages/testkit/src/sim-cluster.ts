import {
  type Change,
  type ChorusError,
  createHubEngine,
  createResolverLookup,
  DEFAULT_LIMITS,
  type HubConnection,
  type HubEngine,
  type JsonObject,
  MemoryReplicaStore,
  mergeVv,
  openReplicaEngine,
  type ReplicaEngine,
  type ReplicaId,
  type ResolverConfig,
  type ResolverLookup,
  recordContext,
  type SpaceId,
  type VersionVector,
  type WriteIntent,
} from '@chorus/core'
import {
  type CausalEvent,
  type CheckResult,
  checkAcknowledgedWrites,
  checkCausality,
  checkConvergence,
  type ReplicaSnapshot,
} from './checkers.js'
import { MemoryHubStore } from './memory-hub-store.js'
import { createPrng, type Prng } from './prng.js'
import { type LinkFaults, SimNetwork } from './sim-network.js'

/** A frame on the simulated wire, tagged with the sender's connection (one per incarnation). */
export interface SimEnvelope {
  readonly conn: number
  readonly frame: string
}

/** Options for {@link createSimCluster}. */
export interface SimClusterOptions {
  readonly seed: number
  /** How many replicas (named r1, r2, … unless `names` is given). */
  readonly replicas: number
  /** Replica names (also their ids), instead of r1…rN. */
  readonly names?: readonly string[]
  readonly resolvers: ResolverConfig
  readonly space?: string
  readonly faults?: Partial<LinkFaults>
  /** Each replica's wall clock is off by a seeded amount in ±`maxSkewMs`. */
  readonly maxSkewMs?: number
  /** Fixed clock offsets by replica name; overrides `maxSkewMs` for those named. */
  readonly skewsMs?: { readonly [name: string]: number }
  /** How often each node's timer ticks its engine (virtual ms). */
  readonly tickMs?: number
  readonly retransmitMs?: number
  readonly maxDriftMs?: number
  /**
   * The longest frame the hub reads (default: the protocol's 4 MiB, as the replicas'). A
   * smaller one has the replicas size their uploads to what the hub names.
   */
  readonly hubMaxFrameBytes?: number
}

/** All checks over a settled cluster. */
export interface ClusterVerdict {
  readonly convergence: CheckResult
  readonly acknowledged: CheckResult
  readonly causality: CheckResult
  readonly ok: boolean
  /** Every problem, labelled, for a failure message. */
  readonly problems: readonly string[]
}

interface ReplicaSlot {
  readonly name: string
  store: MemoryReplicaStore
  engine: ReplicaEngine | null
  conn: number
  incarnation: number
  wipes: number
  readonly skewMs: number
}

const HUB = 'hub'

/**
 * A hub and N replicas of the real engines, on a {@link SimNetwork} in virtual time.
 *
 * The engines are the production ones from `@chorus/core`; only the network, the clock and
 * the disks are simulated. It records every write, every acknowledgement and every read it
 * performs, so the checkers can judge the run. Everything is seeded: one seed, one run.
 */
export class SimCluster {
  readonly net: SimNetwork<SimEnvelope>
  readonly prng: Prng
  readonly space: SpaceId
  readonly resolvers: ResolverLookup
  /** The hub's disk; `restoreHub` puts a backup in its place. */
  hubStore = new MemoryHubStore({ log: 'hub-log-0' })
  #backups = 0
  /** Every change written, in order. */
  readonly writes: Change[] = []
  /** Highest acknowledged counter per replica id. */
  readonly acked = new Map<string, number>()
  /** The deleted records `compactHub` collected, by record key, with the deletions' context. */
  readonly collected = new Map<string, VersionVector>()
  readonly history: CausalEvent[] = []
  /** Conflicts a test settled by writing (for reports). */
  conflictsSettled = 0
  /** Errors engines reported with no caller to reject. */
  readonly errors: ChorusError[] = []
  readonly #options: SimClusterOptions
  readonly #slots = new Map<string, ReplicaSlot>()
  #hub: HubEngine | null = null
  #hubConnections = new Map<string, HubConnection>()
  #nextConn = 1
  /** Every connection id handed out, and those a hub restore closed. */
  readonly #allConns = new Set<number>()
  #closedConns = new Set<number>()

  private constructor(options: SimClusterOptions) {
    this.#options = options
    this.prng = createPrng(options.seed)
    this.net = new SimNetwork<SimEnvelope>({ prng: this.prng.fork('network'), faults: options.faults ?? {} })
    this.space = (options.space ?? 'sim-space') as SpaceId
    this.resolvers = createResolverLookup(options.resolvers)
  }

  /** Builds and starts a cluster. */
  static async create(options: SimClusterOptions): Promise<SimCluster> {
    const cluster = new SimCluster(options)
    await cluster.#start()
    return cluster
  }

  async #start(): Promise<void> {
    this.net.addNode(HUB, { deliver: (from, envelope) => this.#hubDeliver(from, envelope) })
    this.#startHub()
    const skews = this.prng.fork('skew')
    const maxSkew = this.#options.maxSkewMs ?? 0
    for (let i = 1; i <= this.#options.replicas; i++) {
      const name = this.#options.names?.[i - 1] ?? `r${i}`
      const slot: ReplicaSlot = {
        name,
        store: new MemoryReplicaStore(),
        engine: null,
        conn: 0,
        incarnation: 0,
        wipes: 0,
        skewMs: this.#options.skewsMs?.[name] ?? (maxSkew === 0 ? 0 : skews.int(-maxSkew, maxSkew)),
      }
      this.#slots.set(name, slot)
      this.net.addNode(name, { deliver: (_from, envelope) => this.#replicaDeliver(slot, envelope) })
      await this.#startReplica(slot)
    }
  }

  /** Replica names, r1…rN. */
  names(): string[] {
    return [...this.#slots.keys()]
  }

  /** A replica's store (its disk), crashed or not. */
  store(name: string): MemoryReplicaStore {
    return this.#slot(name).store
  }

  /** The live engine of a replica, or `null` while it is crashed. */
  engine(name: string): ReplicaEngine | null {
    return this.#slot(name).engine
  }

  #slot(name: string): ReplicaSlot {
    const slot = this.#slots.get(name)
    if (slot === undefined) throw new RangeError(`no replica named ${name}`)
    return slot
  }

  #tickMs(): number {
    return this.#options.tickMs ?? 250
  }

  #startHub(): void {
    this.#hubConnections = new Map()
    this.#hub = createHubEngine({
      store: this.hubStore.reopen(),
      now: () => this.net.now(),
      session: { retransmitMs: this.#options.retransmitMs ?? 1500 },
      ...(this.#options.hubMaxFrameBytes === undefined
        ? {}
        : { limits: { ...DEFAULT_LIMITS, maxFrameBytes: this.#options.hubMaxFrameBytes } }),
      onError: (error) => this.errors.push(error),
    })
    const hub = this.#hub
    const tick = async (): Promise<void> => {
      if (this.#hub !== hub) return
      await hub.tick()
      this.net.setTimer(HUB, this.#tickMs(), tick)
    }
    this.net.setTimer(HUB, this.#tickMs(), tick)
  }

  async #hubDeliver(from: string, envelope: SimEnvelope): Promise<void> {
    const hub = this.#hub
    if (hub === null || this.#closedConns.has(envelope.conn)) return
    const key = `${from}/${envelope.conn}`
    let connection = this.#hubConnections.get(key)
    if (connection === undefined) {
      connection = hub.accept({
        send: (frame) => {
          if (this.#hub === hub) this.net.send(HUB, from, { conn: envelope.conn, frame })
        },
        close: () => {
          this.#hubConnections.delete(key)
        },
      })
      this.#hubConnections.set(key, connection)
    }
    await connection.receive(envelope.frame)
  }

  async #startReplica(slot: ReplicaSlot): Promise<void> {
    slot.incarnation += 1
    const incarnation = slot.incarnation
    const engine = await openReplicaEngine({
      store: slot.store.reopen(),
      space: this.space,
      now: () => this.net.now() + slot.skewMs,
      createReplicaId: () => (slot.wipes === 0 ? slot.name : `${slot.name}w${slot.wipes}`) as ReplicaId,
      resolvers: this.#options.resolvers,
      session: { retransmitMs: this.#options.retransmitMs ?? 1500 },
      ...(this.#options.maxDriftMs === undefined ? {} : { maxDriftMs: this.#options.maxDriftMs }),
      onAcked: (upTo) => {
        const id = engine.replicaId
        this.acked.set(id, Math.max(this.acked.get(id) ?? 0, upTo))
      },
      onError: (error) => this.errors.push(error),
    })
    slot.engine = engine
    this.#connect(slot, engine, incarnation)
    const tick = async (): Promise<void> => {
      if (slot.engine !== engine) return
      await engine.tick()
      this.net.setTimer(slot.name, this.#tickMs(), tick)
    }
    this.net.setTimer(slot.name, this.#tickMs(), tick)
    await engine.idle()
  }

  /** Gives a replica's engine a new connection to the hub. */
  #connect(slot: ReplicaSlot, engine: ReplicaEngine, incarnation: number): void {
    slot.conn = this.#nextConn++
    this.#allConns.add(slot.conn)
    const conn = slot.conn
    engine.attach((frame) => {
      if (slot.incarnation === incarnation && slot.engine === engine && slot.conn === conn)
        this.net.send(slot.name, HUB, { conn, frame })
    })
  }

  async #replicaDeliver(slot: ReplicaSlot, envelope: SimEnvelope): Promise<void> {
    if (slot.engine === null || envelope.conn !== slot.conn) return
    await slot.engine.receive(envelope.frame)
  }

  /** Writes at a replica; `undefined` when it is down. Records the write for the checkers. */
  async write(
    name: string,
    collection: string,
    id: string,
    intent: WriteIntent,
  ): Promise<Change | undefined> {
    const engine = this.#slot(name).engine
    if (engine === null) return undefined
    let change: Change
    if (intent.type === 'put') change = await engine.put(collection, id, intent.value)
    else if (intent.type === 'patch') change = await engine.patch(collection, id, intent.fields)
    else change = await engine.delete(collection, id)
    this.writes.push(change)
    this.history.push({ kind: 'write', session: engine.replicaId, collection, id, dot: change.dot })
    return change
  }

  /** Reads at a replica (recorded for the causality checker); `undefined` when down or absent. */
  async read(name: string, collection: string, id: string): Promise<JsonObject | undefined> {
    const engine = this.#slot(name).engine
    if (engine === null) return undefined
    const state = await engine.record(collection, id)
    this.history.push({
      kind: 'read',
      session: engine.replicaId,
      collection,
      id,
      context: recordContext(state),
    })
    return state === undefined ? undefined : this.resolvers(collection).resolve(state.versions).value
  }

  /** Crashes a replica: its engine (memory) is gone, its store (disk) stays. */
  crash(name: string): void {
    const slot = this.#slot(name)
    slot.engine = null
    if (this.net.isUp(name)) this.net.crash(name)
  }

  /** Restarts a crashed replica over its store. */
  async restart(name: string): Promise<void> {
    const slot = this.#slot(name)
    if (slot.engine !== null) return
    if (!this.net.isUp(name)) this.net.restart(name)
    await this.#startReplica(slot)
  }

  /** Crashes a replica and throws its store away; it comes back as a new replica id. */
  async wipe(name: string): Promise<void> {
    const slot = this.#slot(name)
    this.crash(name)
    slot.store = new MemoryReplicaStore()
    slot.wipes += 1
    await this.restart(name)
  }

  /**
   * Compacts the hub's log up to `upTo` and collects the deletions at or below it, as a
   * relay does once no replica it still knows lacks them (`MemoryHubStore.compact`): a
   * replica behind the new floor is one the hub forgot. Returns how many records went.
   */
  compactHub(upTo: number): number {
    const dropped = this.hubStore.compact(this.space, upTo)
    for (const [key, state] of dropped) {
      this.collected.set(key, mergeVv(this.collected.get(key) ?? {}, recordContext(state)))
      this.history.push({ kind: 'collect', key, context: recordContext(state) })
    }
    // As a relay does once its store's compaction returns: the hub tells the replicas.
    const mark = this.hubStore.collectedMark(this.space)
    if (dropped.size > 0 && mark !== undefined) void this.#hub?.collected(this.space, mark)
    return dropped.size
  }

  /** Crashes the hub: sessions are lost, its store stays. */
  crashHub(): void {
    this.#hub = null
    this.#hubConnections = new Map()
    if (this.net.isUp(HUB)) this.net.crash(HUB)
  }

  /** Restarts a crashed hub over its store. */
  restartHub(): void {
    if (this.#hub !== null) return
    if (!this.net.isUp(HUB)) this.net.restart(HUB)
    this.#startHub()
  }

  /** A backup of the hub's store as it is now, under a log name of its own. */
  backupHub(): MemoryHubStore {
    this.#backups += 1
    return this.hubStore.copy(`hub-log-${this.#backups}`)
  }

  /**
   * Restores the hub from `backup`: the hub goes down, the backup takes its store's place
   * (everything stored after the backup is gone from the hub), and the hub starts again.
   * As a relay's restart closes every socket, each live replica connects anew, and frames
   * still in flight on the old connections are gone with them (`crashHub` alone models a
   * transport that outlives the hub, with their frames arriving later).
   */
  restoreHub(backup: MemoryHubStore): void {
    this.crashHub()
    this.hubStore = backup
    this.#closedConns = new Set(this.#allConns)
    this.restartHub()
    for (const slot of this.#slots.values()) {
      const engine = slot.engine
      if (engine === null) continue
      engine.detach()
      this.#connect(slot, engine, slot.incarnation)
    }
  }

  isUp(name: string): boolean {
    return name === HUB ? this.#hub !== null : this.#slot(name).engine !== null
  }

  /** Advances virtual time. */
  async run(ms: number): Promise<void> {
    await this.net.scheduler.runFor(ms)
  }

  /** True when every replica is up, connected, fully acknowledged and at the hub's head. */
  async settled(): Promise<boolean> {
    if (this.#hub === null) return false
    const { head } = await this.hubStore.loadSpace(this.space)
    for (const slot of this.#slots.values()) {
      const engine = slot.engine
      if (engine === null) return false
      const session = engine.session()
      if (session.phase !== 'ready' || session.acked < session.local) return false
      if (session.cursor !== head || session.applyingTo !== head) return false
    }
    return true
  }

  /**
   * Ends every fault and runs until the cluster settles: heals partitions, restarts what is
   * down, turns loss, duplication and reordering off. Returns false if it does not settle
   * within `maxMs` of virtual time.
   */
  async settle(maxMs = 600_000): Promise<boolean> {
    this.net.heal()
    this.net.setFaults({ loss: 0, duplicate: 0, reorder: 0 })
    this.restartHub()
    for (const name of this.names()) await this.restart(name)
    const step = 500
    for (let elapsed = 0; elapsed <= maxMs; elapsed += step) {
      if (await this.settled()) return true
      await this.run(step)
    }
    return this.settled()
  }

  /** Every replica's records, for the checkers. */
  async snapshots(): Promise<ReplicaSnapshot[]> {
    const out: ReplicaSnapshot[] = []
    for (const slot of this.#slots.values()) {
      const engine = slot.engine
      out.push({ name: engine?.replicaId ?? slot.name, records: await slot.store.reopen().allRecords() })
    }
    return out
  }

  /** Runs every checker over the current state. */
  async check(): Promise<ClusterVerdict> {
    const snapshots = await this.snapshots()
    const convergence = checkConvergence(snapshots, this.resolvers, this.collected)
    const acknowledged = checkAcknowledgedWrites(snapshots, this.writes, this.acked, this.collected)
    const causality = checkCausality(this.history)
    const problems = [
      ...convergence.problems.map((p) => `divergence: ${p}`),
      ...acknowledged.problems.map((p) => `lost: ${p}`),
      ...causality.problems.map((p) => `causality: ${p}`),
    ]
    return { convergence, acknowledged, causality, ok: problems.length === 0, problems }
  }
}

/** Builds and starts a {@link SimCluster}. */
export function createSimCluster(options: SimClusterOptions): Promise<SimCluster> {
  return SimCluster.create(options)
}
