import type { Change } from './change.js'
import { ChorusError, ErrorCode, isChorusError } from './errors.js'
import { isReplicaId, isSpaceId, type ReplicaId, type SpaceId } from './ids.js'
import type { JsonObject } from './json.js'
import {
  decodeMessage,
  encodeChange,
  encodeChangesMessage,
  encodeMessage,
  encodeRowOp,
} from './protocol/codec.js'
import {
  type AuthRefusal,
  type AuthResult,
  DEFAULT_HUB_SESSION,
  type HubFacts,
  type HubSessionConfig,
  type HubSessionEffect,
  type HubSessionInput,
  type HubSessionState,
  type HubStep,
  initialDialSession,
  initialHubSession,
  type Outgoing,
  outgoing,
  RELAY_ID_PREFIX,
  relayIdOf,
  stepHubSession,
} from './protocol/hub-session.js'
import {
  type ChangesMessage,
  DEFAULT_LIMITS,
  Feature,
  MAX_PRESENCE_KEYS,
  type ProtocolLimits,
} from './protocol/messages.js'
import { SerialQueue } from './serial-queue.js'
import type { AppendResult, CollectedMark, HubAppend, HubStore, LogEntry } from './storage.js'

/** A peer connection as the hub sees it: a way to send frames and to hang up. */
export interface HubPeer {
  send(frame: string): void
  /** Hangs up; when the hub refused the peer, `code` and `message` say why (already sent as an error frame). */
  close(code?: ErrorCode, message?: string): void
  /**
   * Bytes sent and not yet written out to the network (optional). With it, the session reads
   * nothing more to send while it is at or above `HubSessionConfig.sendBuffer`; the runtime
   * then calls {@link HubConnection.writable} once it has fallen below again.
   */
  backlog?(): number
}

/** Decides who may connect and what they may do; the default lets everyone write. */
export type Authenticate = (
  token: string | undefined,
  replicaId: ReplicaId,
) => AuthResult | Promise<AuthResult>

/** Options for {@link createHubEngine}. */
export interface HubEngineOptions {
  readonly store: HubStore
  /** Wall-clock milliseconds (injected). */
  readonly now: () => number
  readonly authenticate?: Authenticate
  readonly limits?: ProtocolLimits
  readonly session?: Partial<HubSessionConfig>
  /**
   * Called when an append commits: the space, the replica, how many changes were new, and
   * whether they came in a sparse batch (changes the hub had lost, sent again by their writer).
   */
  readonly onStored?: (space: SpaceId, replica: ReplicaId, appended: number, recovered: boolean) => void
  /** Called when a replica acknowledges the space's log up to `position` (for compaction). */
  readonly onAcked?: (space: SpaceId, replica: ReplicaId, position: number) => void
  /**
   * Called after each commit of appends to the store (one transaction and one disk flush,
   * however many appends it held), with its duration by `elapsed`: what a change waits for
   * between arriving and being acknowledged and streamed on (for metrics). Failed commits
   * are not counted.
   */
  readonly onCommitted?: (space: SpaceId, appends: number, ms: number) => void
  /**
   * A commit of appends failed (nothing was acknowledged): with `onCommitted`, whether the
   * store takes writes now, for a health check.
   */
  readonly onCommitFailed?: (space: SpaceId, error: unknown) => void
  /** A monotonic clock in milliseconds for `onCommitted` (default `now`). */
  readonly elapsed?: () => number
  /** Called with failures that have no caller to reject (a failed append, a failed read). */
  readonly onError?: (error: ChorusError) => void
  /**
   * Runs a task a little later: appends that arrive meanwhile are committed together (see
   * `HubStore.appendMany`). A relay passes `setImmediate`, so that every frame already read
   * from the sockets joins; the default runs it as a microtask (no timers in core).
   */
  readonly defer?: (task: () => void) => void
  /**
   * Most characters of change text the hub keeps in memory for recent log entries, over all
   * spaces in use (default 64 Mi, about 128 MB of strings): each space keeps at most an equal
   * share of it, and at most 16 Mi characters, so a relay with many busy spaces stays bounded.
   */
  readonly recentChars?: number
  /**
   * Called when a connection's presence changes here (`Feature.Presence`: set, cleared, or
   * gone with its connection), for each of them again at `refreshPresence`, and — with
   * `presenceOrigin` — for presence a link brought that was new here: for hubs that pass
   * presence to each other (relays sharing a store; see {@link HubEngine.remotePresence}).
   * With `presenceOrigin`, each entry carries its origin and seq, so that a hub hearing it
   * passes it on over its own links.
   */
  readonly onPresence?: (entry: SharedPresence) => void
  /**
   * This hub's name for presence passed over links (relay sessions, `Feature.Presence`): its
   * connections' presence goes to linked hubs, which pass it on, under this name. Unique
   * among linked hubs; 1–64 characters. Absent: no presence over links.
   */
  readonly presenceOrigin?: string
}

/** One connection's presence in a space under one key (`state` null: cleared, or gone). */
export interface HubPresence {
  readonly space: SpaceId
  readonly replicaId: ReplicaId
  readonly key: string
  readonly state: JsonObject | null
}

/**
 * A presence change as hubs pass it to each other outside links (see
 * `HubEngineOptions.onPresence`): with the name of the hub whose connection it is and that
 * hub's count of changes (`PresenceMessage.origin`, `seq`) when the hub that told it has a
 * `presenceOrigin`.
 */
export interface SharedPresence extends HubPresence {
  readonly origin?: string
  readonly seq?: number
}

/** One connection's view, for metrics: who it is and how far each stream has got. */
export interface HubSessionInfo {
  readonly replicaId: ReplicaId | null
  readonly phase: HubSessionState['phase']
  /** A session linking another hub: `accepted` when it connected here, `dialed` when this hub did. */
  readonly relay?: 'accepted' | 'dialed'
  readonly spaces: readonly {
    readonly space: SpaceId
    readonly head: number
    /** Log positions the replica has acknowledged applying. */
    readonly acked: number
    /** The replica's changes stored here (for a linked hub: the positions of its log). */
    readonly received: number
    /** Whose stream `received` counts: the replica's id, or for a linked hub its id here. */
    readonly source: ReplicaId
  }[]
}

/** A log entry another hub appended, with its change's wire text when the news carried it. */
export interface AdvancedEntry extends LogEntry {
  readonly text?: string
}

/** Most entries {@link HubEngine.advanced} reads ahead for its connections; they read the rest. */
const ADVANCED_READ = 1_000

/** Options for {@link HubEngine.dial}. */
export interface DialOptions {
  /** The spaces to link (at least one). */
  readonly spaces: readonly SpaceId[]
  /** The token the other hub authenticates (it must allow relaying). */
  readonly token?: string
  /**
   * This hub's id on the other (it keys what the other holds of this hub's log); default
   * {@link RELAY_ID_PREFIX} and the name of this hub's log, which must then be the same for
   * every space (a relay's store names one log for all its spaces).
   */
  readonly replicaId?: ReplicaId
  /**
   * Called with each error frame the other hub sends (a refusal among them), and the space it
   * names, if any; and with `space-deleted` for each space to link that is deleted here, which
   * the link leaves out (it hangs up when none is left). A space the other hub deleted ends
   * the session (`space-deleted`, naming it): dial again without it.
   */
  readonly onError?: (error: ChorusError, space?: SpaceId) => void
}

/** One accepted connection. */
export interface HubConnection {
  receive(frame: string): Promise<void>
  /** The peer's backlog fell below `sendBuffer` again (see {@link HubPeer.backlog}). */
  writable(): Promise<void>
  /** The transport closed. */
  closed(): Promise<void>
  session(): HubSessionState
}

/**
 * The hub side of sync over a {@link HubStore}: what a relay runs.
 *
 * Each connection's inputs run one at a time; appends to one space run one at a time, and
 * a replica's changes are acknowledged only after their append committed. When an append
 * lands, every connection on that space is told so it can stream the new entries.
 */
export interface HubEngine {
  accept(peer: HubPeer): HubConnection
  /**
   * Links this hub to another over a connection this side opened (relay↔relay, see
   * `Feature.Relay`): the two stream their logs to each other for `options.spaces`, each
   * taking the other's changes into its own log and acknowledging them once stored. The
   * connection's first hello is sent once the spaces are loaded; frames received meanwhile
   * wait. A space that cannot be loaded, or is deleted, hangs up with why.
   */
  dial(peer: HubPeer, options: DialOptions): HubConnection
  tick(): Promise<void>
  /**
   * The store's compaction of `space` left `mark` as its mark of collected deletions (see
   * `CollectedMark`): the connections on the space tell their replicas at its position. Call
   * it as soon as the compaction returns, before any later append is reported, so that no
   * connection has streamed past the mark unaware of it (one that has is sent a snapshot).
   */
  collected(space: SpaceId, mark: CollectedMark): Promise<void>
  /**
   * Another hub sharing the store appended to `space`: its log now reaches `head`, and the
   * replicas in `received` have their changes stored up to those counters. The connections
   * on the space stream the new entries from the store. A space not in use is ignored (it is
   * read afresh when next used), as is anything behind what this hub already knows; news of
   * a space being loaded waits for the load. `entries`, when the news carried them, are the
   * new log entries (all of them, from this hub's head on); without them the hub reads them
   * from the store once, for every connection.
   */
  advanced(
    space: SpaceId,
    head: number,
    received?: Readonly<Record<string, number>>,
    entries?: readonly AdvancedEntry[],
  ): Promise<void>
  /**
   * Deletes `space` through the store's `deleteSpace` (see there), then ends every session on
   * it as {@link spaceDeleted} does. Resolves true when the space was deleted now, false when
   * it was already; rejects with `invalid-argument` over a store without `deleteSpace`.
   */
  deleteSpace(space: SpaceId): Promise<boolean>
  /**
   * The space was deleted from the store (by another hub sharing it, say): every session on
   * it is ended with `space-deleted`, and its cached facts are dropped. A hello naming it from
   * then on is refused so too, since the store says it is deleted.
   */
  spaceDeleted(space: SpaceId): Promise<void>
  /**
   * Presence held elsewhere (another hub, `source`), passed to this hub's connections as
   * their own connections' is; null clears it. Its source gives it again now and then (see
   * `onPresence`); `refreshPresence` clears what it stopped giving. An entry with `origin`
   * and `seq` is kept by origin like presence over a link — an older change than one held is
   * ignored — and passed on over this hub's links (with `presenceOrigin`).
   */
  remotePresence(source: string, entry: SharedPresence): void
  /** The presence of this hub's own connections, every space and key. */
  localPresence(): HubPresence[]
  /**
   * Gives linked hubs (see `HubEngineOptions.presenceOrigin`) and `onPresence` this hub's
   * connections' presence again, and clears other hubs' presence (over links, or `remotePresence`) not
   * heard again within `maxAgeMs`. Call it now and then, with `maxAgeMs` a few times the period.
   */
  refreshPresence(maxAgeMs: number): void
  /**
   * Clears other hubs' presence not heard again within `maxAgeMs`, as `refreshPresence` does,
   * without giving this hub's again: for a sweep more often than the refresh, so that the
   * presence of a hub that stopped goes soon after `maxAgeMs`, not up to a period later.
   */
  expirePresence(maxAgeMs: number): void
  /** The spaces whose facts are cached (those in use). */
  spacesInUse(): SpaceId[]
  /** How many connections are open. */
  connections(): number
  /** How many spaces have their facts cached (those in use). */
  cachedSpaces(): number
  /** Every open connection's session, for metrics and lag. */
  sessions(): HubSessionInfo[]
  idle(): Promise<void>
}

const allowAll: Authenticate = () => ({ ok: true, access: () => 'write', relay: true })

interface SpaceCache {
  head: number
  floor: number
  received: Map<string, number>
  /** The store's name for the log (see `SpaceMeta.log`). */
  readonly log?: string
  /** The store's latest mark of collected deletions (see `SpaceMeta.collected`). */
  collected?: CollectedMark
  /** The store says the space was deleted (see `SpaceMeta.deleted`): never cached. */
  readonly deleted?: true
  /**
   * Log entries by position, as appended through this hub or read from the store: the
   * connections of a space read the same stretch of log one after another, so all but the
   * first read it here (and share its change objects, encoded once). Oldest out first.
   */
  recent: Map<number, LogEntry>
  /** The characters of the recent entries' change texts. */
  recentChars: number
}

/** An append a connection asked for, waiting for its space's queue. */
interface AppendJob {
  readonly connection: { input(input: HubSessionInput): Promise<void> }
  readonly replicaId: ReplicaId
  readonly changes: readonly Change[]
  /** A sparse batch's end (see `ChangesMessage.sparse`). */
  readonly through?: number
  /** A linked hub's changes (see the `store` effect's `relayed`). */
  readonly relayed?: 'log' | 'snapshot'
  /** A linked hub's snapshot's counters (see the `store` effect's `counters`). */
  readonly counters?: Readonly<Record<string, number>>
}

/**
 * The store appends of a job: one for a replica's; for a linked hub's, one sparse append per
 * run of a writer's changes (per writer, by counter, for a snapshot's), each taking what is
 * new of that writer, then the linked hub's position as an empty sparse append of its own.
 */
function storeAppends(job: AppendJob): HubAppend[] {
  const { replicaId, changes, through, relayed } = job
  if (relayed === undefined) {
    return [
      through === undefined ? { replica: replicaId, changes } : { replica: replicaId, changes, through },
    ]
  }
  const runs: Change[][] = []
  if (relayed === 'log') {
    let run: Change[] = []
    for (const change of changes) {
      if (run.length > 0 && (run[0] as Change).dot[0] !== change.dot[0]) {
        runs.push(run)
        run = []
      }
      run.push(change)
    }
    if (run.length > 0) runs.push(run)
  } else {
    const byWriter = new Map<string, Change[]>()
    for (const change of changes) {
      const run = byWriter.get(change.dot[0])
      if (run === undefined) byWriter.set(change.dot[0], [change])
      else run.push(change)
    }
    for (const run of byWriter.values()) runs.push(run.sort((a, b) => a.dot[1] - b.dot[1]))
  }
  const counters = job.counters ?? {}
  const appends: HubAppend[] = runs.map((run) => {
    const writer = (run[0] as Change).dot[0]
    let highest = Object.hasOwn(counters, writer) ? (counters[writer] as number) : 0
    for (const change of run) highest = Math.max(highest, change.dot[1])
    return { replica: writer, changes: run, through: highest }
  })
  // A writer the snapshot names whose changes it covers without holding any of them.
  for (const [writer, counter] of Object.entries(counters)) {
    if (isReplicaId(writer) && !runs.some((run) => (run[0] as Change).dot[0] === writer))
      appends.push({ replica: writer, changes: [], through: counter })
  }
  appends.push({ replica: replicaId, changes: [], through: through ?? 0 })
  return appends
}

/** An already settled promise: where an idle connection's next input starts. */
const settled: Promise<void> = Promise.resolve()

/**
 * Most log entries a space keeps in memory, and most characters of their texts. Subscribers
 * of a busy space stream up to their window behind its head, so the entries they still need
 * are tens of thousands of positions back: when they are gone, each stretch is read and
 * parsed from the store again. About 30 MB for notes-sized changes; the characters bound
 * keeps large changes from holding more.
 */
const RECENT_ENTRIES = 32_768
const RECENT_CHARS = 16 * 1024 * 1024
const RECENT_TOTAL_CHARS = 64 * 1024 * 1024

/** The refusal of a session naming a deleted space. */
function spaceDeletedRefusal(space: SpaceId): AuthRefusal {
  return {
    ok: false,
    code: ErrorCode.SpaceDeleted,
    message: `space ${space} was deleted on the relay: it cannot be synced any more; delete its local data (destroy)`,
    space,
  }
}

/** A compact row's bytes beside its op and id: indexes, counter, context, stamp, brackets. */
const ROW_OVERHEAD = 40

/** Creates a hub over a store. */
export function createHubEngine(options: HubEngineOptions): HubEngine {
  const { store, now } = options
  const elapsed = options.elapsed ?? now
  const authenticate = options.authenticate ?? allowAll
  const limits = options.limits ?? DEFAULT_LIMITS
  // The hub names the frames it reads in its hello, so replicas size their uploads to them.
  const config: HubSessionConfig = {
    ...DEFAULT_HUB_SESSION,
    maxFrame: limits.maxFrameBytes,
    ...options.session,
  }
  const spaces = new Map<string, SpaceCache>()
  const loading = new Map<string, Promise<SpaceCache>>()
  /**
   * Spaces this hub knows were deleted (deletion is for good): a load that read one before
   * its deletion, and finishes after it, is taken for deleted all the same.
   */
  const deletedSpaces = new Set<string>()
  const appendQueues = new Map<string, SerialQueue>()
  const pendingAppends = new Map<string, number>()
  const waitingAppends = new Map<string, AppendJob[]>()
  const recentBudget = options.recentChars ?? RECENT_TOTAL_CHARS
  const defer = options.defer ?? ((task: () => void) => void Promise.resolve().then(task))
  const connections = new Set<Connection>()
  const pendingWork = new Set<Promise<unknown>>()

  /** The linked hub each change taken from one came from, by stream id (see `facts.origin`). */
  const origins = new WeakMap<Change, ReplicaId>()
  /** The peer whose session is stepping now (see `facts.backlog`). */
  let stepping: HubPeer | null = null
  const facts: HubFacts = {
    head: (space) => spaces.get(space)?.head ?? 0,
    floor: (space) => spaces.get(space)?.floor ?? 0,
    received: (space, replica) => spaces.get(space)?.received.get(replica) ?? 0,
    receivedAll: (space) => {
      const all: Record<string, number> = {}
      for (const [replica, counter] of spaces.get(space)?.received ?? [])
        if (counter > 0) all[replica] = counter
      return all
    },
    log: (space) => spaces.get(space)?.log,
    collected: (space) => spaces.get(space)?.collected,
    // From the text the change is about to be sent as (encoded once, however many peers).
    size: (change, compact) =>
      compact ? rowOp(change).length + change.id.length + ROW_OVERHEAD : changeText(change).length,
    outgoing: (entries, receiver, compact) => sharedOutgoing(entries, receiver, compact),
    origin: (change) => origins.get(change),
    backlog: () => stepping?.backlog?.() ?? 0,
  }

  /**
   * Per array of log entries (the sessions of a space share one, see {@link readRecent}):
   * the replicas that wrote them, and what every other receiver gets, per form.
   */
  const outgoingMemo = new WeakMap<
    readonly LogEntry[],
    { readonly writers: ReadonlySet<string>; plain?: Outgoing; compact?: Outgoing }
  >()
  function sharedOutgoing(
    entries: readonly LogEntry[],
    receiver: ReplicaId | null,
    compact: boolean,
  ): Outgoing {
    let memo = outgoingMemo.get(entries)
    if (memo === undefined) {
      memo = { writers: new Set(entries.map((entry) => entry.change.dot[0])) }
      outgoingMemo.set(entries, memo)
    }
    if (receiver !== null && memo.writers.has(receiver)) {
      return outgoing(entries, receiver, compact, facts.size)
    }
    const form = compact ? 'compact' : 'plain'
    let shared = memo[form]
    if (shared === undefined) {
      shared = outgoing(entries, null, compact, facts.size)
      memo[form] = shared
    }
    return shared
  }

  function report(error: unknown, what: string): void {
    const wrapped = isChorusError(error)
      ? error
      : new ChorusError(ErrorCode.StorageFailed, what, { cause: error })
    options.onError?.(wrapped)
  }

  function loadSpace(space: SpaceId): Promise<SpaceCache> {
    const cached = spaces.get(space)
    if (cached !== undefined) return Promise.resolve(cached)
    let pending = loading.get(space)
    if (pending === undefined) {
      pending = store.loadSpace(space).then((meta) => {
        const cache: SpaceCache = {
          head: meta.head,
          floor: meta.floor,
          received: new Map(Object.entries(meta.received)),
          recent: new Map(),
          recentChars: 0,
          ...(meta.log === undefined ? {} : { log: meta.log }),
          ...(meta.collected === undefined ? {} : { collected: meta.collected }),
          ...(meta.deleted === true || deletedSpaces.has(space) ? { deleted: true as const } : {}),
        }
        // A deleted space is refused, not used: nothing of it is kept.
        if (cache.deleted !== true) spaces.set(space, cache)
        loading.delete(space)
        return cache
      })
      pending.catch(() => loading.delete(space))
      loading.set(space, pending)
    }
    return pending
  }

  /**
   * Forgets a space's cached facts once no connection streams it and no append is pending:
   * the cache is rebuilt from the store when the space is next used.
   */
  function release(space: SpaceId): void {
    if ((pendingAppends.get(space) ?? 0) > 0) return
    for (const connection of connections) if (connection.uses(space)) return
    spaces.delete(space)
    appendQueues.delete(space)
  }

  function appendQueue(space: SpaceId): SerialQueue {
    let queue = appendQueues.get(space)
    if (queue === undefined) {
      queue = new SerialQueue()
      appendQueues.set(space, queue)
    }
    return queue
  }

  /** Keeps `entries` among the space's recent ones, dropping the oldest beyond the bounds. */
  function remember(cache: SpaceCache, entries: readonly LogEntry[]): void {
    const { recent } = cache
    for (const entry of entries) {
      const held = recent.get(entry.seq)
      if (held !== undefined) {
        recent.delete(entry.seq)
        cache.recentChars -= changeText(held.change).length
      }
      recent.set(entry.seq, entry)
      cache.recentChars += changeText(entry.change).length
    }
    // This space's share of the hub's budget: the spaces in use split it evenly.
    const chars = Math.min(RECENT_CHARS, Math.floor(recentBudget / Math.max(1, spaces.size)))
    for (const [seq, entry] of recent) {
      if (recent.size <= RECENT_ENTRIES && cache.recentChars <= chars) break
      recent.delete(seq)
      cache.recentChars -= changeText(entry.change).length
    }
  }

  /** What an append stored, as log entries (positions `previousHead + 1 …`). */
  function appendedEntries(
    previousHead: number,
    previousReceived: number,
    changes: readonly Change[],
    result: { readonly head: number; readonly received: number; readonly appended: number },
  ): LogEntry[] {
    const stored = changes.filter(
      (change) => change.dot[1] > previousReceived && change.dot[1] <= result.received,
    )
    // Anything unexpected (another writer on the store?): remember nothing rather than guess.
    if (stored.length !== result.appended || result.head !== previousHead + result.appended) return []
    return stored.map((change, i) => ({ seq: previousHead + i + 1, change }))
  }

  /** The last run {@link readRecent} built, shared by the sessions that ask for it next. */
  let lastRecent: {
    readonly space: SpaceId
    readonly after: number
    readonly limit: number
    readonly head: number
    readonly entries: LogEntry[]
  } | null = null

  /**
   * Log entries after `after` held in memory, gap-free, at most `limit`; null when the first
   * is not held. A shorter run than asked is fine: the stream continues from its end.
   */
  function readRecent(space: SpaceId, after: number, limit: number): LogEntry[] | null {
    const cache = spaces.get(space)
    if (cache === undefined) return null
    // The sessions of a space ask for the same stretch one after another (fan-out): they
    // share one array (log entries never change; the sessions only read it).
    const last = lastRecent
    if (
      last !== null &&
      last.space === space &&
      last.after === after &&
      last.limit === limit &&
      (last.entries.length === limit || last.head === cache.head)
    ) {
      return last.entries
    }
    const entries: LogEntry[] = []
    for (let seq = after + 1; entries.length < limit; seq++) {
      const entry = cache.recent.get(seq)
      if (entry === undefined) break
      entries.push(entry)
    }
    if (entries.length === 0) return null
    lastRecent = { space, after, limit, head: cache.head, entries }
    return entries
  }

  /**
   * Queues an append. Appends that queue up meanwhile (see `defer`) are committed together
   * where the store offers `appendMany` (group commit): one transaction and one disk flush
   * for all of them, each still acknowledged on its own.
   */
  function enqueueAppend(space: SpaceId, job: AppendJob): void {
    pendingAppends.set(space, (pendingAppends.get(space) ?? 0) + 1)
    let jobs = waitingAppends.get(space)
    if (jobs === undefined) {
      jobs = []
      waitingAppends.set(space, jobs)
      track(
        new Promise<void>((resolve) => {
          defer(() => {
            appendQueue(space)
              .run(() => runAppends(space))
              .then(resolve, resolve)
          })
        }),
      )
    }
    jobs.push(job)
  }

  /** A failed append, but not one to a space deleted meanwhile: its sessions are ending. */
  function reportAppendFailure(space: SpaceId, error: unknown): void {
    if (isChorusError(error, ErrorCode.SpaceDeleted)) return
    options.onCommitFailed?.(space, error)
    report(error, 'appending changes failed; nothing was acknowledged')
  }

  async function runAppends(space: SpaceId): Promise<void> {
    const jobs = waitingAppends.get(space) ?? []
    waitingAppends.delete(space)
    const loaded = await loadSpace(space).catch((error: unknown) => {
      report(error, 'loading a space failed; nothing was acknowledged')
      return null
    })
    // Deleted meanwhile: its sessions are being ended, and nothing more is stored.
    const cache = loaded?.deleted === true ? null : loaded
    // Each job keeps its own results, so each batch is acknowledged as it was before batching.
    const plans = jobs.map(storeAppends)
    let results: (AppendResult | null)[][] = plans.map((plan) => plan.map(() => null))
    const headBefore = cache?.head ?? 0
    const many = store.appendMany?.bind(store)
    const count = plans.reduce((sum, plan) => sum + plan.length, 0)
    if (cache !== null && count > 1 && many !== undefined) {
      try {
        const started = elapsed()
        const flat = await many(space, plans.flat(), changeText)
        let at = 0
        results = plans.map((plan) => plan.map(() => flat[at++] ?? null))
        options.onCommitted?.(space, jobs.length, elapsed() - started)
      } catch (error) {
        reportAppendFailure(space, error)
      }
    } else if (cache !== null) {
      for (const [i, plan] of plans.entries()) {
        for (const [k, append] of plan.entries()) {
          try {
            const started = elapsed()
            ;(results[i] as (AppendResult | null)[])[k] = await store.append(
              space,
              append.replica,
              append.changes,
              changeText,
              append.through,
            )
            options.onCommitted?.(space, 1, elapsed() - started)
          } catch (error) {
            reportAppendFailure(space, error)
            // Not the rest of this job: a linked hub's position must not pass a writer's failed append.
            break
          }
        }
      }
    }
    pendingAppends.set(space, (pendingAppends.get(space) ?? jobs.length) - jobs.length)
    const writers = new Set<AppendJob['connection']>()
    let stored = false
    let appended = 0
    for (const [i, job] of jobs.entries()) {
      const plan = plans[i] as HubAppend[]
      const jobResults = results[i] as (AppendResult | null)[]
      const ok = jobResults.every((result) => result !== null)
      for (const [k, append] of plan.entries()) {
        const result = jobResults[k] ?? null
        if (cache === null || result === null) continue
        const previousReceived = cache.received.get(append.replica) ?? 0
        if (spaces.get(space) === cache) {
          remember(cache, appendedEntries(cache.head, previousReceived, append.changes, result))
        }
        // Another hub on a shared store may have moved both further meanwhile (see `advanced`).
        cache.head = Math.max(cache.head, result.head)
        cache.received.set(append.replica, Math.max(previousReceived, result.received))
        appended += result.appended
        if (result.appended > 0)
          options.onStored?.(
            space,
            append.replica,
            result.appended,
            job.relayed === undefined && job.through !== undefined,
          )
        stored = true
      }
      if (ok && job.relayed !== undefined)
        for (const change of job.changes) origins.set(change, job.replicaId)
      writers.add(job.connection)
      await job.connection.input({ type: 'stored', now: now(), space, ok })
    }
    if (!stored) return
    // A lone writer has nothing new to read but its own changes, unless the log also moved
    // by other hubs' appends on a shared store (see `advanced`).
    const onlyOwn = writers.size === 1 && cache?.head === headBefore + appended
    for (const other of connections) {
      if (onlyOwn && writers.has(other)) continue
      track(other.input({ type: 'head-advanced', now: now(), space }))
    }
  }

  /**
   * Each change's wire text, encoded once however many connections it is streamed to. The
   * store gets it too (see `ChangeText`): an appended change is encoded once, for its log
   * row, its record and every frame it goes out in.
   */
  const changeTexts = new WeakMap<Change, string>()
  function changeText(change: Change): string {
    let text = changeTexts.get(change)
    if (text === undefined) {
      text = encodeChange(change)
      changeTexts.set(change, text)
    }
    return text
  }

  /** Takes a change's text from a store that read it as text (see `HubStore.readLog`). */
  function keepText(change: Change, text: string): void {
    if (!changeTexts.has(change)) changeTexts.set(change, text)
  }

  /** Each change's op as a compact row writes it: nearly all of the row, encoded once too. */
  const rowOps = new WeakMap<Change, string>()
  function rowOp(change: Change): string {
    let text = rowOps.get(change)
    if (text === undefined) {
      text = encodeRowOp(change.op)
      rowOps.set(change, text)
    }
    return text
  }

  /**
   * The last `changes` frame encoded: the connections of a space are pumped one after the
   * other when its head advances, and all but the writer get the same entries, so fanning a
   * batch out to n peers costs one encoding instead of n.
   */
  let lastFrame: {
    readonly message: ChangesMessage
    readonly compact: boolean
    readonly text: string
  } | null = null
  function encodeChanges(message: ChangesMessage, compact: boolean): string {
    const last = lastFrame?.message
    if (
      last !== undefined &&
      lastFrame !== null &&
      lastFrame.compact === compact &&
      last.space === message.space &&
      last.from === message.from &&
      last.to === message.to &&
      last.head === message.head &&
      last.collected === message.collected &&
      last.batch.length === message.batch.length &&
      (last.batch === message.batch || last.batch.every((change, i) => change === message.batch[i]))
    ) {
      return lastFrame.text
    }
    const text = encodeChangesMessage(message, { compact, changeText, rowOp })
    lastFrame = { message, compact, text }
    return text
  }

  function track(work: Promise<unknown>): void {
    pendingWork.add(work)
    void work.finally(() => pendingWork.delete(work))
  }

  /**
   * Presence (`Feature.Presence`): per space, each connection's current state per key. Held
   * in memory while the connection lasts, never stored.
   */
  const presence = new Map<SpaceId, Map<Connection, Map<string, JsonObject>>>()
  const presenceOrigin = options.presenceOrigin
  /** How many presence changes of this hub's connections went over links (their `seq`). */
  let presenceSeq = 0
  /**
   * Presence of other hubs' connections, per source — a linked hub (its presence origin) or a
   * hub sharing the store (`remotePresence`) — by space, replica and key, with when it was
   * last heard. Over a link, the latest change is kept, a cleared one too (so that a copy
   * arriving by another path is known), with its `seq` and the link it came over.
   */
  const others = new Map<string, Map<string, OtherPresence>>()
  interface OtherPresence {
    readonly entry: HubPresence
    readonly at: number
    readonly seq?: number
    readonly via?: Connection
  }

  function presenceId(entry: HubPresence): string {
    return `${entry.space}\u0000${entry.replicaId}\u0000${entry.key}`
  }

  /**
   * Sends one presence change to the connections on its space that take presence, but
   * `except`: to replicas' when `replicas`, and with `over` (its origin and seq) to links.
   */
  function sendPresence(
    entry: HubPresence,
    except: Connection | null,
    replicas: boolean,
    over: { readonly origin: string; readonly seq: number } | null,
  ): void {
    let toReplica: string | null = null
    let toLink: string | null = null
    for (const connection of connections) {
      if (connection === except) continue
      if (replicas && connection.hearsPresence(entry.space)) {
        toReplica ??= encodeMessage({ type: 'presence', ...entry })
        connection.sendPresence(toReplica)
      } else if (over !== null && connection.relaysPresence(entry.space)) {
        toLink ??= encodeMessage({ type: 'presence', ...entry, ...over })
        connection.sendPresence(toLink)
      }
    }
  }

  /** A change of one of this hub's connections' presence: to its other connections, the store's hook, and the links. */
  function localPresenceChanged(from: Connection, entry: HubPresence): void {
    const over = presenceOrigin === undefined ? null : { origin: presenceOrigin, seq: ++presenceSeq }
    options.onPresence?.(over === null ? entry : { ...entry, ...over })
    sendPresence(entry, from, true, over)
  }

  /** Keeps another hub's presence change (a cleared one too, with `keepCleared`); true when the state it shows changed. */
  function holdOther(source: string, item: OtherPresence, keepCleared: boolean): boolean {
    const id = presenceId(item.entry)
    let held = others.get(source)
    const before = held?.get(id)
    if (item.entry.state === null && !keepCleared) {
      held?.delete(id)
      if (held?.size === 0) others.delete(source)
    } else {
      if (held === undefined) {
        held = new Map()
        others.set(source, held)
      }
      held.set(id, item)
    }
    return JSON.stringify(before?.entry.state ?? null) !== JSON.stringify(item.entry.state)
  }

  /**
   * Presence another hub passed on, over a link (`via`) or as `remotePresence` (null): kept
   * unless a later change of it is held, told here, and passed on over links — and, from a
   * link, to `onPresence`.
   */
  function relayedPresence(via: Connection | null, entry: HubPresence, origin: string, seq: number): void {
    if (presenceOrigin === undefined || origin === presenceOrigin) return
    const before = others.get(origin)?.get(presenceId(entry))
    if (before?.seq !== undefined && before.seq >= seq) return
    const changed = holdOther(
      origin,
      via === null ? { entry, at: now(), seq } : { entry, at: now(), seq, via },
      true,
    )
    if (via !== null) options.onPresence?.({ ...entry, origin, seq })
    sendPresence(entry, via, changed, { origin, seq })
  }

  /** The presence of this hub's own connections, every space and key. */
  function localPresence(): HubPresence[] {
    const out: HubPresence[] = []
    for (const [space, bySpace] of presence) {
      for (const [connection, keys] of bySpace) {
        const replicaId = connection.session().replicaId
        if (replicaId === null) continue
        for (const [key, state] of keys) out.push({ space, replicaId, key, state })
      }
    }
    return out
  }

  /** Clears other hubs' presence that `drop` picks: told here, not passed on. */
  /** Clears other hubs' presence not heard again within `maxAgeMs`. */
  function expirePresence(maxAgeMs: number): void {
    const limit = now() - maxAgeMs
    dropOthers((item) => item.at < limit)
  }

  function dropOthers(drop: (held: OtherPresence) => boolean): void {
    for (const [source, held] of others) {
      for (const [id, item] of held) {
        if (!drop(item)) continue
        held.delete(id)
        if (item.entry.state !== null) sendPresence({ ...item.entry, state: null }, null, true, null)
      }
      if (held.size === 0) others.delete(source)
    }
  }

  class Connection implements HubConnection {
    readonly #peer: HubPeer
    /** The spaces this connection has been sent everyone's presence in (see `#introduce`). */
    #introduced: Set<string> | null = null
    /**
     * This connection's inputs run one at a time, in order: each waits for the one before to
     * settle. Null while none is pending, so an idle connection holds no promise.
     */
    #tail: Promise<void> | null = null
    #state: HubSessionState = initialHubSession(config)
    /**
     * Per space, the lowest position this session has read after from the store since its
     * hello. The store refuses positions below the compacted floor (`resync-required`); the
     * in-memory entries do not know the floor, so they serve only reads at or above a position
     * the store has already taken — the floor never passes a streaming session's ack.
     */
    #checked: Map<string, number> | null = null

    /** Set on a connection this hub dialed (see `HubEngine.dial`). */
    readonly #dial: DialOptions | undefined

    constructor(peer: HubPeer, dial?: DialOptions) {
      this.#peer = peer
      this.#dial = dial
      if (dial !== undefined) void this.#run(() => this.#startDial(dial))
    }

    /** Loads the spaces to link, then sends the first hello (see `initialDialSession`). */
    async #startDial(dial: DialOptions): Promise<void> {
      let logs: (string | undefined)[]
      let spaces: SpaceId[]
      this.#loading = dial.spaces
      try {
        const loaded = await Promise.all(dial.spaces.map(loadSpace))
        // A space deleted here is left out of the link, and said so; the rest are linked.
        spaces = dial.spaces.filter((_, i) => loaded[i]?.deleted !== true)
        for (const space of dial.spaces) {
          if (spaces.includes(space)) continue
          const { code, message } = spaceDeletedRefusal(space)
          try {
            dial.onError?.(new ChorusError(code, message), space)
          } catch (error) {
            report(error, 'the onError hook of a link threw')
          }
        }
        if (spaces.length === 0) {
          this.#loading = null
          this.#hangUp(ErrorCode.SpaceDeleted, 'every space to link is deleted here')
          return
        }
        logs = loaded.filter((cache) => cache.deleted !== true).map((cache) => cache.log)
      } catch (error) {
        this.#loading = null
        report(error, 'loading a space to link failed')
        this.#hangUp(ErrorCode.StorageFailed, 'the hub could not load the spaces to link; try again')
        return
      }
      const replicaId = dial.replicaId ?? (logs[0] === undefined ? undefined : relayIdOf(logs[0]))
      if (replicaId === undefined || !isReplicaId(replicaId) || logs.some((log) => log !== logs[0])) {
        this.#loading = null
        this.#hangUp(
          ErrorCode.InvalidArgument,
          'this hub’s store names no single log that can be its id on the other hub: pass a replicaId',
        )
        return
      }
      this.#state = initialDialSession(
        config,
        {
          replicaId,
          spaces,
          ...(dial.token === undefined ? {} : { token: dial.token }),
        },
        now(),
      )
      this.#loading = null
      await this.#handle({ type: 'dial', now: now() })
    }

    writable(): Promise<void> {
      return this.input({ type: 'writable', now: now() })
    }

    session(): HubSessionState {
      return this.#state
    }

    receive(frame: string): Promise<void> {
      const decoded = decodeMessage(frame, limits)
      if (!decoded.ok) {
        // A malformed error frame is dropped: an error frame is never answered with another.
        if (decoded.ofError === true) return Promise.resolve()
        // A frame over our limit is refused naming it, as our hello does: a replica that sent
        // it before our hello arrived sizes what it sends next to it.
        const tooLarge = decoded.error.code === ErrorCode.FrameTooLarge
        this.#send(
          encodeMessage({
            type: 'error',
            ...decoded.error,
            ...(tooLarge ? { maxFrame: limits.maxFrameBytes } : {}),
          }),
        )
        // A peer on another protocol version cannot be talked to; anything else may be a one-off.
        if (decoded.error.code === ErrorCode.UnsupportedProtocol) {
          const { code, message } = decoded.error
          return this.input({ type: 'closed' }).then(() => this.#hangUp(code, message))
        }
        return Promise.resolve()
      }
      const message = decoded.message
      if (message.type === 'error' && this.#dial?.onError !== undefined) {
        try {
          this.#dial.onError(new ChorusError(message.code, message.message), message.space)
        } catch (error) {
          report(error, 'the onError hook of a link threw')
        }
      }
      return this.#run(() => this.#handle({ type: 'message', now: now(), message }))
    }

    closed(): Promise<void> {
      connections.delete(this)
      this.#leavePresence()
      const spacesUsed = Object.keys(this.#state.streams)
      return this.input({ type: 'closed' }).then(() => {
        for (const space of spacesUsed) release(space as SpaceId)
      })
    }

    /**
     * The spaces a hello (or a dial) of this connection loaded and its session has no stream
     * of yet: their facts must stay cached until it has, or its answer would read them empty.
     */
    #loading: readonly string[] | null = null

    /** True when this connection streams `space`, or is about to. */
    uses(space: string): boolean {
      return Object.hasOwn(this.#state.streams, space) || this.#loading?.includes(space) === true
    }

    input(input: HubSessionInput): Promise<void> {
      return this.#run(() => this.#handle(input))
    }

    #run(task: () => Promise<void>): Promise<void> {
      const result = (this.#tail ?? settled).then(task, task)
      const done = (): void => {
        if (this.#tail === tail) this.#tail = null
      }
      const tail: Promise<void> = result.then(done, done)
      this.#tail = tail
      return result
    }

    async #handle(input: HubSessionInput): Promise<void> {
      if (input.type === 'message' && input.message.type === 'hello') this.#checked = null
      const before = this.#state
      // `facts.backlog` answers for the peer being stepped (steps are synchronous): one facts
      // object serves every connection, so an idle one costs no object of its own.
      stepping = this.#peer
      let step: HubStep
      try {
        step = stepHubSession(before, input, facts)
      } finally {
        stepping = null
      }
      this.#state = step.state
      const replica = step.state.replicaId
      // Only an ack, or a hello once authenticated (the position it has), moves what a replica
      // has acknowledged: the steps that stream the log (several per frame sent) are not looked at.
      if (
        options.onAcked !== undefined &&
        (input.type === 'message' || input.type === 'authenticated') &&
        replica !== null &&
        step.state.streams !== before.streams
      ) {
        for (const [space, stream] of Object.entries(step.state.streams)) {
          const previous = Object.hasOwn(before.streams, space) ? before.streams[space]?.acked : undefined
          // Keyed by the stream's source: on a link this hub dialed, the other hub's log name.
          if (stream.acked !== previous && stream.acked > 0)
            options.onAcked(space as SpaceId, stream.source, stream.acked)
        }
      }
      for (const effect of step.effects) await this.#perform(effect)
      // A hello answered: the spaces it joined get everyone's presence.
      if (input.type === 'authenticated' || (input.type === 'message' && input.message.type === 'hello'))
        this.#introduce()
    }

    /** True when this replica's connection is ready on `space` and takes presence (`Feature.Presence`). */
    hearsPresence(space: SpaceId): boolean {
      return !this.#state.relay && this.#takesPresence(space)
    }

    /**
     * True when this link to another hub is ready on `space` and takes presence: once the
     * other hub has said where it is in our log (a stream waiting for that, or one the other
     * hub takes nothing on, carries no presence either).
     */
    relaysPresence(space: SpaceId): boolean {
      return (
        this.#state.relay &&
        presenceOrigin !== undefined &&
        this.#takesPresence(space) &&
        this.#state.streams[space]?.waiting !== true
      )
    }

    #takesPresence(space: SpaceId): boolean {
      const state = this.#state
      return (
        state.phase === 'ready' &&
        // A session whose token has expired hears nothing more, though its end waits for a tick.
        (state.expiresAt === null || now() < state.expiresAt) &&
        this.#introduced?.has(space) === true &&
        Object.hasOwn(state.streams, space) &&
        state.features.includes(Feature.Presence)
      )
    }

    sendPresence(frame: string): void {
      this.#send(frame)
    }

    /**
     * Sends, for each space newly joined, every other connection's current presence there:
     * to a link, this hub's connections' and what came over other links.
     */
    #introduce(): void {
      const state = this.#state
      if (state.phase !== 'ready' || !state.features.includes(Feature.Presence)) return
      if (state.relay && presenceOrigin === undefined) return
      for (const space of Object.keys(state.streams) as SpaceId[]) {
        this.#introduced ??= new Set()
        if (this.#introduced.has(space) || (state.relay && state.streams[space]?.waiting === true)) continue
        this.#introduced.add(space)
        for (const [other, keys] of presence.get(space) ?? []) {
          const replicaId = other.session().replicaId
          if (other === this || replicaId === null) continue
          for (const [key, held] of keys) {
            const entry = { space, replicaId, key, state: held }
            this.#send(
              encodeMessage(
                state.relay
                  ? { type: 'presence', ...entry, origin: presenceOrigin as string, seq: ++presenceSeq }
                  : { type: 'presence', ...entry },
              ),
            )
          }
        }
        for (const [source, held] of others) {
          for (const item of held.values()) {
            const { entry } = item
            if (entry.space !== space || entry.state === null || item.via === this) continue
            if (!state.relay) this.#send(encodeMessage({ type: 'presence', ...entry }))
            else if (item.seq !== undefined)
              this.#send(encodeMessage({ type: 'presence', ...entry, origin: source, seq: item.seq }))
          }
        }
      }
    }

    /** Takes this connection's presence in `space` under `key` (null: clears it), and tells the others. */
    #setPresence(space: SpaceId, key: string, state: JsonObject | null): void {
      let bySpace = presence.get(space)
      let keys = bySpace?.get(this)
      if (state === null) {
        if (keys?.delete(key) !== true) return
        if (keys.size === 0) bySpace?.delete(this)
        if (bySpace?.size === 0) presence.delete(space)
      } else {
        if (keys === undefined) {
          if (bySpace === undefined) {
            bySpace = new Map()
            presence.set(space, bySpace)
          }
          keys = new Map()
          bySpace.set(this, keys)
        }
        if (!keys.has(key) && keys.size >= MAX_PRESENCE_KEYS) {
          this.#send(
            encodeMessage({
              type: 'error',
              code: ErrorCode.InvalidMessage,
              message: `a connection holds at most ${MAX_PRESENCE_KEYS} presence keys in a space: clear one (state null) first`,
              space,
            }),
          )
          return
        }
        keys.set(key, state)
      }
      const replicaId = this.#state.replicaId
      if (replicaId === null) return
      localPresenceChanged(this, { space, replicaId, key, state })
    }

    /**
     * The connection ended: its presence goes, and the others are told; a link's end clears
     * here what came over it.
     */
    #leavePresence(): void {
      if (this.#state.relay) dropOthers((item) => item.via === this)
      for (const [space, bySpace] of presence) {
        const keys = bySpace.get(this)
        if (keys === undefined) continue
        bySpace.delete(this)
        if (bySpace.size === 0) presence.delete(space)
        const replicaId = this.#state.replicaId
        if (replicaId === null) continue
        for (const key of keys.keys()) localPresenceChanged(this, { space, replicaId, key, state: null })
      }
    }

    info(): HubSessionInfo {
      const state = this.#state
      const replica = state.replicaId
      return {
        replicaId: replica,
        phase: state.phase,
        ...(state.relay ? { relay: state.dial === null ? ('accepted' as const) : ('dialed' as const) } : {}),
        spaces: Object.entries(state.streams).map(([space, stream]) => ({
          space: space as SpaceId,
          head: facts.head(space as SpaceId),
          acked: stream.acked,
          received: replica === null ? 0 : facts.received(space as SpaceId, stream.source),
          source: stream.source,
        })),
      }
    }

    #send(frame: string): void {
      if (this.#state.phase !== 'closed') this.#peer.send(frame)
    }

    idle(): Promise<void> {
      return this.#tail ?? settled
    }

    #hangUp(code: ErrorCode, message: string): void {
      this.#peer.close(code, message)
      connections.delete(this)
      this.#leavePresence()
      for (const space of Object.keys(this.#state.streams)) release(space as SpaceId)
    }

    /**
     * Ends the session from the hub's side if it streams `space` once its inputs so far are
     * handled (a hello being answered included): an error frame saying why, then the hang-up.
     */
    endIfUses(space: SpaceId, code: ErrorCode, message: string): Promise<void> {
      return this.#run(async () => {
        if (this.#state.phase === 'closed' || !this.uses(space)) return
        this.#send(encodeMessage({ type: 'error', code, message, space }))
        await this.#handle({ type: 'closed' })
        this.#hangUp(code, message)
      })
    }

    async #perform(effect: HubSessionEffect): Promise<void> {
      switch (effect.type) {
        case 'send': {
          const compact = this.#state.features.includes(Feature.Compact)
          const { message } = effect
          this.#send(
            message.type === 'changes'
              ? encodeChanges(message, compact)
              : encodeMessage(message, { compact }),
          )
          return
        }
        case 'close':
          this.#peer.send(
            encodeMessage({
              type: 'error',
              code: effect.code,
              message: effect.message,
              ...(effect.space === undefined ? {} : { space: effect.space }),
            }),
          )
          this.#hangUp(effect.code, effect.message)
          return
        case 'presence':
          this.#setPresence(effect.space, effect.key, effect.state)
          return
        case 'pong': {
          const { space, id } = effect
          let head = spaces.get(space)?.head ?? 0
          if (store.readHead !== undefined) {
            // Other hubs append to this store too, and this one hears of it late: answer with
            // what is stored, and stream it (not awaited: this connection's own turn is part
            // of that, and it comes after this one).
            try {
              const stored = await store.readHead(space)
              if (stored > head) {
                head = stored
                void advance(space, stored).catch((error: unknown) => report(error, 'reading the log failed'))
              }
            } catch (error) {
              // Unanswered: the replica asks again after its retransmit period.
              report(error, 'reading the head of the log to answer a ping failed')
              return
            }
          }
          this.#send(encodeMessage({ type: 'pong', space, id, head }))
          return
        }
        case 'presence-relayed': {
          const { space, replicaId, key, state, origin, seq } = effect
          relayedPresence(this, { space, replicaId, key, state }, origin, seq)
          return
        }
        case 'authenticate': {
          let result: AuthResult
          try {
            result = await authenticate(effect.token, effect.replicaId)
          } catch (error) {
            report(error, 'the authenticate hook threw')
            result = { ok: false, code: ErrorCode.Unauthenticated, message: 'authentication failed' }
          }
          // Only now, and only for spaces the peer may use, is anything loaded into memory:
          // a refused hello costs the hub nothing, however many spaces it names.
          if (result.ok) {
            const { access } = result
            // A hello naming any space it may not use is refused whole, so it loads nothing.
            const allowed = effect.spaces.every((space) => access(space) !== null)
            if (allowed) this.#loading = effect.spaces
            try {
              const loaded = allowed ? await Promise.all(effect.spaces.map(loadSpace)) : []
              const deleted = effect.spaces.find((_, i) => loaded[i]?.deleted === true)
              if (deleted !== undefined) result = spaceDeletedRefusal(deleted)
              else if (allowed && result.confirm !== undefined) result = (await result.confirm()) ?? result
            } catch (error) {
              report(error, 'loading a space failed')
              result = {
                ok: false,
                code: ErrorCode.StorageFailed,
                message: 'the hub could not load the space; try again',
              }
            }
          }
          try {
            await this.#handle({ type: 'authenticated', now: now(), result })
          } finally {
            // The session streams them now, or was refused (and releases nothing it did not use).
            const loaded = this.#loading
            this.#loading = null
            if (loaded !== null && this.#state.phase === 'closed')
              for (const space of loaded) release(space as SpaceId)
          }
          return
        }
        case 'store':
          // Appends run on the space's queue, outside this connection's queue, so one slow
          // disk does not hold other sessions' inputs; the outcome comes back as an input.
          enqueueAppend(effect.space, {
            connection: this,
            replicaId: effect.replicaId,
            changes: effect.changes,
            ...(effect.through === undefined ? {} : { through: effect.through }),
            ...(effect.relayed === undefined ? {} : { relayed: effect.relayed }),
            ...(effect.counters === undefined ? {} : { counters: effect.counters }),
          })
          return
        case 'read-log': {
          try {
            const checked = this.#checked?.get(effect.space)
            if (checked === undefined || effect.after < checked) {
              // One entry is enough for the store to say whether the position is still above
              // the floor; the entries themselves come from memory when they are there, the
              // same objects for every session (one encoding of each for all of them).
              await store.readLog(effect.space, effect.after, 1)
              this.#checked ??= new Map()
              this.#checked.set(effect.space, Math.min(checked ?? effect.after, effect.after))
            }
            let entries = readRecent(effect.space, effect.after, effect.limit)
            if (entries === null) {
              entries = await store.readLog(effect.space, effect.after, effect.limit, keepText)
              const cache = spaces.get(effect.space)
              if (cache !== undefined) remember(cache, entries)
            }
            await this.#handle({
              type: 'log-read',
              now: now(),
              space: effect.space,
              after: effect.after,
              entries,
            })
          } catch (error) {
            if (isChorusError(error, ErrorCode.ResyncRequired)) {
              await this.#handle({ type: 'log-compacted', now: now(), space: effect.space })
              return
            }
            if (!isChorusError(error, ErrorCode.SpaceDeleted)) report(error, 'reading the log failed')
            await this.#handle({ type: 'read-failed', now: now(), space: effect.space })
          }
          return
        }
        case 'read-snapshot': {
          try {
            const page = await store.readSnapshot(effect.space, effect.afterKey, effect.limit)
            await this.#handle({
              type: 'snapshot-read',
              now: now(),
              space: effect.space,
              page: effect.page,
              cursor: effect.cursor,
              ...page,
            })
          } catch (error) {
            // Deleted meanwhile: its sessions are ending, as appends to it do (not a failure).
            if (!isChorusError(error, ErrorCode.SpaceDeleted)) report(error, 'reading a snapshot failed')
            await this.#handle({ type: 'read-failed', now: now(), space: effect.space })
          }
          return
        }
      }
    }
  }

  async function spaceDeleted(space: SpaceId): Promise<void> {
    deletedSpaces.add(space)
    spaces.delete(space)
    lastRecent = null
    const { message } = spaceDeletedRefusal(space)
    // Every connection looks once what it has in hand is done: a hello answered meanwhile
    // may have taken the space.
    await Promise.all(
      [...connections].map((connection) => connection.endIfUses(space, ErrorCode.SpaceDeleted, message)),
    )
  }

  /** See {@link HubEngine.advanced}. */
  async function advance(
    space: SpaceId,
    head: number,
    received: Readonly<Record<string, number>> = {},
    entries?: readonly AdvancedEntry[],
  ): Promise<void> {
    // A space being loaded may have been read before this append committed: apply the
    // news once it is in.
    const cache = spaces.get(space) ?? (await loading.get(space)?.catch(() => undefined))
    if (cache === undefined) return
    for (const [replica, counter] of Object.entries(received)) {
      if (counter > (cache.received.get(replica) ?? 0)) cache.received.set(replica, counter)
    }
    if (!(head > cache.head)) return
    const from = cache.head
    cache.head = head
    // The connections on the space all read the new entries: read them once, here, and
    // they find them in memory.
    let news: readonly LogEntry[] | undefined =
      entries !== undefined && entries.length === head - from && entries[0]?.seq === from + 1
        ? entries
        : undefined
    if (news === undefined) {
      try {
        news = await store.readLog(space, from, Math.min(head - from, ADVANCED_READ), keepText)
      } catch {
        // The connections read for themselves (and meet the failure there).
        news = []
      }
    } else {
      for (const entry of entries ?? []) if (entry.text !== undefined) keepText(entry.change, entry.text)
    }
    if (spaces.get(space) === cache) remember(cache, news)
    const time = now()
    await Promise.all(
      [...connections]
        .filter((connection) => connection.uses(space))
        .map((connection) => connection.input({ type: 'head-advanced', now: time, space })),
    )
  }

  return {
    accept(peer) {
      const connection = new Connection(peer)
      connections.add(connection)
      return connection
    },
    dial(peer, dialOptions) {
      const { spaces: linked } = dialOptions
      if (!Array.isArray(linked) || linked.length === 0 || !linked.every(isSpaceId)) {
        throw new ChorusError(
          ErrorCode.InvalidArgument,
          'dial needs spaces: a non-empty array of space names',
        )
      }
      if (new Set(linked).size !== linked.length) {
        throw new ChorusError(ErrorCode.InvalidArgument, 'dial names a space twice')
      }
      if (dialOptions.replicaId !== undefined && !isReplicaId(dialOptions.replicaId)) {
        throw new ChorusError(ErrorCode.InvalidArgument, 'dial’s replicaId is not a valid replica id')
      }
      const connection = new Connection(peer, dialOptions)
      connections.add(connection)
      return connection
    },
    async tick() {
      const time = now()
      await Promise.all([...connections].map((connection) => connection.input({ type: 'tick', now: time })))
    },
    async collected(space, mark) {
      // A space not cached has no connection streaming it, and loads the mark with the rest.
      const cache = spaces.get(space)
      if (cache === undefined || (cache.collected?.at ?? 0) >= mark.at) return
      cache.collected = mark
      const time = now()
      await Promise.all(
        [...connections]
          .filter((connection) => connection.uses(space))
          .map((connection) => connection.input({ type: 'collected', now: time, space })),
      )
    },
    advanced(space, head, received, entries) {
      return advance(space, head, received, entries)
    },
    async deleteSpace(space) {
      if (store.deleteSpace === undefined) {
        throw new ChorusError(
          ErrorCode.InvalidArgument,
          'this hub’s store cannot delete spaces (it has no deleteSpace)',
        )
      }
      const deleted = await store.deleteSpace(space)
      await spaceDeleted(space)
      return deleted
    },
    spaceDeleted,
    remotePresence(source, entry) {
      const { origin, seq, ...plain } = entry
      if (origin !== undefined && seq !== undefined && presenceOrigin !== undefined) {
        relayedPresence(null, plain, origin, seq)
        return
      }
      if (holdOther(source, { entry: plain, at: now() }, false)) sendPresence(plain, null, true, null)
    },
    refreshPresence(maxAgeMs) {
      const links =
        presenceOrigin !== undefined && [...connections].some((connection) => connection.session().relay)
      if (links || options.onPresence !== undefined) {
        for (const entry of localPresence()) {
          const over = presenceOrigin === undefined ? null : { origin: presenceOrigin, seq: ++presenceSeq }
          options.onPresence?.(over === null ? entry : { ...entry, ...over })
          if (links) sendPresence(entry, null, false, over)
        }
      }
      expirePresence(maxAgeMs)
    },
    expirePresence,
    localPresence,
    connections: () => connections.size,
    cachedSpaces: () => spaces.size,
    spacesInUse: () => [...spaces.keys()] as SpaceId[],
    sessions: () => [...connections].map((connection) => connection.info()),
    async idle() {
      while (pendingWork.size > 0) await Promise.all([...pendingWork])
      await Promise.all([...connections].map((connection) => connection.idle()))
    },
  }
}
