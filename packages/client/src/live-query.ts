import { rethrowLater } from './events.js'
import type { Timers } from './timers.js'

/** Options for {@link LiveQuery}. */
export interface LiveQueryOptions<TResult> {
  /**
   * Reads the result whole. `previous` is the last result read (null when there is none) and
   * `changed` the keys changed since it began (null when unknown), for a load that keeps the
   * parts of `previous` that did not change.
   */
  readonly load: (previous: TResult | null, changed: ReadonlySet<string> | null) => Promise<TResult>
  /**
   * Brings the last result up to date after changes to the named keys alone (optional): the
   * result `load` would give now, or null when a whole `load` is the better way (too many
   * keys). Without it, every change costs a `load`.
   */
  readonly update?: (previous: TResult, keys: ReadonlySet<string>) => Promise<TResult | null>
  /**
   * Whether a new result holds what the last one did, so that the listener is not called
   * again with the same (optional: without it, only the last result itself is the same; an
   * `update` that returns its `previous` is not delivered).
   */
  readonly same?: (previous: TResult, next: TResult) => boolean
  /** Receives each result; an error it throws is reported as uncaught, and the query goes on. */
  readonly deliver: (result: TResult) => void
  /** Receives a failed load; the query goes on and loads again on the next change. */
  readonly onError: (error: unknown) => void
  readonly timers: Timers
}

/**
 * A query kept current: it loads once when started, then again after every change it is told
 * about, and hands each result over.
 *
 * Changes are coalesced: a reload is scheduled for the next turn of the event loop (so the
 * writes of one turn cost one reload), and while a load runs, further changes only mark it
 * stale — one more load follows. Results are delivered in order, and the last one delivered
 * always reflects every change announced before it started.
 *
 * A change that names its keys, with `update` given, costs an update of the last result from
 * those keys alone rather than a whole load; a change that does not, or a failed read, makes
 * the next read a whole load.
 */
export class LiveQuery<TResult> {
  readonly #options: LiveQueryOptions<TResult>
  #timer: unknown = null
  #loading = false
  #stale = false
  #stopped = false
  /** The last result read (not necessarily delivered: a listener may have thrown). */
  #last: { readonly result: TResult } | null = null
  /** Whether a result was handed to `deliver` yet. */
  #delivered = false
  /** Keys changed since the last read began, or null when the next read must be a whole load. */
  #changed: Set<string> | null = new Set()

  constructor(options: LiveQueryOptions<TResult>) {
    this.#options = options
  }

  /** Loads and delivers at once. */
  start(): void {
    void this.#run()
  }

  /** Something the query reads changed: the records `keys` names, or anything when absent. */
  invalidate(keys?: readonly string[]): void {
    if (this.#stopped) return
    if (keys === undefined) this.#changed = null
    else if (this.#changed !== null) for (const key of keys) this.#changed.add(key)
    this.#stale = true
    if (!this.#loading) this.#schedule()
  }

  /**
   * No more loads or deliveries, including one in flight. With `reason`, a query that has
   * delivered nothing yet hands it to `onError`: a listener waiting for its first result
   * learns that none is coming.
   */
  stop(reason?: unknown): void {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#timer !== null) this.#options.timers.clearTimeout(this.#timer)
    this.#timer = null
    if (reason !== undefined && !this.#delivered) this.#options.onError(reason)
  }

  #schedule(): void {
    if (this.#timer !== null) return
    this.#timer = this.#options.timers.setTimeout(() => {
      this.#timer = null
      void this.#run()
    }, 0)
  }

  async #run(): Promise<void> {
    if (this.#stopped || this.#loading) return
    this.#loading = true
    this.#stale = false
    const changed = this.#changed
    this.#changed = new Set()
    let outcome: { ok: true; result: TResult } | { ok: false; error: unknown }
    try {
      outcome = { ok: true, result: await this.#read(changed) }
    } catch (error) {
      outcome = { ok: false, error }
    } finally {
      this.#loading = false
    }
    if (this.#stopped) return
    if (outcome.ok) {
      const last = this.#last
      if (
        last !== null &&
        (last.result === outcome.result || this.#options.same?.(last.result, outcome.result))
      ) {
        // Nothing a listener would see changed: keep the result it has.
        if (this.#stale) this.#schedule()
        return
      }
      this.#last = { result: outcome.result }
      this.#delivered = true
      try {
        this.#options.deliver(outcome.result)
      } catch (error) {
        rethrowLater(error)
      }
    } else {
      // Whatever changed meanwhile is unknown to the last result now: read it whole.
      this.#last = null
      this.#options.onError(outcome.error)
    }
    if (this.#stale) this.#schedule()
  }

  async #read(changed: ReadonlySet<string> | null): Promise<TResult> {
    const { update, load } = this.#options
    const last = this.#last
    if (update !== undefined && last !== null && changed !== null) {
      const updated = await update(last.result, changed)
      if (updated !== null) return updated
    }
    return load(last === null ? null : last.result, changed)
  }
}
