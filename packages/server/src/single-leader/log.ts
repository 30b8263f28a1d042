import type { JsonValue } from '@chorus/core'
import { countWithinBudget, jsonCharsBound } from '../message-budget.js'
import { ShardedMap } from '../sharded-map.js'
import type { EpochStart, LogEntry } from './messages.js'

/** The compacted part of a log: the state through `lsn`, whose last entry had `epoch`. */
export interface LogBase {
  readonly lsn: number
  readonly epoch: number
  readonly data: ReadonlyMap<string, JsonValue>
}

/**
 * A node's replication log: a compacted base plus the entries after it.
 *
 * `epochs` remembers where every epoch began, including inside the compacted base, so the
 * epoch of any LSN the log has ever covered stays known — failover checks and the
 * lost-write checker both rely on it. Values are immutable; every operation returns a new log.
 */
export interface ReplicationLog {
  readonly base: LogBase
  readonly entries: readonly LogEntry[]
  readonly epochs: readonly EpochStart[]
}

/** The empty log. */
export const EMPTY_LOG: ReplicationLog = Object.freeze({
  base: Object.freeze({ lsn: 0, epoch: 0, data: new Map<string, JsonValue>() }),
  entries: Object.freeze([]),
  epochs: Object.freeze([]),
})

/** The LSN of the last entry (the base's LSN when no entry follows it). */
export function lastLsn(log: ReplicationLog): number {
  return log.base.lsn + log.entries.length
}

/** The epoch of the last entry. */
export function lastEpoch(log: ReplicationLog): number {
  return log.entries.at(-1)?.epoch ?? log.base.epoch
}

/** The entry at `lsn`, if it is after the base and not past the end. */
export function entryAt(log: ReplicationLog, lsn: number): LogEntry | undefined {
  return lsn > log.base.lsn ? log.entries[lsn - log.base.lsn - 1] : undefined
}

/**
 * The epoch of the entry at `lsn`: 0 for LSN 0, undefined past the end. Works inside the
 * compacted base too, through the epoch starts.
 */
export function epochAt(log: ReplicationLog, lsn: number): number | undefined {
  if (lsn === 0) return 0
  if (lsn > lastLsn(log) || lsn < 0) return undefined
  if (lsn === log.base.lsn) return log.base.epoch
  const entry = entryAt(log, lsn)
  if (entry !== undefined) return entry.epoch
  for (let i = log.epochs.length - 1; i >= 0; i--) {
    const start = log.epochs[i] as EpochStart
    if (start[1] <= lsn) return start[0]
  }
  return undefined
}

/**
 * True when the entry (`lsn`, `epoch`) is later than (`thanLsn`, `thanEpoch`), as read tokens
 * order them: the higher epoch (a newer leader's history, which replaced the other's past any
 * entry it lost), then the higher LSN.
 */
export function isLaterEntry(lsn: number, epoch: number, thanLsn: number, thanEpoch: number): boolean {
  return epoch > thanEpoch || (epoch === thanEpoch && lsn > thanLsn)
}

/** The LSN where the run of entries holding `lsn`'s epoch begins (for skipping a whole epoch on a conflict). */
export function epochRunStart(log: ReplicationLog, lsn: number): number {
  const epoch = epochAt(log, lsn)
  for (let i = log.epochs.length - 1; i >= 0; i--) {
    const start = log.epochs[i] as EpochStart
    if (start[1] <= lsn && start[0] === epoch) return start[1]
  }
  return lsn
}

/** Appends entries that continue the log exactly (each `lsn` one past the last). */
export function appendEntries(log: ReplicationLog, entries: readonly LogEntry[]): ReplicationLog {
  if (entries.length === 0) return log
  let epochs = log.epochs
  let expected = lastLsn(log) + 1
  for (const entry of entries) {
    if (entry.lsn !== expected) {
      throw new RangeError(`log append out of order: expected lsn ${expected}, got ${entry.lsn}`)
    }
    if (epochs.at(-1)?.[0] !== entry.epoch) epochs = [...epochs, [entry.epoch, entry.lsn]]
    expected++
  }
  return { base: log.base, entries: [...log.entries, ...entries], epochs }
}

/** Drops every entry after `lsn` (which must not be inside the base). */
export function truncateAfter(log: ReplicationLog, lsn: number): ReplicationLog {
  if (lsn >= lastLsn(log)) return log
  if (lsn < log.base.lsn)
    throw new RangeError(`cannot truncate at ${lsn}, inside the snapshot at ${log.base.lsn}`)
  return {
    base: log.base,
    entries: log.entries.slice(0, lsn - log.base.lsn),
    epochs: log.epochs.filter((start) => start[1] <= lsn),
  }
}

/** The value of `key` as of `lsn` (at least the base's LSN), or undefined if never written. */
export function readAt(log: ReplicationLog, key: string, lsn: number): JsonValue | undefined {
  for (let at = Math.min(lsn, lastLsn(log)); at > log.base.lsn; at--) {
    const write = entryAt(log, at)?.write
    if (write !== null && write !== undefined && write.key === key) return write.value
  }
  return log.base.data.get(key)
}

/**
 * Entries from `from` through `through`, inclusive, for one append: up to `max`, and no more
 * than fit one peer message ({@link countWithinBudget}; at least one).
 */
export function entriesBetween(log: ReplicationLog, from: number, through: number, max: number): LogEntry[] {
  const start = Math.max(from, log.base.lsn + 1) - log.base.lsn - 1
  const end = Math.min(through, lastLsn(log)) - log.base.lsn
  if (end <= start) return []
  const count = countWithinBudget(log.entries, start, Math.min(max, end - start), entryChars)
  return log.entries.slice(start, start + count)
}

/**
 * No less than the length of `entry` as JSON (`jsonCharsBound`): what appends are bounded by,
 * without serialising the small entries most writes make.
 */
export function entryChars(entry: LogEntry): number {
  return jsonCharsBound(entry as unknown as JsonValue)
}

/**
 * Folds the entries through `lsn` into the base; later entries stay. The base's data becomes a
 * {@link ShardedMap}, so folding costs the entries folded, not the size of the data (a `Map`
 * copied whole every `compactEvery` entries cost a node with a million keys tens of ms each
 * time).
 */
export function compact(log: ReplicationLog, lsn: number): ReplicationLog {
  if (lsn <= log.base.lsn) return log
  const through = Math.min(lsn, lastLsn(log))
  let data = log.base.data instanceof ShardedMap ? log.base.data : ShardedMap.from(log.base.data)
  for (let i = 0; i < through - log.base.lsn; i++) {
    const write = (log.entries[i] as LogEntry).write
    if (write !== null) data = data.with(write.key, write.value)
  }
  return {
    base: { lsn: through, epoch: epochAt(log, through) ?? 0, data },
    entries: log.entries.slice(through - log.base.lsn),
    epochs: log.epochs,
  }
}

/**
 * Installs a snapshot. If the log already holds the snapshot's last entry (same LSN and
 * epoch), the entries after it are kept; otherwise the whole log is replaced.
 */
export function installSnapshot(
  log: ReplicationLog,
  snapshot: {
    readonly lsn: number
    readonly lastEpoch: number
    readonly epochs: readonly EpochStart[]
    readonly data: ReadonlyMap<string, JsonValue>
  },
  keepSuffix: boolean,
): ReplicationLog {
  const base: LogBase = { lsn: snapshot.lsn, epoch: snapshot.lastEpoch, data: snapshot.data }
  if (keepSuffix && epochAt(log, snapshot.lsn) === snapshot.lastEpoch) {
    return {
      base,
      entries: log.entries.slice(Math.max(0, snapshot.lsn - log.base.lsn)),
      epochs: log.epochs,
    }
  }
  return { base, entries: [], epochs: snapshot.epochs.filter((start) => start[1] <= snapshot.lsn) }
}

/** The epoch starts through `lsn` (what a snapshot at `lsn` carries). */
export function epochsThrough(log: ReplicationLog, lsn: number): EpochStart[] {
  return log.epochs.filter((start) => start[1] <= lsn)
}
