/**
 * Where a node keeps what must survive a crash: an append-only log of records.
 *
 * A node's machine never touches storage itself; it emits `persist` effects, and its runtime
 * appends them here before performing any effect that follows. After a crash the runtime
 * loads every record and the machine rebuilds its state from them, so a record must say
 * everything the node needs (a term, log entries, a snapshot, a stored version, a hint).
 *
 * Contract (every implementation):
 * - `append` is atomic and durable: when it resolves `ok`, all of the records are stored and
 *   will be returned by every later `load`, in append order; when it fails, none is.
 * - Calls are made one at a time by the node's runtime; an implementation need not serialise.
 * - **Fencing.** An append may carry the writer's `epoch`. Storage remembers the highest epoch
 *   any successful append carried and refuses (`fenced`) an append with a lower one, storing
 *   nothing. A zombie incarnation of a node — paused, then resumed with stale state while a
 *   newer incarnation has moved on — therefore cannot write behind its successor's back.
 *   Appends without an epoch are never fenced (the single-leader design's teaching mode with
 *   fencing off, and the quorum design, which has no epochs).
 * - A storage failure resolves `failed`; nothing is stored and the runtime must not perform the
 *   effects that followed the append.
 * - **Checkpoints.** An append made with `replace` holds everything the node needs (its
 *   machine says so): once it is durable, `load` returns its records and what follows them,
 *   and nothing stored before them, so a node's log stays bounded however long it runs. The
 *   old records go in the same atomic unit: a refused or failed checkpoint leaves them all.
 */
export interface NodeStorage<TRecord> {
  /** Every record appended so far, in order. */
  load(): Promise<readonly TRecord[]>
  /**
   * Appends `records` atomically; see the fencing rule for `epoch`, and the checkpoint rule for
   * `replace` (default false).
   */
  append(records: readonly TRecord[], epoch: number | null, replace?: boolean): Promise<AppendResult>
  /**
   * Optional group commit: the appends, in order, as one atomic and durable unit — all stored
   * or none. The fencing rule applies to each in turn (an earlier one's epoch counts for a later
   * one); if any would be refused, nothing is stored and the result is that refusal. An append
   * with `replace` drops every record stored before it, the group's earlier appends included.
   * A runtime uses it to make one commit (one fsync) of the appends of several inputs.
   */
  appendAll?(appends: readonly PendingAppend<TRecord>[]): Promise<AppendResult>
}

/** One append of a group commit (see {@link NodeStorage.appendAll}). */
export interface PendingAppend<TRecord> {
  readonly records: readonly TRecord[]
  readonly epoch: number | null
  /** A checkpoint: the records replace everything stored before them (see `NodeStorage`). */
  readonly replace?: boolean
}

/** The outcome of {@link NodeStorage.append}. */
export type AppendResult =
  | { readonly ok: true }
  /** A newer epoch owns this log: nothing was stored. */
  | { readonly ok: false; readonly reason: 'fenced'; readonly epoch: number }
  /** The medium failed: nothing was stored. */
  | { readonly ok: false; readonly reason: 'failed'; readonly message: string }
