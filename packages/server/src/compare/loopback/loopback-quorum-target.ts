import { join } from 'node:path'
import { coversDot, type Dot, type VersionVector } from '@chorus/core'
import { SqliteNodeStorage } from '../../node/sqlite-node-storage.js'
import { createQuorumConfig, type QuorumConfig } from '../../quorum/config.js'
import type { QuorumRecord, QuorumStatus } from '../../quorum/messages.js'
import { createQuorumMachine } from '../../quorum/node.js'
import type { Version } from '../../quorum/versions.js'
import type { OperationOutcome } from '../target.js'
import { LoopbackTarget, type LoopbackTargetOptions } from './loopback-target.js'

/** A node is presumed down after this long without a pong (a loaded 2-core machine is slow to answer). */
export const LOOPBACK_QUORUM_FAILURE_TIMEOUT_MS = 600

/** Options for {@link LoopbackQuorumTarget}. */
export interface LoopbackQuorumTargetOptions extends LoopbackTargetOptions {
  readonly replicas: number
  readonly writeQuorum: number
  readonly readQuorum: number
  readonly sloppy: boolean
  /** Merkle anti-entropy period (ms). */
  readonly antiEntropyMs: number
}

interface AcknowledgedPut {
  readonly key: string
  readonly dot: Dot
}

/**
 * The quorum design as real node processes (see {@link LoopbackTarget}). Clients behave as in
 * simulation: each sends its requests to a node of its own and moves to the next only when it
 * gets no answer; a put carries the context of the client's last answer for the key.
 *
 * Lost acknowledged puts are counted from every node's SQLite file once the nodes stopped: a
 * put is kept when some node holds its version (as a home or in a hint) or a version whose
 * context covers its dot. Convergence is read from the nodes' status: no hint left anywhere,
 * every node sees every other up, and a full round of Merkle exchanges (one per node) sent no key.
 */
export class LoopbackQuorumTarget extends LoopbackTarget {
  protected readonly design = 'quorum'
  protected readonly settings: Record<string, unknown>
  private readonly config: QuorumConfig
  private readonly coordinator = new Map<string, number>()
  private readonly contexts = new Map<string, VersionVector>()
  /** Siblings in each client's last answer for a key (`client/key`). */
  private readonly shown = new Map<string, number>()
  private readonly acknowledged: AcknowledgedPut[] = []
  private exchanges: { readonly rounds: number; readonly keysSent: number } | null = null

  constructor(options: LoopbackQuorumTargetOptions) {
    super(options)
    const settings = {
      replicas: options.replicas,
      writeQuorum: options.writeQuorum,
      readQuorum: options.readQuorum,
      sloppy: options.sloppy,
      antiEntropyMs: options.antiEntropyMs,
      failureTimeoutMs: LOOPBACK_QUORUM_FAILURE_TIMEOUT_MS,
    }
    this.settings = settings
    // Checked here, so that bad settings fail before any process starts.
    this.config = createQuorumConfig({ nodes: options.nodes, ...settings })
    const spread = Math.max(
      1,
      Math.floor((options.nodes.length - 1) / Math.max(1, options.clients.length - 1)),
    )
    options.clients.forEach((client, i) => {
      this.coordinator.set(client, (i * spread) % options.nodes.length)
    })
  }

  protected async ready(): Promise<boolean> {
    const all = await this.statuses<QuorumStatus>()
    const others = this.options.nodes.length - 1
    return all.length === this.options.nodes.length && all.every((status) => status.up.length === others)
  }

  async write(client: string, key: string, value: string): Promise<OperationOutcome> {
    const slot = `${client}/${key}`
    const shown = this.shown.get(slot) ?? 0
    const node = this.node(client)
    const reply = await this.ask(client, node, {
      type: 'put',
      key,
      value,
      context: this.contexts.get(slot) ?? {},
      w: null,
      sloppy: null,
    })
    if (reply?.type === 'put-ok') {
      this.contexts.set(slot, reply.context as VersionVector)
      this.shown.set(slot, (reply.values as readonly unknown[]).length)
      this.acknowledged.push({ key, dot: reply.dot as Dot })
      return { ok: true, superseded: shown }
    }
    if (reply === null) this.moveOn(client)
    return { ok: false, maybeApplied: reply === null || reply.maybeApplied === true }
  }

  async read(client: string, key: string): Promise<OperationOutcome> {
    const slot = `${client}/${key}`
    const reply = await this.ask(client, this.node(client), { type: 'get', key, r: null, repair: null })
    if (reply?.type === 'get-ok') {
      const values = reply.values as readonly unknown[]
      this.contexts.set(slot, reply.context as VersionVector)
      this.shown.set(slot, values.length)
      const read = reply.value
      return {
        ok: true,
        value: typeof read === 'string' ? read : null,
        siblings: values.length,
        versions: values.map((value) => JSON.stringify(value)),
      }
    }
    if (reply === null) this.moveOn(client)
    return { ok: false, maybeApplied: false }
  }

  async converged(): Promise<boolean> {
    const all = await this.statuses<QuorumStatus>()
    const others = this.options.nodes.length - 1
    if (all.length < this.options.nodes.length) return false
    if (all.some((status) => status.hints > 0 || status.up.length < others)) {
      this.exchanges = null
      return false
    }
    const now = {
      rounds: Math.min(...all.map((status) => status.stats.antiEntropyExchanges)),
      keysSent: all.reduce((sum, status) => sum + status.stats.antiEntropyKeysSent, 0),
    }
    const before = this.exchanges
    if (before === null || now.keysSent !== before.keysSent) {
      this.exchanges = now
      return false
    }
    return now.rounds > before.rounds
  }

  /** Node n1: the node faults hit. */
  protected async central(): Promise<string> {
    return this.options.nodes[0] as string
  }

  /** As in simulation: the first nodes, fewer than half, with `c1`; the rest with the others. */
  protected async partitionGroups(): Promise<readonly (readonly string[])[]> {
    const nodes = this.options.nodes
    const cut = Math.max(1, Math.floor((nodes.length - 1) / 2))
    return [nodes.slice(0, cut), nodes.slice(cut)]
  }

  protected farNode(): string {
    return this.options.nodes[1] as string
  }

  protected async countLost(dir: string): Promise<number> {
    const held: { readonly key: string; readonly version: Version }[] = []
    for (const node of this.options.nodes) {
      const storage = new SqliteNodeStorage<QuorumRecord>(join(dir, `${node}.sqlite`))
      try {
        const state = createQuorumMachine(node, this.config).recover(await storage.load(), Date.now())
        for (const [key, versions] of state.store) for (const version of versions) held.push({ key, version })
        for (const hint of state.hints.values())
          for (const version of hint.versions) held.push({ key: hint.key, version })
      } finally {
        storage.close()
      }
    }
    return this.acknowledged.filter(
      (put) =>
        !held.some(
          ({ key, version }) =>
            key === put.key &&
            ((version.dot[0] === put.dot[0] && version.dot[1] === put.dot[1]) ||
              coversDot(version.context, put.dot)),
        ),
    ).length
  }

  private node(client: string): string {
    return this.options.nodes[this.coordinator.get(client) ?? 0] as string
  }

  /** A node that does not answer is presumed down: the client moves on to the next one. */
  private moveOn(client: string): void {
    this.coordinator.set(client, ((this.coordinator.get(client) ?? 0) + 1) % this.options.nodes.length)
  }
}
