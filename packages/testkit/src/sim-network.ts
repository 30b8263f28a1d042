import type { Prng } from './prng.js'
import { type ScheduledTask, Scheduler, type TimerId } from './scheduler.js'
import type { BlockReason, SimTraceEvent } from './sim-trace.js'

/** Fault settings of one directed link; every probability is in [0, 1] and every time in whole ms. */
export interface LinkFaults {
  /** Base one-way latency in ms (default 5). */
  readonly latencyMs: number
  /** Extra latency drawn uniformly from 0..jitterMs per copy (default 0). */
  readonly jitterMs: number
  /** Probability a message is dropped (default 0). */
  readonly loss: number
  /** Probability a message is delivered twice, the second copy with its own delay (default 0). */
  readonly duplicate: number
  /** Probability a copy gets an extra delay of 1..10×max(latencyMs, 1) ms, so it overtakes or is overtaken (default 0). */
  readonly reorder: number
  /**
   * Bytes the link carries per ms, one message after another (default 0: no limit). A message
   * waits for those sent before it on the link, then takes its size (`SimNetworkOptions.sizeOf`,
   * 1 without it) ÷ `bytesPerMs` to cross, rounded up to whole ms, before its latency: a long
   * one holds up the next, as on a slow connection.
   */
  readonly bytesPerMs: number
}

/** Fault settings used for every link that has no override: a clean 5 ms network. */
export const defaultLinkFaults: LinkFaults = Object.freeze({
  latencyMs: 5,
  jitterMs: 0,
  loss: 0,
  duplicate: 0,
  reorder: 0,
  bytesPerMs: 0,
})

/** A participant of a {@link SimNetwork}: whatever receives its messages. */
export interface SimNode<TMessage> {
  /** Handles one message; a returned promise is awaited before the scheduler runs the next task, and a throw fails the run. */
  deliver(from: string, message: TMessage): void | Promise<void>
}

/**
 * Counters of what happened to messages.
 *
 * `sent + duplicated = delivered + lost + blocked + (copies still in flight)` always holds.
 */
export interface SimNetworkStats {
  /** Calls to `send`. */
  readonly sent: number
  /** Copies handed to a node's `deliver`. */
  readonly delivered: number
  /** Messages dropped by the `loss` fault. */
  readonly lost: number
  /** Messages that got a second copy from the `duplicate` fault. */
  readonly duplicated: number
  /** Copies dropped by a partition, a cut or a down node. */
  readonly blocked: number
}

/** Options for {@link SimNetwork}. */
export interface SimNetworkOptions<TMessage> {
  /** Source of every random draw; the network forks it per directed link. */
  readonly prng: Prng
  /** Virtual clock to run on (default: a new {@link Scheduler}). */
  readonly scheduler?: Scheduler
  /** Default faults for every link, over {@link defaultLinkFaults}. */
  readonly faults?: Partial<LinkFaults>
  /** Observer of every {@link SimTraceEvent}. */
  readonly onTrace?: (event: SimTraceEvent<TMessage>) => void
  /** A message's size in bytes, for links with `bytesPerMs` (default 1 each). */
  readonly sizeOf?: (message: TMessage) => number
}

interface NodeState<TMessage> {
  handler: SimNode<TMessage>
  up: boolean
  /** Bumped on every crash, so a copy or timer from before a crash never reaches the next life. */
  incarnation: number
}

/**
 * A seeded, lossy message network between named nodes, running on virtual time.
 *
 * Reachability is checked twice: at send time and again at delivery, so a copy in flight when
 * a partition or cut starts is dropped (counted as blocked). A copy whose target crashed after
 * it was sent is dropped even if the target restarted before it arrived (connections do not
 * survive a crash); a copy already sent by a node that then crashes is still delivered.
 * With no jitter and no reorder, one link delivers in send order. Every random draw comes
 * from a fork of the given prng per directed link, so traffic on one link never shifts the
 * draws of another: the same seed and the same calls give the same trace.
 */
export class SimNetwork<TMessage = string> {
  /** The virtual clock deliveries and node timers run on. */
  readonly scheduler: Scheduler
  /** Observer of every {@link SimTraceEvent}; may be set or replaced at any time. */
  onTrace: ((event: SimTraceEvent<TMessage>) => void) | undefined
  /**
   * Told of every copy that does not arrive: lost, or blocked (a partition, a cut, a crashed
   * sender or target), at send or at delivery. A model of connections that break where a
   * frame goes missing (as a WebSocket's do) closes them here; it is called synchronously from
   * `send` or the delivery, so it should only schedule what it does.
   */
  onUndelivered: ((from: string, to: string, message: TMessage) => void) | undefined

  private readonly prng: Prng
  private readonly nodeStates = new Map<string, NodeState<TMessage>>()
  private defaultFaults: LinkFaults
  private readonly linkFaultOverrides = new Map<string, Partial<LinkFaults>>()
  private readonly linkPrngs = new Map<string, Prng>()
  /** Per directed link with `bytesPerMs`: when it is done carrying what was sent on it so far. */
  private readonly linkBusyUntil = new Map<string, number>()
  private readonly sizeOf: ((message: TMessage) => number) | undefined
  private readonly groupOf = new Map<string, number>()
  private readonly cuts = new Set<string>()
  private nextMessageId = 1
  private readonly counters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0 }

  constructor(options: SimNetworkOptions<TMessage>) {
    this.prng = options.prng
    this.scheduler = options.scheduler ?? new Scheduler()
    this.defaultFaults = mergeFaults(defaultLinkFaults, options.faults ?? {})
    this.onTrace = options.onTrace
    this.sizeOf = options.sizeOf
  }

  /** A snapshot of the message counters (a copy: later traffic does not change it). */
  get stats(): SimNetworkStats {
    return { ...this.counters }
  }

  /** The current virtual time in ms. */
  now(): number {
    return this.scheduler.now()
  }

  /** Adds a node, up; throws if `id` is already taken. */
  addNode(id: string, node: SimNode<TMessage>): void {
    if (this.nodeStates.has(id)) throw new RangeError(`SimNetwork already has a node ${JSON.stringify(id)}`)
    this.nodeStates.set(id, { handler: node, up: true, incarnation: 0 })
  }

  /** Swaps the handler of an existing node without changing whether it is up. */
  replaceNode(id: string, node: SimNode<TMessage>): void {
    this.state(id).handler = node
  }

  /** Node ids in the order they were added, up or down. */
  nodes(): string[] {
    return [...this.nodeStates.keys()]
  }

  /**
   * Sends `message` from `from` to `to`, scheduling its delivery after the link's latency.
   *
   * Never throws for a down or unreachable target: the message is counted as blocked. Throws
   * a `RangeError` only for an unknown node id, which is a bug in the test.
   */
  send(from: string, to: string, message: TMessage): void {
    const sender = this.state(from)
    const target = this.state(to)
    const id = this.nextMessageId++
    this.counters.sent++
    this.emit({ type: 'send', time: this.now(), id, from, to, message })
    const reason = sender.up ? this.blockReason(from, to) : 'sender-down'
    if (reason !== undefined) {
      this.block(id, from, to, reason, 'send')
      this.onUndelivered?.(from, to, message)
      return
    }
    const faults = this.linkFaults(from, to)
    const prng = this.linkPrng(from, to)
    if (prng.bool(faults.loss)) {
      this.counters.lost++
      this.emit({ type: 'lost', time: this.now(), id, from, to })
      this.onUndelivered?.(from, to, message)
      return
    }
    const incarnation = target.incarnation
    const queued = this.carry(from, to, message, faults)
    this.scheduleCopy(id, from, to, message, incarnation, queued + this.drawDelay(faults, prng))
    if (prng.bool(faults.duplicate)) {
      this.counters.duplicated++
      this.emit({ type: 'duplicate', time: this.now(), id, from, to })
      this.scheduleCopy(id, from, to, message, incarnation, queued + this.drawDelay(faults, prng))
    }
  }

  /**
   * Sets fault settings: without `from`/`to` the defaults of every link, with both one direction.
   *
   * Settings merge over what was set before; a link override only holds the fields given, so a
   * later change of the defaults still applies to the fields the override leaves out.
   */
  setFaults(faults: Partial<LinkFaults>): void
  setFaults(faults: Partial<LinkFaults>, from: string, to: string): void
  setFaults(faults: Partial<LinkFaults>, from?: string, to?: string): void {
    if (from === undefined && to === undefined) {
      this.defaultFaults = mergeFaults(this.defaultFaults, faults)
      return
    }
    if (from === undefined || to === undefined) {
      throw new RangeError('setFaults needs both from and to for a link override, or neither')
    }
    this.state(from)
    this.state(to)
    const key = linkKey(from, to)
    const override = { ...this.linkFaultOverrides.get(key), ...definedFields(faults) }
    mergeFaults(this.defaultFaults, override)
    this.linkFaultOverrides.set(key, override)
  }

  /** The fault settings in force on the directed link `from` → `to`. */
  linkFaults(from: string, to: string): LinkFaults {
    return { ...this.defaultFaults, ...this.linkFaultOverrides.get(linkKey(from, to)) }
  }

  /**
   * Splits the nodes into groups that cannot reach each other, replacing any earlier partition.
   *
   * Nodes named in no group (including nodes added later) form one extra group together.
   * Cuts are kept. Throws if a node is unknown or named twice.
   */
  partition(groups: readonly (readonly string[])[]): void {
    const next = new Map<string, number>()
    groups.forEach((group, index) => {
      for (const id of group) {
        this.state(id)
        if (next.has(id)) throw new RangeError(`partition names node ${JSON.stringify(id)} more than once`)
        next.set(id, index)
      }
    })
    this.groupOf.clear()
    for (const [id, index] of next) this.groupOf.set(id, index)
    this.emit({ type: 'partition', time: this.now(), groups: groups.map((group) => [...group]) })
  }

  /** Stops messages from `from` to `to` only (an asymmetric partition), until {@link SimNetwork.heal}. */
  cut(from: string, to: string): void {
    this.state(from)
    this.state(to)
    this.cuts.add(linkKey(from, to))
    this.emit({ type: 'cut', time: this.now(), from, to })
  }

  /** Removes every partition and cut; per-link fault settings stay. */
  heal(): void {
    this.groupOf.clear()
    this.cuts.clear()
    this.emit({ type: 'heal', time: this.now() })
  }

  /** True when no partition or cut separates `from` from `to` (whether the nodes are up is not considered). */
  canReach(from: string, to: string): boolean {
    return this.blockReason(from, to) === undefined
  }

  /**
   * Takes a node down: copies arriving for it are dropped and its timers are cancelled.
   *
   * Its handler is not called again until {@link SimNetwork.restart}. Throws if it is already down.
   */
  crash(id: string): void {
    const node = this.state(id)
    if (!node.up) throw new Error(`SimNetwork.crash: node ${JSON.stringify(id)} is already down`)
    node.up = false
    node.incarnation++
    const cancelledTimers = this.scheduler.cancelOwner(timerOwner(id))
    this.emit({ type: 'crash', time: this.now(), node: id, cancelledTimers })
  }

  /** Brings a crashed node up again, optionally with a fresh handler; throws if it is up. */
  restart(id: string, node?: SimNode<TMessage>): void {
    const state = this.state(id)
    if (state.up) throw new Error(`SimNetwork.restart: node ${JSON.stringify(id)} is not down`)
    state.up = true
    if (node !== undefined) state.handler = node
    this.emit({ type: 'restart', time: this.now(), node: id })
  }

  /** True unless the node is crashed; throws for an unknown id. */
  isUp(id: string): boolean {
    return this.state(id).up
  }

  /**
   * Schedules a timer owned by node `owner`, cancelled if that node crashes.
   *
   * A timer set while its owner is down, or by an earlier life of it, never fires.
   */
  setTimer(owner: string, delayMs: number, task: ScheduledTask): TimerId {
    const node = this.state(owner)
    const incarnation = node.incarnation
    const up = node.up
    return this.scheduler.after(
      delayMs,
      () => (up && node.up && node.incarnation === incarnation ? task() : undefined),
      timerOwner(owner),
    )
  }

  /** Cancels a timer from {@link SimNetwork.setTimer}; unknown or fired ids are ignored. */
  clearTimer(id: TimerId): void {
    this.scheduler.cancel(id)
  }

  private scheduleCopy(
    id: number,
    from: string,
    to: string,
    message: TMessage,
    incarnation: number,
    delayMs: number,
  ): void {
    const deliverAt = this.now() + delayMs
    this.emit({ type: 'schedule', time: this.now(), id, from, to, deliverAt })
    this.scheduler.at(deliverAt, () => {
      const target = this.state(to)
      const reason =
        !target.up || target.incarnation !== incarnation ? 'target-down' : this.blockReason(from, to)
      if (reason !== undefined) {
        this.block(id, from, to, reason, 'delivery')
        this.onUndelivered?.(from, to, message)
        return
      }
      this.counters.delivered++
      this.emit({ type: 'deliver', time: this.now(), id, from, to, message })
      return target.handler.deliver(from, message)
    })
  }

  /** How long `message` waits for the link and takes to cross it (see `LinkFaults.bytesPerMs`). */
  private carry(from: string, to: string, message: TMessage, faults: LinkFaults): number {
    if (faults.bytesPerMs <= 0) return 0
    const key = linkKey(from, to)
    const start = Math.max(this.now(), this.linkBusyUntil.get(key) ?? 0)
    const done = start + Math.ceil((this.sizeOf?.(message) ?? 1) / faults.bytesPerMs)
    this.linkBusyUntil.set(key, done)
    return done - this.now()
  }

  private drawDelay(faults: LinkFaults, prng: Prng): number {
    const jitter = prng.int(0, faults.jitterMs)
    const extra = prng.bool(faults.reorder) ? prng.int(1, 10 * Math.max(faults.latencyMs, 1)) : 0
    return faults.latencyMs + jitter + extra
  }

  private block(id: number, from: string, to: string, reason: BlockReason, stage: 'send' | 'delivery'): void {
    this.counters.blocked++
    this.emit({ type: 'blocked', time: this.now(), id, from, to, reason, stage })
  }

  private blockReason(from: string, to: string): BlockReason | undefined {
    if (from === to) return undefined
    if (this.cuts.has(linkKey(from, to))) return 'cut'
    if (this.groupOf.size > 0 && (this.groupOf.get(from) ?? -1) !== (this.groupOf.get(to) ?? -1)) {
      return 'partition'
    }
    return undefined
  }

  private linkPrng(from: string, to: string): Prng {
    const key = linkKey(from, to)
    let prng = this.linkPrngs.get(key)
    if (prng === undefined) {
      prng = this.prng.fork(`link:${key}`)
      this.linkPrngs.set(key, prng)
    }
    return prng
  }

  private state(id: string): NodeState<TMessage> {
    const node = this.nodeStates.get(id)
    if (node === undefined) throw new RangeError(`SimNetwork has no node ${JSON.stringify(id)}`)
    return node
  }

  private emit(event: SimTraceEvent<TMessage>): void {
    this.onTrace?.(event)
  }
}

/** An unambiguous key for a directed link, whatever characters the ids contain. */
function linkKey(from: string, to: string): string {
  return JSON.stringify([from, to])
}

/** Scheduler owner of a node's timers, namespaced so it cannot collide with other owners. */
function timerOwner(id: string): string {
  return `sim-network:${id}`
}

const faultKeys = ['latencyMs', 'jitterMs', 'loss', 'duplicate', 'reorder', 'bytesPerMs'] as const

/** Only the fields that are set, so `{ loss: undefined }` never erases a value when spread. */
function definedFields(faults: Partial<LinkFaults>): Partial<LinkFaults> {
  const result: { -readonly [K in keyof LinkFaults]?: number } = {}
  for (const key of faultKeys) {
    const value = faults[key]
    if (value !== undefined) result[key] = value
  }
  return result
}

/** Merges `faults` over `base`, validating the result. */
function mergeFaults(base: LinkFaults, faults: Partial<LinkFaults>): LinkFaults {
  const merged: LinkFaults = { ...base, ...definedFields(faults) }
  for (const key of ['latencyMs', 'jitterMs'] as const) {
    const value = merged[key]
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${key} must be a non-negative integer number of ms, got ${value}`)
    }
  }
  if (!(Number.isFinite(merged.bytesPerMs) && merged.bytesPerMs >= 0)) {
    throw new RangeError(`bytesPerMs must be a non-negative number, got ${merged.bytesPerMs}`)
  }
  for (const key of ['loss', 'duplicate', 'reorder'] as const) {
    const value = merged[key]
    if (!(value >= 0 && value <= 1))
      throw new RangeError(`${key} must be a probability in [0, 1], got ${value}`)
  }
  return merged
}
