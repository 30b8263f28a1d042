import type { Change } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import type { HlcState } from './hlc.js'
import type { RecordId } from './ids.js'
import type { RecordState } from './record.js'
import { recordsInPage } from './record-page.js'
import {
  type ListedRecord,
  type LocalBatch,
  localBatchRecord,
  type RecordPage,
  type RemoteBatch,
  type ReplicaMeta,
  type ReplicaStore,
  remoteMeta,
  type StoredRecord,
} from './storage.js'

/**
 * A {@link ReplicaStore} in memory: for tests, simulations and server-side rendering.
 *
 * Every call is atomic (it mutates synchronously after its checks). In a simulation the
 * store object plays the disk: a crashed replica's engine is dropped and a new one opened
 * over the same store; a wiped replica gets a new, empty store. `failWrites` makes writes
 * reject as a full disk would, to test that nothing is acknowledged that was not stored.
 */
export class MemoryReplicaStore implements ReplicaStore {
  #meta: ReplicaMeta | undefined
  /**
   * Records by collection, then id: keyed by the record's own id string, not by a joined
   * `recordKey` string, which cost about 50 bytes more per record (a replica holding a space in
   * memory holds every record). Each is held as {@link Held}.
   */
  readonly #records = new Map<string, Map<RecordId, Held>>()
  readonly #outbox: Change[] = []
  #closed = false
  #failNext = false
  /** When true, every write rejects with `storage-failed` and changes nothing. */
  failWrites = false

  /** Makes only the next write reject with `storage-failed`, changing nothing. */
  failNextWrite(): void {
    this.#failNext = true
  }

  async loadMeta(): Promise<ReplicaMeta | undefined> {
    this.#check(false)
    return this.#meta
  }

  async initMeta(meta: ReplicaMeta): Promise<void> {
    this.#check(true)
    this.#meta = meta
  }

  async getRecord(collection: string, id: RecordId): Promise<RecordState | undefined> {
    this.#check(false)
    return stateOf(this.#records.get(collection)?.get(id))
  }

  async listRecords(collection: string): Promise<StoredRecord[]> {
    this.#check(false)
    return this.#sorted(collection, storedRecord)
  }

  async getRecords(
    keys: readonly { readonly collection: string; readonly id: RecordId }[],
  ): Promise<(RecordState | undefined)[]> {
    this.#check(false)
    return keys.map(({ collection, id }) => stateOf(this.#records.get(collection)?.get(id)))
  }

  async listRecordsPage(collection: string, page: RecordPage): Promise<StoredRecord[]> {
    this.#check(false)
    return recordsInPage(this.#sorted(collection, storedRecord), page)
  }

  async listValuesPage(collection: string, page: RecordPage): Promise<ListedRecord[]> {
    this.#check(false)
    return recordsInPage(this.#sorted(collection, listedRecord), page)
  }

  async allRecords(): Promise<StoredRecord[]> {
    this.#check(false)
    // In `recordKey` order: by collection, then id (a collection name has no U+0000).
    let records: StoredRecord[] = []
    for (const collection of [...this.#records.keys()].sort(byText))
      records = records.concat(this.#sorted(collection, storedRecord))
    return records
  }

  async commitLocal(write: { record: StoredRecord; change: Change; clock: HlcState }): Promise<void> {
    this.#check(true)
    const meta = this.#requireMeta()
    const { record, change, clock } = write
    if (change.dot[1] !== meta.counter + 1) {
      throw new ChorusError(
        ErrorCode.Internal,
        `outbox counter ${change.dot[1]} does not follow ${meta.counter}`,
      )
    }
    this.#put(record)
    this.#outbox.push(change)
    this.#meta = { ...meta, counter: change.dot[1], clock }
  }

  async commitLocalBatch(batch: LocalBatch): Promise<void> {
    this.#check(true)
    const meta = this.#requireMeta()
    const { changes } = batch
    changes.forEach((change, i) => {
      if (change.dot[1] !== meta.counter + 1 + i) {
        throw new ChorusError(
          ErrorCode.Internal,
          `outbox counter ${change.dot[1]} does not follow ${meta.counter + i}`,
        )
      }
    })
    const last = changes[changes.length - 1]
    if (last === undefined) return
    for (let i = 0; i < changes.length; i++) {
      const record = localBatchRecord(batch, i)
      this.#put(record)
      this.#outbox.push(changes[i] as Change)
    }
    this.#meta = { ...meta, counter: last.dot[1], clock: batch.clock }
  }

  async applyRemote(batch: RemoteBatch): Promise<void> {
    const meta = this.#requireMeta()
    this.#check(true)
    for (const record of batch.records) {
      if (record.state.versions.length > 0) this.#put(record)
      else this.#records.get(record.collection)?.delete(record.id)
    }
    this.#meta = remoteMeta(meta, batch, batch.clock)
  }

  async hasRecords(): Promise<boolean> {
    this.#check(false)
    for (const byId of this.#records.values()) if (byId.size > 0) return true
    return false
  }

  async readOutbox(after: number, limit: number): Promise<Change[]> {
    this.#check(false)
    const out: Change[] = []
    for (const change of this.#outbox) {
      if (out.length >= limit) break
      if (change.dot[1] > after) out.push(change)
    }
    return out
  }

  async outboxSize(): Promise<number> {
    this.#check(false)
    return this.#outbox.length
  }

  async dropOutbox(upTo: number): Promise<void> {
    this.#check(true)
    let n = 0
    while (n < this.#outbox.length && (this.#outbox[n] as Change).dot[1] <= upTo) n++
    this.#outbox.splice(0, n)
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  /** Forgets everything and closes; {@link reopen} then gives an empty store. */
  async destroy(): Promise<void> {
    this.#closed = true
    this.#meta = undefined
    this.#records.clear()
    this.#outbox.splice(0)
  }

  /** Opens the store again after `close`, as a process restart reopens its database. */
  reopen(): this {
    this.#closed = false
    return this
  }

  #put(record: StoredRecord): void {
    const versions = record.state.versions
    const held = versions.length === 1 ? (versions[0] as Change) : record.state
    const byId = this.#records.get(record.collection)
    if (byId === undefined) this.#records.set(record.collection, new Map([[record.id, held]]))
    else byId.set(record.id, held)
  }

  /** A collection's records in id order, each as `as` gives it. */
  #sorted<TRecord extends { readonly id: RecordId }>(
    collection: string,
    as: (collection: string, id: RecordId, held: Held) => TRecord,
  ): TRecord[] {
    const byId = this.#records.get(collection)
    if (byId === undefined) return []
    const out: TRecord[] = []
    for (const [id, held] of byId) out.push(as(collection, id, held))
    return out.sort(byRecordId)
  }

  #requireMeta(): ReplicaMeta {
    if (this.#meta === undefined)
      throw new ChorusError(ErrorCode.Internal, 'the store has no replica metadata yet')
    return this.#meta
  }

  #check(write: boolean): void {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    if (write && (this.failWrites || this.#failNext)) {
      this.#failNext = false
      throw new ChorusError(ErrorCode.StorageFailed, 'the store refused the write (simulated full disk)')
    }
  }
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function byRecordId(a: { readonly id: RecordId }, b: { readonly id: RecordId }): number {
  return byText(a.id, b.id)
}

/**
 * A record as the store holds it: its only version when it has one, as nearly every record
 * does, else its state. A state object and its one-element array cost about 90 bytes per
 * record, made again (young garbage) only when the record is read.
 */
type Held = Change | RecordState

function isChange(held: Held): held is Change {
  return (held as Partial<Change>).dot !== undefined
}

function stateOf(held: Held | undefined): RecordState | undefined {
  return held === undefined || !isChange(held) ? held : { versions: [held] }
}

function storedRecord(collection: string, id: RecordId, held: Held): StoredRecord {
  return { collection, id, state: stateOf(held) as RecordState }
}

function listedRecord(collection: string, id: RecordId, held: Held): ListedRecord {
  if (isChange(held) && held.op.type === 'put') return { id, value: held.op.value }
  return storedRecord(collection, id, held)
}
