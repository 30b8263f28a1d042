import { ErrorCode, isChorusError, type Replica } from '@chorus/client'

/**
 * A load that failed, held as a snapshot so that the hook reading it throws it during render
 * (where an error boundary catches it) instead of the failure going unseen.
 */
export class LoadFailure {
  readonly error: unknown

  constructor(error: unknown) {
    this.error = error
  }
}

/** Where a source hands its values. Calls after the source was stopped are ignored. */
export interface SnapshotSink<TValue> {
  set(next: TValue): void
  fail(error: unknown): void
}

/** What keeps a {@link SharedSnapshot} current. */
export interface SnapshotSource<TValue> {
  /** Starts feeding the sink (possibly at once); returns the function that stops it. */
  start(sink: SnapshotSink<TValue>): () => void
  /**
   * Returns `previous` itself when `next` holds the same data, or `next` with the unchanged
   * parts of `previous` in it, so that React sees a new object only when the data changed.
   */
  reconcile(previous: TValue, next: TValue): TValue
}

/**
 * One value kept current from a source, shared by every component that reads it, in the
 * shape `useSyncExternalStore` wants: a stable `subscribe` and a `getSnapshot` that returns
 * the same object until the data changes.
 *
 * The source runs only while someone listens. When the last listener leaves (and none came
 * back within the same task) it is stopped and the value goes back to `undefined` (not
 * loaded), so a later reader never sees data that nobody kept current.
 */
export class SharedSnapshot<TValue> {
  readonly #source: SnapshotSource<TValue>
  readonly #onIdle: () => void
  readonly #listeners = new Set<() => void>()
  #value: TValue | LoadFailure | undefined = undefined
  #stop: (() => void) | null = null
  /** The running start, so that a stopped run's late values are dropped. */
  #run: object | null = null

  constructor(source: SnapshotSource<TValue>, onIdle: () => void) {
    this.#source = source
    this.#onIdle = onIdle
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener)
    if (this.#run === null) this.#start()
    return () => {
      if (!this.#listeners.delete(listener) || this.#listeners.size > 0) return
      // Not at once: StrictMode unsubscribes and subscribes again in one go on mount, and a
      // snapshot halted then would be forgotten while its component still reads it (a render
      // would then make a new one that nothing starts, and stay `undefined`).
      const run = this.#run
      queueMicrotask(() => {
        if (this.#listeners.size === 0 && this.#run === run) this.#halt()
      })
    }
  }

  readonly getSnapshot = (): TValue | LoadFailure | undefined => this.#value

  #start(): void {
    const run = {}
    this.#run = run
    const sink: SnapshotSink<TValue> = {
      set: (next) => {
        if (this.#run !== run) return
        const previous = this.#value
        this.#publish(
          previous === undefined || previous instanceof LoadFailure
            ? next
            : this.#source.reconcile(previous, next),
        )
      },
      fail: (error) => {
        if (this.#run !== run) return
        // The replica was closed under a snapshot it had loaded: its updates stop there, and
        // it keeps showing what it last read. A first load refused is an error to show.
        const shown = this.#value !== undefined && !(this.#value instanceof LoadFailure)
        if (shown && isChorusError(error, ErrorCode.Closed)) return
        this.#publish(new LoadFailure(error))
      },
    }
    try {
      const stop = this.#source.start(sink)
      if (this.#run === run) this.#stop = stop
      else stop()
    } catch (error) {
      sink.fail(error)
    }
  }

  #halt(): void {
    const stop = this.#stop
    this.#run = null
    this.#stop = null
    this.#value = undefined
    stop?.()
    this.#onIdle()
  }

  #publish(next: TValue | LoadFailure): void {
    if (next === this.#value) return
    this.#value = next
    for (const listener of [...this.#listeners]) listener()
  }
}

const registries = new WeakMap<Replica, Map<string, SharedSnapshot<unknown>>>()

/**
 * The shared snapshot of `replica` named `key`, made with `source` if there is none.
 *
 * It is forgotten once its last listener leaves; a component still holding it starts it
 * again on its own, which costs a second load but never shows stale data.
 */
export function sharedSnapshot<TValue>(
  replica: Replica,
  key: string,
  source: () => SnapshotSource<TValue>,
): SharedSnapshot<TValue> {
  let registry = registries.get(replica)
  if (registry === undefined) {
    registry = new Map()
    registries.set(replica, registry)
  }
  const existing = registry.get(key)
  if (existing !== undefined) return existing as SharedSnapshot<TValue>
  const created: SharedSnapshot<TValue> = new SharedSnapshot(source(), () => {
    if (registry.get(key) === created) registry.delete(key)
  })
  registry.set(key, created as SharedSnapshot<unknown>)
  return created
}
