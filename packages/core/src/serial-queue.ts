/**
 * Runs async tasks one at a time, in the order they were queued.
 *
 * A task's failure rejects its own promise only; the queue goes on with the next task.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()

  run<TResult>(task: () => Promise<TResult>): Promise<TResult> {
    const result = this.#tail.then(task, task)
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    )
    return result
  }

  /** Resolves once every task queued so far has settled. */
  idle(): Promise<void> {
    return this.#tail.then(() => undefined)
  }
}
