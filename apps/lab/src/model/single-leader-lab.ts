import type { JsonValue } from '@chorus/core'
import {
  dataThrough,
  epochAt,
  isLaterEntry,
  lastLsn,
  type ReplicationMode,
  readableData,
  readableLsn,
  type SingleLeaderReply,
  SingleLeaderSim,
  type SingleLeaderState,
} from '@chorus/server'
import { invalid, type OperationRecord } from './lab.js'
import { singleLeaderLabel } from './message-label.js'
import { ServerLab } from './server-lab.js'
import { labTimings, nodeNames, startFaults } from './settings.js'
import type { LabAction, LabSettings, NodeView, Scoreboard } from './types.js'

/** A read token: an entry's LSN and the epoch of that entry (0, 0: none). */
interface Token {
  lsn: number
  epoch: number
}

/** What the lab remembers of each client: the tokens its reads carry. */
interface ClientTokens {
  /** Its last acknowledged write (read-your-writes). */
  lastWrite: Token
  /** The latest entry it has read (monotonic reads). */
  highestRead: Token
}

/** The later of a token and the entry (`lsn`, `epoch`) (see `isLaterEntry`). */
function later(token: Token, lsn: number, epoch: number): Token {
  return isLaterEntry(lsn, epoch, token.lsn, token.epoch) ? { lsn, epoch } : token
}

function replicationOf(settings: LabSettings): ReplicationMode {
  const { replication, chain } = settings.singleLeader
  if (chain) return { mode: 'chain' }
  if (replication === 'semi-sync')
    return { mode: 'semi-sync', acks: 1, timeoutMs: labTimings.semiSyncTimeoutMs }
  return { mode: replication }
}

function text(value: JsonValue | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/**
 * The single-leader lab: a {@link SingleLeaderSim} of n1…nN running the real node machine.
 *
 * Writes go to the node the person picks (a follower refuses with `not-leader`). Reads are
 * replica reads at the chosen node: `any` takes whatever it has (minLsn 0);
 * `read-your-writes` carries the client's last acknowledged write and `monotonic` the latest
 * entry it has read (each an LSN and that entry's epoch), and a node that is behind — or holds
 * another history there, a deposed leader's — waits up to a second for it, then refuses with
 * `not-yet`.
 */
export class SingleLeaderLab extends ServerLab<SingleLeaderState> {
  protected override readonly sim: SingleLeaderSim
  private readonly tokens = new Map<string, ClientTokens>()

  private constructor(settings: LabSettings, sim: SingleLeaderSim) {
    super({ settings, network: sim.network, nodes: sim.config.nodes, label: singleLeaderLabel }, sim)
    this.sim = sim
  }

  /** Starts the cluster and runs it until a leader is elected; that moment is lab time 0. */
  static async create(settings: LabSettings): Promise<SingleLeaderLab> {
    const { fencing, autoFailover } = settings.singleLeader
    const sim = new SingleLeaderSim({
      seed: settings.seed,
      nodes: nodeNames(settings),
      faults: startFaults(settings),
      tickMs: labTimings.tickMs,
      clientTimeoutMs: labTimings.clientTimeoutMs,
      config: {
        replication: replicationOf(settings),
        fencing,
        autoFailover,
        heartbeatMs: labTimings.heartbeatMs,
        electionTimeoutMs: labTimings.electionTimeoutMs,
        leaseMs: labTimings.leaseMs,
        resendMs: labTimings.resendMs,
      },
    })
    await sim.start()
    if (!autoFailover) await sim.promote(sim.config.nodes[0] as string)
    const leader = await sim.awaitLeader(30_000)
    await sim.run(labTimings.heartbeatMs * 2)
    const lab = new SingleLeaderLab(settings, sim)
    lab.begin()
    for (const state of sim.states()) lab.lastSeen.set(state.id, state)
    sim.onStep = (node, before, after) => lab.onStep(node, before, after)
    const epoch = leader === undefined ? 0 : (sim.host(leader).state?.epoch ?? 0)
    lab.event(
      'role',
      leader === undefined
        ? 'cluster started; no leader yet'
        : `cluster started: ${leader} leads epoch ${epoch}, ${replicationOf(settings).mode} replication, fencing ${fencing ? 'on' : 'off'}`,
    )
    return lab
  }

  protected override validateForDesign(action: LabAction): void {
    if (action.type === 'resolve') {
      invalid(
        'resolve settles multi-leader conflicts; a single-leader cluster has none (its leader orders every write)',
      )
    }
    this.checkNodeAction(action)
    if (action.type === 'promote' && this.sim.host(action.node).state === null) {
      invalid(`${action.node} is down; restart it first`)
    }
    if (action.type === 'promote' && this.sim.host(action.node).state?.role === 'leader') {
      invalid(`${action.node} already leads; promote a follower`)
    }
    if (action.type === 'promote' && this.sim.host(action.node).paused) {
      invalid(`${action.node} is paused: it does nothing until it resumes, so promote it then`)
    }
  }

  protected override async perform(action: LabAction): Promise<void> {
    if (this.performNetwork(action) || (await this.performNode(action))) return
    switch (action.type) {
      case 'write': {
        this.ensureClient(action.client)
        this.event('action', `${action.client} writes ${action.key} = ${action.value} at ${action.node}`)
        const client = this.sim.client(action.client)
        this.startOperation(
          { client: action.client, node: action.node, kind: 'write', key: action.key, value: action.value },
          labTimings.clientTimeoutMs,
          () => client.write(action.key, action.value, { node: action.node }),
        )
        return
      }
      case 'read': {
        this.ensureClient(action.client)
        const tokens = this.tokensOf(action.client)
        const token =
          action.mode === 'read-your-writes'
            ? tokens.lastWrite
            : action.mode === 'monotonic'
              ? tokens.highestRead
              : { lsn: 0, epoch: 0 }
        const minLsn = token.lsn
        this.event(
          'action',
          `${action.client} reads ${action.key} at ${action.node} (${action.mode}${minLsn > 0 ? `, needs LSN ${minLsn} of epoch ${token.epoch}` : ''})`,
        )
        const client = this.sim.client(action.client)
        this.startOperation(
          { client: action.client, node: action.node, kind: 'read', key: action.key, mode: action.mode },
          labTimings.clientTimeoutMs,
          () =>
            client.read(action.key, {
              node: action.node,
              consistency: 'replica',
              minLsn,
              ...(minLsn > 0 ? { minEpoch: token.epoch } : {}),
              waitMs: minLsn > 0 ? labTimings.readWaitMs : 0,
            }),
        )
        return
      }
      case 'promote':
        this.event('action', `operator promotes ${action.node}`)
        await this.sim.promote(action.node)
        return
      default:
        return
    }
  }

  protected override onReply(op: OperationRecord, message: string): void {
    const reply = JSON.parse(message) as SingleLeaderReply
    const tokens = this.tokensOf(op.client)
    switch (reply.type) {
      case 'write-ok':
        tokens.lastWrite = later(tokens.lastWrite, reply.lsn, reply.epoch)
        this.finish(
          op,
          'ok',
          `epoch ${reply.epoch}, LSN ${reply.lsn}${reply.durability === 'leader' ? ', on the leader only' : ', replicated'}`,
        )
        return
      case 'read-ok': {
        tokens.highestRead = later(tokens.highestRead, reply.lsn, reply.lsnEpoch)
        const value = text(reply.value)
        if (value !== undefined) op.value = value
        this.finish(op, 'ok', `LSN ${reply.lsn}`)
        return
      }
      case 'rejected': {
        const why =
          reply.reason === 'not-yet'
            ? `not-yet: ${op.node} has only LSN ${reply.lsn}`
            : reply.reason === 'not-leader'
              ? `not-leader${reply.leader === null ? '' : `: ask ${reply.leader}`}`
              : 'deposed: the write may or may not survive'
        this.finish(op, 'rejected', why)
        return
      }
      case 'error':
        this.finish(op, 'rejected', `${reply.code}: ${reply.message}`)
        return
      default:
        return
    }
  }

  protected override nodeViews(): NodeView[] {
    // A follower's lag is measured against the leader's commit as it is, which a follower cut
    // off from the leader has not heard (its own figure, the node's `lagLsn`, stands still).
    // With no leader up, the follower's own figure is all there is.
    const leader = this.sim.leader()
    const leaderCommit = leader === undefined ? undefined : this.sim.host(leader).state?.commitLsn
    return this.viewNodes(this.sim.config.nodes, 'follower', (id, state, status) => {
      const data = readableData(state)
      const chain = state.role === 'leader' && status.up ? state.chain : null
      return {
        id,
        // A node down leads nothing, whatever it was when it stopped (its card keeps the data).
        role: status.up ? state.role : 'down',
        ...status,
        epoch: state.epoch,
        lsn: lastLsn(state.log),
        commitLsn: state.commitLsn,
        ...(state.role === 'leader'
          ? {}
          : { lag: Math.max(0, (leaderCommit ?? state.leaderCommitLsn) - readableLsn(state)) }),
        ...(chain === null ? {} : { chain: { nodes: chain.nodes, counted: chain.counted } }),
        values: [...data.keys()].sort().flatMap((key) => {
          const value = text(data.get(key))
          return value === undefined ? [] : [{ key, values: [value] }]
        }),
      }
    })
  }

  protected override scoreboard(): Scoreboard {
    const report = this.sim.report()
    // Judged as the report judges (see `SingleLeaderSim.reference`): a write lost stays counted
    // while no node leads.
    const reference = this.sim.reference()
    const lost = reference === undefined ? [] : this.sim.lostWrites(reference)
    return {
      lostWrites: lost.map(
        (write) =>
          `${write.key} = ${typeof write.value === 'string' ? write.value : JSON.stringify(write.value)} (${write.client}, epoch ${write.epoch}, LSN ${write.lsn})`,
      ),
      acknowledgedWrites: report.acknowledgedWrites,
      lostAcknowledgedWrites: report.lostAcknowledgedWrites,
      staleReads: report.staleReads,
      conflicts: 0,
      divergentReplicas: this.divergentNodes(reference),
      rejectedWrites: this.operations.filter((op) => op.kind === 'write' && op.outcome === 'rejected').length,
      leaders: this.sim.states().filter((state) => state.role === 'leader').length,
    }
  }

  /**
   * Nodes up whose readable history departs from the reference's: one with an entry there
   * of another epoch, or past its end, or whose data through its readable LSN differs from
   * the reference's through the same LSN. A follower merely behind is not one (its lag says
   * how far behind): the report's figure, made for a settled cluster, counted it.
   */
  private divergentNodes(reference: SingleLeaderState | undefined): number {
    if (reference === undefined) return 0
    return this.sim.states().filter((state) => {
      const through = readableLsn(state)
      if (epochAt(state.log, through) !== epochAt(reference.log, through)) return true
      const expected = dataThrough(reference, through)
      return expected !== undefined && !sameData(readableData(state), expected)
    }).length
  }

  private tokensOf(client: string): ClientTokens {
    let tokens = this.tokens.get(client)
    if (tokens === undefined) {
      tokens = { lastWrite: { lsn: 0, epoch: 0 }, highestRead: { lsn: 0, epoch: 0 } }
      this.tokens.set(client, tokens)
    }
    return tokens
  }

  private onStep(node: string, before: SingleLeaderState, after: SingleLeaderState): void {
    this.lastSeen.set(node, after)
    if (before.role === after.role && before.epoch === after.epoch) return
    if (after.role === 'leader' && before.role !== 'leader') {
      this.event('role', `${node} leads epoch ${after.epoch}`)
    } else if (after.role === 'candidate') {
      this.event('role', `${node} stands for election (epoch ${after.epoch})`)
    } else if (before.role === 'leader' && after.role !== 'leader') {
      this.event(
        'role',
        after.epoch > before.epoch
          ? `${node} steps down: it saw epoch ${after.epoch}`
          : `${node} steps down: no majority has answered it for a while`,
      )
    } else if (before.role !== after.role) {
      this.event('role', `${node} is now ${after.role} (epoch ${after.epoch})`)
    } else {
      this.event('role', `${node} moves to epoch ${after.epoch}`)
    }
  }
}

function sameData(a: ReadonlyMap<string, JsonValue>, b: ReadonlyMap<string, JsonValue>): boolean {
  if (a.size !== b.size) return false
  for (const [key, value] of a)
    if (!b.has(key) || JSON.stringify(b.get(key)) !== JSON.stringify(value)) return false
  return true
}
