import { randomUUID } from 'node:crypto'
import {
  type AdvancedEntry,
  type AppendResult,
  type Change,
  type ChangeText,
  ChorusError,
  type CollectedMark,
  ErrorCode,
  encodeChange,
  type HubAppend,
  isChorusError,
  isReplicaId,
  isSpaceId,
  type LogEntry,
  MAX_PRESENCE_KEY_LENGTH,
  type ReplicaId,
  type SharedPresence,
  type SpaceId,
  type SpaceMeta,
} from '@chorus/core'
import pg from 'pg'
import {
  MIGRATION_LOCK,
  NOTIFY_CHANNEL,
  POSTGRES_SCHEMA,
  POSTGRES_SCHEMA_VERSION,
  SPACE_DELETED_STATE,
  SQL,
} from './postgres-schema.js'
import type {
  CompactOptions,
  CompactResult,
  RelayStore,
  RelayStoreStats,
  SpaceSummary,
  StoreEvent,
} from './relay-store.js'
import {
  ackKey,
  checkAckPosition,
  checkSnapshotLimit,
  compactionFloor,
  forgetSpaceAcks,
  hubAppend,
  markOf,
  type PendingAck,
  planAppend,
  raiseAck,
  recordWrites,
  spaceDeleted,
  type TouchedRecord,
  touchedRecords,
  withMark,
} from './store-parts.js'
import { decodeUtf16Key, encodeUtf16Key } from './utf16-key.js'

/** The write transactions of {@link PostgresRelayStore}, as its `beforeCommit` hook names them. */
export type PostgresWrite = 'append' | 'acks' | 'compact' | 'claim' | 'delete'

/** Options for {@link PostgresRelayStore.open}. */
export interface PostgresRelayStoreOptions {
  /** Most connections the store opens to the database for its work (default 10; one more listens). */
  readonly maxConnections?: number
  /**
   * Called for every write transaction before it commits; a throw makes the transaction fail
   * after its writes (an append's inside the database), rolling all of them back. For
   * fault-injection tests (a full disk).
   */
  readonly beforeCommit?: (write: PostgresWrite) => void
  /** Failures with no caller to tell: a dropped idle connection, a lost listener. */
  readonly onError?: (error: ChorusError) => void
}

/**
 * PostgreSQL's `bigint` and `numeric` as numbers. Positions and counters stay far below 2^53;
 * the parsers are the store's own, not pg's global ones, which would change other code's
 * results in the same process.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return Number
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format)
  }) as typeof pg.types.getTypeParser,
}

/** PostgreSQL's codes for a transaction that lost a deadlock or a serialisation race: run it again. */
const RETRY_CODES = new Set(['40P01', '40001'])
const MAX_ATTEMPTS = 5

/** The longest `NOTIFY` payload PostgreSQL takes is 8000 bytes; an append's event beyond it drops `received`. */
const MAX_NOTIFY_BYTES = 7_900

/**
 * The most parts one presence entry is sent in. An entry is at most `MAX_PRESENCE_CHARS` of JSON
 * plus its names, and a part carries `PRESENCE_PART_CHARS` of it, each character at most 6 bytes
 * once escaped.
 */
const MAX_PRESENCE_PARTS = 16
const PRESENCE_PART_CHARS = 1_200

/** How long the listener waits before connecting again after losing its connection, at most. */
const MAX_RELISTEN_MS = 5_000

/** A row of `chorus_spaces` as read. */
interface SpaceRow {
  readonly head: number
  readonly floor: number
  readonly collected_at: number
  readonly collected: string | null
}

/** An event as sent between relays: the sending store's id, so that it ignores its own. */
type Notice =
  | {
      readonly from: string
      readonly type: 'appended'
      readonly space: string
      readonly head: number
      readonly received?: Record<string, number>
      /** The appended changes' texts, ending at `head`, when they fit in the notice. */
      readonly texts?: readonly string[]
    }
  | {
      readonly from: string
      readonly type: 'collected'
      readonly space: string
      readonly mark: CollectedMark
    }
  | { readonly from: string; readonly type: 'deleted'; readonly space: string }
  | { readonly from: string; readonly type: 'presence'; readonly entries: readonly unknown[] }
  /**
   * Part `part` (from 0) of `parts` of one presence entry's JSON text too long for a notice of
   * its own: every part goes in one transaction, so they arrive together or not at all.
   */
  | {
      readonly from: string
      readonly type: 'presence-part'
      readonly id: number
      readonly part: number
      readonly parts: number
      readonly text: string
    }

/** Where a connection string points (host and database), without its user and password: for messages. */
export function postgresTarget(connectionString: string): string {
  const match = /^postgres(?:ql)?:\/\/(?:[^@/?]*@)?([^/?]*)(\/[^?]*)?(?:\?(.*))?$/.exec(connectionString)
  if (match === null) return 'the configured database'
  const [, authority = '', path = '', query = ''] = match
  let host = authority
  try {
    host = new URLSearchParams(query).get('host') ?? decodeURIComponent(authority)
  } catch {
    // A malformed escape: the authority as written.
  }
  return `${host || 'localhost'}${path}`
}

/** A notice's text as sent, or null when it is not one (another program on the channel). */
function parseNotice(payload: string | undefined): Notice | null {
  if (payload === undefined) return null
  let value: unknown
  try {
    value = JSON.parse(payload)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const notice = value as Record<string, unknown>
  if (typeof notice.from !== 'string') return null
  if (notice.type === 'presence' && Array.isArray(notice.entries)) return notice as Notice
  if (notice.type === 'presence-part') {
    const { id, part, parts, text } = notice
    const valid =
      Number.isSafeInteger(id) &&
      Number.isSafeInteger(parts) &&
      (parts as number) >= 2 &&
      (parts as number) <= MAX_PRESENCE_PARTS &&
      Number.isSafeInteger(part) &&
      (part as number) >= 0 &&
      (part as number) < (parts as number) &&
      typeof text === 'string'
    return valid ? (notice as Notice) : null
  }
  if (!isSpaceId(notice.space)) return null
  if (notice.type === 'appended' && Number.isSafeInteger(notice.head)) return notice as Notice
  if (notice.type === 'collected' && typeof notice.mark === 'object' && notice.mark !== null)
    return notice as Notice
  if (notice.type === 'deleted') return notice as Notice
  return null
}

/**
 * A presence entry as another relay's notice carries it, checked: with its origin and seq
 * both or neither (see `SharedPresence`).
 */
function isPresenceEntry(value: unknown): value is SharedPresence {
  if (typeof value !== 'object' || value === null) return false
  const entry = value as Record<string, unknown>
  const { origin, seq } = entry
  return (
    isSpaceId(entry.space) &&
    isReplicaId(entry.replicaId) &&
    typeof entry.key === 'string' &&
    entry.key.length > 0 &&
    entry.key.length <= MAX_PRESENCE_KEY_LENGTH &&
    (entry.state === null || (typeof entry.state === 'object' && !Array.isArray(entry.state))) &&
    (origin === undefined
      ? seq === undefined
      : typeof origin === 'string' &&
        origin.length > 0 &&
        origin.length <= MAX_PRESENCE_KEY_LENGTH &&
        Number.isSafeInteger(seq) &&
        (seq as number) >= 0)
  )
}

/** A notice's JSON text without its leading `"head"` field, which `chorus_append` puts back with the real head. */
function withoutHead(notice: string): string {
  const prefix = '{"head":0,'
  if (!notice.startsWith(prefix)) throw new Error('a notice starts with its head')
  return `{${notice.slice(prefix.length)}`
}

/** How often an append is tried against other relays' appends to the same space before it fails. */
const MAX_APPEND_ATTEMPTS = 50

/**
 * A row of `SQL.appendRead`: the space (`s`, its head in `a`), a replica's received counter
 * (`r`: `name`, `a`) or a record (`k`: `key`, `versions`, its `last_seq` in `a`).
 */
interface AppendReadRow {
  readonly kind: 's' | 'r' | 'k' | 'd'
  readonly name: string | null
  readonly a: number | null
  readonly key: Buffer | null
  readonly versions: string | null
}

/** The entries a notice carries, or undefined when it carries none (or not all of them readably). */
function entriesOf(notice: Notice & { type: 'appended' }): AdvancedEntry[] | undefined {
  const texts = notice.texts
  if (!Array.isArray(texts) || texts.length === 0 || texts.length > notice.head) return undefined
  const first = notice.head - texts.length + 1
  const entries: AdvancedEntry[] = []
  for (const [i, text] of texts.entries()) {
    if (typeof text !== 'string') return undefined
    try {
      entries.push({ seq: first + i, change: JSON.parse(text) as Change, text })
    } catch {
      return undefined
    }
  }
  return entries
}

/**
 * A relay store in PostgreSQL, which several relays can share: when one machine is not
 * enough, run more relays on the same database behind a load balancer.
 *
 * The tables mirror the SQLite store's. Each append is one transaction holding the space's
 * advisory lock (so appends to one space from every relay are numbered in one order), and it
 * sends a `NOTIFY` with the new head and received counters: the other relays' stores, which
 * `LISTEN`, hand it to their relay (see {@link RelayStore.watch}), which streams the new
 * entries to its connections. A compaction that collects deletions sends its mark the same way.
 *
 * Durability is PostgreSQL's: a commit returns once its WAL is flushed (with the server's
 * default `synchronous_commit = on`), and the hub acknowledges only after that.
 */
export class PostgresRelayStore implements RelayStore {
  readonly #pool: pg.Pool
  readonly #connectionString: string
  /** This store's id in the notices it sends. */
  readonly #id = randomUUID()
  /** The log's name (see `SpaceMeta.log`): one per database. */
  readonly #log: string
  readonly #beforeCommit: ((write: PostgresWrite) => void) | undefined
  readonly #onError: ((error: ChorusError) => void) | undefined
  readonly #pendingAcks = new Map<string, PendingAck>()
  readonly #knownAcks = new Set<string>()
  #ackWrite: Promise<void> | null = null
  /** Acknowledgements looking up whether their replica is known (see `noteAck`). */
  #lookups = 0
  /** The write of first-seen replicas, waiting for those lookups to end. */
  #afterLookups: (() => void) | null = null
  readonly #listeners = new Set<(event: StoreEvent) => void>()
  #listener: pg.Client | null = null
  #relisten: NodeJS.Timeout | null = null
  #relistenMs = 100
  /** Whether the listening connection has its `LISTEN` in place. */
  #listening = false
  /** Per other relay, the parts of a presence entry it is sending (see `presence-part`). */
  readonly #gathering = new Map<string, { readonly id: number; readonly texts: (string | undefined)[] }>()
  #presencePartId = 0
  #closed = false
  /** Appends tried again (see `RelayStoreStats.appendRetries`). */
  #appendRetries = 0

  private constructor(
    pool: pg.Pool,
    connectionString: string,
    log: string,
    options: PostgresRelayStoreOptions,
  ) {
    this.#pool = pool
    this.#connectionString = connectionString
    this.#log = log
    this.#beforeCommit = options.beforeCommit
    this.#onError = options.onError
  }

  /**
   * Connects to the database at `connectionString` (a `postgres://` URL), creating the tables
   * it lacks. Rejects with `storage-failed` when the database cannot be reached or was
   * written by a newer build.
   */
  static async open(
    connectionString: string,
    options: PostgresRelayStoreOptions = {},
  ): Promise<PostgresRelayStore> {
    const where = postgresTarget(connectionString)
    const pool = new pg.Pool({ connectionString, max: options.maxConnections ?? 10, types })
    // An idle connection the server drops emits here; unheard, it would end the process.
    pool.on('error', (error) => {
      options.onError?.(
        new ChorusError(ErrorCode.StorageFailed, `a PostgreSQL connection failed: ${error.message}`, {
          cause: error,
        }),
      )
    })
    // So may one in use, between its queries (a transaction's, or one whose query has just
    // settled) or a second time after its query took the first error: the pool listens only
    // while it is idle, and a query only once. What it says reaches the query or the next one
    // on it, which then fails, or the pool's listener above.
    pool.on('connect', (client) => {
      client.on('error', () => undefined)
    })
    try {
      const log = await migrate(pool)
      return new PostgresRelayStore(pool, connectionString, log, options)
    } catch (error) {
      await pool.end().catch(() => undefined)
      if (isChorusError(error)) throw error
      const detail = error instanceof Error ? error.message : String(error)
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `cannot open the relay database at ${where}: ${detail}`,
        {
          cause: error,
        },
      )
    }
  }

  async loadSpace(space: SpaceId): Promise<SpaceMeta> {
    return this.#run('loading a space', async () => {
      const { rows } = await this.#pool.query<
        SpaceRow & { head: number | null; received: string | null; deleted: boolean }
      >(SQL.loadSpace, [space])
      const row = rows[0]
      if (row?.deleted === true) return { head: 0, floor: 0, received: {}, log: this.#log, deleted: true }
      const received = row?.received == null ? {} : (JSON.parse(row.received) as Record<string, number>)
      const meta = { head: row?.head ?? 0, floor: row?.floor ?? 0, received, log: this.#log }
      return withMark(meta, row === undefined || row.head === null ? undefined : markOf(row))
    })
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

  /** Several replicas' appends in one transaction: one commit for all of them. */
  async appendMany(
    space: SpaceId,
    appends: readonly HubAppend[],
    text: ChangeText = encodeChange,
  ): Promise<AppendResult[]> {
    return this.#run('appending changes', async () => {
      for (let attempt = 1; ; attempt++) {
        const results = await this.#tryAppend(space, appends, text)
        if (results !== null) return results
        this.#appendRetries++
        if (attempt >= MAX_APPEND_ATTEMPTS) {
          throw new ChorusError(
            ErrorCode.StorageFailed,
            `appending to ${space} lost to other relays' appends ${attempt} times in a row`,
          )
        }
      }
    })
  }

  /**
   * One attempt at an append, in two round trips: one statement reads what the append
   * depends on (the replicas' counters, the records it touches), and `chorus_append` writes it
   * all in one transaction at the positions after the head as it is then, unless one of those
   * records or counters moved meanwhile (another relay appended to them, or compacted them
   * away): then null, to try again.
   */
  async #tryAppend(
    space: SpaceId,
    appends: readonly HubAppend[],
    text: ChangeText,
  ): Promise<AppendResult[] | null> {
    const touched = touchedRecords(appends.flatMap((append) => append.changes))
    const replicas = [...new Set(appends.map((append) => append.replica as string))]
    const { rows } = await this.#pool.query<AppendReadRow>(SQL.appendRead, [
      space,
      replicas,
      touched.records.map((record) => record.key),
    ])
    let readHead = 0
    const stored = new Map<string, number>()
    const lastSeqs = new Map<TouchedRecord, number>()
    for (const row of rows) {
      if (row.kind === 'd') throw spaceDeleted(space)
      if (row.kind === 's') {
        readHead = row.a ?? 0
      } else if (row.kind === 'r' && row.name !== null) {
        stored.set(row.name, row.a ?? 0)
      } else if (row.kind === 'k' && row.key !== null && row.versions !== null) {
        const record = touched.byKey.get(decodeUtf16Key(row.key))
        if (record === undefined) continue
        record.state = { versions: JSON.parse(row.versions) as Change[] }
        lastSeqs.set(record, row.a ?? 0)
      }
    }
    // Planned from position 0: the positions are offsets from the head the write finds.
    const plan = planAppend(appends, 0, (replica) => stored.get(replica) ?? 0)
    const { fresh, advanced } = plan
    // Nothing new: nothing to write.
    if (advanced.size === 0)
      return plan.results.map((result) => ({ ...result, head: result.head + readHead }))
    const texts = fresh.map((change) => text(change))
    const writes = recordWrites(touched, fresh, texts, 0)
    // The notice gets its head in front, in the database (see `chorus_append`).
    const notice =
      fresh.length === 0
        ? null
        : this.#notice({
            head: 0,
            from: this.#id,
            type: 'appended',
            space,
            received: Object.fromEntries(advanced),
            texts,
          })
    // The fault hook: a throw makes the transaction fail after its writes, rolling them back.
    let failure: string | null = null
    try {
      this.#beforeCommit?.('append')
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error)
    }
    const written = await this.#pool.query<{ base: number | null }>(SQL.append, [
      space,
      touched.records.map((record) => record.key),
      touched.records.map((record) => lastSeqs.get(record) ?? null),
      replicas,
      replicas.map((replica) => stored.get(replica) ?? 0),
      fresh.map((_, i) => i + 1),
      fresh.map((change) => change.dot[0]),
      fresh.map((change) => change.dot[1]),
      texts,
      writes.map((write) => write.key),
      writes.map((write) => write.versions),
      // Replica ids hold no commas.
      writes.map((write) => write.kept.map((version) => version.dot[0]).join(',')),
      writes.map((write) => write.lastSeq),
      writes.map((write) => write.tombstone),
      [...advanced.keys()],
      [...advanced.values()],
      notice === null ? null : withoutHead(notice),
      failure,
    ])
    const base = written.rows[0]?.base ?? null
    if (base === null) return null
    return plan.results.map((result) => ({ ...result, head: result.head + base }))
  }

  async readLog(
    space: SpaceId,
    after: number,
    limit: number,
    onText?: (change: Change, text: string) => void,
  ): Promise<LogEntry[]> {
    return this.#run('reading the log', async () => {
      const { rows } = await this.#pool.query<{
        floor: number
        seq: number | null
        change: string | null
        deleted: boolean
      }>(SQL.readLog, [space, after, Math.max(0, limit)])
      // Read after a deletion, the log is empty: it must not pass for caught up.
      if (rows[0]?.deleted === true) throw spaceDeleted(space)
      const floor = rows[0]?.floor ?? 0
      if (after < floor) {
        throw new ChorusError(ErrorCode.ResyncRequired, `log entries up to ${floor} were compacted`)
      }
      const entries: LogEntry[] = []
      for (const row of rows) {
        if (row.seq === null || row.change === null) continue
        const change = JSON.parse(row.change) as Change
        onText?.(change, row.change)
        entries.push({ seq: row.seq, change })
      }
      return entries
    })
  }

  async readSnapshot(
    space: SpaceId,
    afterKey: string | null,
    limit: number,
  ): Promise<{ changes: Change[]; nextKey: string | null }> {
    checkSnapshotLimit(limit)
    return this.#run('reading a snapshot', async () => {
      type PageRow = { deleted: boolean; key: Buffer | null; versions: string | null }
      const { rows: read } =
        afterKey === null
          ? await this.#pool.query<PageRow>(SQL.snapshotFirst, [space, limit + 1])
          : await this.#pool.query<PageRow>(SQL.snapshotAfter, [space, encodeUtf16Key(afterKey), limit + 1])
      // Read after a deletion, the page is empty: it must not pass for the last one.
      if (read[0]?.deleted === true) throw spaceDeleted(space)
      const rows = read.filter(
        (row): row is { deleted: boolean; key: Buffer; versions: string } =>
          row.key !== null && row.versions !== null,
      )
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      const nextKey = rows.length > limit && last !== undefined ? decodeUtf16Key(last.key) : null
      return { changes: page.flatMap((row) => JSON.parse(row.versions) as Change[]), nextKey }
    })
  }

  async noteAck(space: SpaceId, replica: ReplicaId, position: number, now: number): Promise<void> {
    checkAckPosition(position)
    const firstSeen = await this.#run('recording an acknowledgement', async () => {
      const key = ackKey(space, replica)
      const pending = this.#pendingAcks.get(key)
      if (pending !== undefined) {
        raiseAck(pending, position, now)
        return false
      }
      let known = this.#knownAcks.has(key)
      if (!known) {
        this.#lookups++
        try {
          known = (await this.#pool.query(SQL.ackExists, [space, replica])).rows.length > 0
        } finally {
          this.#lookups--
          // The write waiting for the lookups goes once this one's acknowledgement is pending
          // (the rest of this turn), even when the lookup failed.
          if (this.#lookups === 0) queueMicrotask(() => this.#writeAfterLookups())
        }
      }
      this.#knownAcks.add(key)
      const again = this.#pendingAcks.get(key)
      if (again !== undefined) {
        // Another acknowledgement of the replica arrived while this one looked it up.
        raiseAck(again, position, now)
        return !known
      }
      this.#pendingAcks.set(key, { space, replica, position, seenAt: now })
      return !known
    })
    // As in the SQLite store: a replica seen for the first time is written through, with the
    // others first seen together (whose lookups are still out).
    if (firstSeen) await this.#writeAcksSoon()
  }

  #writeAfterLookups(): void {
    if (this.#lookups > 0) return
    const write = this.#afterLookups
    this.#afterLookups = null
    write?.()
  }

  #writeAcksSoon(): Promise<void> {
    this.#ackWrite ??= new Promise<void>((resolve, reject) => {
      const write = (): void => {
        if (this.#lookups > 0) {
          this.#afterLookups = write
          return
        }
        this.#ackWrite = null
        if (this.#closed && this.#pendingAcks.size === 0) {
          resolve()
          return
        }
        this.#run('recording an acknowledgement', () => this.#flushAcks()).then(resolve, reject)
      }
      setImmediate(write)
    })
    return this.#ackWrite
  }

  async flushAcks(): Promise<void> {
    await this.#run('writing acknowledgements', () => this.#flushAcks())
  }

  async #flushAcks(): Promise<void> {
    if (this.#pendingAcks.size === 0) return
    const taken = [...this.#pendingAcks.values()].sort((a, b) =>
      a.space === b.space ? (a.replica < b.replica ? -1 : 1) : a.space < b.space ? -1 : 1,
    )
    this.#pendingAcks.clear()
    try {
      await this.#transaction('acks', (client) =>
        client.query(SQL.upsertAcks, [
          taken.map((ack) => ack.space),
          taken.map((ack) => ack.replica),
          taken.map((ack) => ack.position),
          taken.map((ack) => ack.seenAt),
        ]),
      )
    } catch (error) {
      // Keep them for the next flush, merged with any that arrived meanwhile.
      for (const ack of taken) {
        const key = ackKey(ack.space, ack.replica)
        const newer = this.#pendingAcks.get(key)
        if (newer === undefined) this.#pendingAcks.set(key, ack)
        else raiseAck(newer, ack.position, ack.seenAt)
      }
      throw error
    }
  }

  async compact(space: SpaceId, options: CompactOptions): Promise<CompactResult> {
    return this.#run('compacting a space', async () => {
      await this.#flushAcks()
      const result = await this.#transaction('compact', async (client) => {
        await client.query(SQL.lockSpace, [space])
        const row = (await client.query<SpaceRow>(SQL.spaceWithMark, [space])).rows[0]
        if (row === undefined) {
          return { floor: 0, logEntriesDeleted: 0, tombstonesDeleted: 0, replicasForgotten: 0 }
        }
        const mark = markOf(row)
        const cutoff = Number.isFinite(options.horizonMs) ? options.now - options.horizonMs : null
        const stale =
          cutoff === null
            ? 0
            : ((await client.query<{ n: number }>(SQL.countStale, [space, cutoff])).rows[0]?.n ?? 0)
        const lowest =
          (
            await client.query<{ lowest: number | null }>(SQL.lowestAck, [
              space,
              cutoff ?? Number.MIN_SAFE_INTEGER,
            ])
          ).rows[0]?.lowest ?? null
        const floor = compactionFloor(row, lowest)
        if (stale === 0 && floor === row.floor) {
          return withMark({ floor, logEntriesDeleted: 0, tombstonesDeleted: 0, replicasForgotten: 0 }, mark)
        }
        const replicasForgotten =
          cutoff === null ? 0 : ((await client.query(SQL.forget, [space, cutoff])).rowCount ?? 0)
        if (floor > row.floor) await client.query(SQL.setFloor, [floor, space])
        const logEntriesDeleted = (await client.query(SQL.deleteLog, [space, floor])).rowCount ?? 0
        const { tombstonesDeleted, collected } =
          options.collect === false
            ? { tombstonesDeleted: 0, collected: mark }
            : await this.#collect(client, space, floor, row.head, mark)
        if (collected !== undefined && collected !== mark) {
          await client.query(SQL.notify, [
            this.#notice({ from: this.#id, type: 'collected', space, mark: collected }),
          ])
        }
        return withMark({ floor, logEntriesDeleted, tombstonesDeleted, replicasForgotten }, collected)
      })
      if (result.replicasForgotten > 0) {
        forgetSpaceAcks(space, this.#knownAcks)
      }
      return result
    })
  }

  /** Inside `compact`'s transaction, as the SQLite store's `#collect` (see there). */
  async #collect(
    client: pg.PoolClient,
    space: SpaceId,
    floor: number,
    head: number,
    mark: CollectedMark | undefined,
  ): Promise<{ tombstonesDeleted: number; collected: CollectedMark | undefined }> {
    if (mark !== undefined && floor <= mark.at) return { tombstonesDeleted: 0, collected: mark }
    const writers = new Set(
      (await client.query<{ replica: string }>(SQL.tombstoneWriters, [space, floor])).rows.map(
        (row) => row.replica,
      ),
    )
    const tombstonesDeleted = (await client.query(SQL.deleteTombstones, [space, floor])).rowCount ?? 0
    if (tombstonesDeleted === 0) return { tombstonesDeleted, collected: mark }
    const received: Record<string, number> = {}
    for (const entry of (
      await client.query<{ replica: string; counter: number }>(SQL.collectedCounters, [space, floor])
    ).rows) {
      if (writers.has(entry.replica)) received[entry.replica] = entry.counter
    }
    await client.query(SQL.setCollected, [head, JSON.stringify(received), space])
    return { tombstonesDeleted, collected: { at: head, received } }
  }

  async describeSpaces(): Promise<SpaceSummary[]> {
    return this.#run('describing spaces', async () => {
      await this.#flushAcks()
      return (await this.#pool.query<SpaceSummary>(SQL.describeSpaces)).rows
    })
  }

  async deleteSpace(space: SpaceId): Promise<boolean> {
    return this.#run('deleting a space', async () => {
      const deleted = await this.#transaction('delete', async (client) => {
        // Under the space's lock, so that no append of another relay is half through.
        await client.query(SQL.lockSpace, [space])
        if ((await client.query(SQL.isDeleted, [space])).rows.length > 0) return false
        await client.query(SQL.deleteOwners, [space])
        for (const statement of SQL.deleteSpaceData) await client.query(statement, [space])
        await client.query(SQL.markDeleted, [space, Date.now()])
        await client.query(SQL.notify, [this.#notice({ from: this.#id, type: 'deleted', space })])
        return true
      })
      forgetSpaceAcks(space, this.#pendingAcks, this.#knownAcks)
      return deleted
    })
  }

  /**
   * The space's head as committed: other relays append here too, and this one hears of it
   * late (their notices), so its hub answers a replica's ping with this.
   */
  async readHead(space: SpaceId): Promise<number> {
    return this.#run('reading the head of a log', async () => {
      const row = (await this.#pool.query<{ head: number | string }>(SQL.readHead, [space])).rows[0]
      return row === undefined ? 0 : Number(row.head)
    })
  }

  async listSpaces(): Promise<SpaceId[]> {
    return this.#run('listing spaces', async () =>
      (await this.#pool.query<{ space: string }>(SQL.listSpaces)).rows.map((row) => row.space as SpaceId),
    )
  }

  async stats(): Promise<RelayStoreStats> {
    return this.#run('reading statistics', async () => {
      const row = (await this.#pool.query<{ spaces: number; entries: number }>(SQL.stats)).rows[0]
      return { spaces: row?.spaces ?? 0, logEntries: row?.entries ?? 0, appendRetries: this.#appendRetries }
    })
  }

  async claimReplica(replica: ReplicaId, subject: string): Promise<boolean> {
    return this.#run('claiming a replica id', async () => {
      const owner = (await this.#pool.query<{ subject: string }>(SQL.owner, [replica])).rows[0]?.subject
      if (owner !== undefined) return owner === subject
      await this.#transaction('claim', (client) => client.query(SQL.claim, [replica, subject]))
      // Another relay may have claimed it first: the row that stands decides.
      const winner = (await this.#pool.query<{ subject: string }>(SQL.owner, [replica])).rows[0]?.subject
      return winner === subject
    })
  }

  listening(): boolean {
    return this.#listening
  }

  watch(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener)
    if (this.#listener === null && this.#relisten === null && !this.#closed) void this.#listen(false)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /**
   * Opens the listening connection. After a lost one (`again`), the listeners are told to
   * `resync`, since notices sent meanwhile are gone.
   */
  async #listen(again: boolean): Promise<void> {
    const client = new pg.Client({ connectionString: this.#connectionString, types })
    this.#listener = client
    const lost = (error?: Error): void => {
      if (this.#listener !== client) return
      this.#listener = null
      this.#listening = false
      this.#gathering.clear()
      client.removeAllListeners('notification')
      void client.end().catch(() => undefined)
      if (this.#closed) return
      if (error !== undefined) {
        this.#onError?.(
          new ChorusError(
            ErrorCode.StorageFailed,
            `listening for other relays' changes failed: ${error.message}`,
            {
              cause: error,
            },
          ),
        )
      }
      const delay = this.#relistenMs
      this.#relistenMs = Math.min(MAX_RELISTEN_MS, this.#relistenMs * 2)
      this.#relisten = setTimeout(() => {
        this.#relisten = null
        void this.#listen(true)
      }, delay)
      this.#relisten.unref()
    }
    client.on('error', lost)
    client.on('end', () => lost())
    client.on('notification', (message) => {
      if (message.channel === NOTIFY_CHANNEL) this.#deliver(message.payload)
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`)
    } catch (error) {
      lost(error instanceof Error ? error : new Error(String(error)))
      return
    }
    if (this.#listener !== client) return
    this.#listening = true
    this.#relistenMs = 100
    if (again) this.#emit({ type: 'resync' })
  }

  #deliver(payload: string | undefined): void {
    const notice = parseNotice(payload)
    if (notice === null || notice.from === this.#id) return
    if (notice.type === 'presence') {
      const entries = notice.entries.filter(isPresenceEntry)
      if (entries.length > 0) this.#emit({ type: 'presence', from: notice.from, entries })
      return
    }
    if (notice.type === 'presence-part') {
      this.#presencePart(notice)
      return
    }
    const space = notice.space as SpaceId
    if (notice.type === 'appended') {
      const entries = entriesOf(notice)
      this.#emit({
        type: 'appended',
        space,
        head: notice.head,
        ...(notice.received === undefined ? {} : { received: notice.received }),
        ...(entries === undefined ? {} : { entries }),
      })
    } else if (notice.type === 'collected') {
      this.#emit({ type: 'collected', space, mark: notice.mark })
    } else {
      this.#emit({ type: 'deleted', space })
    }
  }

  #emit(event: StoreEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (error) {
        this.#onError?.(new ChorusError(ErrorCode.Internal, 'a store listener threw', { cause: error }))
      }
    }
  }

  /**
   * `notice` as the text to send. Too long for a notice, an append's drops its changes'
   * texts (the other relays read them from the log), then its counters.
   */
  #notice(notice: Notice): string {
    let payload = JSON.stringify(notice)
    if (Buffer.byteLength(payload) > MAX_NOTIFY_BYTES && notice.type === 'appended') {
      const { texts: _texts, ...withoutTexts } = notice
      payload = JSON.stringify(withoutTexts)
      if (Buffer.byteLength(payload) > MAX_NOTIFY_BYTES) {
        const { received: _received, ...bare } = withoutTexts
        payload = JSON.stringify(bare)
      }
    }
    return payload
  }

  /**
   * Tells the other relays of presence changes here: as notices of at most `MAX_NOTIFY_BYTES`,
   * and an entry too large for one notice alone (many characters of several bytes each) in
   * parts, all sent in one transaction.
   */
  async publishPresence(entries: readonly SharedPresence[]): Promise<void> {
    // Each a notice, or the parts of one entry; sent in the entries' order.
    const sends: (string | readonly string[])[] = []
    let batch: string[] = []
    let bytes = 0
    const head = `{"from":${JSON.stringify(this.#id)},"type":"presence","entries":[`
    const flush = () => {
      if (batch.length > 0) sends.push(`${head}${batch.join(',')}]}`)
      batch = []
      bytes = 0
    }
    for (const entry of entries) {
      const text = JSON.stringify(entry)
      const size = Buffer.byteLength(text) + 1
      if (Buffer.byteLength(head) + size + 2 > MAX_NOTIFY_BYTES) {
        flush()
        const parts = this.#presenceParts(text)
        if (parts !== null) sends.push(parts)
        continue
      }
      if (Buffer.byteLength(head) + bytes + size + 2 > MAX_NOTIFY_BYTES) flush()
      batch.push(text)
      bytes += size
    }
    flush()
    for (const send of sends) {
      await this.#run('publishing presence', () =>
        typeof send === 'string'
          ? this.#pool.query(SQL.notify, [send])
          : this.#pool.query(SQL.notifyAll, [send]),
      )
    }
  }

  /** One presence entry's JSON text as `presence-part` notices, or null if it needs too many. */
  #presenceParts(text: string): readonly string[] | null {
    const parts = Math.ceil(text.length / PRESENCE_PART_CHARS)
    if (parts > MAX_PRESENCE_PARTS) return null
    const id = ++this.#presencePartId
    return Array.from({ length: parts }, (_, part) =>
      JSON.stringify({
        from: this.#id,
        type: 'presence-part',
        id,
        part,
        parts,
        text: text.slice(part * PRESENCE_PART_CHARS, (part + 1) * PRESENCE_PART_CHARS),
      }),
    )
  }

  /**
   * Gathers a part of another relay's presence entry; with the last, the entry is passed on.
   * One entry per relay is gathered at a time (its parts come together, in one transaction):
   * a part of another entry starts over.
   */
  #presencePart(notice: Extract<Notice, { type: 'presence-part' }>): void {
    let gathered = this.#gathering.get(notice.from)
    if (gathered === undefined || gathered.id !== notice.id || gathered.texts.length !== notice.parts) {
      gathered = { id: notice.id, texts: new Array(notice.parts).fill(undefined) }
      this.#gathering.set(notice.from, gathered)
    }
    gathered.texts[notice.part] = notice.text
    if (gathered.texts.some((text) => text === undefined)) return
    this.#gathering.delete(notice.from)
    let entry: unknown
    try {
      entry = JSON.parse(gathered.texts.join(''))
    } catch {
      return
    }
    if (isPresenceEntry(entry)) this.#emit({ type: 'presence', from: notice.from, entries: [entry] })
  }

  /** Writes buffered acknowledgements, stops listening and closes every connection; later calls reject with `closed`. */
  async close(): Promise<void> {
    if (this.#closed) return
    let failure: unknown
    try {
      await this.#flushAcks()
    } catch (error) {
      failure = error
    }
    this.#closed = true
    if (this.#relisten !== null) clearTimeout(this.#relisten)
    this.#relisten = null
    const listener = this.#listener
    this.#listener = null
    this.#listening = false
    this.#listeners.clear()
    await listener?.end().catch(() => undefined)
    await this.#pool.end()
    if (failure !== undefined) {
      throw new ChorusError(ErrorCode.StorageFailed, 'writing buffered acknowledgements failed at close', {
        cause: failure,
      })
    }
  }

  /**
   * Runs `work` in a transaction on one connection, committing after `beforeCommit`; one that
   * lost a deadlock or a serialisation race is run again from the start.
   */
  async #transaction<TResult>(
    write: PostgresWrite,
    work: (client: pg.PoolClient) => Promise<TResult>,
  ): Promise<TResult> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect()
      let broken = false
      try {
        await client.query('BEGIN')
        const result = await work(client)
        this.#beforeCommit?.(write)
        await client.query('COMMIT')
        return result
      } catch (error) {
        try {
          await client.query('ROLLBACK')
        } catch {
          broken = true
        }
        const code = (error as { code?: unknown }).code
        if (attempt < MAX_ATTEMPTS && typeof code === 'string' && RETRY_CODES.has(code)) continue
        throw error
      } finally {
        client.release(broken)
      }
    }
  }

  /** Runs a storage operation: `closed` after close, `storage-failed` for the database's errors. */
  async #run<TResult>(what: string, operation: () => Promise<TResult>): Promise<TResult> {
    if (this.#closed) throw new ChorusError(ErrorCode.Closed, 'this store is closed')
    try {
      return await operation()
    } catch (error) {
      if (isChorusError(error)) throw error
      const detail = error instanceof Error ? error.message : String(error)
      // Deleted between the append's read and its write (see `chorus_append`).
      if ((error as { code?: unknown }).code === SPACE_DELETED_STATE) {
        throw new ChorusError(ErrorCode.SpaceDeleted, `${what} failed: ${detail}`, { cause: error })
      }
      throw new ChorusError(ErrorCode.StorageFailed, `${what} failed: ${detail}`, { cause: error })
    }
  }
}

/**
 * Creates the tables a database lacks, under a lock so that relays starting together take
 * turns, and returns the log's name (made on first use).
 */
async function migrate(pool: pg.Pool): Promise<string> {
  const client = await pool.connect()
  try {
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`)
    try {
      const exists = await client.query<{ name: string | null }>(
        "SELECT to_regclass('chorus_meta')::text AS name",
      )
      const meta = new Map<string, string>()
      if (exists.rows[0]?.name != null) {
        for (const row of (await client.query<{ key: string; value: string }>(SQL.readMeta)).rows)
          meta.set(row.key, row.value)
      }
      const version = Number(meta.get('schema') ?? 0)
      if (version > POSTGRES_SCHEMA_VERSION) {
        throw new ChorusError(
          ErrorCode.StorageFailed,
          `the relay database has schema ${version}; this relay reads up to ${POSTGRES_SCHEMA_VERSION}: upgrade the relay`,
        )
      }
      await client.query('BEGIN')
      try {
        await client.query(POSTGRES_SCHEMA)
        await client.query(SQL.writeMeta, ['schema', String(POSTGRES_SCHEMA_VERSION)])
        const log = meta.get('log') ?? randomUUID()
        if (!meta.has('log')) await client.query(SQL.writeMeta, ['log', log])
        await client.query('COMMIT')
        return log
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw error
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`)
    }
  } finally {
    client.release()
  }
}
