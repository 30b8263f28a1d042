import { ChorusError, type Dot, ErrorCode, type JsonValue, type VersionVector } from '@chorus/core'
import type { ReadRepairMode } from '../quorum/config.js'
import type { QuorumStatus } from '../quorum/messages.js'
import {
  type ClusterClientOptions,
  type ClusterWriteFailure,
  checkValue,
  NodeCaller,
  refusal,
} from './node-caller.js'

/**
 * What became of a put. `values` are the key's siblings after it (this write's among them),
 * and `context` covers them all: the context this client sends with its next put of the key.
 *
 * A failure's `maybeApplied` says whether some replica may have stored it: `false` for
 * `unavailable` (no coordinator reached W replicas before the deadline), `too-large` or an
 * error code; `true` for `timeout` (a coordinator took it and did not hear W replicas in time,
 * or did not answer). Such a put is not sent again, and the client's next put starts at the
 * node after that coordinator.
 */
export type ClusterPutResult =
  | {
      readonly ok: true
      readonly dot: Dot
      readonly context: VersionVector
      readonly values: readonly JsonValue[]
      /** True when a stand-in (sloppy quorum) counted toward W. */
      readonly sloppy: boolean
      readonly node: string
    }
  | ClusterWriteFailure<'unavailable' | 'timeout' | 'too-large'>

/** What became of a get: every sibling's value, and the last-write-wins pick among them. */
export type ClusterGetResult =
  | {
      readonly ok: true
      readonly values: readonly JsonValue[]
      readonly value: JsonValue | null
      readonly context: VersionVector
      readonly node: string
    }
  | { readonly ok: false; readonly reason: 'unavailable' | ErrorCode; readonly message: string }

/** Options of {@link QuorumHttpClient}: those of every cluster client, and how many keys' contexts it keeps. */
export interface QuorumClientOptions extends ClusterClientOptions {
  /** Keys whose last context the client keeps, the least recently used dropped first (default 10000). */
  readonly maxContexts?: number
}

/**
 * A client of a quorum cluster's nodes over HTTP (`chorus-cluster --mode quorum`): any node
 * coordinates a request for any key.
 *
 * It keeps, per key, the context of its last get or put and sends it with the next put, as a
 * Dynamo client does: its own writes supersede what it has seen, and only truly concurrent
 * writes become siblings. A put with `context` given writes over exactly that.
 *
 * It sticks to the node that last answered; a node that cannot be reached, or that finds too
 * few replicas up (`unavailable`, nothing stored), is passed over for the next, with pauses
 * after each round of nodes, until `deadlineMs`. A get is tried again on any failure.
 */
export class QuorumHttpClient {
  private readonly caller: NodeCaller
  private readonly contexts = new Map<string, VersionVector>()
  private readonly maxContexts: number
  private coordinator: string

  constructor(options: QuorumClientOptions) {
    this.caller = new NodeCaller(options)
    this.coordinator = this.caller.nodes()[0] as string
    const maxContexts = options.maxContexts ?? 10_000
    if (!Number.isSafeInteger(maxContexts) || maxContexts < 0) {
      throw new ChorusError(ErrorCode.InvalidArgument, 'maxContexts must be a whole number, 0 or more')
    }
    this.maxContexts = maxContexts
  }

  /** The node this client sends to first. */
  get node(): string {
    return this.coordinator
  }

  /** The nodes' URLs as this client holds them now (after any `refreshNodes`), by id. */
  get nodes(): Record<string, string> {
    return this.caller.urlsById()
  }

  /** The context this client holds for `key` (empty when it has read and written none). */
  context(key: string): VersionVector {
    return this.contexts.get(key) ?? {}
  }

  /**
   * Writes `value` under `key`, over the context this client holds for it (or `context`).
   * `w` and `sloppy` override the cluster's for this put; `node` is the coordinator to try first.
   */
  async put(
    key: string,
    value: JsonValue,
    options: {
      readonly node?: string
      readonly w?: number
      readonly sloppy?: boolean
      readonly context?: VersionVector
    } = {},
  ): Promise<ClusterPutResult> {
    const first = options.node ?? this.coordinator
    this.caller.url(first)
    checkValue(value)
    const request = {
      type: 'put',
      id: this.caller.requestId(),
      key,
      value,
      context: options.context ?? this.context(key),
      w: options.w ?? null,
      sloppy: options.sloppy ?? null,
    }
    let last = 'no node was asked'
    const result = await this.caller.retry<ClusterPutResult>(first, async (node) => {
      const call = await this.caller.request(node, request)
      if (call.kind === 'unreached') {
        last = call.message
        return { done: false, next: this.passOver(node), unreached: true }
      }
      if (call.kind === 'silent') {
        // Not sent again (it may have been applied), but the next put starts elsewhere: a
        // frozen coordinator would otherwise time out every put of a client that only writes.
        this.passOver(node)
        return {
          done: true,
          result: { ok: false, reason: 'timeout', maybeApplied: true, message: call.message, node },
        }
      }
      const body = call.body
      if (body.type === 'put-ok') {
        this.answeredBy(node, key, body.context as VersionVector)
        return {
          done: true,
          result: {
            ok: true,
            dot: body.dot as Dot,
            context: body.context as VersionVector,
            values: body.values as JsonValue[],
            sloppy: body.sloppy === true,
            node,
          },
        }
      }
      if (body.type === 'rejected') {
        const reason = body.reason as 'unavailable' | 'timeout' | 'too-large'
        if (reason === 'unavailable' && body.maybeApplied === false) {
          last = `${node}: too few replicas up`
          return { done: false, next: this.passOver(node) }
        }
        const message = `${node}: ${reason === 'too-large' ? 'the value is too large to replicate' : 'too few replicas answered in time'}`
        // A coordinator that could not hear W replicas in time is cut off from them, or slow.
        if (reason !== 'too-large') this.passOver(node)
        return {
          done: true,
          result: { ok: false, reason, maybeApplied: body.maybeApplied === true, message, node },
        }
      }
      if (call.status === 504) {
        this.passOver(node)
        const message = `${node}: ${String(body.message)}`
        return { done: true, result: { ok: false, reason: 'timeout', maybeApplied: true, message, node } }
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
        message: `no node could coordinate the put within ${this.caller.deadlineMs} ms (last: ${last})`,
        node: null,
      }
    )
  }

  /** Reads `key` (`r` and `repair` override the cluster's; `node` is the coordinator to try first). */
  async get(
    key: string,
    options: { readonly node?: string; readonly r?: number; readonly repair?: ReadRepairMode } = {},
  ): Promise<ClusterGetResult> {
    const first = options.node ?? this.coordinator
    this.caller.url(first)
    const request = {
      type: 'get',
      id: this.caller.requestId(),
      key,
      r: options.r ?? null,
      repair: options.repair ?? null,
    }
    let last = 'no node was asked'
    const result = await this.caller.retry<ClusterGetResult>(first, async (node) => {
      const call = await this.caller.request(node, request)
      if (call.kind !== 'answer') {
        last = call.message
        return { done: false, next: this.passOver(node), unreached: call.kind === 'unreached' }
      }
      const body = call.body
      if (body.type === 'get-ok') {
        this.answeredBy(node, key, body.context as VersionVector)
        return {
          done: true,
          result: {
            ok: true,
            values: body.values as JsonValue[],
            value: (body.value ?? null) as JsonValue | null,
            context: body.context as VersionVector,
            node,
          },
        }
      }
      if (body.type === 'rejected' || call.status === 504) {
        last = `${node}: ${String(body.reason ?? body.message)}`
        return { done: false, next: this.passOver(node) }
      }
      return { done: true, result: { ok: false, ...refusal(body, node) } }
    })
    return (
      result ?? {
        ok: false,
        reason: 'unavailable',
        message: `no node could coordinate the get within ${this.caller.deadlineMs} ms (last: ${last})`,
      }
    )
  }

  /** Node `node`'s status (keys, hints, peers it believes up), or null when it does not answer. */
  async status(node: string): Promise<QuorumStatus | null> {
    const call = await this.caller.status(node)
    if (call.kind !== 'answer' || call.status !== 200) return null
    return (call.body.status ?? null) as QuorumStatus | null
  }

  /** `node` coordinated an operation on `key`: the next starts there, over the `context` it returned. */
  private answeredBy(node: string, key: string, context: VersionVector): void {
    this.coordinator = node
    this.remember(key, context)
  }

  private remember(key: string, context: VersionVector): void {
    if (this.maxContexts === 0) return
    this.contexts.delete(key)
    this.contexts.set(key, context)
    if (this.contexts.size > this.maxContexts) {
      const oldest = this.contexts.keys().next().value
      if (oldest !== undefined) this.contexts.delete(oldest)
    }
  }

  private passOver(node: string): string {
    const next = this.caller.after(node)
    if (this.coordinator === node) this.coordinator = next
    return next
  }
}
