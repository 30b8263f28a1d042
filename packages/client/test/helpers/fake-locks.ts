import type { LockManagerLike } from '../../src/tabs/tab-group.js'

/** Exclusive locks only: a FIFO of waiters per name; `steal` aborts the holder's request. */
export class FakeLocks implements LockManagerLike {
  readonly #held = new Map<string, { reject: (error: unknown) => void; done: Promise<void> }>()
  readonly #waiting = new Map<string, (() => void)[]>()

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
      options.signal?.addEventListener('abort', () => {
        const index = queue.indexOf(wait)
        if (index >= 0) queue.splice(index, 1)
        reject(new DOMException('aborted', 'AbortError'))
      })
    })
  }
}
