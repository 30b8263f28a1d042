import {
  type AppendResult,
  appendable,
  applyChange,
  type Change,
  type ChangeText,
  ChorusError,
  type CollectedMark,
  ErrorCode,
  type HubStore,
  isDeleted,
  type LogEntry,
  type RecordState,
  type ReplicaId,
  recordKey,
  type SpaceId,
  type SpaceMeta,
} from '@chorus/core'

interface MemorySpace {
  readonly log: LogEntry[]
  floor: number
  head: number
  readonly received: Map<string, number>
  readonly records: Map<string, RecordState>
  /** Each record's last change's log position. */
  readonly lastSeq: Map<string, number>
  /** The latest mark of collected deletions (see `SpaceMeta.collected`). */
  collected?: CollectedMark
}

/**
 * A {@link HubStore} in memory, for tests and simulations.
 *
 * It keeps the log and the compacted records per space. `truncateLog` drops old entries
 * the way a compacting relay would, so tests can send a lagging replica to a snapshot, and
 * `compact` also collects the deleted records at or below the new floor, as a relay does
 * once every replica it still knows has seen them.
 * Given a `log` name, it reports it in `loadSpace`, and `copy` makes a backup of it under
 * another name, as the relay's backups are (see `SpaceMeta.log`).
 */
export class MemoryHubStore implements HubStore {
  readonly #spaces = new Map<string, MemorySpace>()
  /** Spaces deleted with `deleteSpace`: their names stay taken. */
  readonly #deleted = new Set<string>()
  readonly #log: string | undefined
  #closed = false
  #failNext = false
  /** When true, every append rejects with `storage-failed` and changes nothing. */
  failWrites = false

  constructor(options: { readonly log?: string } = {}) {
    this.#log = options.log
  }

  /**
   * A copy of everything stored, as a backup made now holds it, under the log name `log`:
   * put in place of this store, it is a relay restored from that backup.
   */
  copy(log: string): MemoryHubStore {
    const copy = new MemoryHubStore({ log })
    for (const space of this.#deleted) copy.#deleted.add(space)
    for (const [space, found] of this.#spaces) {
      copy.#spaces.set(space, {
        log: [...found.log],
        floor: found.floor,
        head: found.head,
        received: new Map(found.received),
        records: new Map(found.records),
        lastSeq: new Map(found.lastSeq),
        ...(found.collected === undefined ? {} : { collected: found.collected }),
      })
    }
    return copy
  }

  /** The log name it was given (see `SpaceMeta.log`), or undefined. */
  logName(): string | undefined {
    return this.#log
  }

  /** Makes only the next append reject with `storage-failed`, changing nothing. */
  failNextWrite(): void {
    this.#failNext = true
  }

  #space(space: SpaceId): MemorySpace {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    if (this.#deleted.has(space)) throw new ChorusError(ErrorCode.SpaceDeleted, `space ${space} was deleted`)
    let found = this.#spaces.get(space)
    if (found === undefined) {
      found = { log: [], floor: 0, head: 0, received: new Map(), records: new Map(), lastSeq: new Map() }
      this.#spaces.set(space, found)
    }
    return found
  }

  async deleteSpace(space: SpaceId): Promise<boolean> {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    if (this.#deleted.has(space)) return false
    this.#spaces.delete(space)
    this.#deleted.add(space)
    return true
  }

  async loadSpace(space: SpaceId): Promise<SpaceMeta> {
    if (!this.#closed && this.#deleted.has(space)) {
      return {
        head: 0,
        floor: 0,
        received: {},
        deleted: true,
        ...(this.#log === undefined ? {} : { log: this.#log }),
      }
    }
    const found = this.#space(space)
    return {
      head: found.head,
      floor: found.floor,
      received: Object.fromEntries(found.received),
      ...(this.#log === undefined ? {} : { log: this.#log }),
      ...(found.collected === undefined ? {} : { collected: found.collected }),
    }
  }

  async append(
    space: SpaceId,
    replica: ReplicaId,
    changes: readonly Change[],
    _text?: ChangeText,
    through?: number,
  ): Promise<AppendResult> {
    const found = this.#space(space)
    if (this.failWrites || this.#failNext) {
      this.#failNext = false
      throw new ChorusError(ErrorCode.StorageFailed, 'the store refused the append (simulated)')
    }
    for (const change of changes) {
      if (change.dot[0] !== replica) {
        throw new ChorusError(
          ErrorCode.ReplicaMismatch,
          `change from ${change.dot[0]} appended as ${replica}`,
        )
      }
    }
    const before = found.received.get(replica) ?? 0
    const { fresh, received } = appendable(changes, before, through)
    for (const change of fresh) {
      found.head += 1
      found.log.push({ seq: found.head, change })
      const key = recordKey(change.collection, change.id)
      const { state, applied } = applyChange(found.records.get(key), change)
      found.records.set(key, state)
      if (applied) found.lastSeq.set(key, found.head)
    }
    if (received > before) found.received.set(replica, received)
    return { head: found.head, received, appended: fresh.length }
  }

  async readLog(space: SpaceId, after: number, limit: number): Promise<LogEntry[]> {
    const found = this.#space(space)
    if (after < found.floor) {
      throw new ChorusError(ErrorCode.ResyncRequired, `log entries up to ${found.floor} were compacted`)
    }
    const start = found.log.findIndex((entry) => entry.seq > after)
    return start === -1 ? [] : found.log.slice(start, start + limit)
  }

  async readSnapshot(
    space: SpaceId,
    afterKey: string | null,
    limit: number,
  ): Promise<{ changes: Change[]; nextKey: string | null }> {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `a snapshot page needs a limit of at least 1, got ${limit}`,
      )
    }
    const found = this.#space(space)
    const keys = [...found.records.keys()].filter((key) => afterKey === null || key > afterKey).sort()
    const page = keys.slice(0, limit)
    const changes = page.flatMap((key) => (found.records.get(key) as RecordState).versions)
    const nextKey = keys.length > limit ? (page[page.length - 1] as string) : null
    return { changes, nextKey }
  }

  /** The space's latest mark of collected deletions, as `loadSpace` gives it. */
  collectedMark(space: SpaceId): CollectedMark | undefined {
    return this.#space(space).collected
  }

  /** Drops log entries at or below `upTo`; replicas behind it will bootstrap from a snapshot. */
  truncateLog(space: SpaceId, upTo: number): void {
    const found = this.#space(space)
    const cut = Math.min(upTo, found.head)
    while (found.log.length > 0 && (found.log[0] as LogEntry).seq <= cut) found.log.shift()
    found.floor = Math.max(found.floor, cut)
  }

  /**
   * `truncateLog`, then drops every deleted record whose last change is at or below the new
   * floor: a replica that had not seen the deletion bootstraps without it. As a relay's store
   * does, it drops none while the floor is not past the space's mark of collected deletions
   * (`loadSpace`'s `collected`), and makes a new mark at the head when it drops any. Returns
   * the records dropped, by key.
   */
  compact(space: SpaceId, upTo: number): Map<string, RecordState> {
    this.truncateLog(space, upTo)
    const found = this.#space(space)
    const dropped = new Map<string, RecordState>()
    if (found.collected !== undefined && found.floor <= found.collected.at) return dropped
    for (const [key, state] of found.records) {
      if (!isDeleted(state) || (found.lastSeq.get(key) ?? 0) > found.floor) continue
      found.records.delete(key)
      found.lastSeq.delete(key)
      dropped.set(key, state)
    }
    if (dropped.size > 0) {
      // Named: only the replicas that wrote what was collected, as a relay's store names them.
      const writers = new Set<string>(
        [...dropped.values()].flatMap((state) => state.versions.map((version) => version.dot[0])),
      )
      const received = Object.entries(receivedAtFloor(found)).filter(([replica]) => writers.has(replica))
      found.collected = { at: found.head, received: Object.fromEntries(received) }
    }
    return dropped
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  /** Opens the store again after `close`, as a restarted relay reopens its database. */
  reopen(): this {
    this.#closed = false
    return this
  }
}

/**
 * Per replica, the highest counter of its changes stored at or below the floor: one below the
 * first of its changes the log still holds above the floor, or all it has stored when none is.
 */
function receivedAtFloor(found: MemorySpace): Record<string, number> {
  const above = new Map<string, number>()
  for (const { seq, change } of found.log) {
    const [replica, counter] = change.dot
    if (seq > found.floor && !above.has(replica)) above.set(replica, counter)
  }
  const received: Record<string, number> = {}
  for (const [replica, counter] of found.received) {
    const covered = above.has(replica) ? (above.get(replica) as number) - 1 : counter
    if (covered > 0) received[replica] = covered
  }
  return received
}
