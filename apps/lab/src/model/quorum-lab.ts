import type { JsonValue } from '@chorus/core'
import {
  digestOf,
  pickValue,
  type QuorumRejectReason,
  type QuorumReply,
  QuorumSim,
  type QuorumState,
  type ReadRepairMode,
  type Version,
} from '@chorus/server'
import { invalid, type OperationRecord } from './lab.js'
import { quorumLabel } from './message-label.js'
import { ServerLab } from './server-lab.js'
import { labTimings, nodeNames, startFaults } from './settings.js'
import type { LabAction, LabSettings, NodeView, ReadMode, Scoreboard } from './types.js'

function text(value: JsonValue | null | undefined): string {
  if (value === null || value === undefined) return '(nothing)'
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** A node's knowledge as a compact vector: each coordinator's highest dot it holds, over all keys. */
function clockOf(state: QuorumState): string {
  const highest = new Map<string, number>()
  for (const [, versions] of state.store) {
    for (const version of versions) {
      const [node, counter] = version.dot
      highest.set(node, Math.max(highest.get(node) ?? 0, counter))
    }
  }
  return [...highest]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([node, counter]) => `${node}:${counter}`)
    .join(' ')
}

/** How many versions each key has, for noticing siblings appear and go. */
function siblingCounts(state: QuorumState): Map<string, number> {
  const counts = new Map<string, number>()
  for (const [key, versions] of state.store) counts.set(key, versions.length)
  return counts
}

/** How the lab words a coordinator's refusal. */
const QUORUM_REJECTIONS: Record<QuorumRejectReason, string> = {
  unavailable: 'unavailable: too few replicas up',
  timeout: 'timeout at the coordinator',
  'too-large': 'too large: the siblings would not fit one message; write with the context of a read',
}

/**
 * The quorum (Dynamo-style) lab: a {@link QuorumSim} of n1…nN running the real node machine,
 * each key on N home replicas of a hash ring.
 *
 * A client sends each request to the node the person picks, which coordinates it. Writes wait
 * for W acknowledgements. Read modes take their natural quorum meaning:
 * - `any` reads with the configured R (may be stale when W + R ≤ N);
 * - `read-your-writes` reads with R' = max(R, N − W + 1), so the replicas read overlap every
 *   write quorum and a read meets the client's own acknowledged write (strict quorum);
 * - `monotonic` reads with that R' and blocking read repair, so what a read returned is on a
 *   write quorum before the client sees it and no later read can go back.
 */
export class QuorumLab extends ServerLab<QuorumState> {
  protected override readonly sim: QuorumSim

  private constructor(settings: LabSettings, sim: QuorumSim) {
    super({ settings, network: sim.network, nodes: sim.config.nodes, label: quorumLabel }, sim)
    this.sim = sim
  }

  /** Starts every node and lets the failure detector hear every peer once; that is lab time 0. */
  static async create(settings: LabSettings): Promise<QuorumLab> {
    const { n, w, r, sloppy, readRepair } = settings.quorum
    const sim = new QuorumSim({
      seed: settings.seed,
      nodes: nodeNames(settings),
      faults: startFaults(settings),
      tickMs: labTimings.tickMs,
      clientTimeoutMs: labTimings.clientTimeoutMs,
      config: {
        replicas: n,
        writeQuorum: w,
        readQuorum: r,
        sloppy,
        readRepair,
        requestTimeoutMs: labTimings.quorumRequestTimeoutMs,
        pingMs: labTimings.pingMs,
        failureTimeoutMs: labTimings.failureTimeoutMs,
        handoffMs: labTimings.handoffMs,
      },
    })
    await sim.start()
    await sim.run(labTimings.pingMs * 2)
    const lab = new QuorumLab(settings, sim)
    lab.begin()
    for (const state of sim.states()) lab.lastSeen.set(state.id, state)
    sim.onStep = (node, before, after) => lab.onStep(node, before, after)
    lab.event(
      'node',
      `cluster started: ${settings.nodes} nodes, N=${n} W=${w} R=${r}${sloppy ? ', sloppy quorum' : ''}, read repair ${readRepair}${w + r > n ? ' (W + R > N)' : ' (W + R ≤ N)'}`,
    )
    return lab
  }

  protected override validateForDesign(action: LabAction): void {
    if (action.type === 'promote') {
      invalid('promote is for single-leader clusters; a quorum cluster has no leader (any node coordinates)')
    }
    if (action.type === 'resolve') {
      invalid(
        'resolve is for multi-leader with the manual resolver; in a quorum cluster, write the key again to supersede its siblings',
      )
    }
    this.checkNodeAction(action)
  }

  protected override async perform(action: LabAction): Promise<void> {
    if (this.performNetwork(action) || (await this.performNode(action))) return
    switch (action.type) {
      case 'write': {
        this.ensureClient(action.client)
        this.event('action', `${action.client} puts ${action.key} = ${action.value} via ${action.node}`)
        const client = this.sim.client(action.client)
        this.startOperation(
          { client: action.client, node: action.node, kind: 'write', key: action.key, value: action.value },
          labTimings.clientTimeoutMs,
          () => client.put(action.node, action.key, action.value),
        )
        return
      }
      case 'read': {
        this.ensureClient(action.client)
        const { r, repair } = this.readQuorum(action.mode)
        this.event(
          'action',
          `${action.client} gets ${action.key} via ${action.node} (${action.mode}: R=${r})`,
        )
        const client = this.sim.client(action.client)
        this.startOperation(
          { client: action.client, node: action.node, kind: 'read', key: action.key, mode: action.mode },
          labTimings.clientTimeoutMs,
          () => client.get(action.node, action.key, { r, ...(repair === undefined ? {} : { repair }) }),
        )
        return
      }
      default:
        return
    }
  }

  /** The R (and read repair) a read mode asks for; see the class comment. */
  private readQuorum(mode: ReadMode): { readonly r: number; readonly repair?: ReadRepairMode } {
    const { n, w, r } = this.settings.quorum
    if (mode === 'any') return { r }
    const overlapping = Math.max(r, n - w + 1)
    return mode === 'monotonic' ? { r: overlapping, repair: 'blocking' } : { r: overlapping }
  }

  protected override onReply(op: OperationRecord, message: string): void {
    const reply = JSON.parse(message) as QuorumReply
    switch (reply.type) {
      case 'put-ok':
        this.finish(
          op,
          'ok',
          `version ${reply.dot[0]}:${reply.dot[1]}${reply.sloppy ? ', sloppy (a stand-in counted)' : ''}${reply.values.length > 1 ? `, ${reply.values.length} siblings` : ''}`,
        )
        return
      case 'get-ok':
        op.value = text(reply.value)
        this.finish(
          op,
          'ok',
          reply.values.length > 1
            ? `${reply.values.length} siblings: ${reply.values.map(text).join(' | ')}`
            : undefined,
        )
        return
      case 'rejected':
        this.finish(op, 'rejected', QUORUM_REJECTIONS[reply.reason])
        return
      case 'error':
        this.finish(op, 'rejected', `${reply.code}: ${reply.message}`)
        return
      default:
        return
    }
  }

  protected override nodeViews(): NodeView[] {
    return this.viewNodes(this.sim.config.nodes, 'node', (id, state, status) => {
      const keys = [...state.store].map(([key]) => key).sort()
      return {
        id,
        role: 'node',
        ...status,
        clock: clockOf(state),
        values: keys.map((key) => {
          const versions = state.store.get(key) ?? []
          const values = versions.map((version) => text(version.value))
          return versions.length > 1 ? { key, values, resolved: text(pickValue(versions)) } : { key, values }
        }),
        ...(state.hints.size === 0
          ? {}
          : {
              hints: [...state.hints.values()]
                .map((hint) => ({
                  key: hint.key,
                  home: hint.home,
                  values: hint.versions.map((version) => text(version.value)),
                }))
                .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.home < b.home ? -1 : 1)),
            }),
      }
    })
  }

  protected override scoreboard(): Scoreboard {
    const report = this.sim.report()
    return {
      acknowledgedWrites: report.putsAcknowledged,
      lostAcknowledgedWrites: report.lostAcknowledgedPuts,
      staleReads: report.staleReads,
      // Conflicts, not reads of them: a sibling set read three times is one.
      conflicts: report.siblingSetsSurfaced,
      divergentReplicas: this.divergentNodes(),
      rejectedWrites: this.operations.filter((op) => op.kind === 'write' && op.outcome === 'rejected').length,
      leaders: 0,
    }
  }

  /**
   * Nodes that are up and hold, for some key, versions other than what most of the key's home
   * replicas that are up hold (the majority view; ties go to the first home's view).
   */
  private divergentNodes(): number {
    const divergent = new Set<string>()
    for (const key of this.sim.keys()) {
      const homes = this.sim.homes(key).filter((node) => this.sim.host(node).state !== null)
      const digests = homes.map((node) => digestOf(this.sim.stored(node, key)))
      const counts = new Map<number, number>()
      for (const digest of digests) counts.set(digest, (counts.get(digest) ?? 0) + 1)
      let reference = digests[0]
      for (const [digest, count] of counts) {
        if (count > (counts.get(reference as number) ?? 0)) reference = digest
      }
      homes.forEach((node, index) => {
        if (digests[index] !== reference) divergent.add(node)
      })
    }
    return divergent.size
  }

  private onStep(node: string, before: QuorumState, after: QuorumState): void {
    this.lastSeen.set(node, after)
    if (before.store === after.store) return
    const was = siblingCounts(before)
    for (const [key, count] of siblingCounts(after)) {
      const previous = was.get(key) ?? 0
      if (count > 1 && previous <= 1) {
        const versions = after.store.get(key) ?? []
        this.event(
          'conflict',
          `${node} holds ${count} siblings of ${key}: ${versions.map((v: Version) => text(v.value)).join(' | ')}`,
        )
      } else if (count === 1 && previous > 1) {
        this.event(
          'conflict',
          `${node}: the siblings of ${key} are settled into ${text(after.store.get(key)?.[0]?.value)}`,
        )
      }
    }
  }
}
