/** Identifies a task scheduled on a {@link Scheduler}; ids are never reused within one scheduler. */
export type TimerId = number

/** A unit of work the scheduler runs at a virtual time; a returned promise is awaited before the next task. */
export type ScheduledTask = () => void | Promise<void>

/** Options for {@link Scheduler}. */
export interface SchedulerOptions {
  /** Virtual time of the first `now()`, in ms since the epoch (default 1_700_000_000_000). */
  readonly startMs?: number
}

/** Bounds on a run, guarding against a livelock where tasks keep scheduling tasks. */
export interface RunLimits {
  /** Most tasks a single run may execute before it throws (default 1_000_000). */
  readonly maxTasks?: number
}

/** Bounds on {@link Scheduler.runUntilIdle}. */
export interface RunUntilIdleLimits extends RunLimits {
  /** Most virtual time the run may cover; a task due later makes it throw (default: unbounded). */
  readonly maxTimeMs?: number
}

interface Entry {
  readonly id: TimerId
  readonly time: number
  readonly task: ScheduledTask
  readonly owner: string | undefined
}

const defaultStartMs = 1_700_000_000_000
const defaultMaxTasks = 1_000_000

/**
 * A virtual clock with a queue of tasks: simulated time only moves when a task runs or a run ends.
 *
 * Tasks run one at a time in order of (time, insertion), so a run is deterministic. A task's
 * promise is awaited before the next task starts, which means a task must never await
 * something only a later task would resolve (that run would never finish). Runs are not
 * re-entrant: calling `step`/`runFor`/`runUntilIdle` from inside a task throws.
 */
export class Scheduler {
  private currentMs: number
  private readonly heap: Entry[] = []
  private readonly live = new Map<TimerId, Entry>()
  private nextId = 1
  private running = false

  constructor(options: SchedulerOptions = {}) {
    const startMs = options.startMs ?? defaultStartMs
    assertFinite('startMs', startMs)
    this.currentMs = startMs
  }

  /** The current virtual time in ms. */
  now(): number {
    return this.currentMs
  }

  /** Number of tasks scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.live.size
  }

  /**
   * Schedules `task` at virtual time `timeMs`; a time in the past is clamped to now.
   *
   * Tasks due at the same time run in the order they were scheduled. `owner` groups tasks so
   * {@link Scheduler.cancelOwner} can cancel them together (e.g. all timers of a crashed node).
   */
  at(timeMs: number, task: ScheduledTask, owner?: string): TimerId {
    assertFinite('timeMs', timeMs)
    const entry: Entry = { id: this.nextId++, time: Math.max(timeMs, this.currentMs), task, owner }
    this.live.set(entry.id, entry)
    this.push(entry)
    return entry.id
  }

  /** Schedules `task` `delayMs` after now (a negative delay is clamped to 0). */
  after(delayMs: number, task: ScheduledTask, owner?: string): TimerId {
    assertFinite('delayMs', delayMs)
    return this.at(this.currentMs + delayMs, task, owner)
  }

  /** Cancels a pending task; cancelling one that already ran or was cancelled does nothing. */
  cancel(id: TimerId): void {
    this.live.delete(id)
  }

  /** Cancels every pending task scheduled with `owner`, returning how many were cancelled. */
  cancelOwner(owner: string): number {
    let cancelled = 0
    for (const entry of this.live.values()) {
      if (entry.owner === owner) {
        this.live.delete(entry.id)
        cancelled++
      }
    }
    return cancelled
  }

  /**
   * Runs the earliest pending task, moving now to its time; resolves false if none is pending.
   *
   * A task that throws or rejects makes `step` reject with that error, so the test sees it;
   * the task is already removed and the scheduler stays usable.
   */
  async step(): Promise<boolean> {
    this.enter('step')
    try {
      return await this.runNext()
    } finally {
      this.running = false
    }
  }

  /**
   * Runs every task due within the next `ms`, then sets now to exactly (start + ms).
   *
   * Tasks scheduled during the run are included if they fall in the window. Resolves to the
   * number of tasks run; throws once more than `maxTasks` would run (a livelock guard).
   */
  async runFor(ms: number, limits: RunLimits = {}): Promise<number> {
    assertFinite('ms', ms)
    if (ms < 0) throw new RangeError(`runFor(ms) needs ms >= 0, got ${ms}`)
    const maxTasks = readMaxTasks(limits)
    this.enter('runFor')
    try {
      const endMs = this.currentMs + ms
      let count = 0
      for (let next = this.peek(); next !== undefined && next.time <= endMs; next = this.peek()) {
        if (count >= maxTasks) throw this.livelockError('runFor', maxTasks, `reaching ${endMs}`)
        await this.runNext()
        count++
      }
      this.currentMs = endMs
      return count
    } finally {
      this.running = false
    }
  }

  /**
   * Runs tasks until none is pending, resolving to the number run.
   *
   * Throws once more than `maxTasks` would run, or when the next task is due more than
   * `maxTimeMs` after the run started, rather than spinning forever on a periodic timer.
   */
  async runUntilIdle(limits: RunUntilIdleLimits = {}): Promise<number> {
    const maxTasks = readMaxTasks(limits)
    const maxTimeMs = limits.maxTimeMs ?? Number.POSITIVE_INFINITY
    if (!(maxTimeMs >= 0)) throw new RangeError(`maxTimeMs must be >= 0, got ${maxTimeMs}`)
    this.enter('runUntilIdle')
    try {
      const deadlineMs = this.currentMs + maxTimeMs
      let count = 0
      for (let next = this.peek(); next !== undefined; next = this.peek()) {
        if (count >= maxTasks) throw this.livelockError('runUntilIdle', maxTasks, 'going idle')
        if (next.time > deadlineMs) {
          throw new Error(
            `Scheduler.runUntilIdle did not go idle within maxTimeMs=${maxTimeMs} ` +
              `(next task at ${next.time}, ${this.live.size} pending): a periodic timer keeps it busy; use runFor instead`,
          )
        }
        await this.runNext()
        count++
      }
      return count
    } finally {
      this.running = false
    }
  }

  private async runNext(): Promise<boolean> {
    const entry = this.peek()
    if (entry === undefined) return false
    this.pop()
    this.live.delete(entry.id)
    this.currentMs = entry.time
    await entry.task()
    return true
  }

  private enter(method: string): void {
    if (this.running) {
      throw new Error(`Scheduler.${method} called while a run is in progress (from inside a task?)`)
    }
    this.running = true
  }

  private livelockError(method: string, maxTasks: number, goal: string): Error {
    return new Error(
      `Scheduler.${method} ran ${maxTasks} tasks without ${goal} (now ${this.currentMs}, ` +
        `${this.live.size} pending): tasks keep scheduling tasks (livelock?). Raise maxTasks if this is expected.`,
    )
  }

  /** The earliest live entry, discarding cancelled entries from the top of the heap. */
  private peek(): Entry | undefined {
    let top = this.heap[0]
    while (top !== undefined && !this.live.has(top.id)) {
      this.pop()
      top = this.heap[0]
    }
    return top
  }

  private push(entry: Entry): void {
    const heap = this.heap
    heap.push(entry)
    let index = heap.length - 1
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = heap[parentIndex] as Entry
      if (!precedes(entry, parent)) break
      heap[index] = parent
      index = parentIndex
    }
    heap[index] = entry
  }

  private pop(): void {
    const heap = this.heap
    const last = heap.pop()
    if (last === undefined || heap.length === 0) return
    let index = 0
    for (;;) {
      const left = 2 * index + 1
      if (left >= heap.length) break
      const right = left + 1
      const leftEntry = heap[left] as Entry
      const rightEntry = heap[right]
      const child = rightEntry !== undefined && precedes(rightEntry, leftEntry) ? right : left
      const childEntry = heap[child] as Entry
      if (!precedes(childEntry, last)) break
      heap[index] = childEntry
      index = child
    }
    heap[index] = last
  }
}

/** Heap order: earlier time first, then earlier scheduling (ids increase monotonically). */
function precedes(a: Entry, b: Entry): boolean {
  return a.time < b.time || (a.time === b.time && a.id < b.id)
}

function assertFinite(name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite number, got ${value}`)
}

function readMaxTasks(limits: RunLimits): number {
  const maxTasks = limits.maxTasks ?? defaultMaxTasks
  if (!Number.isSafeInteger(maxTasks) || maxTasks < 0) {
    throw new RangeError(`maxTasks must be a non-negative integer, got ${maxTasks}`)
  }
  return maxTasks
}
