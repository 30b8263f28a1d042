import type { LockManagerLike } from '../../src/tabs/tab-group.js'

/** Exclusive locks only: a FIFO of waiters per name; `steal` aborts the holder's request; `signal` aborts a queued one. */
export class FakeLocks implements LockManagerLike {
  readonly #held = new Map<string, { reject: (error: unknown) => void; done: Promise<void> }>()
  readonly #waiting = new Map<string, (() => void)[]>()
  /** When each lock was last granted (`Date.now()`). */
  readonly #granted = new Map<string, number>()

  /**
   * Every lock held or waited for, as `name: held, N waiting`, and how long ago (ms) each was
   * last granted: for a test that times out to say who was stuck behind what.
   */
  describe(now = Date.now()): string {
    const names = new Set([
      ...this.#held.keys(),
      ...[...this.#waiting].filter(([, q]) => q.length > 0).map(([n]) => n),
    ])
    return [...names]
      .map((name) => {
        const granted = this.#granted.get(name)
        const held = this.#held.has(name)
          ? `held${granted === undefined ? '' : ` for ${now - granted} ms`}`
          : 'free'
        return `${name}: ${held}, ${this.waiting(name)} waiting`
      })
      .join('; ')
  }

  /** How many requests for `name` wait for it (not counting its holder). */
  waiting(name: string): number {
    return this.#waiting.get(name)?.length ?? 0
  }

  request<TResult>(
    name: string,
    options: { readonly mode?: 'exclusive'; readonly steal?: boolean; readonly signal?: AbortSignal },
    callback: (lock: unknown) => Promise<TResult> | TResult,
  ): Promise<TResult> {
    return new Promise<TResult>((resolve, reject) => {
      const grant = () => {
        let release!: () => void
        const done = new Promise<void>((r) => {
          release = r
        })
        this.#held.set(name, { reject, done })
        this.#granted.set(name, Date.now())
        Promise.resolve()
          .then(() => callback({ name }))
          .then(resolve, reject)
          .finally(() => {
            if (this.#held.get(name)?.done === done) {
              this.#held.delete(name)
              this.#waiting.get(name)?.shift()?.()
            }
            release()
          })
      }
      if (options.steal === true) {
        const holder = this.#held.get(name)
        this.#held.delete(name)
        holder?.reject(new DOMException('stolen', 'AbortError'))
        grant()
        return
      }
      if (!this.#held.has(name)) {
        grant()
        return
      }
      const queue = this.#waiting.get(name) ?? []
      const wait = () => grant()
      queue.push(wait)
      this.#waiting.set(name, queue)
      // As in the Web Locks API, an abort takes a request out of the queue; once the lock is
      // granted it does nothing (the request's promise settles with the callback's result).
      options.signal?.addEventListener('abort', () => {
        const index = queue.indexOf(wait)
        if (index < 0) return
        queue.splice(index, 1)
        reject(new DOMException('aborted', 'AbortError'))
      })
    })
  }
}
