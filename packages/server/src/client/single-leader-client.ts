import type { ErrorCode, JsonValue } from '@chorus/core'
import { isLaterEntry } from '../single-leader/log.js'
import type { SingleLeaderRole, SingleLeaderStatus } from '../single-leader/messages.js'
import {
  type ClusterClientOptions,
  type ClusterWriteFailure,
  checkValue,
  NodeCaller,
  refusal,
} from './node-caller.js'

/**
 * What became of a write.
 *
 * A failure's `maybeApplied` says whether the write may still take effect: `false` when no node
 * took it (`unavailable`: no leader answered before the deadline; an error code: the node
 * refused it as malformed), `true` when one did and its fate is open (`deposed`: its leader lost
 * leadership before it was acknowledged; `timeout`: no answer came). A write whose fate is
 * open is not sent again: the cluster does not tell a retry from a second write.
 */
export type ClusterWriteResult =
  | {
      readonly ok: true
      readonly lsn: number
      readonly epoch: number
      /** `leader`: on the leader's disk only (async, or a semi-sync fallback). */
      readonly durability: 'leader' | 'replicated'
      readonly node: string
    }
  | ClusterWriteFailure<'unavailable' | 'deposed' | 'timeout'>

/** What became of a read. */
export type ClusterReadResult =
  | {
      readonly ok: true
      readonly value: JsonValue | null
      /** The LSN the read reflects (the client's token is now at least this). */
      readonly lsn: number
      readonly epoch: number
      readonly node: string
      readonly role: SingleLeaderRole
    }
  | { readonly ok: false; readonly reason: 'unavailable' | ErrorCode; readonly message: string }

/** Options of {@link SingleLeaderHttpClient.read}. */
export interface ClusterReadOptions {
  /**
   * `leader` (default): a linearizable read, answered only by the leader holding its lease.
   * `replica`: any node that has applied this client's token: read-your-writes and monotonic
   * reads, from followers too.
   */
  readonly consistency?: 'leader' | 'replica'
  /** The node to ask first (a replica read's nearest node; default: the client's turn through the nodes). */
  readonly node?: string
  /** A replica read's token instead of the client's (0: take whatever a node has). */
  readonly minLsn?: number
  /** How long a node behind the token may wait to catch up before it refuses (default 0). */
  readonly waitMs?: number
}

/**
 * A client of a single-leader cluster's nodes over HTTP (`chorus-cluster --mode
 * single-leader`, `node-main`): it finds the leader and follows it through failovers.
 *
 * - **Writes** go to the node it believes leads. A refusal that names another leader
 *   (`not-leader`) is followed, an unreachable node is passed over, and after a round of nodes
 *   without a leader it pauses and tries again, until `deadlineMs`. A write that a node took
 *   and did not acknowledge (a timeout, a deposed leader) is returned with `maybeApplied: true`,
 *   never sent again; the next write asks the node after it first.
 * - **Reads** carry the client's token, the highest LSN it wrote or read, so a `replica` read
 *   from any node sees the client's own writes and never goes back in time; a node behind the
 *   token is passed over. A read is tried again on any failure (it changes nothing).
 *
 * Outcomes are values; only bad options throw (`invalid-argument`).
 */
export class SingleLeaderHttpClient {
  /**
   * The position of the latest entry this client wrote or read — its LSN and the epoch of that
   * entry — the token its replica reads carry. Of two, the later is the one of the higher epoch
   * (a newer leader's history), then the higher LSN.
   */
  token = 0
  /** The epoch of the entry at {@link token} (0 before the first write or read). */
  tokenEpoch = 0
  private readonly caller: NodeCaller
  private believedLeader: string
  private nextReader = 0

  constructor(options: ClusterClientOptions) {
    this.caller = new NodeCaller(options)
    this.believedLeader = this.caller.nodes()[0] as string
  }

  /** The node this client believes leads (the first node until it learns otherwise). */
  get leader(): string {
    return this.believedLeader
  }

  /** The nodes' URLs as this client holds them now (after any `refreshNodes`), by id. */
  get nodes(): Record<string, string> {
    return this.caller.urlsById()
  }

  /** The request ids' prefix. */
  get name(): string {
    return this.caller.name
  }

  /** Writes `value` under `key` through the leader (`node`: the node to try first). */
  async write(
    key: string,
    value: JsonValue,
    options: { readonly node?: string } = {},
  ): Promise<ClusterWriteResult> {
    const first = options.node ?? this.believedLeader
    this.caller.url(first)
    checkValue(value)
    const id = this.caller.requestId()
    let last = 'no node was asked'
    const result = await this.caller.retry<ClusterWriteResult>(first, async (node) => {
      const call = await this.caller.request(node, { type: 'write', id, key, value })
      if (call.kind === 'unreached') {
        last = call.message
        return { done: false, next: this.passOver(node), unreached: true }
      }
      if (call.kind === 'silent') {
        // Not sent again (it may have been applied), but the next write asks elsewhere first: a
        // frozen leader is deposed meanwhile, and a node that is not the leader names the one that is.
        this.passOver(node)
        return { done: true, result: open('timeout', call.message, node) }
      }
      const body = call.body
      if (body.type === 'write-ok') {
        this.believedLeader = node
        this.advance(body.lsn as number, body.epoch as number)
        return {
          done: true,
          result: {
            ok: true,
            lsn: body.lsn as number,
            epoch: body.epoch as number,
            durability: body.durability as 'leader' | 'replicated',
            node,
          },
        }
      }
      if (body.type === 'rejected') {
        if (body.maybeApplied === true) {
          this.passOver(node)
          return {
            done: true,
            result: open('deposed', `${node} lost leadership before the write was acknowledged`, node),
          }
        }
        last = `${node}: ${String(body.reason)}`
        return { done: false, next: this.follow(node, body.leader) }
      }
      if (call.status === 504) {
        this.passOver(node)
        return { done: true, result: open('timeout', `${node}: ${String(body.message)}`, node) }
      }
      return {
        done: true,
        result: { ok: false, ...refusal(body, node), maybeApplied: body.maybeApplied === true, node },
      }
    })
    return (
      result ?? {
        ok: false,
        reason: 'unavailable',
        maybeApplied: false,
        message: `no leader took the write within ${this.caller.deadlineMs} ms (last: ${last})`,
        node: null,
      }
    )
  }

  /** Reads `key` (see {@link ClusterReadOptions}). */
  async read(key: string, options: ClusterReadOptions = {}): Promise<ClusterReadResult> {
    const consistency = options.consistency ?? 'leader'
    const first = options.node ?? (consistency === 'leader' ? this.believedLeader : this.readerTurn())
    this.caller.url(first)
    const id = this.caller.requestId()
    const minLsn = consistency === 'replica' ? (options.minLsn ?? this.token) : 0
    // The token's epoch goes with the client's own token only.
    const minEpoch =
      minLsn > 0 && options.minLsn === undefined && this.tokenEpoch > 0 ? this.tokenEpoch : null
    let last = 'no node was asked'
    const result = await this.caller.retry<ClusterReadResult>(first, async (node) => {
      const call = await this.caller.request(
        node,
        {
          type: 'read',
          id,
          key,
          consistency,
          minLsn,
          ...(minEpoch === null ? {} : { minEpoch }),
          waitMs: options.waitMs ?? 0,
        },
        options.waitMs ?? 0,
      )
      if (call.kind !== 'answer') {
        last = call.message
        return { done: false, next: this.passOver(node, consistency), unreached: call.kind === 'unreached' }
      }
      const body = call.body
      if (body.type === 'read-ok') {
        if (consistency === 'leader') this.believedLeader = node
        if (typeof body.lsnEpoch === 'number') this.advance(body.lsn as number, body.lsnEpoch)
        else this.token = Math.max(this.token, body.lsn as number)
        return {
          done: true,
          result: {
            ok: true,
            value: (body.value ?? null) as JsonValue | null,
            lsn: body.lsn as number,
            epoch: body.epoch as number,
            node,
            role: body.role as SingleLeaderRole,
          },
        }
      }
      if (body.type === 'rejected') {
        last = `${node}: ${String(body.reason)}`
        const next = consistency === 'leader' ? this.follow(node, body.leader) : this.caller.after(node)
        return { done: false, next }
      }
      if (call.status === 504) {
        last = `${node}: ${String(body.message)}`
        return { done: false, next: this.passOver(node, consistency) }
      }
      return { done: true, result: { ok: false, ...refusal(body, node) } }
    })
    return (
      result ?? {
        ok: false,
        reason: 'unavailable',
        message: `no node could serve the ${consistency} read within ${this.caller.deadlineMs} ms (last: ${last})`,
      }
    )
  }

  /** Node `node`'s status (role, epoch, LSNs, lag), or null when it does not answer. */
  async status(node: string): Promise<SingleLeaderStatus | null> {
    const call = await this.caller.status(node)
    if (call.kind !== 'answer' || call.status !== 200) return null
    return (call.body.status ?? null) as SingleLeaderStatus | null
  }

  /** Every node's status, by id (null for a node that does not answer). */
  async statuses(): Promise<Record<string, SingleLeaderStatus | null>> {
    const nodes = this.caller.nodes()
    const all = await Promise.all(nodes.map((node) => this.status(node)))
    return Object.fromEntries(nodes.map((node, n) => [node, all[n] ?? null]))
  }

  /** Moves the token to the entry (`lsn`, `epoch`) when that is later (see {@link token}). */
  private advance(lsn: number, epoch: number): void {
    if (isLaterEntry(lsn, epoch, this.token, this.tokenEpoch)) {
      this.token = lsn
      this.tokenEpoch = epoch
    }
  }

  /** The node a replica read starts at: each in turn. */
  private readerTurn(): string {
    const nodes = this.caller.nodes()
    return nodes[this.nextReader++ % nodes.length] as string
  }

  /** After a refusal: the hinted leader when it is another known node, else the next node. */
  private follow(asked: string, hint: unknown): string {
    const next =
      typeof hint === 'string' && hint !== asked && this.caller.nodes().includes(hint)
        ? hint
        : this.caller.after(asked)
    this.believedLeader = next
    return next
  }

  /** After a node failed to answer: the next node (and, for the leader's work, the next to believe in). */
  private passOver(node: string, consistency: 'leader' | 'replica' = 'leader'): string {
    const next = this.caller.after(node)
    if (consistency === 'leader' && this.believedLeader === node) this.believedLeader = next
    return next
  }
}

/** A write whose fate is open. */
function open(reason: 'deposed' | 'timeout', message: string, node: string): ClusterWriteResult {
  return { ok: false, reason, maybeApplied: true, message, node }
}
