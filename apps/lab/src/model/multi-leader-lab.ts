import { type Change, type JsonValue, type StoredRecord, versionValue } from '@chorus/core'
import {
  checkAcknowledgedWrites,
  checkConvergence,
  createSimCluster,
  findStaleReads,
  type RegisterOperation,
  type ReplicaSnapshot,
  type SimCluster,
  type SimEnvelope,
} from '@chorus/testkit'
import { invalid, LabBase } from './lab.js'
import { multiLeaderLabel } from './message-label.js'
import { labTimings, nodeNames, startFaults } from './settings.js'
import type { KeyValueView, LabAction, LabSettings, NodeView, Scoreboard } from './types.js'

/** The collection every lab record lives in; a record is `{ value }`, keyed by the lab key. */
export const LAB_COLLECTION = 'lab'

/** The hub's name on the network, and the relay's name in the view. */
const HUB = 'hub'
const RELAY = 'relay'

function shown(value: JsonValue | undefined | null): string {
  if (value === null || value === undefined) return '(deleted)'
  if (typeof value === 'object' && !Array.isArray(value) && 'value' in value) return shown(value.value)
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** One replica's records of the lab collection at the last look. */
interface ReplicaLook {
  readonly records: readonly StoredRecord[]
}

/**
 * The multi-leader lab: a {@link SimCluster} of replicas r1…rN running the real engines of
 * `@chorus/core`, syncing through a hub (shown as the `relay`).
 *
 * Every replica accepts writes, even when cut off: a write commits locally at once and syncs
 * when the replica reaches the relay. Reads are local, so every read mode means the same here:
 * a replica always sees its own writes and never goes back. Concurrent writes to one key become
 * siblings on every replica; the resolver decides what a read returns (`manual` leaves the
 * conflict open until a `resolve`).
 */
export class MultiLeaderLab extends LabBase<SimEnvelope> {
  private readonly cluster: SimCluster
  private readonly names: readonly string[]
  private looks = new Map<string, ReplicaLook>()
  private snapshots: ReplicaSnapshot[] = []
  /**
   * Conflicts seen: each time a key came to hold concurrent versions on some replica while it
   * held them on none. However the replicas learn of them, and whether a third concurrent
   * write joins the first two, one such stretch is one conflict.
   */
  private conflictsSeen = 0
  /** Keys each replica holds concurrent versions of at the last look, with those versions' dots. */
  private readonly conflicted = new Map<string, Map<string, string>>()
  private lookPending = false
  /** The register history the stale-read checker judges: writes and reads, with event order. */
  private readonly history: RegisterOperation[] = []
  private sequence = 0

  private constructor(settings: LabSettings, cluster: SimCluster) {
    const names = cluster.names()
    super({
      settings,
      network: cluster.net,
      nodes: [...names, HUB],
      label: (envelope) => multiLeaderLabel(envelope.frame),
      viewName: (id) => (id === HUB ? RELAY : id),
      networkName: (name) => (name === RELAY ? HUB : name),
    })
    this.cluster = cluster
    this.names = names
  }

  /** Starts the relay and every replica and lets them connect; that is lab time 0. */
  static async create(settings: LabSettings): Promise<MultiLeaderLab> {
    const cluster = await createSimCluster({
      seed: settings.seed,
      replicas: settings.nodes,
      names: nodeNames(settings),
      resolvers: { [LAB_COLLECTION]: settings.multiLeader.resolver },
      faults: startFaults(settings),
      tickMs: labTimings.replicaTickMs,
      retransmitMs: labTimings.retransmitMs,
    })
    await cluster.run(500)
    const lab = new MultiLeaderLab(settings, cluster)
    lab.begin()
    await lab.look(false)
    lab.event(
      'node',
      `cluster started: ${settings.nodes} replicas and the relay, resolver ${settings.multiLeader.resolver}`,
    )
    return lab
  }

  protected override validateForDesign(action: LabAction): void {
    if (action.type === 'promote') {
      invalid('promote is for single-leader clusters; in multi-leader every replica already accepts writes')
    }
    if (action.type === 'pause') {
      invalid('pause is not available for multi-leader replicas; kill and restart one instead')
    }
    if (action.type === 'resolve' && this.settings.multiLeader.resolver !== 'manual') {
      invalid(
        `resolve is for the manual resolver; with ${this.settings.multiLeader.resolver} conflicts settle by themselves`,
      )
    }
    if (
      (action.type === 'write' || action.type === 'read' || action.type === 'resolve') &&
      action.node === RELAY
    ) {
      invalid('the relay stores and forwards changes; write and read at a replica (r1, r2, …)')
    }
    if (action.type === 'kill' && !this.cluster.isUp(this.node(action.node))) {
      invalid(`${action.node} is down; restart it first`)
    }
    if (action.type === 'restart' && this.cluster.isUp(this.node(action.node))) {
      invalid(`${action.node} is up; kill it before restarting it`)
    }
    if (action.type === 'resolve') {
      if (this.cluster.engine(action.node) === null) invalid(`${action.node} is down; restart it first`)
      const conflicted = this.conflicted.get(action.node)
      if (conflicted === undefined || !conflicted.has(action.key)) {
        invalid(`${action.node} has no open conflict on ${action.key}; resolve a key listed as a conflict`)
      }
    }
  }

  protected override async perform(action: LabAction): Promise<void> {
    if (this.performNetwork(action)) return
    switch (action.type) {
      case 'write': {
        this.event('action', `${action.client} writes ${action.key} = ${action.value} at ${action.node}`)
        const invoke = ++this.sequence
        const change = await this.cluster.write(action.node, LAB_COLLECTION, action.key, {
          type: 'put',
          value: { value: action.value },
        })
        const op = this.startOperation(
          { client: action.client, node: action.node, kind: 'write', key: action.key, value: action.value },
          0,
          async () => undefined,
        )
        this.history.push({
          process: action.client,
          key: action.key,
          kind: 'write',
          value: action.value,
          invoke,
          complete: ++this.sequence,
          ok: change !== undefined,
        })
        if (change === undefined) this.finish(op, 'rejected', `${action.node} is down`)
        else this.finish(op, 'ok', `version ${change.dot[0]}:${change.dot[1]}, committed locally`)
        await this.look(true)
        return
      }
      case 'read': {
        this.event('action', `${action.client} reads ${action.key} at ${action.node}`)
        const invoke = ++this.sequence
        const up = this.cluster.isUp(action.node)
        const value = up ? await this.cluster.read(action.node, LAB_COLLECTION, action.key) : undefined
        const op = this.startOperation(
          { client: action.client, node: action.node, kind: 'read', key: action.key, mode: action.mode },
          0,
          async () => undefined,
        )
        const read = value === undefined ? undefined : shown(value)
        this.history.push({
          process: action.client,
          key: action.key,
          kind: 'read',
          value: read,
          invoke,
          complete: ++this.sequence,
          ok: up,
        })
        if (!up) {
          this.finish(op, 'rejected', `${action.node} is down`)
          return
        }
        if (read !== undefined) op.value = read
        const record = this.looks.get(action.node)?.records.find((candidate) => candidate.id === action.key)
        const open =
          record !== undefined &&
          this.cluster.resolvers(LAB_COLLECTION).resolve(record.state.versions).conflict !== undefined
        this.finish(op, 'ok', open ? 'open conflict: a provisional value' : undefined)
        return
      }
      case 'resolve': {
        this.event('action', `${action.node}: a person settles ${action.key} = ${action.value}`)
        const engine = this.cluster.engine(action.node)
        if (engine === null) invalid(`${action.node} is down; restart it first`)
        const change: Change = await engine.resolve(LAB_COLLECTION, action.key, { value: action.value })
        this.cluster.writes.push(change)
        this.cluster.history.push({
          kind: 'write',
          session: engine.replicaId,
          collection: LAB_COLLECTION,
          id: action.key,
          dot: change.dot,
        })
        this.cluster.conflictsSettled += 1
        await this.look(true)
        return
      }
      case 'kill': {
        const id = this.node(action.node)
        if (id === HUB) this.cluster.crashHub()
        else this.cluster.crash(id)
        this.event('node', `${action.node} killed (its disk survives)`)
        return
      }
      case 'restart': {
        const id = this.node(action.node)
        this.event('node', `${action.node} restarts from its disk`)
        if (id === HUB) this.cluster.restartHub()
        else await this.cluster.restart(id)
        await this.look(true)
        return
      }
      default:
        return
    }
  }

  /** Replicas talk only to the relay: the replica–relay links are the only ones. */
  protected override carries(a: string, b: string): boolean {
    return a === HUB || b === HUB
  }

  /** The engines keep working after a task returns (commits, sends): see {@link LabBase.backgroundWork}. */
  protected override backgroundWork(): boolean {
    return true
  }

  protected override async afterRun(): Promise<void> {
    await this.look(false)
  }

  /**
   * Reads every replica's records. With `report`, changes since the last look go on the
   * timeline (conflicts appearing and settling); it is only called that way at deterministic
   * moments (an action, or a scheduler task after a delivery), never at the end of a run.
   */
  private async look(report: boolean): Promise<void> {
    const looks = new Map<string, ReplicaLook>()
    for (const name of this.names) {
      const records = await this.cluster.store(name).reopen().allRecords()
      looks.set(name, { records: records.filter((record) => record.collection === LAB_COLLECTION) })
    }
    this.looks = looks
    this.snapshots = await this.cluster.snapshots()
    if (report) this.report()
  }

  /** Puts conflicts that appeared or settled since the last report on the timeline. */
  private report(): void {
    const resolver = this.cluster.resolvers(LAB_COLLECTION)
    const openBefore = new Set([...this.conflicted.values()].flatMap((keys) => [...keys.keys()]))
    for (const name of this.names) {
      const before = this.conflicted.get(name) ?? new Map<string, string>()
      const now = new Map<string, string>()
      for (const record of this.looks.get(name)?.records ?? []) {
        const versions = record.state.versions
        if (versions.length < 2) continue
        const dots = versions.map((version) => `${version.dot[0]}:${version.dot[1]}`).join(' ')
        now.set(record.id, dots)
        // New here, or grown by another concurrent version: what it holds and reads now.
        if (before.get(record.id) !== dots) {
          const resolution = resolver.resolve(versions)
          const values = versions.map((version) => shown(versionValue(version))).join(' | ')
          this.event(
            'conflict',
            resolution.conflict === undefined
              ? `${name}: concurrent writes to ${record.id} (${values}); ${resolver.kind} reads ${shown(resolution.value)}`
              : `${name}: conflict on ${record.id} (${values}) waits for a person; it reads ${shown(resolution.value)} until then`,
          )
        }
      }
      for (const id of before.keys()) {
        if (!now.has(id)) {
          const record = this.looks.get(name)?.records.find((candidate) => candidate.id === id)
          const value = record === undefined ? undefined : resolver.resolve(record.state.versions).value
          this.event('conflict', `${name}: the conflict on ${id} is settled: ${shown(value)}`)
        }
      }
      this.conflicted.set(name, now)
    }
    for (const keys of this.conflicted.values()) {
      for (const id of keys.keys()) {
        if (openBefore.has(id)) continue
        openBefore.add(id)
        this.conflictsSeen += 1
      }
    }
  }

  protected override begin(): void {
    super.begin()
    const traced = this.network.onTrace
    this.network.onTrace = (event) => {
      traced?.(event)
      if (event.type === 'deliver' && event.to !== HUB && !this.lookPending) {
        // A look right after the delivery is handled (same time, a later task), so conflicts
        // land on the timeline at the moment the replica applies the changes.
        this.lookPending = true
        this.later(0, async () => {
          this.lookPending = false
          await this.look(true)
        })
      }
    }
  }

  protected override nodeViews(): NodeView[] {
    const resolver = this.cluster.resolvers(LAB_COLLECTION)
    const replicas: NodeView[] = this.names.map((name) => {
      const records = this.looks.get(name)?.records ?? []
      const highest = new Map<string, number>()
      const values: KeyValueView[] = []
      for (const record of records) {
        for (const version of record.state.versions) {
          for (const [replica, counter] of Object.entries(version.context)) {
            highest.set(replica, Math.max(highest.get(replica) ?? 0, counter))
          }
          const [replica, counter] = version.dot
          highest.set(replica, Math.max(highest.get(replica) ?? 0, counter))
        }
        const versions = record.state.versions
        const resolution = resolver.resolve(versions)
        values.push({
          key: record.id,
          values: versions.map((version) => shown(versionValue(version))),
          ...(versions.length > 1 ? { resolved: shown(resolution.value) } : {}),
          ...(resolution.conflict === undefined ? {} : { conflict: true }),
        })
      }
      return {
        id: name,
        role: 'replica',
        up: this.cluster.isUp(name),
        paused: false,
        clock: [...highest]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([replica, counter]) => `${replica}:${counter}`)
          .join(' '),
        values: values.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
      }
    })
    return [...replicas, { id: RELAY, role: 'relay', up: this.cluster.isUp(HUB), paused: false, values: [] }]
  }

  protected override scoreboard(): Scoreboard {
    const acked = this.cluster.acked
    const acknowledged = this.cluster.writes.filter((write) => write.dot[1] <= (acked.get(write.dot[0]) ?? 0))
    const lostEverywhere = acknowledged.filter((write) =>
      this.snapshots.every((snapshot) => !checkAcknowledgedWrites([snapshot], [write], acked).ok),
    ).length
    const open = new Set<string>()
    const resolver = this.cluster.resolvers(LAB_COLLECTION)
    for (const look of this.looks.values()) {
      for (const record of look.records) {
        if (resolver.resolve(record.state.versions).conflict !== undefined) open.add(record.id)
      }
    }
    return {
      acknowledgedWrites: acknowledged.length,
      lostAcknowledgedWrites: lostEverywhere,
      staleReads: findStaleReads(this.history).length,
      conflicts: this.conflictsSeen,
      divergentReplicas: this.divergentReplicas(),
      rejectedWrites: this.operations.filter((op) => op.kind === 'write' && op.outcome === 'rejected').length,
      leaders: this.names.filter((name) => this.cluster.isUp(name)).length,
      openConflicts: open.size,
    }
  }

  protected override staleOperations(): ReadonlySet<number> {
    // Every write and read adds one operation and one history entry, in the same order.
    const stale = new Set(findStaleReads(this.history).map((read) => read.read))
    return new Set(this.history.flatMap((entry, index) => (stale.has(entry) ? [index] : [])))
  }

  /** Replicas outside the largest group of replicas that agree (by the convergence checker). */
  private divergentReplicas(): number {
    const snapshots = this.snapshots
    let best = 0
    for (const reference of snapshots) {
      const agreeing = snapshots.filter(
        (other) => other === reference || checkConvergence([reference, other], this.cluster.resolvers).ok,
      ).length
      best = Math.max(best, agreeing)
    }
    return snapshots.length - best
  }
}
