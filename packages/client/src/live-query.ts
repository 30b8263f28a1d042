import { rethrowLater } from './events.js'
import type { Timers } from './timers.js'

/** Options for {@link LiveQuery}. */
export interface LiveQueryOptions<TResult> {
  readonly load: () => Promise<TResult>
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
 */
export class LiveQuery<TResult> {
  readonly #options: LiveQueryOptions<TResult>
  #timer: unknown = null
  #loading = false
  #stale = false
  #stopped = false

  constructor(options: LiveQueryOptions<TResult>) {
    this.#options = options
  }

  /** Loads and delivers at once. */
  start(): void {
    void this.#run()
  }

  /** Something the query reads changed. */
  invalidate(): void {
    if (this.#stopped) return
    this.#stale = true
    if (!this.#loading) this.#schedule()
  }

  /** No more loads or deliveries, including one in flight. */
  stop(): void {
    this.#stopped = true
    if (this.#timer !== null) this.#options.timers.clearTimeout(this.#timer)
    this.#timer = null
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
    let outcome: { ok: true; result: TResult } | { ok: false; error: unknown }
    try {
      outcome = { ok: true, result: await this.#options.load() }
    } catch (error) {
      outcome = { ok: false, error }
    } finally {
      this.#loading = false
    }
    if (this.#stopped) return
    if (outcome.ok) {
      try {
        this.#options.deliver(outcome.result)
      } catch (error) {
        rethrowLater(error)
      }
    } else {
      this.#options.onError(outcome.error)
    }
    if (this.#stale) this.#schedule()
  }
}
