import { join } from 'node:path'
import { SqliteNodeStorage } from '../../node/sqlite-node-storage.js'
import { createSingleLeaderConfig, type ReplicationMode } from '../../single-leader/config.js'
import { epochAt, lastLsn } from '../../single-leader/log.js'
import type { SingleLeaderRecord, SingleLeaderStatus } from '../../single-leader/messages.js'
import { createSingleLeaderMachine } from '../../single-leader/node.js'
import type { OperationOutcome, ReadRoute } from '../target.js'
import { LoopbackTarget, type LoopbackTargetOptions, type NodeReply } from './loopback-target.js'

/** Timing of the real single-leader cluster: a loaded 2-core machine must not see false failures. */
export const LOOPBACK_SINGLE_LEADER_TIMING = {
  heartbeatMs: 50,
  electionTimeoutMs: 600,
  leaseMs: 400,
} as const

/** Options for {@link LoopbackSingleLeaderTarget}. */
export interface LoopbackSingleLeaderTargetOptions extends LoopbackTargetOptions {
  readonly replication: ReplicationMode
}

interface AcknowledgedWrite {
  readonly lsn: number
  readonly epoch: number
}

/**
 * The single-leader design as real node processes (see {@link LoopbackTarget}). Clients
 * behave as in simulation: writes and primary reads go to the leader a client believes in
 * (following `not-leader` hints, or trying the next node after a silence); `nearest` reads go
 * to a follower of the client's own without a token. Lost acknowledged writes are counted as
 * in simulation, on the final leader's log recovered from its SQLite file once the nodes
 * stopped: an acknowledged (LSN, epoch) it does not hold is lost.
 */
export class LoopbackSingleLeaderTarget extends LoopbackTarget {
  protected readonly design = 'single-leader'
  protected readonly settings: Record<string, unknown>
  private readonly replication: ReplicationMode
  private readonly hints = new Map<string, string>()
  private readonly acknowledged: AcknowledgedWrite[] = []
  private semiSyncFallbacks = 0
  private firstLeader: string | null = null
  private finalLeader: string | null = null

  constructor(options: LoopbackSingleLeaderTargetOptions) {
    super(options)
    this.replication = options.replication
    this.settings = { replication: options.replication, ...LOOPBACK_SINGLE_LEADER_TIMING }
  }

  protected async ready(): Promise<boolean> {
    const leader = await this.agreedLeader()
    if (leader === null) return false
    this.firstLeader = leader
    return true
  }

  async write(client: string, key: string, value: string): Promise<OperationOutcome> {
    const node = this.target(client)
    const reply = await this.ask(client, node, { type: 'write', key, value })
    if (reply?.type === 'write-ok') {
      this.hints.set(client, node)
      this.acknowledged.push({ lsn: reply.lsn as number, epoch: reply.epoch as number })
      if (this.replication.mode === 'semi-sync' && reply.durability === 'leader') this.semiSyncFallbacks++
      return { ok: true }
    }
    this.learn(client, node, reply)
    if (reply?.type === 'rejected') return { ok: false, maybeApplied: reply.maybeApplied === true }
    return { ok: false, maybeApplied: reply === null }
  }

  async read(client: string, key: string, route: ReadRoute): Promise<OperationOutcome> {
    const node = route === 'primary' ? this.target(client) : this.follower(client)
    const reply = await this.ask(client, node, {
      type: 'read',
      key,
      consistency: route === 'primary' ? 'leader' : 'replica',
      minLsn: 0,
      waitMs: 0,
    })
    if (reply?.type === 'read-ok') {
      const read = reply.value
      return { ok: true, value: typeof read === 'string' ? read : null, siblings: 1 }
    }
    if (route === 'primary') this.learn(client, node, reply)
    return { ok: false, maybeApplied: false }
  }

  /** Every node runs and holds the leader's whole log, committed. */
  async converged(): Promise<boolean> {
    const all = await this.statuses<SingleLeaderStatus>()
    if (all.length < this.options.nodes.length) return false
    const leader = leaderOf(all)
    if (leader === null || leader.commitLsn !== leader.lastLsn) return false
    return all.every(
      (status) =>
        status.epoch === leader.epoch &&
        status.lastLsn === leader.lastLsn &&
        status.commitLsn === leader.commitLsn,
    )
  }

  fallbacks(): number {
    return this.semiSyncFallbacks
  }

  protected async central(): Promise<string> {
    return leaderOf(await this.statuses<SingleLeaderStatus>())?.node ?? (this.options.nodes[0] as string)
  }

  /** The leader and the nodes after it, fewer than half of all, with `c1`; the rest with the other clients. */
  protected async partitionGroups(): Promise<readonly (readonly string[])[]> {
    const nodes = this.options.nodes
    const leader = await this.central()
    const size = Math.max(1, Math.floor((nodes.length - 1) / 2))
    const minority = Array.from(
      { length: size },
      (_, i) => nodes[(nodes.indexOf(leader) + i) % nodes.length] as string,
    )
    return [minority, nodes.filter((node) => !minority.includes(node))]
  }

  protected farNode(): string {
    return this.follower(this.options.clients[0] ?? '')
  }

  protected override async beforeStop(): Promise<void> {
    this.finalLeader = leaderOf(await this.statuses<SingleLeaderStatus>())?.node ?? null
  }

  protected async countLost(dir: string): Promise<number> {
    // Without a leader nothing can be read back: every acknowledged write counts as lost.
    if (this.finalLeader === null) return this.acknowledged.length
    const storage = new SqliteNodeStorage<SingleLeaderRecord>(join(dir, `${this.finalLeader}.sqlite`))
    try {
      const config = createSingleLeaderConfig({
        nodes: this.options.nodes,
        replication: this.replication,
        ...LOOPBACK_SINGLE_LEADER_TIMING,
      })
      const state = createSingleLeaderMachine(this.finalLeader, config).recover(
        await storage.load(),
        Date.now(),
      )
      return this.acknowledged.filter(
        (write) => write.lsn > lastLsn(state.log) || epochAt(state.log, write.lsn) !== write.epoch,
      ).length
    } finally {
      storage.close()
    }
  }

  /** The node every answering node follows, when they agree on one leader and epoch. */
  private async agreedLeader(): Promise<string | null> {
    const all = await this.statuses<SingleLeaderStatus>()
    const leader = leaderOf(all)
    if (leader === null || all.length < this.options.nodes.length) return null
    return all.every((status) => status.leader === leader.node && status.epoch === leader.epoch)
      ? leader.node
      : null
  }

  private target(client: string): string {
    return this.hints.get(client) ?? this.firstLeader ?? (this.options.nodes[0] as string)
  }

  /** After a refusal or a silence: follow the hint, or try the next node. */
  private learn(client: string, asked: string, reply: NodeReply): void {
    const hint = reply?.type === 'rejected' ? reply.leader : null
    const nodes = this.options.nodes
    this.hints.set(
      client,
      typeof hint === 'string' && hint !== asked
        ? hint
        : (nodes[(nodes.indexOf(asked) + 1) % nodes.length] as string),
    )
  }

  /** As in simulation: the k-th node after the first leader for the k-th client. */
  private follower(client: string): string {
    const nodes = this.options.nodes
    const index = Math.max(0, this.options.clients.indexOf(client))
    const first = nodes.indexOf(this.firstLeader ?? (nodes[0] as string))
    return nodes[(first + 1 + (index % (nodes.length - 1))) % nodes.length] as string
  }
}

/** The leader of the highest epoch among `statuses`, or null. */
function leaderOf(statuses: readonly SingleLeaderStatus[]): SingleLeaderStatus | null {
  let leader: SingleLeaderStatus | null = null
  for (const status of statuses) {
    if (status.role === 'leader' && (leader === null || status.epoch > leader.epoch)) leader = status
  }
  return leader
}
