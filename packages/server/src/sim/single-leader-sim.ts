import type { JsonValue } from '@chorus/core'
import { findStaleReads } from '@chorus/testkit'
import { asNodeId, type NodeId } from '../node-id.js'
import {
  createSingleLeaderConfig,
  type SingleLeaderConfig,
  type SingleLeaderConfigInput,
} from '../single-leader/config.js'
import { epochAt, isLaterEntry, lastEpoch, lastLsn } from '../single-leader/log.js'
import type {
  SingleLeaderInput,
  SingleLeaderMessage,
  SingleLeaderRecord,
  SingleLeaderReply,
  SingleLeaderRequest,
  SingleLeaderStatus,
} from '../single-leader/messages.js'
import { createSingleLeaderMachine } from '../single-leader/node.js'
import { readableData, type SingleLeaderState } from '../single-leader/state.js'
import { ClusterSim, type ClusterSimOptions } from './cluster-sim.js'
import type { SimClientEndpoint } from './sim-client.js'

/** Options for {@link SingleLeaderSim}. */
export interface SingleLeaderSimOptions extends ClusterSimOptions {
  /** Member names (default n1…n3). */
  readonly nodes?: readonly string[]
  /** Cluster settings other than `nodes`. */
  readonly config?: Omit<SingleLeaderConfigInput, 'nodes'>
}

/** A write some client was told succeeded. */
export interface AcknowledgedWrite {
  readonly writeId: string
  readonly client: string
  readonly key: string
  readonly value: JsonValue
  readonly lsn: number
  readonly epoch: number
  readonly durability: 'leader' | 'replicated'
  readonly node: NodeId
}

/** What the harness measured over a run. */
export interface SingleLeaderReport {
  readonly acknowledgedWrites: number
  /** Acknowledged writes missing from the reference history (see `SingleLeaderSim.reference`). */
  readonly lostAcknowledgedWrites: number
  /** Lost writes that had been acknowledged on the leader's disk alone (async or semi-sync fallback). */
  readonly lostLeaderOnlyWrites: number
  /** Acknowledged writes appended by a leader after a leader of a newer epoch existed. */
  readonly staleEpochWritesAcknowledged: number
  /** Appends a node took from a leader of an older epoch than its own (only without fencing); counted across crashes. */
  readonly staleEpochAppendsAccepted: number
  /** Appends storage refused because a newer epoch had written (fencing at the disk). */
  readonly storageFencedAppends: number
  readonly staleReads: number
  /** Writes acknowledged while a partition was in force. */
  readonly writesAcceptedDuringPartition: number
  /** Semi-sync writes acknowledged on the leader's disk alone after the timeout, counted across crashes. */
  readonly semiSyncFallbacks: number
  /** Nodes up that, after settling, read differently from the reference history. */
  readonly divergentNodes: number
  /** Distinct (node, epoch) leaderships seen. */
  readonly leaderships: number
}

/** Outcome of a client write. */
export type WriteOutcome =
  | {
      readonly ok: true
      readonly lsn: number
      readonly epoch: number
      readonly durability: 'leader' | 'replicated'
    }
  | { readonly ok: false; readonly reason: string; readonly maybeApplied: boolean }

/** Outcome of a client read. */
export type ReadOutcome =
  | { readonly ok: true; readonly value: JsonValue | null; readonly lsn: number; readonly node: NodeId }
  | { readonly ok: false; readonly reason: string }

/**
 * A single-leader cluster on a simulated network: N nodes of the real machine, clients that
 * record every operation, and the measurements the comparison needs.
 */
export class SingleLeaderSim extends ClusterSim<
  SingleLeaderState,
  SingleLeaderInput,
  SingleLeaderMessage,
  SingleLeaderReply,
  SingleLeaderRecord,
  SingleLeaderClient
> {
  readonly config: SingleLeaderConfig
  readonly acknowledged: AcknowledgedWrite[] = []
  private maxLeaderEpoch = 0
  private readonly leaderships = new Set<string>()
  private readonly appendedUnder = new Map<string, number>()
  private staleAppends = 0
  private fallbacks = 0
  private partitioned = false
  private partitionWrites = 0

  constructor(options: SingleLeaderSimOptions) {
    super(options)
    this.config = createSingleLeaderConfig({ ...options.config, nodes: options.nodes ?? ['n1', 'n2', 'n3'] })
  }

  /** Starts every member. */
  async start(): Promise<void> {
    for (const node of this.config.nodes) await this.addNode(node)
  }

  /** Adds and starts a node outside the membership: a learner that bootstraps by snapshot. */
  async addLearner(name: string): Promise<void> {
    await this.addNode(asNodeId(name))
  }

  private async addNode(id: NodeId): Promise<void> {
    await this.addHost(id, createSingleLeaderMachine(id, this.config), {
      onStep: (node, before, after, effects) => this.observe(node, before, after, effects),
    })
  }

  /** The leader of the highest epoch among nodes that are up, if any. */
  leader(): NodeId | undefined {
    let best: SingleLeaderState | undefined
    for (const state of this.states()) {
      if (state.role === 'leader' && (best === undefined || state.epoch > best.epoch)) best = state
    }
    return best?.id
  }

  /** Runs until a leader exists (or `maxMs` passes); returns it. */
  async awaitLeader(maxMs = 10_000): Promise<NodeId | undefined> {
    for (let waited = 0; waited < maxMs && this.leader() === undefined; waited += 10) await this.run(10)
    return this.leader()
  }

  pause(node: string, ms: number): void {
    this.host(node).pause(ms)
  }

  override partition(groups: readonly (readonly string[])[]): void {
    super.partition(groups)
    this.partitioned = true
  }

  override heal(): void {
    super.heal()
    this.partitioned = false
  }

  /** An operator's manual failover to `node`. */
  async promote(node: string): Promise<void> {
    await this.host(node).input((now) => ({ type: 'promote', now }))
  }

  /** Everything the harness measured (see {@link SingleLeaderReport}). */
  report(): SingleLeaderReport {
    const reference = this.reference()
    const lost = reference === undefined ? [] : this.lostWrites(reference)
    let divergent = 0
    if (reference !== undefined) {
      const expected = JSON.stringify([...readableData(reference)].sort())
      for (const state of this.states()) {
        if (JSON.stringify([...readableData(state)].sort()) !== expected) divergent++
      }
    }
    return {
      acknowledgedWrites: this.acknowledged.length,
      lostAcknowledgedWrites: lost.length,
      lostLeaderOnlyWrites: lost.filter((write) => write.durability === 'leader').length,
      staleEpochWritesAcknowledged: this.acknowledged.filter(
        (write) => (this.appendedUnder.get(write.writeId) ?? 0) > write.epoch,
      ).length,
      staleEpochAppendsAccepted: this.staleAppends,
      storageFencedAppends: [...this.hosts.values()].reduce(
        (sum, host) => sum + host.storage.stats.fenced,
        0,
      ),
      staleReads: findStaleReads(this.history()).length,
      writesAcceptedDuringPartition: this.partitionWrites,
      semiSyncFallbacks: this.fallbacks,
      divergentNodes: divergent,
      leaderships: this.leaderships.size,
    }
  }

  /**
   * The history writes are judged by: the log of the leader of the highest epoch among the
   * nodes that are up, unless a node (up or down, a down one's log as its disk holds it) has a
   * log ending in a newer epoch; then the log that ends latest (highest epoch, then LSN), which
   * an election keeps. So a write lost stays lost while no node leads, and a deposed leader
   * left up (fencing off) does not become the judge when the newer one goes down.
   */
  reference(): SingleLeaderState | undefined {
    const latest = this.mostUpToDate()
    const leader = this.leader()
    const leading = leader === undefined ? null : this.host(leader).state
    if (leading !== null && (latest === undefined || leading.epoch >= lastEpoch(latest.log))) return leading
    return latest
  }

  /** The node state whose log ends latest (highest epoch, then LSN) among every node, up or down. */
  private mostUpToDate(): SingleLeaderState | undefined {
    let best: SingleLeaderState | undefined
    for (const host of this.hosts.values()) {
      const state = host.durableState()
      if (
        best === undefined ||
        isLaterEntry(lastLsn(state.log), lastEpoch(state.log), lastLsn(best.log), lastEpoch(best.log))
      ) {
        best = state
      }
    }
    return best
  }

  /** Acknowledged writes whose (LSN, epoch) the given log does not hold. */
  lostWrites(reference: SingleLeaderState): AcknowledgedWrite[] {
    return this.acknowledged.filter(
      (write) => write.lsn > lastLsn(reference.log) || epochAt(reference.log, write.lsn) !== write.epoch,
    )
  }

  /** @internal Called by clients when a write is acknowledged. */
  recordAcknowledged(write: AcknowledgedWrite): void {
    this.acknowledged.push(write)
    if (this.partitioned) this.partitionWrites++
  }

  protected override createClient(endpoint: SimClientEndpoint<SingleLeaderReply>): SingleLeaderClient {
    return new SingleLeaderClient(this, endpoint)
  }

  private observe(
    node: NodeId,
    before: SingleLeaderState,
    after: SingleLeaderState,
    effects: readonly { readonly type: string; readonly records?: readonly SingleLeaderRecord[] }[],
  ): void {
    if (after.role === 'leader' && (before.role !== 'leader' || before.epoch !== after.epoch)) {
      this.leaderships.add(`${node}@${after.epoch}`)
      this.maxLeaderEpoch = Math.max(this.maxLeaderEpoch, after.epoch)
    }
    this.staleAppends += after.stats.staleEpochAccepted - before.stats.staleEpochAccepted
    this.fallbacks += after.stats.semiSyncFallbacks - before.stats.semiSyncFallbacks
    if (after.role !== 'leader') return
    for (const effect of effects) {
      for (const record of effect.records ?? []) {
        if (record.type !== 'entries') continue
        for (const entry of record.entries) {
          if (entry.write !== null && !this.appendedUnder.has(entry.write.id)) {
            this.appendedUnder.set(entry.write.id, this.maxLeaderEpoch)
          }
        }
      }
    }
  }
}

/** A client of a {@link SingleLeaderSim}: finds the leader, carries its LSN token, records history. */
export class SingleLeaderClient {
  /**
   * The latest entry this client wrote or read, by LSN and the epoch of that entry: sent with
   * replica reads (`minLsn`, `minEpoch`). Of two, the later is the one of the higher epoch,
   * then the higher LSN (see `SingleLeaderHttpClient.token`).
   */
  token = 0
  tokenEpoch = 0
  private leaderHint: NodeId | null = null
  private readonly sim: SingleLeaderSim
  private readonly endpoint: SimClientEndpoint<SingleLeaderReply>

  constructor(sim: SingleLeaderSim, endpoint: SimClientEndpoint<SingleLeaderReply>) {
    this.sim = sim
    this.endpoint = endpoint
  }

  get name(): string {
    return this.endpoint.id
  }

  /** Writes through `node`, or the leader this client believes in. */
  async write(
    key: string,
    value: JsonValue,
    options: { readonly node?: string } = {},
  ): Promise<WriteOutcome> {
    const node = (options.node as NodeId | undefined) ?? this.target()
    const id = this.endpoint.nextId()
    const handle = this.sim.recorder.invoke(this.name, key, 'write', value, this.sim.network.now())
    const request: SingleLeaderRequest = { type: 'write', id, key, value }
    const reply = await this.endpoint.request(node, request)
    const now = this.sim.network.now()
    if (reply?.type === 'write-ok') {
      this.sim.recorder.complete(handle, 'ok', now)
      this.advance(reply.lsn, reply.epoch)
      this.leaderHint = node
      this.sim.recordAcknowledged({
        writeId: `${this.name}/${id}`,
        client: this.name,
        key,
        value,
        lsn: reply.lsn,
        epoch: reply.epoch,
        durability: reply.durability,
        node,
      })
      return { ok: true, lsn: reply.lsn, epoch: reply.epoch, durability: reply.durability }
    }
    if (reply?.type === 'rejected') {
      this.learn(node, reply.leader)
      this.sim.recorder.complete(handle, reply.maybeApplied ? 'unknown' : 'failed', now)
      return { ok: false, reason: reply.reason, maybeApplied: reply.maybeApplied }
    }
    if (reply === null) this.learn(node, null)
    this.sim.recorder.complete(handle, reply === null ? 'unknown' : 'failed', now)
    return { ok: false, reason: reply === null ? 'timeout' : reply.type, maybeApplied: reply === null }
  }

  /**
   * Reads `key`. `consistency: 'leader'` (the default) asks the leader for a linearizable read;
   * `'replica'` reads any node (default: a random-free choice, `node`) with this client's token,
   * or with `minLsn` when given (0: no token, the read takes whatever the node has).
   */
  async read(
    key: string,
    options: {
      readonly node?: string
      readonly consistency?: 'leader' | 'replica'
      readonly waitMs?: number
      readonly minLsn?: number
      /** With `minLsn`: the epoch of the entry there (see `SingleLeaderRequest`). */
      readonly minEpoch?: number
    } = {},
  ): Promise<ReadOutcome> {
    const consistency = options.consistency ?? 'leader'
    const node = (options.node as NodeId | undefined) ?? this.target()
    const id = this.endpoint.nextId()
    const handle = this.sim.recorder.invoke(this.name, key, 'read', undefined, this.sim.network.now())
    const minLsn = consistency === 'replica' ? (options.minLsn ?? this.token) : 0
    // The client's own token carries its epoch; a token given carries the one given with it.
    const minEpoch =
      minLsn === 0
        ? undefined
        : options.minLsn === undefined
          ? this.tokenEpoch || undefined
          : options.minEpoch
    const request: SingleLeaderRequest = {
      type: 'read',
      id,
      key,
      consistency,
      minLsn,
      ...(minEpoch === undefined ? {} : { minEpoch }),
      waitMs: options.waitMs ?? 0,
    }
    const reply = await this.endpoint.request(node, request)
    const now = this.sim.network.now()
    if (reply?.type === 'read-ok') {
      this.sim.recorder.complete(handle, 'ok', now, reply.value ?? undefined)
      this.advance(reply.lsn, reply.lsnEpoch)
      return { ok: true, value: reply.value, lsn: reply.lsn, node }
    }
    if (reply?.type === 'rejected') this.learn(node, reply.leader)
    if (reply === null) this.learn(node, null)
    this.sim.recorder.complete(handle, reply === null ? 'unknown' : 'failed', now)
    return {
      ok: false,
      reason: reply === null ? 'timeout' : reply.type === 'rejected' ? reply.reason : reply.type,
    }
  }

  /** Asks `node` for its status (role, epoch, LSNs, lag); null on timeout. */
  async status(node: string): Promise<SingleLeaderStatus | null> {
    const request: SingleLeaderRequest = { type: 'status', id: this.endpoint.nextId() }
    const reply = await this.endpoint.request(node, request)
    return reply?.type === 'status' ? reply.status : null
  }

  /** Sends raw frame text to a node and returns its reply (tests of malformed input). */
  async raw(node: string, frame: string, id = this.endpoint.nextId()): Promise<SingleLeaderReply | null> {
    return this.endpoint.sendRaw(node, frame, id)
  }

  /** Moves the token to the entry (`lsn`, `epoch`) when that is later (see {@link token}). */
  private advance(lsn: number, epoch: number): void {
    if (isLaterEntry(lsn, epoch, this.token, this.tokenEpoch)) {
      this.token = lsn
      this.tokenEpoch = epoch
    }
  }

  private target(): NodeId {
    return this.leaderHint ?? (this.sim.config.nodes[0] as NodeId)
  }

  /** After a refusal or a silence: follow the hint, or try the next member. */
  private learn(asked: NodeId, hint: NodeId | null): void {
    if (hint !== null && hint !== asked) {
      this.leaderHint = hint
      return
    }
    const nodes = this.sim.config.nodes
    this.leaderHint = nodes[(nodes.indexOf(asked) + 1) % nodes.length] as NodeId
  }
}
