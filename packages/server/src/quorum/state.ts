import { ChorusError, ErrorCode, HLC_ZERO, type HlcState, parseHlc, receiveHlc } from '@chorus/core'
import type { NodeEffect } from '../machine.js'
import type { NodeId } from '../node-id.js'
import { ShardedMap } from '../sharded-map.js'
import type { QuorumConfig, ReadRepairMode } from './config.js'
import { type Incarnation, nextIncarnation } from './incarnation.js'
import type { QuorumMessage, QuorumRecord, QuorumReply, QuorumStats, QuorumStatus } from './messages.js'
import { createHashRing, type HashRing, preferenceList } from './ring.js'
import { applyVersion, mergeVersions, type Version } from './versions.js'

/** A put a stand-in keeps for a home node that was down: the coordinator's sibling set. */
export interface Hint {
  readonly id: string
  readonly home: NodeId
  readonly key: string
  readonly versions: readonly Version[]
}

/** One replica a coordinator asks: a home node, or a stand-in holding a hint for `hintFor`. */
export interface Target {
  readonly node: NodeId
  readonly hintFor: NodeId | null
}

/** Where a put came from: a client's connection, or a node that handed it over. */
export type PutOrigin =
  | { readonly kind: 'client' }
  | { readonly kind: 'node'; readonly node: NodeId; readonly op: string }

/** A request a coordinator is working on. */
export type PendingOp =
  | {
      readonly kind: 'put'
      /** The client that asked (through `origin`). */
      readonly client: string
      readonly requestId: string
      readonly origin: PutOrigin
      readonly key: string
      readonly version: Version
      /** The coordinator's siblings of the key after the put: what is shipped and answered. */
      readonly siblings: readonly Version[]
      readonly targets: readonly Target[]
      readonly acked: readonly NodeId[]
      readonly need: number
      readonly deadline: number
    }
  | {
      readonly kind: 'get'
      readonly client: string
      readonly requestId: string
      readonly key: string
      readonly targets: readonly Target[]
      readonly replies: readonly (readonly [NodeId, readonly Version[]])[]
      readonly need: number
      readonly repair: ReadRepairMode
      /** collect: waiting for R replies; repair: blocking write-back; answered: async repair of late replies. */
      readonly phase: 'collect' | 'repair' | 'answered'
      readonly merged: readonly Version[]
      readonly holders: readonly NodeId[]
      readonly deadline: number
    }
  /** A put handed to a home replica of its key, waiting for its answer. */
  | {
      readonly kind: 'forward'
      readonly client: string
      readonly requestId: string
      readonly to: NodeId
      readonly deadline: number
    }

/** The whole state of a quorum node; durable parts are rebuilt by {@link recoverQuorumState}. */
export interface QuorumState {
  readonly id: NodeId
  readonly config: QuorumConfig
  readonly ring: HashRing
  /** Versions of the keys this node is a home replica for. */
  readonly store: ShardedMap<readonly Version[]>
  /** Hints this node keeps for others, by id. */
  readonly hints: ReadonlyMap<string, Hint>
  readonly clock: HlcState
  /** This life as a coordinator: the actor id of its dots, and whether its record is durable. */
  readonly incarnation: Incarnation
  /** Last time each peer was heard from (any message). */
  readonly seenAt: ReadonlyMap<NodeId, number>
  readonly pending: ReadonlyMap<string, PendingOp>
  /**
   * The puts other nodes handed this one to coordinate (`coordinate`), as `from` and op, the
   * last {@link HAND_OVERS_KEPT}, oldest first: a copy of one the network delivers again is
   * ignored, whether this node refused the first or coordinated it.
   */
  readonly handOvers: readonly string[]
  /** Prefix of this incarnation's op ids: node and start time, so ops never repeat across restarts. */
  readonly opPrefix: string
  readonly nextOp: number
  readonly lastPingAt: number
  readonly lastHandoffAt: number
  readonly lastAntiEntropyAt: number
  readonly antiEntropyCursor: number
  /** Records persisted since the last checkpoint (all that were loaded, after a start). */
  readonly sinceCheckpoint: number
  readonly stats: QuorumStats
}

/** How many hand-overs a node remembers taking (see `QuorumState.handOvers`). */
export const HAND_OVERS_KEPT = 1_024

/** Effects of a quorum node. */
export type QuorumEffect = NodeEffect<QuorumMessage, QuorumReply, QuorumRecord>

/** Collects the effects of one step, in order. */
export type QuorumOut = QuorumEffect[]

const zeroStats: QuorumStats = {
  putsCoordinated: 0,
  putsForwarded: 0,
  getsCoordinated: 0,
  sloppyPuts: 0,
  hintsStored: 0,
  hintsDelivered: 0,
  readRepairs: 0,
  lwwDiscarded: 0,
  antiEntropyExchanges: 0,
  antiEntropyKeysSent: 0,
  timeouts: 0,
  unavailable: 0,
}

/**
 * Rebuilds a quorum node from its records: stored versions (re-merged, which gives the same
 * result in any order) and hints not yet handed off. Every rebuild is a new incarnation, one
 * past the highest recorded (see `Incarnation`), whose dots start from 1 per key under an actor
 * id of their own; a key's next dot follows from the versions held (see `nextDot`). The clock
 * restarts no earlier than the latest stamp this node issued, so its stamps stay monotonic.
 */
export function recoverQuorumState(
  id: NodeId,
  config: QuorumConfig,
  records: readonly QuorumRecord[],
  now: number,
): QuorumState {
  const store = new Map<string, readonly Version[]>()
  const hints = new Map<string, Hint>()
  let clock: HlcState = HLC_ZERO
  const observe = (version: Version) => {
    const parts = parseHlc(version.stamp)
    if (parts.replica === id) clock = receiveHlc(clock, parts, now, Number.POSITIVE_INFINITY).state
  }
  for (const record of records) {
    switch (record.type) {
      case 'version':
        store.set(
          record.key,
          applyVersion(store.get(record.key) ?? [], record.version, config.conflicts).versions,
        )
        observe(record.version)
        break
      case 'hint':
        hints.set(record.id, { id: record.id, home: record.home, key: record.key, versions: record.versions })
        for (const version of record.versions) observe(version)
        break
      case 'hint-done':
        for (const hint of record.ids) hints.delete(hint)
        break
      case 'snapshot':
        clock = receiveHlc(
          clock,
          { wall: record.clock.wall, counter: record.clock.counter, replica: id },
          now,
          Number.POSITIVE_INFINITY,
        ).state
        for (const [key, versions] of record.store)
          store.set(key, mergeVersions(store.get(key) ?? [], versions, config.conflicts).versions)
        for (const hint of record.hints) hints.set(hint.id, hint)
        break
      case 'incarnation':
        break
    }
  }
  const incarnation = nextIncarnation(id, records)
  return {
    id,
    config,
    ring: createHashRing(config.nodes, config.vnodes),
    store: ShardedMap.from(store),
    hints,
    clock,
    incarnation,
    seenAt: new Map(config.nodes.map((node) => [node, now])),
    pending: new Map(),
    handOvers: [],
    opPrefix: `${incarnation.actor}.${now}`,
    nextOp: 1,
    lastPingAt: Number.NEGATIVE_INFINITY,
    lastHandoffAt: now,
    lastAntiEntropyAt: now,
    antiEntropyCursor: config.nodes.indexOf(id) + 1,
    sinceCheckpoint: records.length,
    stats: zeroStats,
  }
}

/** Adds `delta` to one counter. */
export function bumpStat(state: QuorumState, counter: keyof QuorumStats, delta = 1): QuorumState {
  if (delta === 0) return state
  return { ...state, stats: { ...state.stats, [counter]: state.stats[counter] + delta } }
}

/** True when `node` is this node or was heard from within the failure timeout. */
export function believedUp(state: QuorumState, node: NodeId, now: number): boolean {
  if (node === state.id) return true
  return now - (state.seenAt.get(node) ?? Number.NEGATIVE_INFINITY) <= state.config.failureTimeoutMs
}

/** The key's home replicas: the first N nodes of its preference list. */
export function homeReplicas(state: QuorumState, key: string): NodeId[] {
  return preferenceList(state.ring, key, state.config.replicas)
}

/**
 * Whom a coordinator asks about `key`.
 *
 * Strict: the N home replicas, up or not (one that is down simply never answers). Sloppy: each
 * home replica believed up, and for each one believed down the next healthy node further
 * along the ring, which holds the write as a hint for it.
 */
export function targetsFor(state: QuorumState, key: string, sloppy: boolean, now: number): Target[] {
  const homes = homeReplicas(state, key)
  if (!sloppy) return homes.map((node) => ({ node, hintFor: null }))
  const spares = preferenceList(state.ring, key, state.config.nodes.length)
    .slice(homes.length)
    .filter((node) => believedUp(state, node, now))
  const targets: Target[] = []
  for (const home of homes) {
    if (believedUp(state, home, now)) targets.push({ node: home, hintFor: null })
    else {
      const spare = spares.shift()
      if (spare !== undefined) targets.push({ node: spare, hintFor: home })
    }
  }
  return targets
}

/**
 * The quorum a request asks for (`w` or `r`), or the cluster's; throws `invalid-argument` when
 * it exceeds N.
 */
export function quorumSize(state: QuorumState, requested: number | null, name: 'w' | 'r'): number {
  const size = requested ?? (name === 'w' ? state.config.writeQuorum : state.config.readQuorum)
  if (size > state.config.replicas) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `request.${name}: ${size} exceeds the replica count N=${state.config.replicas}`,
    )
  }
  return size
}

/** The state with `pending` recorded under `op`. */
export function withPending(state: QuorumState, op: string, pending: PendingOp): QuorumState {
  const map = new Map(state.pending)
  map.set(op, pending)
  return { ...state, pending: map }
}

/** The state without the request `op`. */
export function withoutPending(state: QuorumState, op: string): QuorumState {
  const map = new Map(state.pending)
  map.delete(op)
  return { ...state, pending: map }
}

/** A fresh op id for this node's next request. */
export function takeOpId(state: QuorumState): { readonly state: QuorumState; readonly op: string } {
  return { state: { ...state, nextOp: state.nextOp + 1 }, op: `${state.opPrefix}.${state.nextOp}` }
}

/** The versions of `key` here, with any hinted versions this node keeps for it. */
export function localVersions(state: QuorumState, key: string): readonly Version[] {
  let versions = state.store.get(key) ?? []
  for (const hint of state.hints.values()) {
    if (hint.key === key) versions = mergeVersions(versions, hint.versions, state.config.conflicts).versions
  }
  return versions
}

/**
 * Merges `versions` of `key` into the store, persisting what was new. Returns the new state
 * and whether anything changed.
 */
export function storeVersions(
  state: QuorumState,
  out: QuorumOut,
  key: string,
  versions: readonly Version[],
  now: number,
): { readonly state: QuorumState; readonly changed: boolean } {
  let current = state.store.get(key) ?? []
  const accepted: Version[] = []
  let discarded = 0
  let clock = state.clock
  for (const version of versions) {
    const result = applyVersion(current, version, state.config.conflicts)
    discarded += result.discarded
    if (result.changed) {
      current = result.versions
      accepted.push(version)
    }
    clock = receiveHlc(clock, parseHlc(version.stamp), now, Number.POSITIVE_INFINITY).state
  }
  if (accepted.length === 0)
    return { state: bumpStat({ ...state, clock }, 'lwwDiscarded', discarded), changed: false }
  out.push({
    type: 'persist',
    records: accepted.map((version) => ({ type: 'version', key, version })),
    epoch: null,
  })
  const store = state.store.with(key, current)
  return { state: bumpStat({ ...state, store, clock }, 'lwwDiscarded', discarded), changed: true }
}

/**
 * Writes a checkpoint after a step that persisted records, once the records since the last
 * are at least `checkpointRecords` and twice the keys and hints the node holds: the node's
 * incarnation, clock, versions and hints, appended with `replace`, so storage drops every
 * older record (see `NodeStorage`). Rewriting the data so costs at most about half a record per
 * record persisted, and a node's storage holds about three times its data at most; a restart
 * re-merges the records since the last checkpoint. The incarnation written is this life's, so
 * the next life still takes a number past every one recorded.
 */
export function maybeCheckpoint(state: QuorumState, out: QuorumOut): QuorumState {
  let persisted = 0
  for (const effect of out) if (effect.type === 'persist') persisted += effect.records.length
  if (persisted === 0) return state
  const since = state.sinceCheckpoint + persisted
  if (since < Math.max(state.config.checkpointRecords, 2 * (state.store.size + state.hints.size)))
    return { ...state, sinceCheckpoint: since }
  const records: QuorumRecord[] = [
    { type: 'incarnation', number: state.incarnation.number },
    {
      type: 'snapshot',
      clock: { wall: state.clock.wall, counter: state.clock.counter },
      store: [...state.store],
      hints: [...state.hints.values()],
    },
  ]
  out.push({ type: 'persist', records, epoch: null, replace: true })
  return { ...state, sinceCheckpoint: 0 }
}

/** The snapshot `status` reports. */
export function quorumStatusOf(state: QuorumState, now: number): QuorumStatus {
  return {
    node: state.id,
    keys: state.store.size,
    hints: state.hints.size,
    up: state.config.nodes.filter((node) => node !== state.id && believedUp(state, node, now)),
    stats: state.stats,
  }
}
