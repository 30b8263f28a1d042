import { ChorusError, ErrorCode } from '@chorus/core'

/** A listener for one event's payload. */
export type Listener<TPayload> = (payload: TPayload) => void

/**
 * A minimal typed event emitter.
 *
 * Listeners run synchronously, in subscription order. A listener that throws does not stop
 * the others or the emitter's caller: its error is rethrown on a fresh microtask, where the
 * platform reports it as uncaught (as DOM event listeners' errors are).
 */
export class Emitter<TEvents> {
  readonly #listeners = new Map<keyof TEvents, Set<Listener<never>>>()
  readonly #names: ReadonlySet<string>

  constructor(names: readonly (keyof TEvents & string)[]) {
    this.#names = new Set(names)
  }

  /** Adds a listener; returns the function that removes it. */
  on<TName extends keyof TEvents & string>(name: TName, listener: Listener<TEvents[TName]>): () => void {
    if (!this.#names.has(name)) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `unknown event ${JSON.stringify(name)}: use ${[...this.#names].map((known) => `'${known}'`).join(', ')}`,
      )
    }
    if (typeof listener !== 'function') {
      throw new ChorusError(ErrorCode.InvalidArgument, `the listener for '${name}' must be a function`)
    }
    let set = this.#listeners.get(name)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(name, set)
    }
    // Wrapped so the same function added twice is two subscriptions, each removed once.
    const entry: Listener<TEvents[TName]> = (payload) => listener(payload)
    set.add(entry)
    return () => {
      set.delete(entry)
    }
  }

  /** True when at least one listener is subscribed to `name`. */
  has(name: keyof TEvents & string): boolean {
    return (this.#listeners.get(name)?.size ?? 0) > 0
  }

  emit<TName extends keyof TEvents & string>(name: TName, payload: TEvents[TName]): void {
    const set = this.#listeners.get(name)
    if (set === undefined) return
    for (const listener of [...set] as Listener<TEvents[TName]>[]) {
      try {
        listener(payload)
      } catch (error) {
        rethrowLater(error)
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear()
  }
}

/** Reports an application callback's error as uncaught, without unwinding Chorus's own stack. */
export function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error
  })
}
