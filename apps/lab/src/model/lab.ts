import { ChorusError, ErrorCode } from '@chorus/core'
import type { Scheduler, SimNetwork, SimTraceEvent } from '@chorus/testkit'
import type {
  Lab,
  LabAction,
  LabSettings,
  LabView,
  LinkView,
  MessageView,
  NodeView,
  OperationView,
  Scoreboard,
  TimedAction,
  TimelineEvent,
} from './types.js'

/** How long a dropped message stays in the view after it is dropped (virtual ms). */
export const DROPPED_LINGER_MS = 300

/** Throws the `invalid-argument` error every bad action or setting gets; `message` says what to do. */
export function invalid(message: string): never {
  throw new ChorusError(ErrorCode.InvalidArgument, message)
}

/** A client operation as the lab tracks it; the view copies it. */
export interface OperationRecord {
  readonly id: number
  readonly client: string
  readonly node: string
  readonly kind: 'write' | 'read'
  readonly key: string
  value?: string
  readonly mode?: OperationView['mode']
  readonly startedAt: number
  endedAt?: number
  outcome?: 'ok' | 'rejected' | 'timeout'
  detail?: string
  /** The request id the client sent it under (single-leader, quorum). */
  requestId?: string
  /** The client's own promise, awaited before a view is taken once the op is due. */
  promise?: Promise<unknown>
  /** When the client gives up on it (virtual ms, lab time). */
  readonly deadline: number
}

interface TimelineRecord {
  readonly seq: number
  readonly at: number
  readonly kind: string
  readonly text: string
  /** A read result: its text gains ` — stale` once the stale-read checker flags it. */
  readonly op?: OperationRecord
}

interface MessageRecord {
  readonly id: number
  readonly wireId: number
  readonly from: string
  readonly to: string
  readonly label: string
  readonly sentAt: number
  readonly arrivesAt: number
  dropped?: MessageView['dropped']
  droppedAt?: number
}

/** What every design's lab shares: the network, the clock and the faults it injects. */
export interface LabParts<TMessage> {
  readonly settings: LabSettings
  readonly network: SimNetwork<TMessage>
  /** The server nodes (or replicas and the relay), as the network names them. */
  readonly nodes: readonly string[]
  /** A short label for a message on the wire. */
  readonly label: (message: TMessage) => string
  /** The view's name for a network node (the multi-leader hub is the `relay`). */
  readonly viewName?: (networkName: string) => string
  /** The network's name for a node the page names. */
  readonly networkName?: (viewName: string) => string
}

/**
 * The lab machinery every design shares: actions recorded with their virtual time, a timeline,
 * client operations that settle as time runs, messages in flight from the network's trace, and
 * the network faults (latency, cuts, partitions, heal).
 *
 * Determinism: everything that lands on the timeline is written either while an action is
 * applied or inside a task of the virtual scheduler (a trace event, a node step, a task the
 * lab schedules), never when a run happens to end, so the timeline does not depend on how
 * `advance` calls were chunked. Calls are queued: an `apply` issued while an `advance` runs
 * waits for it.
 */
export abstract class LabBase<TMessage> implements Lab {
  readonly settings: LabSettings
  protected readonly network: SimNetwork<TMessage>
  protected readonly scheduler: Scheduler
  protected readonly nodeIds: readonly string[]
  protected readonly operations: OperationRecord[] = []
  protected readonly clientNames: string[] = []
  private readonly parts: LabParts<TMessage>
  private startMs = 0
  private readonly listeners = new Set<() => void>()
  private readonly recorded: TimedAction[] = []
  private readonly timeline: TimelineRecord[] = []
  private messages: MessageRecord[] = []
  private readonly sent = new Map<number, { readonly label: string; readonly sentAt: number }>()

  messagesHeld(): number {
    return this.sent.size
  }
  private nextMessage = 1
  private queue: Promise<unknown> = Promise.resolve()
  private cached: LabView | undefined
  /** An operation being started: the next request a client sends belongs to it. */
  private starting: OperationRecord | undefined

  protected constructor(parts: LabParts<TMessage>) {
    this.parts = parts
    this.settings = parts.settings
    this.network = parts.network
    this.scheduler = parts.network.scheduler
    this.nodeIds = parts.nodes
  }

  /** Makes the current virtual time lab time 0 and starts watching the network. */
  protected begin(): void {
    this.startMs = this.scheduler.now()
    this.network.onTrace = (event) => this.onTrace(event)
  }

  now(): number {
    return this.scheduler.now() - this.startMs
  }

  actions(): readonly TimedAction[] {
    return [...this.recorded]
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  advance(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) invalid(`advance needs a finite number of ms >= 0, got ${ms}`)
    return this.serially(async () => {
      await this.run(ms)
      await this.settleDue()
      await this.afterRun()
    })
  }

  apply(action: LabAction): Promise<void> {
    return this.serially(async () => {
      this.validate(action)
      this.recorded.push({ at: this.now(), action })
      await this.perform(action)
      await this.settleDue()
      await this.afterRun()
    })
  }

  view(): LabView {
    this.cached ??= this.buildView()
    return this.cached
  }

  /** Appends a timeline event at the current virtual time. */
  protected event(kind: string, text: string, op?: OperationRecord): void {
    const at = this.now()
    this.timeline.push({
      seq: this.timeline.length + 1,
      at,
      kind,
      text,
      ...(op === undefined ? {} : { op }),
    })
  }

  /**
   * Starts tracking a client operation; `send` makes the request (it must not be awaited).
   * `timeoutMs` is when the client gives up (0: the operation is local and ends at once).
   */
  protected startOperation(
    fields: Omit<OperationRecord, 'id' | 'startedAt' | 'deadline'>,
    timeoutMs: number,
    send: () => Promise<unknown>,
  ): OperationRecord {
    const op: OperationRecord = {
      ...fields,
      id: this.operations.length + 1,
      startedAt: this.now(),
      deadline: this.now() + timeoutMs,
    }
    this.operations.push(op)
    this.starting = op
    try {
      op.promise = send().catch((error: unknown) => {
        this.finish(op, 'timeout', `failed: ${error instanceof Error ? error.message : String(error)}`)
      })
    } finally {
      this.starting = undefined
    }
    if (timeoutMs > 0) {
      // Scheduled after the client's own timeout (same time, later task), so whatever the
      // client heard by then is known.
      this.later(timeoutMs, () => {
        if (op.endedAt !== undefined) return
        this.finish(
          op,
          'timeout',
          op.kind === 'write' ? 'no reply: it may or may not have happened' : 'no reply',
        )
      })
    }
    return op
  }

  /** Ends an operation with its outcome and puts the result on the timeline. */
  protected finish(op: OperationRecord, outcome: 'ok' | 'rejected' | 'timeout', detail?: string): void {
    if (op.endedAt !== undefined) return
    op.endedAt = this.now()
    op.outcome = outcome
    if (detail !== undefined) op.detail = detail
    const what = op.kind === 'write' ? `write ${op.key} = ${op.value}` : `read ${op.key}`
    const result =
      outcome === 'ok'
        ? op.kind === 'read'
          ? `→ ${op.value ?? '(nothing)'}`
          : 'ok'
        : outcome === 'rejected'
          ? 'rejected'
          : 'timed out'
    this.event(
      op.kind,
      `${op.client} ${what} at ${op.node}: ${result}${detail === undefined ? '' : ` (${detail})`}`,
      op,
    )
  }

  /** Runs `task` on the virtual scheduler after `ms` (a lab task, deterministic like any other). */
  protected later(ms: number, task: () => void | Promise<void>): void {
    this.scheduler.after(ms, task)
  }

  /** The network's name for a node the page names, or an `invalid-argument` error. */
  protected node(name: string): string {
    const id = this.parts.networkName?.(name) ?? name
    if (!this.nodeIds.includes(id)) {
      invalid(
        `unknown node ${JSON.stringify(name)}; use one of ${this.nodeIds.map((n) => this.viewName(n)).join(', ')}`,
      )
    }
    return id
  }

  protected viewName(id: string): string {
    return this.parts.viewName?.(id) ?? id
  }

  /** Checks a client name: a fresh or known client, never a node. */
  protected client(name: string): string {
    if (typeof name !== 'string' || !/^[a-z][a-z0-9-]{0,15}$/.test(name)) {
      invalid(`client names are short lowercase words such as c1; got ${JSON.stringify(name)}`)
    }
    if (this.nodeIds.includes(name) || this.nodeIds.some((id) => this.viewName(id) === name)) {
      invalid(`${name} is a node; name the client something else, such as c1`)
    }
    return name
  }

  /** Checks every field an action has, then the design's own rules. */
  private validate(action: LabAction): void {
    switch (action.type) {
      case 'write':
      case 'read':
        this.client(action.client)
        this.node(action.node)
        if (typeof action.key !== 'string' || action.key.length === 0 || action.key.length > 32) {
          invalid('a key is a short non-empty string, such as x')
        }
        if (action.type === 'write' && typeof action.value !== 'string')
          invalid('a written value is a string')
        if (action.type === 'read' && !['any', 'read-your-writes', 'monotonic'].includes(action.mode)) {
          invalid(
            `read mode ${JSON.stringify(action.mode)} is unknown; use any, read-your-writes or monotonic`,
          )
        }
        break
      case 'latency':
        this.pair(action.a, action.b)
        if (!Number.isSafeInteger(action.ms) || action.ms < 0 || action.ms > 60_000) {
          invalid(`latency is a whole number of ms between 0 and 60000, got ${action.ms}`)
        }
        break
      case 'cut':
        this.pair(action.a, action.b)
        break
      case 'partition': {
        const seen = new Set<string>()
        if (!Array.isArray(action.groups) || action.groups.length < 1)
          invalid('a partition needs at least one group of nodes')
        for (const group of action.groups) {
          for (const name of group) {
            const id = this.node(name)
            if (seen.has(id)) invalid(`${name} is in two groups; put each node in one group`)
            seen.add(id)
          }
        }
        break
      }
      case 'heal':
        break
      case 'kill':
      case 'restart':
      case 'pause':
      case 'promote':
      case 'resolve':
        this.node(action.node)
        if (
          action.type === 'pause' &&
          (!Number.isSafeInteger(action.ms) || action.ms < 1 || action.ms > 600_000)
        ) {
          invalid(`a pause lasts a whole number of ms between 1 and 600000, got ${action.ms}`)
        }
        break
      default:
        invalid(`unknown action ${JSON.stringify((action as { type?: unknown }).type)}`)
    }
    this.validateForDesign(action)
  }

  private pair(a: string, b: string): void {
    if (this.node(a) === this.node(b)) invalid(`a link joins two different nodes; got ${a} twice`)
    if (!this.carries(this.node(a), this.node(b))) {
      invalid(`no messages travel between ${a} and ${b} in this design; pick a link the diagram shows`)
    }
  }

  /** True when the design's messages can travel between network nodes `a` and `b` (default: every pair). */
  protected carries(_a: string, _b: string): boolean {
    return true
  }

  /** Applies the network actions every design shares; returns false for the others. */
  protected performNetwork(action: LabAction): boolean {
    switch (action.type) {
      case 'latency': {
        const a = this.node(action.a)
        const b = this.node(action.b)
        this.network.setFaults({ latencyMs: action.ms }, a, b)
        this.network.setFaults({ latencyMs: action.ms }, b, a)
        this.event('network', `link ${action.a}–${action.b}: latency ${action.ms} ms each way`)
        return true
      }
      case 'cut': {
        const a = this.node(action.a)
        const b = this.node(action.b)
        this.network.cut(a, b)
        this.network.cut(b, a)
        this.event('network', `link ${action.a}–${action.b} cut`)
        return true
      }
      case 'partition': {
        // Cuts between the groups rather than a network partition: clients are not named in
        // any group and must still reach every node, as a client of each side does.
        const groups = action.groups.map((group) => group.map((name) => this.node(name)))
        const named = new Set(groups.flat())
        const rest = this.nodeIds.filter((id) => !named.has(id))
        const all = rest.length > 0 ? [...groups, rest] : groups
        for (const [i, group] of all.entries()) {
          for (const other of all.slice(i + 1)) {
            for (const a of group) {
              for (const b of other) {
                this.network.cut(a, b)
                this.network.cut(b, a)
              }
            }
          }
        }
        this.event(
          'network',
          `partition: ${all.map((group) => `{${group.map((id) => this.viewName(id)).join(', ')}}`).join(' | ')}`,
        )
        return true
      }
      case 'heal':
        this.network.heal()
        this.event('network', 'network healed: every cut and partition ends')
        return true
      default:
        return false
    }
  }

  /** The design's own checks of an action (nodes and clients are already checked). */
  protected abstract validateForDesign(action: LabAction): void

  /** Performs a validated action. */
  protected abstract perform(action: LabAction): Promise<void>

  /** Design work after every advance or action (refreshing caches of asynchronous state). */
  protected async afterRun(): Promise<void> {}

  protected abstract nodeViews(): NodeView[]

  protected abstract scoreboard(): Scoreboard

  /** Indices (into {@link operations}) of reads the stale-read checker flags. */
  protected abstract staleOperations(): ReadonlySet<number>

  /** A reply to a client arrived (single-leader, quorum): the design settles its operation. */
  protected onReply(_op: OperationRecord, _message: TMessage): void {}

  /** The request id of a client's frame, when the design's clients send requests. */
  protected requestIdOf(_message: TMessage): string | undefined {
    return undefined
  }

  /**
   * True for designs whose nodes leave work running in the background of a scheduler task
   * (promise chains that outlive the task): the run then goes task by task and waits for
   * that work after each (see {@link drained}).
   */
  protected backgroundWork(): boolean {
    return false
  }

  /**
   * Runs `ms` of virtual time. With {@link backgroundWork}, it runs task by task and lets the
   * background work of each finish before the next, so a run split into many short advances
   * and one long advance do exactly the same work in the same order. (The end of an advance
   * lets background work finish too; without this, a long advance would start the next task
   * earlier than a short one does.) Marker tasks find the end of the window: they run no code,
   * so they change no order among the real tasks.
   */
  private async run(ms: number): Promise<void> {
    if (!this.backgroundWork()) {
      await this.scheduler.runFor(ms)
      return
    }
    const end = this.scheduler.now() + ms
    for (;;) {
      let reached = false
      let ran = 0
      this.scheduler.at(end, () => {
        reached = true
      })
      while (!reached) {
        await this.scheduler.step()
        if (!reached) ran++
        await drained()
      }
      if (ran === 0 || this.scheduler.now() < end) return
    }
  }

  private serially(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task)
    this.queue = run.catch(() => undefined)
    return run.finally(() => {
      this.cached = undefined
      for (const listener of [...this.listeners]) listener()
    })
  }

  /** Awaits the client promises of operations that are due, so their bookkeeping is done. */
  private async settleDue(): Promise<void> {
    const now = this.now()
    const due = this.operations.filter(
      (op) => op.promise !== undefined && (op.endedAt !== undefined || op.deadline <= now),
    )
    await Promise.all(due.map((op) => op.promise))
    for (const op of due) delete op.promise
  }

  private onTrace(event: SimTraceEvent<TMessage>): void {
    const at = event.time - this.startMs
    switch (event.type) {
      case 'send': {
        this.sent.set(event.id, { label: this.parts.label(event.message), sentAt: at })
        if (this.starting !== undefined && this.starting.requestId === undefined) {
          const id = this.requestIdOf(event.message)
          if (id !== undefined) this.starting.requestId = id
        }
        break
      }
      case 'schedule': {
        const sent = this.sent.get(event.id)
        this.messages.push({
          id: this.nextMessage++,
          wireId: event.id,
          from: this.viewName(event.from),
          to: this.viewName(event.to),
          label: sent?.label ?? 'message',
          sentAt: sent?.sentAt ?? at,
          arrivesAt: event.deliverAt - this.startMs,
        })
        break
      }
      case 'deliver': {
        this.removeCopy(event.id, at)
        this.sent.delete(event.id)
        if (this.clientNames.includes(event.to)) {
          const id = this.requestIdOf(event.message)
          const op = this.operations.find(
            (candidate) => candidate.requestId === id && candidate.client === event.to,
          )
          if (op !== undefined && op.endedAt === undefined) this.onReply(op, event.message)
        }
        break
      }
      case 'lost':
      case 'blocked': {
        const reason = event.type === 'lost' ? 'lost' : event.reason
        const copy =
          event.type === 'blocked' && event.stage === 'delivery' ? this.removeCopy(event.id, at) : undefined
        const sent = this.sent.get(event.id)
        this.messages.push({
          id: this.nextMessage++,
          wireId: event.id,
          from: this.viewName(event.from),
          to: this.viewName(event.to),
          label: copy?.label ?? sent?.label ?? 'message',
          sentAt: copy?.sentAt ?? sent?.sentAt ?? at,
          arrivesAt: copy?.arrivesAt ?? at,
          dropped: reason,
          droppedAt: at,
        })
        // Its label is not needed once no copy of it is in flight (a cut link drops every
        // heartbeat across it: kept, they would pile up for as long as the cut lasts).
        if (!this.messages.some((message) => message.wireId === event.id && message.dropped === undefined))
          this.sent.delete(event.id)
        break
      }
      default:
        break
    }
    this.pruneDropped(at)
  }

  /** Removes the earliest-due copy of wire message `wireId` still in flight. */
  private removeCopy(wireId: number, _at: number): MessageRecord | undefined {
    let best = -1
    this.messages.forEach((message, index) => {
      if (message.wireId !== wireId || message.dropped !== undefined) return
      const current = this.messages[best]
      if (current === undefined || message.arrivesAt < current.arrivesAt) best = index
    })
    if (best < 0) return undefined
    const [removed] = this.messages.splice(best, 1)
    return removed
  }

  private pruneDropped(at: number): void {
    if (this.messages.some((m) => m.droppedAt !== undefined && m.droppedAt + DROPPED_LINGER_MS < at)) {
      this.messages = this.messages.filter(
        (m) => m.droppedAt === undefined || m.droppedAt + DROPPED_LINGER_MS >= at,
      )
    }
  }

  private buildView(): LabView {
    const now = this.now()
    const stale = this.staleOperations()
    const operations: OperationView[] = this.operations.map((op, index) => ({
      id: op.id,
      client: op.client,
      node: op.node,
      kind: op.kind,
      key: op.key,
      startedAt: op.startedAt,
      ...(op.value === undefined ? {} : { value: op.value }),
      ...(op.mode === undefined ? {} : { mode: op.mode }),
      ...(op.endedAt === undefined ? {} : { endedAt: op.endedAt }),
      ...(op.outcome === undefined ? {} : { outcome: stale.has(index) ? 'stale' : op.outcome }),
      ...(op.detail === undefined ? {} : { detail: op.detail }),
    }))
    const timeline: TimelineEvent[] = this.timeline.map(({ seq, at, kind, text, op }) => ({
      seq,
      at,
      kind,
      text: op !== undefined && stale.has(op.id - 1) ? `${text} — stale` : text,
    }))
    const messages: MessageView[] = this.messages
      .filter((m) => m.droppedAt === undefined || m.droppedAt + DROPPED_LINGER_MS >= now)
      .map(({ id, from, to, label, sentAt, arrivesAt, dropped }) => ({
        id,
        from,
        to,
        label,
        sentAt,
        arrivesAt,
        ...(dropped === undefined ? {} : { dropped }),
      }))
    return {
      settings: this.settings,
      now,
      nodes: this.nodeViews(),
      links: this.linkViews(),
      messages,
      operations,
      timeline,
      scoreboard: this.scoreboard(),
      clients: [...this.clientNames],
    }
  }

  private linkViews(): LinkView[] {
    const links: LinkView[] = []
    for (const [i, a] of this.nodeIds.entries()) {
      for (const b of this.nodeIds.slice(i + 1)) {
        if (!this.carries(a, b)) continue
        links.push({
          a: this.viewName(a),
          b: this.viewName(b),
          latencyMs: this.network.linkFaults(a, b).latencyMs,
          cut: !this.network.canReach(a, b) || !this.network.canReach(b, a),
        })
      }
    }
    return links
  }
}

/**
 * Resolves on the next macrotask. Every store in the lab is in memory, so nodes never wait on
 * real I/O: once a macrotask runs, the microtask queue is empty and every promise chain a
 * scheduler task started has run to its end (or to a virtual timer). Waiting for this after
 * each task makes a run independent of how `advance` is chunked, without guessing how long
 * the chains are.
 */
export function drained(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof setImmediate === 'function') setImmediate(resolve)
    else {
      const channel = new MessageChannel()
      channel.port1.onmessage = () => {
        channel.port1.close()
        resolve()
      }
      channel.port2.postMessage(null)
    }
  })
}
