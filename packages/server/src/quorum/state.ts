import { HLC_ZERO, type HlcState, parseHlc, receiveHlc } from '@chorus/core'
import type { NodeEffect } from '../machine.js'
import type { NodeId } from '../node-id.js'
import type { QuorumConfig, ReadRepairMode } from './config.js'
import type { QuorumMessage, QuorumRecord, QuorumReply, QuorumStats, QuorumStatus } from './messages.js'
import { createHashRing, type HashRing, preferenceList } from './ring.js'
import { applyVersion, type Version } from './versions.js'

/** A version a stand-in keeps for a home node that was down when it was written. */
export interface Hint {
  readonly id: string
  readonly home: NodeId
  readonly key: string
  readonly version: Version
}

/** One replica a coordinator asks: a home node, or a stand-in holding a hint for `hintFor`. */
export interface Target {
  readonly node: NodeId
  readonly hintFor: NodeId | null
}

/** A request a coordinator is working on. */
export type PendingOp =
  | {
      readonly kind: 'put'
      readonly client: string
      readonly requestId: string
      readonly key: string
      readonly version: Version
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

/** The whole state of a quorum node; durable parts are rebuilt by {@link recoverQuorumState}. */
export interface QuorumState {
  readonly id: NodeId
  readonly config: QuorumConfig
  readonly ring: HashRing
  /** Versions of the keys this node is a home replica for. */
  readonly store: ReadonlyMap<string, readonly Version[]>
  /** Hints this node keeps for others, by id. */
  readonly hints: ReadonlyMap<string, Hint>
  /** The last dot counter this node used as a coordinator. */
  readonly counter: number
  readonly clock: HlcState
  /** Last time each peer was heard from (any message). */
  readonly seenAt: ReadonlyMap<NodeId, number>
  readonly pending: ReadonlyMap<string, PendingOp>
  /** Prefix of this incarnation's op ids: node and start time, so ops never repeat across restarts. */
  readonly opPrefix: string
  readonly nextOp: number
  readonly lastPingAt: number
  readonly lastHandoffAt: number
  readonly lastAntiEntropyAt: number
  readonly antiEntropyCursor: number
  readonly stats: QuorumStats
}

/** Effects of a quorum node. */
export type QuorumEffect = NodeEffect<QuorumMessage, QuorumReply, QuorumRecord>

/** Collects the effects of one step, in order. */
export type QuorumOut = QuorumEffect[]

const zeroStats: QuorumStats = {
  putsCoordinated: 0,
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
 * result in any order), hints not yet handed off, and the dot counter. The clock restarts no
 * earlier than the latest stamp this node issued, so its stamps stay monotonic.
 */
export function recoverQuorumState(
  id: NodeId,
  config: QuorumConfig,
  records: readonly QuorumRecord[],
  now: number,
): QuorumState {
  const store = new Map<string, readonly Version[]>()
  const hints = new Map<string, Hint>()
  let counter = 0
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
        hints.set(record.id, { id: record.id, home: record.home, key: record.key, version: record.version })
        observe(record.version)
        break
      case 'hint-done':
        for (const hint of record.ids) hints.delete(hint)
        break
      case 'counter':
        counter = Math.max(counter, record.value)
        break
    }
  }
  return {
    id,
    config,
    ring: createHashRing(config.nodes, config.vnodes),
    store,
    hints,
    counter,
    clock,
    seenAt: new Map(config.nodes.map((node) => [node, now])),
    pending: new Map(),
    opPrefix: `${id}.${now}`,
    nextOp: 1,
    lastPingAt: Number.NEGATIVE_INFINITY,
    lastHandoffAt: now,
    lastAntiEntropyAt: now,
    antiEntropyCursor: config.nodes.indexOf(id) + 1,
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

/** A fresh op id for this node's next request. */
export function takeOpId(state: QuorumState): { readonly state: QuorumState; readonly op: string } {
  return { state: { ...state, nextOp: state.nextOp + 1 }, op: `${state.opPrefix}.${state.nextOp}` }
}

/** The versions of `key` here, with any hinted versions this node keeps for it. */
export function localVersions(state: QuorumState, key: string): readonly Version[] {
  let versions = state.store.get(key) ?? []
  for (const hint of state.hints.values()) {
    if (hint.key === key) versions = applyVersion(versions, hint.version, state.config.conflicts).versions
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
  const store = new Map(state.store)
  store.set(key, current)
  return { state: bumpStat({ ...state, store, clock }, 'lwwDiscarded', discarded), changed: true }
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
