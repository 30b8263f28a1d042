import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'
import type { AppendResult, NodeStorage, PendingAppend } from '../storage.js'
import type { SqliteNodeStorageOptions } from './sqlite-node-storage.js'

/** What the storage worker is started with. */
export interface StorageWorkerData {
  /** The module the worker runs (`storage-worker.ts` or `.js`), for `worker/run-module.mjs`. */
  readonly module: string
  readonly path: string
  readonly fsync: boolean
}

/** A call posted to the storage worker; answered with the same `id`. */
export type StorageCall =
  | { readonly id: number; readonly type: 'load' }
  | { readonly id: number; readonly type: 'append'; readonly appends: readonly PendingAppend<unknown>[] }
  | { readonly id: number; readonly type: 'fail-next'; readonly message: string }
  | { readonly id: number; readonly type: 'close' }

/** The worker's answer to a call (id 0: to its start). */
export type WorkerAnswer =
  | { readonly type: 'ok'; readonly value: unknown }
  | { readonly type: 'failed'; readonly code: ErrorCode; readonly message: string }

interface Waiting {
  readonly resolve: (value: unknown) => void
  readonly reject: (error: ChorusError) => void
}

/**
 * A {@link NodeStorage} whose SQLite file lives on a worker thread: a `SqliteNodeStorage`
 * (same file format, same guarantees) that the node's event loop calls by message.
 *
 * better-sqlite3 blocks the thread that commits: with `SqliteNodeStorage` a node does nothing
 * else while its commit and fsync run. Here the commit runs on the worker, and the event loop
 * keeps reading requests and peer frames meanwhile, so the next group commit gathers more of
 * them. Durability is unchanged: an append resolves `ok` only after the worker's commit (and
 * fsync) finished, and the runtime performs no effect that follows it before then. Records
 * cross the thread boundary by structured clone.
 *
 * If the worker dies, every call after that fails: appends resolve `failed`, `load` rejects
 * with `storage-failed`. Call {@link close} when the node stops.
 */
export class WorkerNodeStorage<TRecord> implements NodeStorage<TRecord> {
  /** The database file. */
  readonly path: string
  readonly #worker: Worker
  readonly #waiting = new Map<number, Waiting>()
  #nextId = 1
  #dead: string | null = null
  #closed: Promise<void> | null = null

  private constructor(path: string, worker: Worker) {
    this.path = path
    this.#worker = worker
  }

  /**
   * Starts the worker and opens (creating if needed) the node's database file there. Rejects
   * as `SqliteNodeStorage`'s constructor throws: `invalid-argument` for an empty path,
   * `storage-failed` for a file that cannot be opened or is not a node log.
   */
  static async open<TRecord>(
    path: string,
    options: SqliteNodeStorageOptions = {},
  ): Promise<WorkerNodeStorage<TRecord>> {
    if (typeof path !== 'string' || path === '') {
      throw new ChorusError(ErrorCode.InvalidArgument, 'the node storage path must be a non-empty string')
    }
    const fromSource = import.meta.url.endsWith('.ts')
    const data: StorageWorkerData = {
      module: fileURLToPath(
        new URL(fromSource ? './storage-worker.ts' : './storage-worker.js', import.meta.url),
      ),
      path,
      fsync: options.fsync !== false,
    }
    const execArgv =
      fromSource && !process.execArgv.includes('--conditions=@chorus/source')
        ? [...process.execArgv, '--conditions=@chorus/source']
        : process.execArgv
    const worker = new Worker(new URL('../../worker/run-module.mjs', import.meta.url), {
      workerData: data,
      execArgv,
    })
    const storage = new WorkerNodeStorage<TRecord>(path, worker)
    const started = new Promise<unknown>((resolve, reject) => storage.#waiting.set(0, { resolve, reject }))
    worker.on('message', (message: { readonly id: number; readonly answer: WorkerAnswer }) =>
      storage.#answer(message.id, message.answer),
    )
    worker.on('error', (error) => storage.#die(`the storage worker failed: ${error.message}`))
    worker.on('exit', (code) => storage.#die(`the storage worker exited (code ${code})`))
    try {
      await started
    } catch (error) {
      await worker.terminate()
      throw error
    }
    return storage
  }

  async load(): Promise<readonly TRecord[]> {
    return (await this.#call({ id: this.#nextId++, type: 'load' })) as readonly TRecord[]
  }

  append(records: readonly TRecord[], epoch: number | null, replace = false): Promise<AppendResult> {
    return this.appendAll([{ records, epoch, replace }])
  }

  /** A group commit on the worker: every append in one transaction (one fsync); all stored or none. */
  async appendAll(appends: readonly PendingAppend<TRecord>[]): Promise<AppendResult> {
    try {
      return (await this.#call({ id: this.#nextId++, type: 'append', appends })) as AppendResult
    } catch (error) {
      if (isChorusError(error) && error.code === ErrorCode.StorageFailed)
        return { ok: false, reason: 'failed', message: error.message }
      throw error
    }
  }

  /** Makes the next append fail as a broken disk would (for tests of the runtime's handling). */
  async failNextAppend(message = 'WorkerNodeStorage.failNextAppend was called'): Promise<void> {
    await this.#call({ id: this.#nextId++, type: 'fail-next', message })
  }

  /** Closes the file and ends the worker; later calls fail with `closed`. Idempotent. */
  close(): Promise<void> {
    if (this.#closed === null) {
      this.#closed = this.#call({ id: this.#nextId++, type: 'close' }).then(
        () => this.#stopWorker(),
        () => this.#stopWorker(),
      )
    }
    return this.#closed
  }

  async #stopWorker(): Promise<void> {
    this.#dead ??= 'closed'
    await this.#worker.terminate()
  }

  #call(call: StorageCall): Promise<unknown> {
    if (this.#dead !== null) {
      return Promise.reject(
        this.#dead === 'closed'
          ? new ChorusError(ErrorCode.Closed, `the node database ${JSON.stringify(this.path)} is closed`)
          : new ChorusError(ErrorCode.StorageFailed, this.#dead),
      )
    }
    return new Promise((resolve, reject) => {
      this.#waiting.set(call.id, { resolve, reject })
      this.#worker.postMessage(call)
    })
  }

  #answer(id: number, answer: WorkerAnswer): void {
    const waiting = this.#waiting.get(id)
    if (waiting === undefined) return
    this.#waiting.delete(id)
    if (answer.type === 'ok') waiting.resolve(answer.value)
    else waiting.reject(new ChorusError(answer.code, answer.message))
  }

  #die(reason: string): void {
    this.#dead ??= reason
    const error =
      this.#dead === 'closed'
        ? new ChorusError(ErrorCode.Closed, `the node database ${JSON.stringify(this.path)} is closed`)
        : new ChorusError(ErrorCode.StorageFailed, reason)
    for (const waiting of this.#waiting.values()) waiting.reject(error)
    this.#waiting.clear()
  }
}
