import { canonicalJson, type Dot, type JsonValue, type VersionVector } from '@chorus/core'
import { findStaleReads } from '@chorus/testkit'
import type { MemoryNodeStorage } from '../memory-node-storage.js'
import type { NodeId } from '../node-id.js'
import {
  createQuorumConfig,
  type QuorumConfig,
  type QuorumConfigInput,
  type ReadRepairMode,
} from '../quorum/config.js'
import type {
  QuorumInput,
  QuorumMessage,
  QuorumRecord,
  QuorumReply,
  QuorumRequest,
} from '../quorum/messages.js'
import { createQuorumMachine } from '../quorum/node.js'
import { homeReplicas, type QuorumEffect, type QuorumState } from '../quorum/state.js'
import { digestOf, type Version } from '../quorum/versions.js'
import { ClusterSim, type ClusterSimOptions } from './cluster-sim.js'
import type { SimClientEndpoint } from './sim-client.js'

/** Options for {@link QuorumSim}. */
export interface QuorumSimOptions extends ClusterSimOptions {
  /** Node names (default n1…n5). */
  readonly nodes?: readonly string[]
  /** Cluster settings other than `nodes`. */
  readonly config?: Omit<QuorumConfigInput, 'nodes'>
  /**
   * The simulated disk each node starts from (a new, empty one when this returns undefined):
   * a storage written by an earlier build, or one whose appends a test makes fail.
   */
  readonly storage?: (node: string) => MemoryNodeStorage<QuorumRecord> | undefined
}

/** What the harness measured over a run. */
export interface QuorumReport {
  readonly putsAcknowledged: number
  /** Puts acknowledged with a stand-in counted toward W. */
  readonly sloppyPutsAcknowledged: number
  /** Completed reads that returned a value a completed write had already overwritten. */
  readonly staleReads: number
  /**
   * Acknowledged puts that no node holds any more (a node that is down, on its disk), and that
   * no version a node holds was written by a client who had seen them (see {@link QuorumSim}
   * on how that is known).
   */
  readonly lostAcknowledgedPuts: number
  /** Reads that returned more than one sibling. */
  readonly readsWithSiblings: number
  /**
   * Distinct sets of concurrent versions of one key that reads returned: one conflict however
   * often it is read (a set that grows by another concurrent version is another).
   */
  readonly siblingSetsSurfaced: number
  readonly hintsStored: number
  readonly hintsDelivered: number
  /** Hints still held by stand-ins (nodes that are up). */
  readonly hintsPending: number
  /** Versions dropped by last-write-wins without the winner having seen them. */
  readonly lwwDiscarded: number
  /** Keys whose home replicas (those up) do not hold identical versions. */
  readonly divergentKeys: number
  /**
   * Versions some node stored durably (acknowledged or not) that no node, up or down, still
   * reflects, judged like {@link QuorumReport.lostAcknowledgedPuts}: dropped by a put whose
   * client had not seen them. Only versions made while the harness watched count (it knows no
   * other's past). Zero under `siblings` whatever crashes happened; under last-write-wins it
   * counts what that mode drops by design.
   */
  readonly lostStoredVersions: number
  /**
   * Dots of a key that name two different versions in the nodes' storage: a coordinator
   * issued a dot twice and both copies got somewhere durably.
   */
  readonly reissuedDots: number
}

/** Outcome of a client put: on success, the siblings the coordinator holds after it (see `PutReply`). */
export type PutOutcome =
  | {
      readonly ok: true
      readonly context: VersionVector
      readonly values: readonly JsonValue[]
      readonly sloppy: boolean
    }
  | { readonly ok: false; readonly reason: string; readonly maybeApplied: boolean }

/** Outcome of a client get. */
export type GetOutcome =
  | {
      readonly ok: true
      readonly value: JsonValue | null
      readonly values: readonly JsonValue[]
      readonly context: VersionVector
    }
  | { readonly ok: false; readonly reason: string }

interface AcknowledgedPut {
  readonly key: string
  readonly value: JsonValue
  readonly dot: Dot
}

/** A version's identity across the cluster: its key and its dot. */
type VersionId = string

function versionId(key: string, dot: Dot): VersionId {
  return `${key}\u0000${dot[0]}:${dot[1]}`
}

/**
 * A Dynamo-style quorum cluster on a simulated network: N nodes of the real machine, clients
 * that record every operation, and the measurements the comparison needs. Counters that a
 * node keeps in memory are accumulated here across its crashes.
 *
 * **Lost puts are judged by what clients saw, not by the versions' contexts.** The harness
 * records, for every version a coordinator creates, the versions its client had actually been
 * shown for that key (by earlier reads and write replies, with everything those had seen), so
 * a context that claims more than its writer saw cannot hide the version it wrongly
 * superseded.
 */
export class QuorumSim extends ClusterSim<
  QuorumState,
  QuorumInput,
  QuorumMessage,
  QuorumReply,
  QuorumRecord,
  QuorumClient
> {
  readonly config: QuorumConfig
  private readonly acknowledged: AcknowledgedPut[] = []
  /** Every version's true causal past: the versions of its key its writer had been shown. */
  private readonly pasts = new Map<VersionId, ReadonlySet<VersionId>>()
  /** What a client had seen of the key when it sent a put, by request id (unique: `client-n`). */
  private readonly putPasts = new Map<
    string,
    { readonly key: string; readonly seen: ReadonlySet<VersionId> }
  >()
  private readonly storageFor: QuorumSimOptions['storage']
  private sloppyAcks = 0
  private siblingReads = 0
  /** The sets of concurrent versions reads surfaced, by key and the context they make up. */
  private readonly siblingSets = new Set<string>()
  private readonly totals = { hintsStored: 0, hintsDelivered: 0, lwwDiscarded: 0 }

  constructor(options: QuorumSimOptions) {
    super(options)
    this.config = createQuorumConfig({
      ...options.config,
      nodes: options.nodes ?? ['n1', 'n2', 'n3', 'n4', 'n5'],
    })
    this.storageFor = options.storage
  }

  /** Starts every node. */
  async start(): Promise<void> {
    for (const id of this.config.nodes) {
      await this.addHost(
        id,
        createQuorumMachine(id, this.config),
        { onStep: (_node, before, after, effects) => this.observe(before, after, effects) },
        this.storageFor?.(id),
      )
    }
  }

  /** The key's home replicas, in preference order. */
  homes(key: string): NodeId[] {
    const state = this.states()[0]
    if (state === undefined) throw new RangeError('no node is up')
    return homeReplicas(state, key)
  }

  /** The versions `node` stores for `key` as a home replica (hints not included). */
  stored(node: string, key: string): readonly Version[] {
    return this.host(node).state?.store.get(key) ?? []
  }

  /** Keys any node stores. */
  keys(): string[] {
    const keys = new Set<string>()
    for (const state of this.states()) for (const key of state.store.keys()) keys.add(key)
    return [...keys].sort()
  }

  /** Everything the harness measured (see {@link QuorumReport}). */
  report(): QuorumReport {
    const keys = this.keys()
    let divergent = 0
    for (const key of keys) {
      const digests = new Set(
        this.homes(key)
          .filter((node) => this.host(node).state !== null)
          .map((node) => digestOf(this.stored(node, key))),
      )
      if (digests.size > 1) divergent++
    }
    // Read once: a node that is down is rebuilt from its disk for it.
    const reflected = this.reflected()
    return {
      putsAcknowledged: this.acknowledged.length,
      sloppyPutsAcknowledged: this.sloppyAcks,
      staleReads: findStaleReads(this.history()).length,
      lostAcknowledgedPuts: this.lostPuts(reflected),
      readsWithSiblings: this.siblingReads,
      siblingSetsSurfaced: this.siblingSets.size,
      hintsStored: this.totals.hintsStored,
      hintsDelivered: this.totals.hintsDelivered,
      hintsPending: this.states().reduce((sum, state) => sum + state.hints.size, 0),
      lwwDiscarded: this.totals.lwwDiscarded,
      divergentKeys: divergent,
      ...this.storedVersionChecks(reflected),
    }
  }

  /**
   * The latest put to make a dot names it: a coordinator numbers a dot again only when the
   * version that had it never left the node (its life's first commit failed, or it crashed
   * before, so the life started over under the same number). Keeping the first put's past
   * instead judged the surviving version by what the dead one's client had seen, and counted
   * what its own client had seen and superseded as lost. A dot reissued after its version did
   * leave is what `reissuedDots` counts.
   */
  private learnDot(requestId: string, dot: Dot): void {
    const sent = this.putPasts.get(requestId)
    if (sent === undefined) return
    this.pasts.set(versionId(sent.key, dot), sent.seen)
  }

  /** @internal Called by clients. */
  recordPut(put: AcknowledgedPut, sloppy: boolean): void {
    this.acknowledged.push(put)
    if (sloppy) this.sloppyAcks++
  }

  /** @internal Called by clients. */
  recordRead(key: string, siblings: number, context: VersionVector): void {
    if (siblings <= 1) return
    this.siblingReads++
    this.siblingSets.add(`${key} ${canonicalJson(context)}`)
  }

  /** @internal Called by clients: what the client had seen of `key` when it sent put `requestId`. */
  recordPutSent(requestId: string, key: string, seen: ReadonlySet<VersionId>): void {
    this.putPasts.set(requestId, { key, seen })
  }

  /**
   * @internal Called by clients: the versions a reply showed, with everything they had seen —
   * what the client has now seen of `key`.
   */
  seenThrough(key: string, dots: readonly Dot[]): Set<VersionId> {
    const seen = new Set<VersionId>()
    for (const dot of dots) {
      const id = versionId(key, dot)
      seen.add(id)
      for (const earlier of this.pasts.get(id) ?? []) seen.add(earlier)
    }
    return seen
  }

  /** @internal The versions of `key` a context claims, as far as the harness has seen them created. */
  claimedBy(key: string, context: VersionVector): Set<VersionId> {
    const seen = new Set<VersionId>()
    const prefix = `${key}\u0000`
    for (const id of this.pasts.keys()) {
      if (!id.startsWith(prefix)) continue
      const dot = id.slice(prefix.length)
      const colon = dot.lastIndexOf(':')
      if ((context[dot.slice(0, colon)] ?? 0) >= Number(dot.slice(colon + 1))) seen.add(id)
    }
    return seen
  }

  protected override createClient(endpoint: SimClientEndpoint<QuorumReply>): QuorumClient {
    return new QuorumClient(this, endpoint)
  }

  /**
   * Acknowledged puts that no node still reflects, up or down (a down node's disk counts: it
   * comes back with it): none holds the put's version or a version whose writer had seen it
   * (as a stored version or a hint). Under last-write-wins a concurrent put that lost is
   * counted here: nobody saw it, it is gone.
   */
  private lostPuts(reflected: ReadonlySet<VersionId>): number {
    return this.acknowledged.filter((put) => !reflected.has(versionId(put.key, put.dot))).length
  }

  /**
   * Checks every version any node ever stored durably (every record still in the simulated
   * disks; a checkpoint drops the versions it superseded): those the harness saw made and no
   * node reflects, and dots that name two different versions.
   */
  private storedVersionChecks(
    reflected: ReadonlySet<VersionId>,
  ): Pick<QuorumReport, 'lostStoredVersions' | 'reissuedDots'> {
    const named = new Map<VersionId, string>()
    let reissuedDots = 0
    const note = (key: string, version: Version) => {
      const id = versionId(key, version.dot)
      const text = `${version.stamp} ${canonicalJson(version.value)}`
      const known = named.get(id)
      if (known === undefined) named.set(id, text)
      else if (known !== text) reissuedDots++
    }
    for (const node of this.config.nodes) {
      for (const record of this.host(node).storage.records()) {
        if (record.type === 'version') note(record.key, record.version)
        else if (record.type === 'hint') for (const version of record.versions) note(record.key, version)
        else if (record.type === 'snapshot') {
          for (const [key, versions] of record.store) for (const version of versions) note(key, version)
          for (const hint of record.hints) for (const version of hint.versions) note(hint.key, version)
        }
      }
    }
    let lostStoredVersions = 0
    for (const id of named.keys()) if (this.pasts.has(id) && !reflected.has(id)) lostStoredVersions++
    return { lostStoredVersions, reissuedDots }
  }

  /**
   * The versions the nodes hold (stored or hinted; a node that is down, as its disk holds
   * them), and every version their writers had seen.
   */
  private reflected(): Set<VersionId> {
    const held = new Set<VersionId>()
    for (const node of this.config.nodes) {
      const state = this.host(node).durableState()
      for (const [key, versions] of state.store)
        for (const version of versions) held.add(versionId(key, version.dot))
      for (const hint of state.hints.values()) {
        for (const version of hint.versions) held.add(versionId(hint.key, version.dot))
      }
    }
    const reflected = new Set<VersionId>()
    for (const id of held) {
      reflected.add(id)
      for (const earlier of this.pasts.get(id) ?? []) reflected.add(earlier)
    }
    return reflected
  }

  /**
   * Learns every new version's dot as its coordinator makes it: from the pending put (W > 1),
   * or from the acknowledgement in the same step (W = 1 answers at once).
   */
  private observe(before: QuorumState, after: QuorumState, effects: readonly QuorumEffect[]): void {
    for (const [op, pending] of after.pending) {
      if (pending.kind === 'put' && !before.pending.has(op))
        this.learnDot(pending.requestId, pending.version.dot)
    }
    for (const effect of effects) {
      if (effect.type === 'reply' && effect.reply.type === 'put-ok')
        this.learnDot(effect.reply.id, effect.reply.dot)
      if (
        effect.type === 'send' &&
        effect.message.type === 'coordinated' &&
        effect.message.reply.type === 'put-ok'
      ) {
        this.learnDot(effect.message.reply.id, effect.message.reply.dot)
      }
    }
    this.totals.hintsStored += after.stats.hintsStored - before.stats.hintsStored
    this.totals.hintsDelivered += after.stats.hintsDelivered - before.stats.hintsDelivered
    this.totals.lwwDiscarded += after.stats.lwwDiscarded - before.stats.lwwDiscarded
  }
}

/**
 * A client of a {@link QuorumSim}. It keeps the context of its last read or write of each key
 * and sends it with the next put, as a Dynamo client does, so its own writes supersede what it
 * has seen and only truly concurrent writes become siblings.
 */
export class QuorumClient {
  private readonly contexts = new Map<string, VersionVector>()
  /** The versions of each key this client has been shown (for the harness's lost-put check). */
  private readonly seen = new Map<string, ReadonlySet<string>>()
  private readonly sim: QuorumSim
  private readonly endpoint: SimClientEndpoint<QuorumReply>

  constructor(sim: QuorumSim, endpoint: SimClientEndpoint<QuorumReply>) {
    this.sim = sim
    this.endpoint = endpoint
  }

  get name(): string {
    return this.endpoint.id
  }

  /** Writes `value` through `node` (coordinator), with this client's context for the key. */
  async put(
    node: string,
    key: string,
    value: JsonValue,
    options: { readonly w?: number; readonly sloppy?: boolean; readonly context?: VersionVector } = {},
  ): Promise<PutOutcome> {
    const id = this.endpoint.nextId()
    const handle = this.sim.recorder.invoke(this.name, key, 'write', value, this.sim.network.now())
    const request: QuorumRequest = {
      type: 'put',
      id,
      key,
      value,
      context: options.context ?? this.contexts.get(key) ?? {},
      w: options.w ?? null,
      sloppy: options.sloppy ?? null,
    }
    this.sim.recordPutSent(
      id,
      key,
      options.context === undefined
        ? (this.seen.get(key) ?? new Set())
        : this.sim.claimedBy(key, options.context),
    )
    const reply = await this.endpoint.request(node, request)
    const now = this.sim.network.now()
    if (reply?.type === 'put-ok') {
      this.sim.recorder.complete(handle, 'ok', now)
      this.contexts.set(key, reply.context)
      this.seen.set(key, this.sim.seenThrough(key, [reply.dot, ...reply.dots]))
      this.sim.recordPut({ key, value, dot: reply.dot }, reply.sloppy)
      return { ok: true, context: reply.context, values: reply.values, sloppy: reply.sloppy }
    }
    if (reply?.type === 'rejected') {
      this.sim.recorder.complete(handle, reply.maybeApplied ? 'unknown' : 'failed', now)
      return { ok: false, reason: reply.reason, maybeApplied: reply.maybeApplied }
    }
    this.sim.recorder.complete(handle, reply === null ? 'unknown' : 'failed', now)
    return { ok: false, reason: reply === null ? 'timeout' : reply.type, maybeApplied: reply === null }
  }

  /** Reads `key` through `node`; the recorded value is the register view (latest by stamp). */
  async get(
    node: string,
    key: string,
    options: { readonly r?: number; readonly repair?: ReadRepairMode } = {},
  ): Promise<GetOutcome> {
    const id = this.endpoint.nextId()
    const handle = this.sim.recorder.invoke(this.name, key, 'read', undefined, this.sim.network.now())
    const request: QuorumRequest = {
      type: 'get',
      id,
      key,
      r: options.r ?? null,
      repair: options.repair ?? null,
    }
    const reply = await this.endpoint.request(node, request)
    const now = this.sim.network.now()
    if (reply?.type === 'get-ok') {
      this.sim.recorder.complete(handle, 'ok', now, reply.value ?? undefined)
      this.contexts.set(key, reply.context)
      this.seen.set(key, this.sim.seenThrough(key, reply.dots))
      this.sim.recordRead(key, reply.values.length, reply.context)
      return { ok: true, value: reply.value, values: reply.values, context: reply.context }
    }
    this.sim.recorder.complete(handle, 'failed', now)
    return {
      ok: false,
      reason: reply === null ? 'timeout' : reply.type === 'rejected' ? reply.reason : reply.type,
    }
  }

  /** Sends raw frame text to a node and returns its reply (tests of malformed input). */
  async raw(node: string, frame: string, id = this.endpoint.nextId()): Promise<QuorumReply | null> {
    return this.endpoint.sendRaw(node, frame, id)
  }
}
