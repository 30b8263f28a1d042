import { Worker } from 'node:worker_threads'
import {
  type AppendResult,
  type Change,
  type ChangeText,
  ChorusError,
  ErrorCode,
  encodeChange,
  type HubAppend,
  type LogEntry,
  type ReplicaId,
  type SpaceId,
  type SpaceMeta,
} from '@chorus/core'
import type {
  CompactOptions,
  CompactResult,
  RelayStore,
  RelayStoreStats,
  SpaceSummary,
} from './relay-store.js'
import type { SqliteWrite } from './sqlite-relay-store.js'
import { ackKey, checkAckPosition, forgetSpaceAcks, hubAppend } from './store-parts.js'
import type { AckUpdate, WorkerReply, WorkerRequest, WorkerStart } from './worker-protocol.js'

/** The monorepo's export condition that resolves workspace packages to their TypeScript source. */
const SOURCE_CONDITION = '--conditions=@chorus/source'

type Request = WorkerRequest extends infer TRequest
  ? TRequest extends WorkerRequest
    ? Omit<TRequest, 'id'>
    : never
  : never

/** How many log entries {@link WorkerRelayStore} keeps for readers that trail the hub's memory. */
export const LOG_CACHE_ENTRIES = 8192

function logKey(space: SpaceId, seq: number): string {
  return `${seq}\u0000${space}`
}

interface Pending {
  readonly resolve: (value: unknown) => void
  readonly reject: (error: unknown) => void
}

/** Where the worker's code is: beside this module, `.ts` when running from source. */
function workerStart(path: string): { bootstrap: URL; start: WorkerStart; execArgv: string[] | undefined } {
  const here = import.meta.url
  const fromSource = here.endsWith('.ts')
  const module = new URL(`./sqlite-store-worker.${fromSource ? 'ts' : 'js'}`, here).href
  // `worker/` sits beside `src/` and `dist/`, so the same relative path works from both.
  const bootstrap = new URL('../worker/sqlite-worker.mjs', here)
  // From source, workspace imports inside the worker must resolve to source too.
  const execArgv =
    fromSource && !process.execArgv.includes(SOURCE_CONDITION)
      ? [...process.execArgv, SOURCE_CONDITION]
      : undefined
  return { bootstrap, start: { module, path }, execArgv }
}

/**
 * The relay's SQLite store on a worker thread: a {@link SqliteRelayStore} that the worker
 * owns, driven by messages, so commits (each fsynced) and reads do not block the relay's
 * event loop. Frames from other connections are read, and stored changes forwarded, while
 * a commit is on its way to disk.
 *
 * Same contract and semantics as `SqliteRelayStore`: the worker runs requests in the order
 * they were made, a call resolves only after the worker's commit finished (so an
 * acknowledgement still follows the fsync), and failures reject with a `ChorusError` of the
 * same code (the cause carries the original message). Changes go to the worker as one JSON
 * string per append, and log and snapshot pages come back as one, not as a structured clone
 * per change. If the worker dies, every pending and later call rejects with `storage-failed`.
 *
 * Open with {@link WorkerRelayStore.open}. The worker keeps the process alive only while a
 * call is pending.
 */
export class WorkerRelayStore implements RelayStore {
  /** Where the database lives (`:memory:` for a throwaway one). */
  readonly path: string
  readonly #worker: Worker
  readonly #pending = new Map<number, Pending>()
  /** Log entries read, by `logKey`, oldest first. */
  readonly #log = new Map<string, LogEntry>()
  /** Replicas (by `ackKey`) whose first acknowledgement the worker has written. */
  readonly #knownAcks = new Set<string>()
  /** Acknowledgements of known replicas not yet posted, by `ackKey`. */
  readonly #pendingAcks = new Map<string, AckUpdate>()
  #acksScheduled = false
  /** Why buffered acknowledgements were lost, for the next `flushAcks`. */
  #ackFailure: unknown = null
  /** Log reads on their way, by their arguments: callers asking the same share one. */
  readonly #reads = new Map<string, Promise<LogEntry[]>>()
  #nextId = 1
  #closing: Promise<void> | null = null
  /** Why the worker is unusable (it exited or failed), once it is. */
  #dead: ChorusError | null = null

  private constructor(path: string, worker: Worker) {
    this.path = path
    this.#worker = worker
  }

  /** Starts a worker that opens (or creates) the database at `path`; rejects as `SqliteRelayStore`'s constructor throws. */
  static async open(path: string): Promise<WorkerRelayStore> {
    const { bootstrap, start, execArgv } = workerStart(path)
    const worker = new Worker(bootstrap, {
      workerData: start,
      ...(execArgv === undefined ? {} : { execArgv }),
    })
    const store = new WorkerRelayStore(path, worker)
    const ready = new Promise<unknown>((resolve, reject) => store.#pending.set(0, { resolve, reject }))
    worker.on('message', (reply: WorkerReply) => store.#settle(reply))
    worker.on('error', (error) => store.#fail(error))
    worker.on('exit', (code) => store.#fail(new Error(`the SQLite worker exited with code ${code}`)))
    try {
      await ready
    } catch (error) {
      await worker.terminate()
      throw error
    }
    worker.unref()
    return store
  }

  async loadSpace(space: SpaceId): Promise<SpaceMeta> {
    return (await this.#call({ op: 'loadSpace', space })) as SpaceMeta
  }

  async append(
    space: SpaceId,
    replica: ReplicaId,
    changes: readonly Change[],
    text: ChangeText = encodeChange,
    through?: number,
  ): Promise<AppendResult> {
    const append = hubAppend(replica, changes, through)
    const [result] = await this.appendMany(space, [append], text)
    return result as AppendResult
  }

  /**
   * Several replicas' appends in one transaction: one fsync for all of them. The batch goes
   * to the worker as one JSON string joined from the changes' texts (the hub's, when it
   * passes them), not stringified again here.
   */
  async appendMany(
    space: SpaceId,
    appends: readonly HubAppend[],
    text: ChangeText = encodeChange,
  ): Promise<AppendResult[]> {
    const parts = appends.map(
      ({ replica, changes, through }) =>
        `{"replica":${JSON.stringify(replica)},"changes":[${changes.map((change) => text(change)).join(',')}]${through === undefined ? '' : `,"through":${JSON.stringify(through)}`}}`,
    )
    return (await this.#call({ op: 'appendMany', space, appends: `[${parts.join(',')}]` })) as AppendResult[]
  }

  /**
   * Entries already read are kept (up to {@link LOG_CACHE_ENTRIES}) and handed out again as
   * the same objects: the sessions of a space that trail the hub's memory read the same
   * stretch of log one after another, and the hub encodes a change object once for all of
   * them. Only the entries not held cross from the worker; it checks the floor at `after`
   * every time, so a compacted position still rejects with `resync-required`.
   */
  async readLog(space: SpaceId, after: number, limit: number): Promise<LogEntry[]> {
    const held: LogEntry[] = []
    while (held.length < limit) {
      const entry = this.#log.get(logKey(space, after + held.length + 1))
      if (entry === undefined) break
      held.push(entry)
    }
    const key = `${space}\u0000${after}\u0000${limit}\u0000${held.length}`
    let read = this.#reads.get(key)
    if (read === undefined) {
      read = this.#readLog(space, after, limit, held)
      this.#reads.set(key, read)
      const forget = () => this.#reads.delete(key)
      read.then(forget, forget)
    }
    return read
  }

  async #readLog(space: SpaceId, after: number, limit: number, held: LogEntry[]): Promise<LogEntry[]> {
    const text = (await this.#call({ op: 'readLog', space, after, limit, skip: held.length })) as string
    const entries = held
    for (const read of JSON.parse(text) as LogEntry[]) {
      const key = logKey(space, read.seq)
      const known = this.#log.get(key)
      if (known !== undefined) {
        entries.push(known)
        continue
      }
      this.#log.set(key, read)
      entries.push(read)
    }
    for (const key of this.#log.keys()) {
      if (this.#log.size <= LOG_CACHE_ENTRIES) break
      this.#log.delete(key)
    }
    return entries
  }

  async readSnapshot(
    space: SpaceId,
    afterKey: string | null,
    limit: number,
  ): Promise<{ changes: Change[]; nextKey: string | null }> {
    const page = (await this.#call({ op: 'readSnapshot', space, afterKey, limit })) as string
    return JSON.parse(page) as { changes: Change[]; nextKey: string | null }
  }

  /**
   * A replica seen for the first time goes to the worker at once and resolves once it is
   * written durably. The acknowledgements of replicas the store already tracks are buffered
   * here, as the worker would buffer them, and go to it together, one message for all of
   * them, ahead of the next request (or after the frames already read): a busy space
   * acknowledges thousands of times a second.
   */
  async noteAck(space: SpaceId, replica: ReplicaId, position: number, now: number): Promise<void> {
    checkAckPosition(position)
    const key = ackKey(space, replica)
    if (this.#closing === null && this.#dead === null && this.#knownAcks.has(key)) {
      const pending = this.#pendingAcks.get(key)
      if (pending === undefined) this.#pendingAcks.set(key, { space, replica, position, now })
      else
        this.#pendingAcks.set(key, {
          space,
          replica,
          position: Math.max(pending.position, position),
          now: Math.max(pending.now, now),
        })
      this.#sendAcksSoon()
      return
    }
    await this.#call({ op: 'noteAck', space, replica, position, now })
    this.#knownAcks.add(key)
  }

  async flushAcks(): Promise<void> {
    await this.#call({ op: 'flushAcks' })
    const failure = this.#ackFailure
    this.#ackFailure = null
    if (failure !== null) throw failure
  }

  async compact(space: SpaceId, options: CompactOptions): Promise<CompactResult> {
    const result = (await this.#call({
      op: 'compact',
      space,
      now: options.now,
      horizonMs: options.horizonMs,
      ...(options.collect === undefined ? {} : { collect: options.collect }),
    })) as CompactResult
    if (result.replicasForgotten > 0) {
      forgetSpaceAcks(space, this.#knownAcks)
    }
    return result
  }

  async listSpaces(): Promise<SpaceId[]> {
    return (await this.#call({ op: 'listSpaces' })) as SpaceId[]
  }

  async describeSpaces(): Promise<SpaceSummary[]> {
    return (await this.#call({ op: 'describeSpaces' })) as SpaceSummary[]
  }

  async deleteSpace(space: SpaceId): Promise<boolean> {
    // Acknowledgements buffered here for the space would only be dropped by the worker.
    forgetSpaceAcks(space, this.#pendingAcks, this.#knownAcks)
    return (await this.#call({ op: 'deleteSpace', space })) as boolean
  }

  async stats(): Promise<RelayStoreStats> {
    return (await this.#call({ op: 'stats' })) as RelayStoreStats
  }

  async claimReplica(replica: ReplicaId, subject: string): Promise<boolean> {
    return (await this.#call({ op: 'claimReplica', replica, subject })) as boolean
  }

  /** Copies the database to `destination` while the store stays in use (SQLite's online backup). */
  async backup(destination: string): Promise<void> {
    await this.#call({ op: 'backup', destination })
  }

  /**
   * Makes the next commit of kind `write` fail and roll back, as `SqliteRelayStore`'s
   * `beforeCommit` hook can: for fault-injection tests (a full disk).
   */
  async injectFault(write: SqliteWrite): Promise<void> {
    await this.#call({ op: 'injectFault', write })
  }

  /**
   * Lets every call made before it finish, writes buffered acknowledgements, closes the
   * database and stops the worker; later calls reject with `closed`.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown()
    return this.#closing
  }

  async #shutDown(): Promise<void> {
    try {
      if (this.#dead === null) await this.#send({ op: 'close' })
    } finally {
      this.#dead ??= new ChorusError(ErrorCode.Closed, 'this store is closed')
      await this.#worker.terminate()
    }
  }

  #call(request: Request): Promise<unknown> {
    if (this.#closing !== null)
      return Promise.reject(new ChorusError(ErrorCode.Closed, 'this store is closed'))
    return this.#send(request)
  }

  #sendAcksSoon(): void {
    if (this.#acksScheduled) return
    this.#acksScheduled = true
    setImmediate(() => {
      this.#acksScheduled = false
      if (this.#pendingAcks.size > 0 && this.#dead === null) this.#postAcks()
    })
  }

  /**
   * Posts the buffered acknowledgements as one request. A failure (the worker found one of
   * them forgotten and could not write it through) drops them, which only lowers the floor,
   * and rejects the next `flushAcks`.
   */
  #postAcks(): void {
    const acks = [...this.#pendingAcks.values()]
    this.#pendingAcks.clear()
    this.#post({ op: 'noteAcks', acks }).catch((error: unknown) => {
      for (const ack of acks) this.#knownAcks.delete(ackKey(ack.space, ack.replica))
      this.#ackFailure ??= error
    })
  }

  #send(request: Request): Promise<unknown> {
    if (this.#dead !== null) return Promise.reject(this.#dead)
    // Buffered acknowledgements reach the worker before anything asked after them.
    if (this.#pendingAcks.size > 0) this.#postAcks()
    return this.#post(request)
  }

  #post(request: Request): Promise<unknown> {
    if (this.#dead !== null) return Promise.reject(this.#dead)
    const id = this.#nextId++
    const reply = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }))
    if (this.#pending.size === 1) this.#worker.ref()
    this.#worker.postMessage({ ...request, id })
    return reply
  }

  #settle(reply: WorkerReply): void {
    const pending = this.#pending.get(reply.id)
    if (pending === undefined) return
    this.#pending.delete(reply.id)
    if (this.#pending.size === 0) this.#worker.unref()
    if (reply.ok) {
      pending.resolve(reply.value)
      return
    }
    const cause = reply.cause === undefined ? undefined : new Error(reply.cause)
    pending.reject(new ChorusError(reply.code, reply.message, cause === undefined ? undefined : { cause }))
  }

  /** The worker is gone: every pending and later call rejects. */
  #fail(error: unknown): void {
    if (this.#dead === null) {
      const detail = error instanceof Error ? error.message : String(error)
      this.#dead = new ChorusError(ErrorCode.StorageFailed, `the relay's SQLite worker failed: ${detail}`, {
        cause: error,
      })
    }
    for (const pending of this.#pending.values()) pending.reject(this.#dead)
    this.#pending.clear()
    this.#worker.unref()
  }
}
