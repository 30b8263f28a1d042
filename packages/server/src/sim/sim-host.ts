import { ErrorCode, isChorusError } from '@chorus/core'
import type { SimNetwork, SimNode } from '@chorus/testkit'
import type { ErrorReply, NodeEffect, NodeMachine } from '../machine.js'
import { MemoryNodeStorage } from '../memory-node-storage.js'
import type { NodeId } from '../node-id.js'

/** What a host reports to whoever watches the simulation (checkers, traces). */
export interface SimHostObserver<TState, TMessage, TReply, TRecord> {
  /** After every step, before its effects are performed. */
  onStep?(
    node: NodeId,
    before: TState,
    after: TState,
    effects: readonly NodeEffect<TMessage, TReply, TRecord>[],
  ): void
}

/** Counters of one host, across the node's lives. */
export interface SimHostStats {
  /** Frames from other nodes that did not parse or validate, dropped. */
  readonly malformedFrames: number
  /** Client frames refused with an `error` reply. */
  readonly refusedRequests: number
  /** Appends the storage refused (fenced or failed), each followed by a restart from storage. */
  readonly storageRefusals: number
}

/** Options for {@link SimNodeHost}. */
export interface SimNodeHostOptions<TState, TInput, TMessage, TReply, TRecord> {
  readonly id: NodeId
  readonly network: SimNetwork<string>
  readonly machine: NodeMachine<TState, TInput, TMessage, TReply, TRecord>
  /** The simulated disk (a new one by default); it outlives crashes. */
  readonly storage?: MemoryNodeStorage<TRecord>
  /** Virtual ms between ticks. */
  readonly tickMs: number
  /** True for ids of server nodes; frames from anyone else are client requests. */
  readonly isNode: (id: string) => boolean
  readonly observer?: SimHostObserver<TState, TMessage, TReply, TRecord>
}

/**
 * The runtime of one node in a simulation: it owns the machine's state and its storage,
 * feeds it frames, ticks and operator inputs, and performs its effects in order.
 *
 * Frames on the wire are JSON text, as they will be between processes. A `persist` is awaited
 * before any later effect, and the next input waits for the step before it (the scheduler
 * awaits each delivery); a step's `early` sends are performed first, ahead of its `persist`
 * (the quorum design's stores, ahead of the coordinator's own commit), so a failing append
 * (`MemoryNodeStorage.failWrites`) leaves a node whose stores left and whose commit did not. A crash drops the state and keeps the storage; a restart rebuilds
 * the state from storage. A pause models a process that stops (a long GC, a SIGSTOP, a VM
 * migration) and later resumes with the state it had: frames that arrive meanwhile queue up
 * and ticks are skipped, and on resume the queued frames are handled at the new time — the
 * zombie leader of the textbooks.
 */
export class SimNodeHost<TState, TInput, TMessage, TReply, TRecord> implements SimNode<string> {
  readonly id: NodeId
  readonly storage: MemoryNodeStorage<TRecord>
  private currentState: TState | null = null
  private pausedUntil: number | null = null
  private queued: { readonly from: string; readonly frame: string }[] = []
  private readonly options: SimNodeHostOptions<TState, TInput, TMessage, TReply, TRecord>
  private readonly counters = { malformedFrames: 0, refusedRequests: 0, storageRefusals: 0 }
  /**
   * The last {@link TAKEN_REQUESTS} client requests this node took, by client and request id,
   * across its lives: a copy the simulated network made of one is dropped (see `handleFrame`).
   */
  private readonly takenRequests = new Set<string>()

  constructor(options: SimNodeHostOptions<TState, TInput, TMessage, TReply, TRecord>) {
    this.options = options
    this.id = options.id
    this.storage = options.storage ?? new MemoryNodeStorage<TRecord>()
  }

  /** The machine's current state, or null while the node is down. */
  get state(): TState | null {
    return this.currentState
  }

  /**
   * The state the node has, or, while it is down, the one its storage would give it on a
   * restart now: what it holds durably, for a checker that judges by every node's history.
   */
  durableState(): TState {
    return (
      this.currentState ?? this.options.machine.recover(this.storage.records(), this.options.network.now())
    )
  }

  /** A snapshot of the counters. */
  get stats(): SimHostStats {
    return { ...this.counters }
  }

  /** True while paused. */
  get paused(): boolean {
    return this.pausedUntil !== null
  }

  /** Boots the node from its storage and starts its ticks. */
  async start(): Promise<void> {
    const network = this.options.network
    this.currentState = this.options.machine.recover(await this.storage.load(), network.now())
    this.scheduleTick()
  }

  /** Crashes the node: volatile state and queued frames are lost, storage is kept. */
  crash(): void {
    this.options.network.crash(this.id)
    this.currentState = null
    this.pausedUntil = null
    this.queued = []
  }

  /** Restarts a crashed node from its storage. */
  async restart(): Promise<void> {
    this.options.network.restart(this.id)
    await this.start()
  }

  /** Stops handling anything for `ms`, then resumes with the state it had. */
  pause(ms: number): void {
    if (this.currentState === null) return
    const until = this.options.network.now() + ms
    this.pausedUntil = Math.max(this.pausedUntil ?? until, until)
    this.options.network.setTimer(this.id, ms, () => this.resumeIfDue())
  }

  /** Handles a frame from the network (queued while paused). */
  async deliver(from: string, frame: string): Promise<void> {
    if (this.currentState === null) return
    if (this.pausedUntil !== null) {
      this.queued.push({ from, frame })
      return
    }
    await this.handleFrame(from, frame)
  }

  /** Feeds an input built by the caller (an operator's command), as if it arrived now. */
  async input(make: (now: number) => TInput): Promise<void> {
    if (this.currentState === null || this.pausedUntil !== null) return
    await this.apply(make(this.options.network.now()), { kind: 'operator' })
  }

  private async resumeIfDue(): Promise<void> {
    if (this.pausedUntil === null || this.options.network.now() < this.pausedUntil) return
    this.pausedUntil = null
    const queued = this.queued
    this.queued = []
    for (const { from, frame } of queued) {
      if (this.currentState === null || this.pausedUntil !== null) return
      await this.handleFrame(from, frame)
    }
  }

  private scheduleTick(): void {
    const { network, machine, tickMs } = this.options
    network.setTimer(this.id, tickMs, async () => {
      if (this.currentState !== null && this.pausedUntil === null) {
        await this.apply(machine.tickInput(network.now()), { kind: 'operator' })
      }
      this.scheduleTick()
    })
  }

  private async handleFrame(from: string, frame: string): Promise<void> {
    const { machine, network, isNode } = this.options
    const fromNode = isNode(from)
    let parsed: unknown
    try {
      parsed = JSON.parse(frame)
    } catch {
      this.refuse(from, fromNode, null, ErrorCode.MalformedFrame, 'frame is not valid JSON text')
      return
    }
    if (!fromNode && this.isCopy(from, parsed)) return
    const input = fromNode
      ? machine.messageInput(network.now(), from as NodeId, parsed)
      : machine.requestInput(network.now(), from, parsed)
    await this.apply(input, fromNode ? { kind: 'node' } : { kind: 'client', client: from, request: parsed })
  }

  /**
   * Whether a client's request is a copy of one this node took already. Clients reach real
   * nodes over HTTP, whose TCP connection hands the server each request once, so a node's
   * answer to a request is its last word on it: a `not-leader` refusal means the write was not
   * applied. The simulated network duplicates frames, client requests too; a copy of a refused
   * write reaching the node once it leads would apply a write its client was told failed. So
   * the host drops copies, as TCP would. (The simulated clients send each request once.)
   */
  private isCopy(client: string, request: unknown): boolean {
    const id = requestIdOf(request)
    if (id === null) return false
    const key = `${client}\u0000${id}`
    if (this.takenRequests.has(key)) return true
    this.takenRequests.add(key)
    if (this.takenRequests.size > TAKEN_REQUESTS) {
      const oldest = this.takenRequests.values().next().value
      if (oldest !== undefined) this.takenRequests.delete(oldest)
    }
    return false
  }

  private async apply(input: TInput, source: InputSource): Promise<void> {
    const { machine, network, observer } = this.options
    const before = this.currentState
    if (before === null) return
    let result: ReturnType<typeof machine.step>
    try {
      result = machine.step(before, input)
    } catch (error) {
      if (!isChorusError(error) || source.kind === 'operator') throw error
      if (source.kind === 'node') this.counters.malformedFrames++
      else this.refuse(source.client, false, requestIdOf(source.request), error.code, error.message)
      return
    }
    this.currentState = result.state
    observer?.onStep?.(this.id, before, result.state, result.effects)
    for (const effect of result.effects) {
      if (effect.type === 'send' && effect.early === true)
        network.send(this.id, effect.to, JSON.stringify(effect.message))
    }
    for (const effect of result.effects) {
      switch (effect.type) {
        case 'persist': {
          const outcome = await this.storage.append(effect.records, effect.epoch, effect.replace)
          if (!outcome.ok) {
            this.counters.storageRefusals++
            this.currentState = machine.recover(await this.storage.load(), network.now())
            return
          }
          break
        }
        case 'send':
          if (effect.early !== true) network.send(this.id, effect.to, JSON.stringify(effect.message))
          break
        case 'reply':
          network.send(this.id, effect.client, JSON.stringify(effect.reply))
          break
      }
    }
    if (machine.settle !== undefined && this.currentState !== null)
      this.currentState = machine.settle(this.currentState)
  }

  private refuse(to: string, fromNode: boolean, id: string | null, code: ErrorCode, message: string): void {
    if (fromNode) {
      this.counters.malformedFrames++
      return
    }
    this.counters.refusedRequests++
    const reply: ErrorReply = { type: 'error', id, code, message }
    this.options.network.send(this.id, to, JSON.stringify(reply))
  }
}

/** How many client requests a host remembers taking, to drop the network's copies of them. */
const TAKEN_REQUESTS = 4_096

/** Where an input came from: a peer's frame, a client's frame, or the runtime itself. */
type InputSource =
  | { readonly kind: 'node' }
  | { readonly kind: 'client'; readonly client: string; readonly request: unknown }
  | { readonly kind: 'operator' }

function requestIdOf(request: unknown): string | null {
  if (typeof request !== 'object' || request === null) return null
  const id = (request as { id?: unknown }).id
  return typeof id === 'string' ? id : null
}
