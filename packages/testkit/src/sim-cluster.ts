import {
  type AppendResult,
  type Change,
  type ChorusError,
  createHubEngine,
  createResolverLookup,
  DEFAULT_LIMITS,
  type HubConnection,
  type HubEngine,
  type HubStore,
  type JsonObject,
  MemoryReplicaStore,
  mergeVv,
  openReplicaEngine,
  RELAY_ID_PREFIX,
  type ReplicaEngine,
  type ReplicaId,
  type ReplicaStore,
  type ResolverConfig,
  type ResolverLookup,
  recordContext,
  SerialQueue,
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
  /**
   * How many replicas (the first ones) are two instances over one store, as two browser tabs
   * share one IndexedDB database: the connected one, and a second that only writes (see
   * {@link SimCluster.writeAtTwin}). They share a lock (`ReplicaEngineOptions.exclusive`); the
   * connected one catches up with the other's writes when told and on every tick.
   */
  readonly twins?: number
  /**
   * How many hubs (default 1), named `hub`, `hub2`, …: relays sharing one store, as relays
   * share one PostgreSQL database. Each append a hub commits is told to the others after a
   * seeded delay, as the database's notices are (`HubEngine.advanced`), with its entries half
   * the time; a replica connects to a seeded one of them each time it starts.
   */
  readonly hubs?: number
  /**
   * With several hubs: each over a store of its own, linked in a chain (`hub2` dials `hub`,
   * `hub3` dials `hub2`, …) over the simulated network and its faults, as relays linked with
   * `--link` (`HubEngine.dial`), instead of sharing one store. A link whose session is lost (a
   * hub crashed or restarted, or its hello was lost) is dialed again. `hubStore` is the first
   * hub's store; `compactHub` collects no deletions there, as a relay does not on a linked
   * space (a hub behind its floor is sent a snapshot, as a replica is).
   */
  readonly linked?: boolean
  /**
   * Connections as a WebSocket's, which `@chorus/client` and the relay run on: each delivers its
   * frames whole, once and in order, or breaks. The links carry no jitter, reordering or
   * duplicates (whatever `faults` says); a frame that does not arrive — lost, or blocked by a
   * partition, a cut or a crash — breaks its connection, and every later frame of it is dropped.
   * Each end hears of the break after a seeded delay (as a heartbeat finds it) and a crashed
   * process's connections break at once. A replica whose connection broke connects anew after
   * a seeded backoff; a hub whose link broke dials again at its next tick. The sessions speak
   * `resend` (hubs `reliable`, replicas `reliableTransport`): nothing goes again for silence
   * alone, and a replica resumes a snapshot cut off part way (`resume`).
   */
  readonly reliable?: boolean
  /** Records per snapshot page the hubs send (default the protocol's 200). */
  readonly snapshotPage?: number
  /**
   * With `reliable`: each hub connection reports its backlog, the bytes of its frames still on
   * their way (`HubPeer.backlog`), and the hubs stop reading more to send for one at this many
   * (`HubSessionConfig.sendBuffer`), until the runtime says it is `writable` again, as the
   * relay does when a socket has written out its buffer. Default: no backlog reported.
   */
  readonly sendBuffer?: number
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
  /** The second instance over the same store, for a replica with a twin; null otherwise or while crashed. */
  twin: ReplicaEngine | null
  readonly twinned: boolean
  /** The instances' shared write lock. */
  readonly lock: SerialQueue
  /** The twin's writes still under way. */
  readonly twinWrites: Set<Promise<void>>
  /** The twin's writes waiting to start with the next delivery (see `writeAtTwin`). */
  readonly twinStarts: Set<() => void>
  conn: number
  /** The hub its connection goes to. */
  hub: string
  incarnation: number
  wipes: number
  readonly skewMs: number
}

const HUB = 'hub'

/** The name of hub `index` (0-based): `hub`, `hub2`, `hub3`, … */
function hubName(index: number): string {
  return index === 0 ? HUB : `hub${index + 1}`
}

/** One hub: its engine while up, and its connections by replica and connection id. */
interface HubSlot {
  readonly name: string
  readonly index: number
  engine: HubEngine | null
  connections: Map<string, HubConnection>
  /** Linked: its own store (the first hub's is `hubStore`). */
  readonly store: MemoryHubStore | null
  /** Linked: the link this hub dialed to the one before it, while it has one. */
  dial: { readonly conn: number; readonly connection: HubConnection; readonly at: number } | null
  /** Linked: every connection id this hub dialed with (frames of old ones are dropped). */
  readonly dialed: Set<number>
}

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
  /**
   * Told whenever a replica's engine reports a change of status, backlog, or an answered
   * ask of where the hub's log ends (`ReplicaEngine.ping`): checks that must look at the
   * moment a replica says it is synced.
   */
  onReplicaStatus: ((name: string, engine: ReplicaEngine) => void) | null = null
  /** Conflicts a test settled by writing (for reports). */
  conflictsSettled = 0
  /** Writes a replica's second instance stored (see `writeAtTwin`). */
  twinWritesStored = 0
  /** Errors engines reported with no caller to reject. */
  readonly errors: ChorusError[] = []
  readonly #options: SimClusterOptions
  readonly #slots = new Map<string, ReplicaSlot>()
  readonly #hubs: HubSlot[]
  /** Which hub a replica connects to, and the delays of the news between hubs (see `hubs`). */
  readonly #hubPlan: Prng
  #nextConn = 1
  /** Every connection id handed out, and those a hub restore closed. */
  readonly #allConns = new Set<number>()
  #closedConns = new Set<number>()
  /** When each end hears of a broken connection, and when a replica connects again (see `reliable`). */
  readonly #breaks: Prng
  /**
   * With `sendBuffer`: by hub and connection id (`hub/conn`), the bytes the hub sent on it that
   * have not arrived or gone missing yet, and its side of the connection, to tell it `writable`.
   */
  readonly #backlogs = new Map<string, number>()
  readonly #backlogged = new Map<string, HubConnection>()

  private constructor(options: SimClusterOptions) {
    this.#options = options
    this.prng = createPrng(options.seed)
    const faults = options.faults ?? {}
    this.net = new SimNetwork<SimEnvelope>({
      prng: this.prng.fork('network'),
      faults: options.reliable === true ? { ...faults, jitterMs: 0, reorder: 0, duplicate: 0 } : faults,
      sizeOf: (envelope) => envelope.frame.length,
    })
    if (options.reliable === true)
      this.net.onUndelivered = (from, _to, envelope) => {
        this.#carried(from, envelope)
        this.#broken(envelope.conn)
      }
    this.#breaks = this.prng.fork('breaks')
    this.space = (options.space ?? 'sim-space') as SpaceId
    this.resolvers = createResolverLookup(options.resolvers)
    this.#hubs = Array.from({ length: Math.max(1, options.hubs ?? 1) }, (_, i) => ({
      name: hubName(i),
      index: i,
      engine: null,
      connections: new Map(),
      store: options.linked === true && i > 0 ? new MemoryHubStore({ log: `${hubName(i)}-log` }) : null,
      dial: null,
      dialed: new Set<number>(),
    }))
    this.#hubPlan = this.prng.fork('hubs')
  }

  /** Builds and starts a cluster. */
  static async create(options: SimClusterOptions): Promise<SimCluster> {
    const cluster = new SimCluster(options)
    await cluster.#start()
    return cluster
  }

  async #start(): Promise<void> {
    for (const hub of this.#hubs) {
      this.net.addNode(hub.name, { deliver: (from, envelope) => this.#hubDeliver(hub, from, envelope) })
      this.#startHub(hub)
    }
    const skews = this.prng.fork('skew')
    const maxSkew = this.#options.maxSkewMs ?? 0
    for (let i = 1; i <= this.#options.replicas; i++) {
      const name = this.#options.names?.[i - 1] ?? `r${i}`
      const slot: ReplicaSlot = {
        name,
        store: new MemoryReplicaStore(),
        engine: null,
        twin: null,
        twinned: i <= (this.#options.twins ?? 0),
        lock: new SerialQueue(),
        twinWrites: new Set(),
        twinStarts: new Set(),
        conn: 0,
        hub: HUB,
        incarnation: 0,
        wipes: 0,
        skewMs: this.#options.skewsMs?.[name] ?? (maxSkew === 0 ? 0 : skews.int(-maxSkew, maxSkew)),
      }
      this.#slots.set(name, slot)
      this.net.addNode(name, { deliver: (from, envelope) => this.#replicaDeliver(slot, from, envelope) })
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

  /** The names of the hubs: `hub`, then `hub2`, … (see `SimClusterOptions.hubs`). */
  hubNames(): string[] {
    return this.#hubs.map((hub) => hub.name)
  }

  /** Whether the hubs are linked, each over its own store (see `SimClusterOptions.linked`). */
  #linked(): boolean {
    return this.#options.linked === true && this.#hubs.length > 1
  }

  /** A hub's own store, when linked (the first hub's is `hubStore`). */
  #storeOf(slot: HubSlot): MemoryHubStore {
    return slot.store ?? this.hubStore
  }

  #startHub(slot: HubSlot): void {
    slot.connections = new Map()
    slot.dial = null
    const linked = this.#linked()
    const engine = createHubEngine({
      store: this.#hubs.length === 1 || linked ? this.#storeOf(slot).reopen() : this.#telling(slot),
      now: () => this.net.now(),
      session: {
        retransmitMs: this.#options.retransmitMs ?? 1500,
        ...(this.#options.reliable === true ? { reliable: true } : {}),
        ...(this.#options.snapshotPage === undefined ? {} : { snapshotPage: this.#options.snapshotPage }),
        ...(this.#backlogReported() ? { sendBuffer: this.#options.sendBuffer } : {}),
      },
      ...(this.#options.hubMaxFrameBytes === undefined
        ? {}
        : { limits: { ...DEFAULT_LIMITS, maxFrameBytes: this.#options.hubMaxFrameBytes } }),
      onError: (error) => this.errors.push(error),
    })
    slot.engine = engine
    const tick = async (): Promise<void> => {
      if (slot.engine !== engine) return
      // A link lost, or not up a while after dialing (its hello lost): dial again.
      if (linked && slot.index > 0) {
        const dial = slot.dial
        if (dial === null || (dial.connection.session().phase !== 'ready' && this.net.now() - dial.at > 5000))
          this.#dialLink(slot, engine)
      }
      await engine.tick()
      this.net.setTimer(slot.name, this.#tickMs(), tick)
    }
    this.net.setTimer(slot.name, this.#tickMs(), tick)
    if (linked && slot.index > 0) this.#dialLink(slot, engine)
  }

  /** Linked: hub `slot` dials the hub before it over a new connection (see `HubEngine.dial`). */
  #dialLink(slot: HubSlot, engine: HubEngine): void {
    const target = this.#hubs[slot.index - 1] as HubSlot
    const previous = slot.dial
    if (previous !== null) void previous.connection.closed()
    const conn = this.#nextConn++
    this.#allConns.add(conn)
    slot.dialed.add(conn)
    const connection = engine.dial(
      {
        send: (frame) => {
          if (slot.engine === engine && slot.dial?.conn === conn)
            this.#sendFrom(slot.name, target.name, conn, frame)
        },
        ...this.#backlogOf(slot.name, conn),
        close: () => {
          if (slot.dial?.conn === conn) slot.dial = null
        },
      },
      {
        spaces: [this.space],
        // The other hub lost the session (it restarted): dial again at the next tick.
        onError: (error) => {
          if (error.code === 'hello-required' && slot.dial?.conn === conn) slot.dial = null
        },
      },
    )
    slot.dial = { conn, connection, at: this.net.now() }
    if (this.#backlogReported()) this.#backlogged.set(`${slot.name}/${conn}`, connection)
  }

  /**
   * The shared store as hub `slot` uses it: each append it commits is told to every other hub
   * after a seeded delay, as a database's notices are; news for a hub that is down is lost with
   * its timers (it reads the space afresh when it starts), and so is news from a store a
   * restore has put a backup in place of (an append that was under way on it when it was
   * replaced): the database that would have sent it is gone.
   */
  #telling(slot: HubSlot): HubStore {
    const store = this.hubStore.reopen()
    const tell = async (space: SpaceId, results: readonly AppendResult[]): Promise<void> => {
      const appended = results.reduce((sum, result) => sum + result.appended, 0)
      const last = results[results.length - 1]
      if (appended === 0 || last === undefined || store !== this.hubStore) return
      const { head, received } = await store.loadSpace(space)
      const entries = this.#hubPlan.bool(1 / 2)
        ? await store.readLog(space, head - appended, appended)
        : undefined
      for (const other of this.#hubs) {
        if (other === slot) continue
        const engine = other.engine
        this.net.setTimer(other.name, this.#hubPlan.int(0, 50), () => {
          if (other.engine === engine && store === this.hubStore)
            void engine?.advanced(space, head, received, entries)
        })
      }
    }
    return {
      loadSpace: (space) => store.loadSpace(space),
      append: async (space, replica, changes, text, through) => {
        const result = await store.append(space, replica, changes, text, through)
        await tell(space, [result])
        return result
      },
      readLog: (space, after, limit) => store.readLog(space, after, limit),
      readSnapshot: (space, afterKey, limit) => store.readSnapshot(space, afterKey, limit),
      // As a shared database does: a hub answers a ping with what is stored, not what it heard.
      readHead: async (space) => (await store.loadSpace(space)).head,
      close: () => store.close(),
    }
  }

  async #hubDeliver(slot: HubSlot, from: string, envelope: SimEnvelope): Promise<void> {
    this.#carried(from, envelope)
    const hub = slot.engine
    if (hub === null || this.#closedConns.has(envelope.conn)) return
    if (slot.dialed.has(envelope.conn)) {
      // The answer on a link this hub dialed; one of an older dial is gone with it.
      if (slot.dial?.conn === envelope.conn) await slot.dial.connection.receive(envelope.frame)
      return
    }
    const key = `${from}/${envelope.conn}`
    let connection = slot.connections.get(key)
    if (connection === undefined) {
      connection = hub.accept({
        send: (frame) => {
          if (slot.engine === hub) this.#sendFrom(slot.name, from, envelope.conn, frame)
        },
        close: () => {
          slot.connections.delete(key)
        },
        ...this.#backlogOf(slot.name, envelope.conn),
      })
      slot.connections.set(key, connection)
      if (this.#backlogReported()) this.#backlogged.set(`${slot.name}/${envelope.conn}`, connection)
    }
    await connection.receive(envelope.frame)
  }

  async #startReplica(slot: ReplicaSlot): Promise<void> {
    slot.incarnation += 1
    const incarnation = slot.incarnation
    const store = slot.store.reopen()
    // The two instances' calls into their shared store take seeded, uneven numbers of turns,
    // so that one's read-then-write can straddle the other's (see `jittered`).
    const jitter = this.prng.fork(`store-jitter:${slot.name}:${slot.incarnation}`)
    const options = {
      store: slot.twinned ? jittered(store, jitter.fork('connected')) : store,
      space: this.space,
      now: () => this.net.now() + slot.skewMs,
      createReplicaId: () => (slot.wipes === 0 ? slot.name : `${slot.name}w${slot.wipes}`) as ReplicaId,
      resolvers: this.#options.resolvers,
      session: { retransmitMs: this.#options.retransmitMs ?? 1500 },
      ...(this.#options.reliable === true ? { reliableTransport: true } : {}),
      ...(this.#options.maxDriftMs === undefined ? {} : { maxDriftMs: this.#options.maxDriftMs }),
      ...(slot.twinned ? { exclusive: <T>(work: () => Promise<T>) => slot.lock.run(work) } : {}),
      onError: (error: ChorusError) => this.errors.push(error),
    }
    const engine = await openReplicaEngine({
      ...options,
      onAcked: (upTo) => {
        const id = engine.replicaId
        this.acked.set(id, Math.max(this.acked.get(id) ?? 0, upTo))
      },
      onStatus: () => this.onReplicaStatus?.(slot.name, engine),
    })
    slot.engine = engine
    slot.twin = slot.twinned
      ? await openReplicaEngine({ ...options, store: jittered(store, jitter.fork('twin')) })
      : null
    this.#connect(slot, engine, incarnation)
    const tick = async (): Promise<void> => {
      if (slot.engine !== engine) return
      // As a connected tab does: writes of the other instance it was not told of go up too.
      if (slot.twinned) await engine.refresh()
      await engine.tick()
      this.net.setTimer(slot.name, this.#tickMs(), tick)
    }
    this.net.setTimer(slot.name, this.#tickMs(), tick)
    await engine.idle()
  }

  /** Gives a replica's engine a new connection to a hub (a seeded one, when there are several). */
  #connect(slot: ReplicaSlot, engine: ReplicaEngine, incarnation: number): void {
    slot.conn = this.#nextConn++
    this.#allConns.add(slot.conn)
    const conn = slot.conn
    const hub = this.#hubs.length === 1 ? HUB : hubName(this.#hubPlan.int(0, this.#hubs.length - 1))
    slot.hub = hub
    engine.attach((frame) => {
      if (slot.incarnation === incarnation && slot.engine === engine && slot.conn === conn)
        this.net.send(slot.name, hub, { conn, frame })
    })
  }

  #backlogReported(): boolean {
    return this.#options.reliable === true && this.#options.sendBuffer !== undefined
  }

  /** Hub `from`'s frame on connection `conn`, counted in its backlog when backlogs are reported. */
  #sendFrom(from: string, to: string, conn: number, frame: string): void {
    if (this.#backlogReported()) {
      const key = `${from}/${conn}`
      this.#backlogs.set(key, (this.#backlogs.get(key) ?? 0) + frame.length)
    }
    this.net.send(from, to, { conn, frame })
  }

  /** The `backlog` of hub `hub`'s peer on connection `conn`, when backlogs are reported. */
  #backlogOf(hub: string, conn: number): { backlog?: () => number } {
    const key = `${hub}/${conn}`
    return this.#backlogReported() ? { backlog: () => this.#backlogs.get(key) ?? 0 } : {}
  }

  /**
   * A frame from `from` arrived or went missing: a hub's frame leaves its connection's backlog,
   * and a hub's side whose backlog so falls below `sendBuffer` is told it is writable again.
   */
  #carried(from: string, envelope: SimEnvelope): void {
    const key = `${from}/${envelope.conn}`
    const before = this.#backlogs.get(key)
    if (before === undefined) return
    const after = Math.max(0, before - envelope.frame.length)
    this.#backlogs.set(key, after)
    const limit = this.#options.sendBuffer ?? Number.POSITIVE_INFINITY
    if (before >= limit && after < limit) void this.#backlogged.get(key)?.writable()
  }

  /**
   * Connection `conn` broke (see `reliable`): nothing more of it is delivered, and each end
   * hears of it after a seeded delay — a replica detaches its engine and connects anew after
   * a backoff, a hub closes its session, a hub whose link it was dials again at its next tick.
   */
  #broken(conn: number): void {
    if (this.#closedConns.has(conn) || !this.#allConns.has(conn)) return
    this.#closedConns.add(conn)
    for (const slot of this.#slots.values()) {
      const engine = slot.engine
      if (engine === null || slot.conn !== conn) continue
      this.net.setTimer(slot.name, this.#breaks.int(0, 300), () => {
        if (slot.engine !== engine || slot.conn !== conn) return
        engine.detach()
        this.net.setTimer(slot.name, this.#breaks.int(100, 1000), () => {
          if (slot.engine === engine && slot.conn === conn) this.#connect(slot, engine, slot.incarnation)
        })
      })
    }
    for (const hub of this.#hubs) {
      const engine = hub.engine
      if (engine === null) continue
      for (const [key, connection] of hub.connections) {
        if (!key.endsWith(`/${conn}`)) continue
        this.net.setTimer(hub.name, this.#breaks.int(0, 300), () => {
          if (hub.engine !== engine || hub.connections.get(key) !== connection) return
          hub.connections.delete(key)
          void connection.closed()
        })
      }
      const dial = hub.dial
      if (dial?.conn !== conn) continue
      this.net.setTimer(hub.name, this.#breaks.int(0, 300), () => {
        if (hub.engine !== engine || hub.dial !== dial) return
        hub.dial = null
        void dial.connection.closed()
      })
    }
  }

  async #replicaDeliver(slot: ReplicaSlot, from: string, envelope: SimEnvelope): Promise<void> {
    this.#carried(from, envelope)
    if (slot.engine === null || envelope.conn !== slot.conn || this.#closedConns.has(envelope.conn)) return
    for (const start of [...slot.twinStarts]) start()
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
    return this.#record(engine, collection, id, await writeWith(engine, collection, id, intent))
  }

  /** Whether `name` is two instances over one store (see `SimClusterOptions.twins`). */
  hasTwin(name: string): boolean {
    return this.#slot(name).twinned
  }

  /**
   * A write at a replica's second instance. It starts with the next frame delivered to the
   * connected instance, just before that instance handles it (or `delayMs` of virtual time
   * from now, if none comes first), and runs on meanwhile — as a tab writes a record while
   * the connected tab applies what just arrived. It is recorded once stored, and the
   * connected instance is told then, as a tab's notice tells it. A write refused (a full
   * disk) or never started (the replica crashed first) is not recorded. False when the
   * replica is down or has no twin.
   */
  writeAtTwin(name: string, collection: string, id: string, intent: WriteIntent, delayMs = 0): boolean {
    const slot = this.#slot(name)
    const twin = slot.twin
    if (twin === null || slot.engine === null) return false
    let finish!: () => void
    const done = new Promise<void>((resolve) => {
      finish = resolve
    })
    slot.twinWrites.add(done)
    void done.then(() => slot.twinWrites.delete(done))
    const start = () => {
      // Started already (by a delivery or the timer), or dropped by a crash.
      if (!slot.twinStarts.delete(start)) return
      if (slot.twin !== twin) {
        finish()
        return
      }
      // Not awaited: the connected instance goes on meanwhile.
      void writeWith(twin, collection, id, intent)
        .then(
          (change) => {
            this.twinWritesStored += 1
            this.#record(twin, collection, id, change)
            if (slot.twin === twin) void slot.engine?.refresh()
          },
          () => undefined,
        )
        .then(finish)
    }
    slot.twinStarts.add(start)
    // Dropped with the replica's other timers if it crashes first.
    this.net.setTimer(name, delayMs, start)
    return true
  }

  #record(engine: ReplicaEngine, collection: string, id: string, change: Change): Change {
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
    slot.twin = null
    // Twin writes not yet started never will be.
    slot.twinWrites.clear()
    slot.twinStarts.clear()
    if (this.net.isUp(name)) this.net.crash(name)
    // A process that dies closes its sockets: the hub hears of it.
    if (this.#options.reliable === true) this.#broken(slot.conn)
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
    // A linked relay collects no deletions (see `RelayStore.compact`'s `collect`).
    if (this.#linked()) {
      this.hubStore.truncateLog(this.space, upTo)
      return 0
    }
    const dropped = this.hubStore.compact(this.space, upTo)
    for (const [key, state] of dropped) {
      this.collected.set(key, mergeVv(this.collected.get(key) ?? {}, recordContext(state)))
      this.history.push({ kind: 'collect', key, context: recordContext(state) })
    }
    // As a relay does once its store's compaction returns: the hub tells the replicas (and,
    // sharing the store, the other hubs theirs).
    const mark = this.hubStore.collectedMark(this.space)
    if (dropped.size > 0 && mark !== undefined) {
      for (const hub of this.#hubs) void hub.engine?.collected(this.space, mark)
    }
    return dropped.size
  }

  /** Crashes a hub (the first, unless named): sessions are lost, its store stays. */
  crashHub(name = HUB): void {
    const slot = this.#hubSlot(name)
    // A process that dies closes its sockets: its replicas and the hubs linked to it hear of it.
    if (this.#options.reliable === true) {
      for (const replica of this.#slots.values()) if (replica.hub === name) this.#broken(replica.conn)
      for (const key of slot.connections.keys()) this.#broken(Number(key.slice(key.lastIndexOf('/') + 1)))
      if (slot.dial !== null) this.#broken(slot.dial.conn)
    }
    slot.engine = null
    slot.connections = new Map()
    slot.dial = null
    if (this.net.isUp(name)) this.net.crash(name)
    // A link is a connection of its own, which the crash closes at the other end too.
    for (const other of this.#hubs) {
      if (other === slot || other.engine === null) continue
      if (other.dial !== null && this.#hubs[other.index - 1] === slot) {
        void other.dial.connection.closed()
        other.dial = null
      }
      for (const [key, connection] of other.connections) {
        if (!key.startsWith(`${name}/`)) continue
        other.connections.delete(key)
        void connection.closed()
      }
    }
  }

  /** Restarts a crashed hub (each one that is down, unless named) over its store. */
  restartHub(name?: string): void {
    for (const slot of this.#hubs) {
      if ((name !== undefined && slot.name !== name) || slot.engine !== null) continue
      if (!this.net.isUp(slot.name)) this.net.restart(slot.name)
      this.#startHub(slot)
    }
  }

  #hubSlot(name: string): HubSlot {
    const slot = this.#hubs.find((hub) => hub.name === name)
    if (slot === undefined) throw new RangeError(`no hub named ${name}`)
    return slot
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
    for (const hub of this.#hubs) this.crashHub(hub.name)
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
    const hub = this.#hubs.find((slot) => slot.name === name)
    return hub !== undefined ? hub.engine !== null : this.#slot(name).engine !== null
  }

  /** Advances virtual time. */
  async run(ms: number): Promise<void> {
    await this.net.scheduler.runFor(ms)
  }

  /** True when every replica is up, connected, fully acknowledged and at the hub's head. */
  async settled(): Promise<boolean> {
    if (this.#hubs.some((hub) => hub.engine === null)) return false
    const linked = this.#linked()
    const heads = new Map<string, number>()
    for (const hub of this.#hubs) {
      heads.set(hub.name, (await this.#storeOf(hub).loadSpace(this.space)).head)
      if (!linked || hub.index === 0) continue
      // Each link up, and each side holding all of the other's log.
      if (hub.dial?.connection.session().phase !== 'ready') return false
      const target = this.#hubs[hub.index - 1] as HubSlot
      const [mine, theirs] = [this.#storeOf(hub), this.#storeOf(target)]
      const [own, other] = [await mine.loadSpace(this.space), await theirs.loadSpace(this.space)]
      if ((own.received[`${RELAY_ID_PREFIX}${theirs.logName() ?? ''}`] ?? 0) !== other.head) return false
      // The hub that dials is counted under its id there: its log name after the relay prefix.
      if ((other.received[`${RELAY_ID_PREFIX}${mine.logName() ?? ''}`] ?? 0) !== own.head) return false
    }
    for (const slot of this.#slots.values()) {
      const engine = slot.engine
      if (engine === null) return false
      const head = heads.get(slot.hub) ?? 0
      const session = engine.session()
      if (session.phase !== 'ready' || session.acked < session.local) return false
      // A twin's writes: all stored, and all known to the connected instance.
      if (slot.twinWrites.size > 0) return false
      if (slot.twinned && ((await slot.store.loadMeta())?.counter ?? 0) > session.local) return false
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

  /** Each hub's head, counters and link, one line each: for failure messages. */
  async describeHubs(): Promise<string[]> {
    const lines: string[] = []
    for (const hub of this.#hubs) {
      const meta = await this.#storeOf(hub).loadSpace(this.space)
      const link = hub.dial === null ? 'no link' : `link ${hub.dial.connection.session().phase}`
      lines.push(
        `${hub.name}${hub.engine === null ? ' (down)' : ''}: head ${meta.head}, floor ${meta.floor}, log ${meta.log}, ${link}, received ${JSON.stringify(meta.received)}`,
      )
    }
    for (const slot of this.#slots.values()) {
      const session = slot.engine?.session()
      lines.push(
        `${slot.name} on ${slot.hub}: ${session === undefined ? 'down' : `${session.phase}, cursor ${session.cursor} of ${session.log}, hub head ${session.hubHead}, acked ${session.acked}/${session.local}`}`,
      )
    }
    return lines
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

/**
 * `store` with every method call put off by 0–8 microtask turns, drawn from `prng`: a disk
 * answers two tabs' requests in no fixed order, and without this the in-memory store would
 * always answer them in the same lockstep.
 */
function jittered(store: MemoryReplicaStore, prng: Prng): ReplicaStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver)
      if (typeof value !== 'function') return value
      return async (...args: unknown[]) => {
        for (let turns = prng.int(0, 8); turns > 0; turns--) await Promise.resolve()
        return (value as (...args: unknown[]) => unknown).apply(target, args)
      }
    },
  }) as unknown as ReplicaStore
}

async function writeWith(
  engine: ReplicaEngine,
  collection: string,
  id: string,
  intent: WriteIntent,
): Promise<Change> {
  if (intent.type === 'put') return engine.put(collection, id, intent.value)
  if (intent.type === 'patch') return engine.patch(collection, id, intent.fields)
  return engine.delete(collection, id)
}

/** Builds and starts a {@link SimCluster}. */
export function createSimCluster(options: SimClusterOptions): Promise<SimCluster> {
  return SimCluster.create(options)
}
