import type { AppendResult, NodeStorage } from './storage.js'

/** Counters of a {@link MemoryNodeStorage}. */
export interface MemoryNodeStorageStats {
  /** Successful appends. */
  readonly appends: number
  /** Records stored. */
  readonly records: number
  /** Checkpoints stored (appends with `replace`), each of which dropped the records before it. */
  readonly checkpoints: number
  /** Appends refused because they carried an epoch older than one already stored. */
  readonly fenced: number
  /** Appends refused by {@link MemoryNodeStorage.failWrites}. */
  readonly failed: number
}

/**
 * An in-memory {@link NodeStorage}: the simulated disk of one node.
 *
 * It outlives the node's machine — a simulated crash drops the machine and keeps this — and
 * applies the fencing rule exactly as a durable implementation must. Records are deep-copied
 * on the way in and out (through JSON, as a disk would), so nothing the machine keeps can
 * alias what is stored.
 */
export class MemoryNodeStorage<TRecord> implements NodeStorage<TRecord> {
  /** When true, appends fail as a full or broken disk would. */
  failWrites = false

  private readonly log: string[] = []
  private highestEpoch = Number.NEGATIVE_INFINITY
  private readonly counters = { appends: 0, records: 0, checkpoints: 0, fenced: 0, failed: 0 }

  /** A snapshot of the counters. */
  get stats(): MemoryNodeStorageStats {
    return { ...this.counters }
  }

  /** The highest epoch a successful append carried, or null before any. */
  get epoch(): number | null {
    return Number.isFinite(this.highestEpoch) ? this.highestEpoch : null
  }

  async load(): Promise<readonly TRecord[]> {
    return this.records()
  }

  async append(records: readonly TRecord[], epoch: number | null, replace = false): Promise<AppendResult> {
    if (this.failWrites) {
      this.counters.failed++
      return { ok: false, reason: 'failed', message: 'MemoryNodeStorage.failWrites is set' }
    }
    if (epoch !== null && epoch < this.highestEpoch) {
      this.counters.fenced++
      return { ok: false, reason: 'fenced', epoch: this.highestEpoch }
    }
    const texts: string[] = []
    for (const record of records) {
      const text = serialise(record)
      if (text === null) {
        this.counters.failed++
        return { ok: false, reason: 'failed', message: 'a record is not JSON-serialisable' }
      }
      texts.push(text)
    }
    if (epoch !== null) this.highestEpoch = Math.max(this.highestEpoch, epoch)
    if (replace) {
      this.log.length = 0
      this.counters.checkpoints++
    }
    this.log.push(...texts)
    this.counters.appends++
    this.counters.records += records.length
    return { ok: true }
  }

  /** Every stored record, synchronously (for checkers and tests). */
  records(): TRecord[] {
    return this.log.map((text) => JSON.parse(text) as TRecord)
  }
}

/** The record as JSON text, or null when it cannot be written as JSON (as a disk would refuse it). */
function serialise(record: unknown): string | null {
  try {
    const text = JSON.stringify(record)
    return typeof text === 'string' ? text : null
  } catch {
    return null
  }
}
