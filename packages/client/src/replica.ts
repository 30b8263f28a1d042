import {
  type ChangeEvent,
  ChorusError,
  type Conflict,
  type ConflictFilter,
  checkPresence,
  ErrorCode,
  isChorusError,
  isErrorCode,
  type JsonObject,
  type ListOptions,
  MemoryReplicaStore,
  MIN_REPLICA_READ_FRAME,
  openReplicaEngine,
  type PresenceEvent,
  type RecordId,
  type ReplicaEngine,
  type ReplicaId,
  type ReplicaStore,
  readOnlyWrite,
  recordPage,
  replicaIdFromBytes,
  type SpaceId,
  type SyncStatus,
} from '@chorus/core'
import { type Collection, type CollectionHost, EngineCollection, type Row } from './collection.js'
import { Emitter, rethrowLater } from './events.js'
import { LiveQuery } from './live-query.js'
import {
  freezeRow,
  keepRows,
  LIVE_UPDATE_MIN,
  LIVE_UPDATE_SHARE,
  pageUntouched,
  patchRows,
  sameRows,
} from './live-rows.js'
import { isPeerList, PresenceBoard, type PresencePeer, type PresencePeerWire } from './presence.js'
import { parseReplicaOptions, type ReplicaConfig, type ReplicaOptions } from './replica-options.js'
import { isTabFenced } from './storage/idb-errors.js'
import {
  IdbReplicaStore,
  type IndexedDbFactory,
  type KeyRangeLike,
  openIdbReplicaStore,
} from './storage/idb-replica-store.js'
import { exclusiveWrite, TabGroup, tabChannelName } from './tabs/tab-group.js'
import { unrefTimer } from './timers.js'
import { PREPARE_TIMEOUT_MS, SocketLink } from './transport/socket-link.js'

/** Sync status with its two numbers, as `on('status')` reports it. */
export interface StatusEvent {
  readonly status: SyncStatus
  /** Own changes not yet acknowledged by the relay. */
  readonly pending: number
  /** Relay log positions not yet applied here (the relay's last reported head minus the cursor). */
  readonly lag: number
  /** The relay's final refusal (see {@link Replica.refusal}); null while it has not refused. */
  readonly refusal: ChorusError | null
  /** Whether the app wants a connection (see {@link Replica.wantsConnection}). */
  readonly wantsConnection: boolean
  /** Whether the relay lets this replica only read the space (see {@link Replica.readOnly}). */
  readonly readOnly: boolean
}

/** The events of a {@link Replica}. */
export interface ReplicaEvents {
  /** Status, pending or lag changed. */
  readonly status: StatusEvent
  /**
   * A failure with no caller to reject: the relay refused the replica (`unauthenticated`,
   * `forbidden`, `unsupported-protocol`, `replica-mismatch`, `space-deleted` — it then stays
   * offline), storing remote changes failed (they are fetched again), or another tab deleted
   * the replica's data (`closed`: this one closed too).
   */
  readonly error: ChorusError
  /** Records changed, locally or remotely. */
  readonly change: ChangeEvent
  /**
   * Records may have changed without a `change` event naming them: another tab's notice of
   * its commit never came (it closed or crashed right after), or this tab took over the
   * connection from one that may have gone between a commit and its notice. Live queries read
   * their rows again by themselves; anything else the app read should be read again.
   */
  readonly reload: undefined
  /** What the other replicas' presence is now changed (see {@link Replica.presence}). */
  readonly presence: readonly PresencePeer[]
}

/**
 * A replica of one space: a full leader that reads and writes locally, online or not, and
 * syncs with the relay whenever it can.
 *
 * Values read are deeply frozen (see `Frozen`): copy one to edit it.
 */
export interface Replica {
  readonly replicaId: ReplicaId
  readonly space: SpaceId
  /** `'offline'`, `'connecting'`, `'syncing'` or `'synced'` (all own changes acknowledged, caught up). */
  readonly status: SyncStatus
  /** Own changes not yet acknowledged by the relay. */
  readonly pending: number
  /** Relay log positions not yet applied here. */
  readonly lag: number
  /**
   * Why the relay refused this replica for good — `space-deleted`, `forbidden`,
   * `unauthenticated` (a token it will not take), … — after which it no longer syncs and
   * `synced()` rejects with it; null while it has not. Reported as an `error` event too.
   */
  readonly refusal: ChorusError | null
  /**
   * Whether the relay lets this replica only read the space (its token grants no write, as
   * the relay said at the last connection): writes are refused when made, everyone else's
   * changes still arrive, and own changes written before it knew (`pending`) stay unsent, so
   * `status` stays `'syncing'` while there are any. False until the relay says so.
   */
  readonly readOnly: boolean
  /**
   * The other replicas' presence in the space, as they set it (`setPresence`): one entry per
   * replica and tab, ordered by replica id then key, while they are connected to the relay
   * this replica is connected to. Empty while offline. A `presence` event says when it changes.
   */
  readonly presence: readonly PresencePeer[]
  /**
   * Sets this tab's presence — who is here, what they look at — for the other replicas
   * (`presence`), or clears it with null. Ephemeral: never stored, sent again on each
   * connection, gone when this tab closes or loses its connection. A JSON object of at most
   * 4,096 characters; throws `invalid-argument` otherwise.
   */
  setPresence(state: JsonObject | null): void
  /** The collection named `name` (letters, digits, `_ . : -`); the same object on every call. */
  collection<TValue extends object = JsonObject>(name: string): Collection<TValue>
  /**
   * Every record whose resolver leaves a conflict to the user (`'manual'`), with its
   * versions, in collection then id order; with `filter`, only among the records it names
   * (the ids of a change event, say), which reads those alone.
   */
  conflicts(filter?: ConflictFilter): Promise<Conflict[]>
  /** Subscribes to an event; returns the function that unsubscribes. */
  on<TName extends keyof ReplicaEvents>(
    name: TName,
    listener: (payload: ReplicaEvents[TName]) => void,
  ): () => void
  /**
   * Resolves when every own change is acknowledged and the replica has applied the relay's
   * log up to where it ended when this was called (the relay is asked: a `ping`; a relay of
   * an older build, which does not answer, is taken at its last report). Rejects with `closed` if the replica closes first, with the
   * refusal if the relay refuses the replica, and with `invalid-argument` without a `url`.
   */
  synced(): Promise<void>
  /** Connects now (also cutting a reconnect backoff short). */
  connect(): void
  /** Disconnects, and stays offline until `connect()`. Writes go on locally. */
  disconnect(): void
  /**
   * Whether the app wants a connection: false after `disconnect()`, true after `connect()`
   * (at first, `autoConnect`). Tabs sharing the database share it, the last call in any of
   * them counting, so a tab opened later takes it from the others. With `status` it tells
   * "working offline" (false) from "cannot reach the relay, trying again" (true, `offline`).
   */
  readonly wantsConnection: boolean
  /**
   * Closes the socket, stops timers and live queries, waits for queued writes, and closes
   * the storage. Later calls reject with `closed`.
   */
  close(): Promise<void>
  /**
   * Closes the replica and deletes its data on this device: its IndexedDB database (or its
   * store's data, such as a SQLite file). Tabs sharing the database close their replica too,
   * reporting an `error` with code `closed`. The space stays on the relay and on other
   * devices; a replica created here again starts afresh, under a new id.
   *
   * Own changes the relay has not acknowledged exist only here: while there are any, this
   * rejects with `pending-changes` and deletes nothing (the replica stays open), unless
   * `discardPending` is true. Writes issued after the call may be deleted with the rest. When
   * tabs share the database, the count is taken again while no tab writes; if another tab
   * wrote meanwhile, this replica is closed but nothing is deleted. Rejects with
   * `invalid-argument` for a store without `destroy`, and with `closed` once closed.
   */
  destroy(options?: DestroyOptions): Promise<void>
}

/** Options of {@link Replica.destroy}. */
export interface DestroyOptions {
  /** Delete own changes the relay has not acknowledged too (default false: refuse while any remain). */
  readonly discardPending?: boolean
}

/** Options of {@link deleteReplica}: which IndexedDB database, as `createReplica` names it. */
export interface DeleteReplicaOptions extends DestroyOptions {
  /** The space: the database is `chorus:<space>` unless `dbName` says otherwise. */
  readonly space: string
  readonly dbName?: string
  readonly indexedDB?: IndexedDbFactory
  readonly IDBKeyRange?: KeyRangeLike
  /** Whether tabs may share the database (see `ReplicaOptions.tabs`): then they are told, and closed. */
  readonly tabs?: boolean
}

/**
 * Opens a replica: its storage (creating the replica on first use), then — with a `url` and
 * unless `autoConnect` is false — its connection to the relay.
 *
 * Rejects with `invalid-argument` for bad options (checked before anything is opened) and
 * `storage-failed` when the storage cannot be opened. A store the app passed (`storage: store`)
 * is the replica's once this resolves (`close` closes it), and stays the app's, open, when it
 * rejects; a store another replica was created on is refused.
 */
export async function createReplica(options: ReplicaOptions): Promise<Replica> {
  const config = parseReplicaOptions(options)
  if (typeof config.storage === 'object' && ownedStores.has(config.storage)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'this store is the storage of another replica already (open or closed): give each replica a store of its own',
    )
  }
  const store = await openStore(config)
  try {
    const replica = await ReplicaRuntime.open(config, store)
    ownedStores.add(store)
    return replica
  } catch (error) {
    // A store the app passed in stays the app's until a replica owns it: still open, for the
    // app to pass again or to close.
    if (typeof config.storage === 'string') await store.close()
    throw error
  }
}

/**
 * The stores replicas were created on: a second replica on one store would write behind the
 * first one's back (and closing either closes the store under the other).
 */
const ownedStores = new WeakSet<object>()

/**
 * Deletes the IndexedDB data of a replica that need not be open here, as
 * {@link Replica.destroy} does (for signing out, say): the database `createReplica` would open
 * with the same `space`, `dbName` and `indexedDB`. Tabs that have the replica open close it,
 * reporting an `error` with code `closed`. A database that does not exist is no error.
 *
 * Rejects with `pending-changes`, deleting nothing, while the database holds own changes the
 * relay has not acknowledged, unless `discardPending` is true; with `invalid-argument` for
 * bad options, and `storage-failed` when IndexedDB fails.
 */
export async function deleteReplica(options: DeleteReplicaOptions): Promise<void> {
  if (typeof options !== 'object' || options === null)
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'deleteReplica needs an options object: deleteReplica({ space: … })',
    )
  const { discardPending, ...replicaOptions } = options
  for (const key of Object.keys(replicaOptions)) {
    if (!DELETE_OPTIONS.includes(key))
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `unknown option ${JSON.stringify(key)} of deleteReplica: use ${[...DELETE_OPTIONS, 'discardPending'].join(', ')}`,
      )
  }
  const discard = parseDiscardPending(discardPending)
  const config = parseReplicaOptions({ ...replicaOptions, storage: 'indexeddb' })
  await deleteIdbReplica(config, discard)
}

/** The options `deleteReplica` takes beside `discardPending`, all `createReplica`'s too. */
const DELETE_OPTIONS: readonly string[] = ['space', 'dbName', 'indexedDB', 'IDBKeyRange', 'tabs']

function parseDiscardPending(value: unknown): boolean {
  if (value !== undefined && typeof value !== 'boolean')
    throw new ChorusError(ErrorCode.InvalidArgument, 'option discardPending must be a boolean')
  return value === true
}

function pendingChanges(count: number, space: SpaceId): ChorusError {
  return new ChorusError(
    ErrorCode.PendingChanges,
    `${count} own change${count === 1 ? '' : 's'} in space ${space} not yet acknowledged by the relay would be deleted, and exist nowhere else: wait for synced() first, or pass { discardPending: true } to delete them too. Nothing was deleted.`,
  )
}

/**
 * Deletes the replica database `config` names: counts its outbox and deletes it while no tab
 * writes (holding the tabs' write lock where tabs share databases), telling the tabs that
 * have it open first.
 */
async function deleteIdbReplica(config: ReplicaConfig, discardPending: boolean): Promise<void> {
  const store = (await openStore(config)) as IdbReplicaStore
  const remove = async (): Promise<void> => {
    if (!discardPending) {
      let pending: number
      try {
        pending = await store.outboxSize()
      } catch (error) {
        await store.close()
        throw error
      }
      if (pending > 0) {
        await store.close()
        throw pendingChanges(pending, config.space)
      }
    }
    if (config.tabs !== null) {
      const channel = config.tabs.openChannel(tabChannelName(store.name))
      try {
        channel.postMessage({ type: 'destroyed' } satisfies TabMessage)
      } finally {
        channel.close()
      }
    }
    await store.destroy()
  }
  if (config.tabs === null) return remove()
  return exclusiveWrite(config.tabs.locks, store.name, remove)
}

function openStore(config: ReplicaConfig): Promise<ReplicaStore> {
  if (config.storage === 'memory') return Promise.resolve(new MemoryReplicaStore())
  if (config.storage === 'indexeddb') {
    return openIdbReplicaStore({
      name: config.dbName,
      ...(config.indexedDB === undefined ? {} : { indexedDB: config.indexedDB }),
      ...(config.IDBKeyRange === undefined ? {} : { IDBKeyRange: config.IDBKeyRange }),
    })
  }
  return Promise.resolve(config.storage)
}

const closedError = (): ChorusError => new ChorusError(ErrorCode.Closed, 'this replica is closed')

/**
 * A replica: the engine, wired to a socket link, timers, live queries and events.
 *
 * Engine callbacks, the collections' host and the link's callbacks reach private members
 * only, so the object an app holds offers nothing beyond {@link Replica}.
 */
class ReplicaRuntime implements Replica {
  readonly replicaId: ReplicaId
  readonly space: SpaceId
  readonly #config: ReplicaConfig
  readonly #engine: ReplicaEngine
  /** The engine's store: `destroy` deletes it. */
  readonly #store: ReplicaStore
  readonly #link: SocketLink | null
  readonly #events = new Emitter<ReplicaEvents>(['status', 'error', 'change', 'reload', 'presence'])
  /** This tab's key for its presence (one per replica instance). */
  readonly #presenceKey = randomKey()
  /** This tab's presence, and how many times it was set (the other tabs' leader echoes it). */
  #ownPresence: JsonObject | null = null
  #ownPresenceSeq = 0
  /** When a following tab last posted its presence to the leading one. */
  #presencePostedAt = Number.NEGATIVE_INFINITY
  /** The others' presence, as heard. */
  readonly #board = new PresenceBoard()
  /** Presence changes waiting for the engine (see `#pushPresence`), by key, and the timer that sends them. */
  readonly #presenceDue = new Map<string, JsonObject | null>()
  #presenceTimer: unknown = null
  #presenceSentAt = Number.NEGATIVE_INFINITY
  /** While this tab leads: the other tabs' presence it holds in the engine, with their seq and when last heard. */
  readonly #tabPresence = new Map<string, { readonly seq: number; readonly at: number }>()
  readonly #collections = new Map<string, EngineCollection<object>>()
  readonly #queries = new Map<string, Set<LiveQuery<readonly Row<JsonObject>[]>>>()
  readonly #waiters = new Set<SyncedWaiter>()
  /** While this tab leads: the `synced()` calls of following tabs it asked the relay for, by nonce. */
  readonly #tabAsks = new Map<string, number>()
  #tick: unknown = null
  #closed = false
  #closing: Promise<void> | null = null
  #destroying: Promise<void> | null = null
  #refusal: ChorusError | null = null
  /** The token the current (or next) connection presents, when `token` is a function. */
  #token: string | undefined = undefined
  /** The relay refused `#token`: the next connection needs another. */
  #tokenRefused = false
  /** When the relay refused the token last given (while `#tokenRefused`). */
  #tokenRefusedAt = 0
  /** Calls of the token function so far: only the latest one's token is kept (see `#nextToken`). */
  #tokenCalls = 0
  #last: StatusEvent
  /** Set when tabs share this replica's database. */
  readonly #shared: SharedTabs | null
  /** Whether the app wants a connection (`connect()` / `disconnect()`, shared by the tabs). */
  #wantOnline: boolean
  /**
   * How many times a tab has set `#wantOnline` so far, as this tab knows: a tab takes another
   * tab's setting when it is later, so that every tab ends with the last one (see `#wish`).
   */
  #wantSeq = 0
  /** The leading tab's last report, when another tab leads. */
  #leader: LeaderReport | null = null
  readonly #onOnline = (): void => this.#link?.online()
  readonly #onOffline = (): void => this.#link?.offline()
  readonly #host: CollectionHost = {
    engine: () => this.#openEngine(),
    writer: () => {
      const engine = this.#openEngine()
      if (this.#following() && this.#leader?.readOnly === true) throw readOnlyWrite(this.space)
      return engine
    },
    subscribe: (collection, listener, options, onError) =>
      this.#subscribe(collection, listener, options, onError),
  }

  /** Opens the engine over `store`, then starts the tick and (unless told not to) the connection. */
  static async open(given: ReplicaConfig, store: ReplicaStore): Promise<ReplicaRuntime> {
    let runtime: ReplicaRuntime | null = null
    const config: ReplicaConfig =
      given.now === Date.now
        ? given
        : {
            ...given,
            now: guardedNow(given.now, (error) => {
              // Before the replica exists no listener can be there yet: the console says it.
              if (runtime !== null) runtime.#report(error)
              else console.warn('[chorus]', error)
            }),
          }
    const shared =
      config.tabs !== null && store instanceof IdbReplicaStore
        ? {
            store,
            group: new TabGroup({
              name: store.name,
              locks: config.tabs.locks,
              openChannel: config.tabs.openChannel,
              timers: config.timers,
              now: config.now,
              random: config.random,
              heartbeatMs: TAB_HEARTBEAT_MS,
              takeoverMs: TAB_TAKEOVER_MS,
              onLead: () => (runtime === null ? Promise.reject(closedError()) : runtime.#lead()),
              onFollow: () => {
                if (runtime !== null) runtime.#follow()
              },
              onMessage: (message) => {
                if (runtime !== null) runtime.#tabMessage(message)
              },
              onError: (error) => {
                if (runtime !== null) runtime.#report(error)
              },
            }),
          }
        : null
    // No tabs share the database: this instance takes it, and one opened later takes it over.
    if (shared === null && store instanceof IdbReplicaStore) await store.claimSoleUse()
    const engine = await openReplicaEngine({
      store,
      space: config.space,
      now: config.now,
      createReplicaId: () => replicaIdFromBytes(crypto.getRandomValues(new Uint8Array(16))),
      // The engine calls back only once it is attached or written to: after `runtime` is set.
      onChange: (event) => {
        if (runtime !== null) runtime.#handleChange(event)
      },
      onError: (error) => {
        if (runtime !== null) runtime.#handleError(error)
      },
      onStatus: () => {
        if (runtime !== null) runtime.#refresh()
      },
      onPresence: (event) => {
        if (runtime !== null) runtime.#presenceEvent(event)
      },
      ...(config.resolvers === undefined ? {} : { resolvers: config.resolvers }),
      ...(typeof config.token === 'string' ? { token: config.token } : {}),
      ...(typeof config.token === 'function' ? { renewToken: true } : {}),
      // A WebSocket delivers a connection's frames whole and in order: nothing need go again
      // for silence alone (see `Feature.Resend`), which on a slow link only doubles the load.
      reliableTransport: true,
      ...(config.session === undefined ? {} : { session: config.session }),
      ...(config.maxDriftMs === undefined ? {} : { maxDriftMs: config.maxDriftMs }),
      ...(shared === null ? {} : { exclusive: (work) => shared.group.exclusive(work) }),
    }).catch((error: unknown) => {
      shared?.group.close()
      throw error
    })
    const opened = new ReplicaRuntime(config, engine, store, shared)
    runtime = opened
    if (store instanceof IdbReplicaStore) {
      store.onLost = (how) =>
        opened.#closeLost(
          how === 'deleted'
            ? DELETED_UNDER_IT
            : how === 'upgraded'
              ? `this replica's database was upgraded by a newer version of the app, so it closed: reload to continue`
              : `the browser closed this replica's database (site data cleared, storage evicted, or a disk error), so it closed: reload to continue`,
        )
    }
    opened.#start()
    return opened
  }

  private constructor(
    config: ReplicaConfig,
    engine: ReplicaEngine,
    store: ReplicaStore,
    shared: SharedTabs | null,
  ) {
    this.#config = config
    this.#engine = engine
    this.#store = store
    this.#shared = shared
    this.#wantOnline = config.autoConnect
    this.replicaId = engine.replicaId
    this.space = engine.space
    this.#link =
      config.url === null || config.WebSocket === null
        ? null
        : new SocketLink({
            url: config.url,
            WebSocket: config.WebSocket,
            timers: config.timers,
            random: config.random,
            policy: config.reconnect,
            ...(typeof config.token === 'function'
              ? {
                  prepare: () => this.#nextToken(config.token as () => string | Promise<string>),
                  prepareTimedOut: () =>
                    new ChorusError(
                      ErrorCode.Unauthenticated,
                      `the token function gave no token within ${PREPARE_TIMEOUT_MS / 1000} s: it is asked again at the next attempt`,
                    ),
                }
              : {}),
            onOpen: (send) => {
              this.#heardAt = config.now()
              this.#probeAt = null
              engine.attach(send, this.#token, this.#readLimit ?? undefined)
              this.#refresh()
            },
            onClose: () => {
              engine.detach()
              this.#refresh()
            },
            onFrame: async (text) => {
              this.#heardAt = config.now()
              await engine.receive(text)
              this.#refresh()
            },
            onPhase: () => this.#refresh(),
            onError: (error) => this.#report(error),
          })
    this.#last = this.#snapshot()
  }

  /** When the open connection last brought a frame (or opened). */
  #heardAt = 0
  /** When the ping asking a silent connection whether it lives went out, if one is out. */
  #probeAt: number | null = null
  /** Since when the connection has been opening or awaiting the hub's hello, if it is. */
  #handshakeSince: number | null = null
  /**
   * The longest frame to ask the relay for (`hello.maxFrame`), once a connection went silent
   * while it was downloading: a frame that takes longer to arrive than `silenceMs` over this
   * link would have every connection hang up before it, for good. Halved each such time, down
   * to {@link MIN_REPLICA_READ_FRAME}; null (the relay's own size) again once caught up.
   */
  #readLimit: number | null = null

  /**
   * Hangs up a connection that has gone silent (see `ReconnectPolicy.silenceMs`): half the
   * time with no frame from the relay sends a ping; the other half with still none reconnects.
   */
  #watchSilence(): void {
    const link = this.#link
    const session = this.#engine.session()
    const now = this.#config.now()
    // A socket still opening, or open with no answer to its hello yet, is given up once it
    // has been so for `silenceMs`: a network that went silent in the handshake would
    // otherwise hold the replica in `connecting` for good (nothing else times it out). The
    // wait for a token before the socket opens has its own limit.
    const handshaking =
      link !== null &&
      ((link.phase === 'opening' && !link.preparing) || (link.phase === 'open' && session.phase !== 'ready'))
    if (!handshaking) this.#handshakeSince = null
    else {
      this.#handshakeSince ??= now
      if (now - this.#handshakeSince >= this.#config.reconnect.silenceMs) {
        this.#handshakeSince = null
        link.offline()
      }
    }
    if (link === null || link.phase !== 'open' || session.phase !== 'ready' || !session.ping) {
      this.#probeAt = null
      return
    }
    const half = this.#config.reconnect.silenceMs / 2
    if (this.#probeAt !== null && this.#heardAt >= this.#probeAt) this.#probeAt = null
    if (this.#probeAt === null) {
      if (now - this.#heardAt < half) return
      this.#probeAt = now
      this.#engine.ping()
      return
    }
    if (now - this.#probeAt < half) return
    this.#probeAt = null
    // Silent while the relay had more to send: its frames may be too long for this link.
    if (session.applyingTo < session.hubHead || session.snapshot !== null) {
      this.#readLimit = Math.max(MIN_REPLICA_READ_FRAME, (this.#readLimit ?? FIRST_READ_LIMIT * 2) / 2)
    }
    link.offline()
  }

  #start(): void {
    const { timers } = this.#config
    this.#tick = timers.setInterval(() => {
      // The connected tab also looks for writes of other tabs it was not told of (a tab that
      // closed or crashed between its commit and its notice): they are uploaded all the same.
      if (this.#shared?.group.leading === true) this.#expireTabPresence()
      const catchUp = this.#shared?.group.leading === true ? this.#catchUp() : Promise.resolve()
      this.#watchSilence()
      catchUp
        .then(() => this.#engine.tick())
        .then(
          () => this.#refresh(),
          (error: unknown) => this.#report(error),
        )
    }, this.#config.tickMs)
    unrefTimer(this.#tick)
    if (this.#link !== null) {
      this.#config.networkEvents?.addEventListener('online', this.#onOnline)
      this.#config.networkEvents?.addEventListener('offline', this.#onOffline)
      // Shared tabs: only the leading tab connects (see #lead).
      if (this.#shared === null && this.#config.autoConnect) this.#link.start()
    }
    this.#shared?.group.start(() => this.#leaderReport())
  }

  /**
   * The leading tab looks for writes of other tabs it was not told of (a tab that closed or
   * crashed between its commit and its notice): they are uploaded all the same, and every
   * tab's live queries, which missed them too, read their collections whole.
   */
  async #catchUp(): Promise<void> {
    const before = this.#engine.session().local
    await this.#engine.refresh()
    if (this.#engine.session().local > before) this.#reloadEverywhere()
  }

  /** Every live query of this tab reads its collection whole, and every other tab's too. */
  #reloadEverywhere(): void {
    this.#reloadQueries()
    this.#shared?.group.post({ type: 'reload' })
  }

  #reloadQueries(): void {
    for (const set of this.#queries.values()) for (const query of set) query.invalidate()
    this.#events.emit('reload', undefined)
  }

  /** This tab leads its group: take over the database's connection. */
  async #lead(): Promise<void> {
    const shared = this.#shared
    if (shared === null || this.#closed) return
    await shared.store.claimLeadership()
    // Other tabs wrote and applied while this one followed: start from what is stored. The
    // tab that led before may have gone between a commit and its notice: reload the lists.
    await this.#engine.refresh()
    // Closed meanwhile: its shutdown stopped the link already, and must not find it started.
    // Or another tab took over meanwhile (this one's `#follow` stopped the link): it leads now.
    if (this.#closed || !shared.group.leading) return
    this.#reloadEverywhere()
    this.#leader = null
    // `synced()` calls the last leading tab had not answered: this tab asks the relay now.
    for (const waiter of this.#waiters) this.#askFor(waiter)
    if (this.#wantOnline) this.#link?.start()
    this.#refresh()
  }

  /** Another tab leads now (or this one gave up): stop uploading and applying. */
  #follow(): void {
    // The other tabs' presence goes with the connection; the next leader takes it from them.
    for (const key of this.#tabPresence.keys()) {
      this.#presenceDue.delete(key)
      this.#engine.setPresence(key, null)
    }
    this.#tabPresence.clear()
    // The tabs that asked ask the next leading tab, at its first report.
    this.#tabAsks.clear()
    this.#shared?.store.releaseLeadership()
    this.#link?.stop()
    for (const waiter of this.#waiters) this.#askFor(waiter)
    this.#refresh()
  }

  #leaderReport(): LeaderReport {
    const session = this.#engine.session()
    return {
      type: 'leader',
      status: this.#ownStatus(),
      pending: this.#engine.pending(),
      lag: Math.max(0, session.hubHead - session.cursor),
      acked: session.acked,
      online: this.#wantOnline,
      onlineSeq: this.#wantSeq,
      readOnly: session.readOnly,
      asks: true,
      presence: {
        peers: this.#board.list as readonly PresencePeerWire[],
        tabs: Object.fromEntries([...this.#tabPresence].map(([key, held]) => [key, held.seq])),
      },
      ...(this.#refusal === null
        ? {}
        : { refused: { code: this.#refusal.code, message: this.#refusal.message } }),
    }
  }

  #tabMessage(message: unknown): void {
    if (this.#closed || !isTabMessage(message)) return
    switch (message.type) {
      case 'reload':
        this.#reloadQueries()
        return
      case 'leader': {
        if (this.#shared?.group.leading) return
        this.#leader = message
        if (message.onlineSeq !== undefined) this.#wish(message.online, message.onlineSeq)
        // The relay refused the replica for good: this tab stops waiting for it, and says so.
        if (message.refused !== undefined && this.#refusal === null) {
          const { code, message: why } = message.refused
          const refusal = new ChorusError(isErrorCode(code) ? code : ErrorCode.Internal, why)
          this.#refuse(refusal)
          this.#report(refusal)
        }
        // A leader that took over since a `synced()` asked the last one has not heard of it.
        for (const waiter of this.#waiters) this.#askFor(waiter)
        this.#publish()
        if (message.presence !== undefined) this.#leaderPresence(message.presence)
        const stuck = this.#readOnlyBacklog()
        if (stuck !== null) {
          for (const waiter of this.#waiters) waiter.reject(stuck)
          this.#waiters.clear()
        }
        return
      }
      case 'changed': {
        const event: ChangeEvent = {
          collection: message.collection,
          ids: message.ids,
          origin: message.origin,
        }
        for (const query of this.#queries.get(event.collection) ?? []) query.invalidate(event.ids)
        this.#events.emit('change', event)
        // Another tab wrote: the leader uploads it.
        if (message.origin === 'local' && this.#shared?.group.leading) {
          this.#engine.refresh().then(
            () => this.#refresh(),
            (error: unknown) => this.#handleError(asChorusError(error)),
          )
        }
        return
      }
      case 'sync':
        if (!this.#shared?.group.leading || this.#tabAsks.has(message.nonce)) return
        // Bounded: the oldest is dropped (its tab asks again at the next report).
        if (this.#tabAsks.size >= MAX_TAB_ASKS)
          this.#tabAsks.delete(this.#tabAsks.keys().next().value as string)
        this.#tabAsks.set(message.nonce, this.#engine.ping())
        return
      case 'synced':
        for (const waiter of this.#waiters) if (message.nonces.includes(waiter.nonce)) waiter.answered = true
        this.#publish()
        return
      case 'online':
        // A tab of an older build numbers nothing: its setting is the latest.
        this.#wish(message.on, message.seq ?? this.#wantSeq + 1)
        return
      case 'presence':
        if (!this.#shared?.group.leading) return
        try {
          this.#pushPresence(message.key, checkPresence(message.key, message.state))
        } catch {
          // Another tab's state this build cannot send: it is left out.
          return
        }
        if (message.state === null) this.#tabPresence.delete(message.key)
        else this.#tabPresence.set(message.key, { seq: message.seq, at: this.#config.now() })
        this.#shared.group.beat()
        return
      case 'destroyed':
        this.#closeLost(DELETED_UNDER_IT)
        return
    }
  }

  /**
   * Takes another tab's setting of `#wantOnline`, numbered `seq`, when it is later than this
   * tab's: of two set at once (the same number), going offline wins, in every tab alike.
   */
  #wish(on: boolean, seq: number): void {
    if (seq < this.#wantSeq || (seq === this.#wantSeq && (on || !this.#wantOnline))) return
    this.#wantSeq = seq
    this.#wantOnline = on
    if (this.#shared?.group.leading) {
      if (on) this.#link?.start()
      else this.#link?.stop()
    }
    this.#publish()
  }

  /** This tab's `connect()` / `disconnect()`: a setting later than any it knows, told to the other tabs. */
  #setWish(on: boolean): void {
    this.#wantOnline = on
    this.#wantSeq++
    this.#shared?.group.post({ type: 'online', on, seq: this.#wantSeq })
  }

  get wantsConnection(): boolean {
    return this.#wantOnline
  }

  get status(): SyncStatus {
    if (this.#closed) return 'offline'
    if (this.#shared !== null && !this.#shared.group.leading) {
      if (!this.#wantOnline || this.#link === null) return 'offline'
      return this.#leader?.status ?? 'connecting'
    }
    return this.#ownStatus()
  }

  /** The status of this tab's own engine and link. */
  #ownStatus(): SyncStatus {
    const status = this.#engine.status()
    if (status !== 'offline' || this.#engine.session().fatal !== null) return status
    // Opening, or open with the engine yet to send its hello: connecting all the same. So is a
    // link not started yet that is to be (a tab that has just come to lead, before it starts
    // its link): a screen reader told "offline" then keeps hearing it through "connecting".
    const phase = this.#link?.phase
    if (phase === 'stopped') return this.#wantOnline ? 'connecting' : 'offline'
    return phase === 'opening' || phase === 'open' ? 'connecting' : 'offline'
  }

  get readOnly(): boolean {
    // A tab without the connection knows it from the connected tab's report.
    return this.#following() ? this.#leader?.readOnly === true : this.#engine.session().readOnly
  }

  get pending(): number {
    if (this.#following()) return Math.max(this.#leader?.pending ?? 0, this.#ownUnconfirmed())
    return this.#engine.pending()
  }

  get presence(): readonly PresencePeer[] {
    return this.#board.list
  }

  setPresence(state: JsonObject | null): void {
    if (this.#closed) throw closedError()
    const checked = checkPresence(this.#presenceKey, state)
    this.#ownPresence = checked
    this.#ownPresenceSeq++
    // Kept and (when this tab holds the connection) sent by the engine, which sends it again
    // on each connection this tab makes.
    this.#pushPresence(this.#presenceKey, checked)
    if (this.#following()) this.#postPresence()
  }

  /**
   * Gives the engine a presence change: at once, unless one went less than
   * `PRESENCE_INTERVAL_MS` ago; then with the others due, when that time is up, each key's
   * latest only. A pointer or a selection can change many times a second, and each change is
   * a frame through the relay, which rate-limits frames.
   */
  #pushPresence(key: string, state: JsonObject | null): void {
    this.#presenceDue.set(key, state)
    if (this.#presenceTimer !== null) return
    const wait = this.#presenceSentAt + PRESENCE_INTERVAL_MS - this.#config.now()
    if (wait <= 0) {
      this.#flushPresence()
      return
    }
    this.#presenceTimer = this.#config.timers.setTimeout(() => {
      this.#presenceTimer = null
      this.#flushPresence()
    }, wait)
    unrefTimer(this.#presenceTimer)
  }

  #flushPresence(): void {
    if (this.#closed || this.#presenceDue.size === 0) return
    this.#presenceSentAt = this.#config.now()
    for (const [key, state] of this.#presenceDue) {
      try {
        this.#engine.setPresence(key, state)
      } catch (error) {
        // Another tab's state beyond what the engine holds (too many tabs): left out.
        if (key === this.#presenceKey) this.#report(error)
      }
    }
    this.#presenceDue.clear()
  }

  /** A following tab gives the leading one its presence. */
  #postPresence(): void {
    this.#presencePostedAt = this.#config.now()
    this.#shared?.group.post({
      type: 'presence',
      key: this.#presenceKey,
      seq: this.#ownPresenceSeq,
      state: this.#ownPresence,
    } satisfies TabMessage)
  }

  /** What the engine heard of the others (this tab holds the connection, or no tabs share it). */
  #presenceEvent(event: PresenceEvent): void {
    if (!this.#board.apply(event)) return
    this.#events.emit('presence', this.#board.list)
    this.#shared?.group.beat()
  }

  /**
   * A following tab takes the others' presence from the leading tab's report, and gives it
   * its own again when the report shows the leader lacks it (a new leader, a lost message), or
   * every few seconds, so that the leader forgets tabs that went without a word.
   */
  #leaderPresence(presence: NonNullable<LeaderReport['presence']>): void {
    if (this.#board.replace(presence.peers)) this.#events.emit('presence', this.#board.list)
    const held = Object.hasOwn(presence.tabs, this.#presenceKey)
      ? presence.tabs[this.#presenceKey]
      : undefined
    const stale = this.#config.now() - this.#presencePostedAt > TAB_PRESENCE_REFRESH_MS
    if (this.#ownPresence !== null ? held !== this.#ownPresenceSeq || stale : held !== undefined)
      this.#postPresence()
  }

  /** The leading tab forgets other tabs' presence not heard of lately: such a tab closed without a word. */
  #expireTabPresence(): void {
    const limit = this.#config.now() - TAB_PRESENCE_EXPIRY_MS
    for (const [key, held] of this.#tabPresence) {
      if (held.at >= limit) continue
      this.#tabPresence.delete(key)
      this.#pushPresence(key, null)
    }
  }

  get lag(): number {
    if (this.#following()) return this.#leader?.lag ?? 0
    const session = this.#engine.session()
    return Math.max(0, session.hubHead - session.cursor)
  }

  collection<TValue extends object = JsonObject>(name: string, ...rest: unknown[]): Collection<TValue> {
    // Collections take no options (resolvers are the replica's): one passed is a mistake to say.
    if (rest.length > 0 && rest[0] !== undefined) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `collection(${JSON.stringify(name)}) takes no options: set its resolver with createReplica({ resolvers })`,
      )
    }
    let collection = this.#collections.get(name)
    if (collection === undefined) {
      collection = new EngineCollection(this.#host, name)
      this.#collections.set(name, collection)
    }
    return collection as unknown as Collection<TValue>
  }

  async conflicts(filter?: ConflictFilter): Promise<Conflict[]> {
    return this.#openEngine().conflicts(filter)
  }

  on<TName extends keyof ReplicaEvents>(
    name: TName,
    listener: (payload: ReplicaEvents[TName]) => void,
  ): () => void {
    return this.#events.on(name, listener)
  }

  synced(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    if (this.#refusal !== null) return Promise.reject(this.#refusal)
    if (this.#link === null) {
      return Promise.reject(
        new ChorusError(
          ErrorCode.InvalidArgument,
          'this replica has no url, so it never syncs: pass url to createReplica',
        ),
      )
    }
    const stuck = this.#readOnlyBacklog()
    if (stuck !== null) return Promise.reject(stuck)
    return new Promise((resolve, reject) => {
      const waiter: SyncedWaiter = { resolve, reject, nonce: randomKey(), ask: null, answered: false }
      this.#waiters.add(waiter)
      this.#askFor(waiter)
      this.#publish()
    })
  }

  /**
   * Has the relay asked where its log ends, for `waiter`: this tab's engine pings it when
   * this tab holds the connection (or no tabs share the database); a following tab asks the
   * leading one, which pings and says when it has caught up with the answer. A leading tab of
   * an older build cannot be asked: the waiter then settles for what the relay last reported.
   */
  #askFor(waiter: SyncedWaiter): void {
    if (waiter.answered) return
    if (!this.#following()) {
      waiter.ask ??= this.#engine.ping()
      return
    }
    waiter.ask = null
    if (this.#leader !== null && this.#leader.asks !== true) waiter.answered = true
    else this.#shared?.group.post({ type: 'sync', nonce: waiter.nonce })
  }

  /**
   * Own changes that can never be uploaded — the relay lets this replica only read — as the
   * error `synced()` rejects with; null when there are none.
   */
  #readOnlyBacklog(): ChorusError | null {
    // A tab without the connection knows it from the connected tab's report.
    const pending = this.pending
    if (!this.readOnly || pending === 0) return null
    return new ChorusError(
      ErrorCode.Forbidden,
      `this replica may only read space ${this.space}: its ${pending} own change${pending === 1 ? '' : 's'} not uploaded cannot sync`,
    )
  }

  connect(): void {
    if (this.#closed) throw closedError()
    if (this.#link === null) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        'this replica has no url to connect to: pass url to createReplica',
      )
    }
    this.#setWish(true)
    if (this.#shared === null || this.#shared.group.leading) this.#link.start()
    this.#publish()
  }

  disconnect(): void {
    if (this.#closed) return
    this.#setWish(false)
    this.#link?.stop()
    this.#publish()
  }

  /** True when tabs share the database and another tab leads. */
  #following(): boolean {
    return this.#shared !== null && !this.#shared.group.leading
  }

  /** Own writes of this tab the leader has not reported acknowledged yet. */
  #ownUnconfirmed(): number {
    return Math.max(0, this.#engine.session().local - (this.#leader?.acked ?? 0))
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  destroy(options?: DestroyOptions): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    if (options !== undefined && (typeof options !== 'object' || options === null))
      return Promise.reject(
        new ChorusError(ErrorCode.InvalidArgument, 'destroy takes an options object { discardPending? }'),
      )
    let discardPending: boolean
    try {
      for (const key of Object.keys(options ?? {})) {
        if (key !== 'discardPending')
          throw new ChorusError(
            ErrorCode.InvalidArgument,
            `destroy has no option ${JSON.stringify(key)}: use { discardPending? }`,
          )
      }
      discardPending = parseDiscardPending(options?.discardPending)
    } catch (error) {
      return Promise.reject(error)
    }
    if (typeof this.#store.destroy !== 'function') {
      return Promise.reject(
        new ChorusError(
          ErrorCode.InvalidArgument,
          "this replica's storage cannot delete its data: its ReplicaStore has no destroy method",
        ),
      )
    }
    this.#destroying ??= this.#destroy(discardPending).finally(() => {
      this.#destroying = null
    })
    return this.#destroying
  }

  async #destroy(discardPending: boolean): Promise<void> {
    // Writes already issued commit first: what is unacknowledged then would be lost.
    await this.#engine.idle()
    if (!discardPending) {
      const pending = await this.#store.outboxSize()
      if (pending > 0) throw pendingChanges(pending, this.space)
    }
    const shared = this.#shared
    await this.close()
    // Tabs share the database: count again, and delete, while none of them writes.
    if (shared !== null) await deleteIdbReplica(this.#config, discardPending)
    else await (this.#store.destroy as () => Promise<void>).call(this.#store)
  }

  /** The engine while the replica is open. */
  #openEngine(): ReplicaEngine {
    if (this.#closed) throw closedError()
    return this.#engine
  }

  /** A live query on `collection`, for its {@link Collection}. */
  #subscribe(
    collection: string,
    listener: (rows: readonly Row<JsonObject>[]) => void,
    options?: ListOptions,
    onError?: (error: ChorusError) => void,
  ): () => void {
    if (this.#closed) throw closedError()
    if (typeof listener !== 'function') {
      throw new ChorusError(ErrorCode.InvalidArgument, 'subscribe needs a function to call with the rows')
    }
    if (onError !== undefined && typeof onError !== 'function') {
      throw new ChorusError(ErrorCode.InvalidArgument, "subscribe's onError must be a function when given")
    }
    if (options !== undefined) recordPage(options)
    // The query keeps its rows; each listener call gets its own array of the same frozen rows.
    const query = new LiveQuery<readonly Row<JsonObject>[]>({
      // A whole read (the first, or after many changes) keeps the rows that did not change.
      load: async (previous, changed) => {
        const rows = await this.#engine.list(collection, options)
        return previous === null ? rows.map(freezeRow) : keepRows(previous, rows, changed)
      },
      // A page reads itself again after a change (a row leaving it lets the next one in); the
      // whole collection is patched.
      update: async (previous, ids) => {
        if (options !== undefined) return pageUntouched(previous, ids, options) ? previous : null
        // Past a few, one read of the whole collection costs less than reading each.
        if (ids.size > Math.max(LIVE_UPDATE_MIN, previous.length / LIVE_UPDATE_SHARE)) return null
        return patchRows(previous, ids, ids.size === 0 ? [] : await this.#engine.rows(collection, [...ids]))
      },
      same: sameRows,
      deliver: (rows) => listener(rows.slice()),
      onError: (error) => {
        if (onError === undefined) {
          // Closing is the app's own doing, not a failure to report.
          if (!this.#closed) this.#report(error)
          return
        }
        try {
          onError(asChorusError(error))
        } catch (thrown) {
          rethrowLater(thrown)
        }
      },
      timers: this.#config.timers,
    })
    let set = this.#queries.get(collection)
    if (set === undefined) {
      set = new Set()
      this.#queries.set(collection, set)
    }
    set.add(query)
    query.start()
    return () => {
      query.stop()
      set.delete(query)
    }
  }

  #handleChange(event: ChangeEvent): void {
    for (const query of this.#queries.get(event.collection) ?? []) query.invalidate(event.ids)
    this.#events.emit('change', event)
    this.#shared?.group.post({ type: 'changed', ...event })
  }

  #handleError(error: ChorusError): void {
    if (isTabFenced(error)) {
      if (this.#shared !== null) {
        // Another tab took over while this one was frozen or slow: follow it, quietly.
        this.#shared.group.stepDown()
        return
      }
      // With no tabs sharing the database, a replica opened later on it took it over: stop.
      if (this.#refusal !== null) return
      const stopped = new ChorusError(
        ErrorCode.StorageFailed,
        'this replica stopped syncing: another replica instance opened its database since (a second tab with tabs off, or another process). Reload to use the database from here again, or leave the tabs option on so tabs share it.',
        { cause: error },
      )
      this.#refuse(stopped)
      this.#report(stopped)
      return
    }
    if (error.code === ErrorCode.Unauthenticated && typeof this.#config.token === 'function') {
      // Not final (the session renews tokens): the next connection asks for another.
      if (!this.#tokenRefused) this.#tokenRefusedAt = this.#config.now()
      this.#tokenRefused = true
    }
    if (this.#engine.session().fatal !== null && this.#refusal === null) {
      this.#refuse(error)
    } else if (this.#readOnlyBacklog() !== null) {
      // Not the end of the session (it keeps receiving), but of waiting for it to sync.
      for (const waiter of this.#waiters) waiter.reject(error)
      this.#waiters.clear()
    }
    this.#report(error)
  }

  /**
   * Asks the app's token function for the token of the connection about to open. A failure
   * rejects (the link reports it and tries again with backoff); the token the relay just
   * refused, given again, ends syncing for good, as a refused fixed token does.
   */
  async #nextToken(provide: () => string | Promise<string>): Promise<void> {
    // An attempt given up on (its call took too long) may still answer: only the latest counts.
    const call = ++this.#tokenCalls
    let token: unknown
    try {
      token = await provide()
    } catch (error) {
      throw new ChorusError(
        ErrorCode.Unauthenticated,
        'the token function failed, so the replica cannot connect: it asks again at the next attempt',
        { cause: error },
      )
    }
    if (call !== this.#tokenCalls) return
    if (typeof token !== 'string' || token === '') {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `the token function must give a non-empty string, got ${token === '' ? 'an empty one' : typeof token}`,
      )
    }
    if (this.#tokenRefused && token === this.#token) {
      // A token function may give the refused token again for a while (one cached until a
      // new secret reaches it, or one minted again in the same second, identical): it is asked
      // again at the next attempt, with backoff. Only one given again for a minute is final.
      if (this.#config.now() - this.#tokenRefusedAt < SAME_TOKEN_FINAL_MS) {
        throw new ChorusError(
          ErrorCode.Unauthenticated,
          'the token function gave the token the relay just refused: it is asked again at the next attempt',
        )
      }
      const refused = new ChorusError(
        ErrorCode.Unauthenticated,
        'the relay refused the token, and the token function has given the same one again for a minute: the replica stays offline until it is created again',
      )
      this.#refuse(refused)
      this.#report(refused)
      return
    }
    this.#token = token
    this.#tokenRefused = false
  }

  /** Stops syncing for good: no reconnect, and `synced()` rejects with `error` from now on. */
  #refuse(error: ChorusError): void {
    this.#refusal = error
    this.#link?.refused()
    for (const waiter of this.#waiters) waiter.reject(error)
    this.#waiters.clear()
    this.#publish()
  }

  get refusal(): ChorusError | null {
    return this.#refusal
  }

  /** Re-reads status, pending and lag; tells listeners and `synced()` waiters what changed. */
  #refresh(): void {
    if (this.#closed) return
    if (this.#link?.phase === 'open' && this.#engine.session().phase === 'ready') this.#link.ready()
    this.#publish()
  }

  #publish(): void {
    const next = this.#snapshot()
    const last = this.#last
    if (
      next.status !== last.status ||
      next.pending !== last.pending ||
      next.lag !== last.lag ||
      next.refusal !== last.refusal ||
      next.wantsConnection !== last.wantsConnection ||
      next.readOnly !== last.readOnly
    ) {
      this.#last = next
      this.#events.emit('status', next)
      this.#shared?.group.beat()
    }
    if (next.status !== 'synced') return
    // Caught up: the next download starts at the relay's own frame size again.
    this.#readLimit = null
    const following = this.#following()
    if (following && this.#ownUnconfirmed() > 0) return
    const answered = this.#engine.session().syncAnswered
    for (const waiter of this.#waiters) {
      if (!following && waiter.ask !== null && answered >= waiter.ask) waiter.answered = true
      if (!waiter.answered) continue
      this.#waiters.delete(waiter)
      waiter.resolve()
    }
    if (following || this.#tabAsks.size === 0) return
    const nonces: string[] = []
    for (const [nonce, ask] of this.#tabAsks) {
      if (answered < ask) continue
      nonces.push(nonce)
      this.#tabAsks.delete(nonce)
    }
    if (nonces.length > 0) this.#shared?.group.post({ type: 'synced', nonces })
  }

  #snapshot(): StatusEvent {
    return {
      status: this.status,
      pending: this.pending,
      lag: this.lag,
      refusal: this.#refusal,
      wantsConnection: this.#wantOnline,
      readOnly: this.readOnly,
    }
  }

  /**
   * The replica's data went away under it (deleted by another tab or, in the same process,
   * by `deleteReplica`; or upgraded by a newer version of the app): says so with a `closed`
   * error event, once, and closes.
   */
  #closeLost(message: string): void {
    if (this.#closed || this.#closing !== null) return
    // Reported before closing, which drops the listeners.
    this.#report(new ChorusError(ErrorCode.Closed, message))
    void this.close()
  }

  #report(error: unknown): void {
    const reported = asChorusError(error)
    if (this.#events.has('error')) this.#events.emit('error', reported)
    // Nobody listens, and dropping it silently would hide a refused token or a full disk.
    else console.warn('[chorus]', reported)
  }

  async #shutdown(): Promise<void> {
    this.#closed = true
    // Writes already issued finish first, and the other tabs hear of them (the connected
    // one uploads them) before this tab leaves the group.
    if (this.#shared !== null) await this.#engine.idle()
    // The leading tab forgets this one's presence now rather than when it expires.
    if (this.#ownPresence !== null && this.#following()) {
      this.#ownPresence = null
      this.#ownPresenceSeq++
      this.#postPresence()
    }
    this.#shared?.group.close()
    const { timers } = this.#config
    if (this.#tick !== null) timers.clearInterval(this.#tick)
    this.#tick = null
    if (this.#presenceTimer !== null) timers.clearTimeout(this.#presenceTimer)
    this.#presenceTimer = null
    this.#config.networkEvents?.removeEventListener('online', this.#onOnline)
    this.#config.networkEvents?.removeEventListener('offline', this.#onOffline)
    // A live query still waiting for its first rows is told they will not come.
    for (const set of this.#queries.values()) for (const query of set) query.stop(closedError())
    this.#queries.clear()
    this.#link?.stop()
    for (const waiter of this.#waiters) waiter.reject(closedError())
    this.#waiters.clear()
    this.#publish()
    try {
      await this.#link?.released()
      await this.#engine.close()
    } finally {
      this.#events.clear()
    }
  }
}

/**
 * The first frame limit a replica asks for after a connection went silent while downloading
 * (see `ReplicaRuntime.#readLimit`): half the size at which the relay's own 256 KiB frames
 * start to be cut (a frame carries a quarter of `hello.maxFrame` in changes).
 */
const FIRST_READ_LIMIT = 512 * 1024

/**
 * How long a token function may keep giving the token the relay refused before the refusal
 * is final (see `#nextToken`).
 */
const SAME_TOKEN_FINAL_MS = 60_000
/** How often the leading tab reports (and proves it is alive). */
const TAB_HEARTBEAT_MS = 500
/** How long followers wait without a report before one takes over (plus up to as much jitter). */
const TAB_TAKEOVER_MS = 3_000
/** The shortest time between two presence frames this replica sends (see `#pushPresence`). */
const PRESENCE_INTERVAL_MS = 100
/** How often a following tab gives the leading one its presence again, at the latest. */
const TAB_PRESENCE_REFRESH_MS = 5_000
/** How long the leading tab keeps another tab's presence without hearing it again. */
const TAB_PRESENCE_EXPIRY_MS = 15_000

/** Most `sync` asks of following tabs a leading tab holds unanswered. */
const MAX_TAB_ASKS = 1024

/** A `synced()` call waiting. */
interface SyncedWaiter {
  readonly resolve: () => void
  readonly reject: (error: ChorusError) => void
  /** Names the call to the leading tab when this tab follows (see `#askFor`): a random key. */
  readonly nonce: string
  /** The engine's ask (`ReplicaEngine.ping`) made for it while this tab held the connection. */
  ask: number | null
  /** The relay answered an ask made after the call (or cannot be asked). */
  answered: boolean
}

/** A random key for a tab's presence. */
function randomKey(): string {
  return [...crypto.getRandomValues(new Uint8Array(8))]
    .map((byte) => byte.toString(16).padStart(2, '0'))
    .join('')
}

interface SharedTabs {
  readonly store: IdbReplicaStore
  readonly group: TabGroup
}

/**
 * The app's clock (option `now`), kept from throwing into a socket's or a timer's callback,
 * where nothing could catch it: a call that throws is answered by the system clock, and the
 * first such throw is reported (an `error` event, `invalid-argument`).
 */
function guardedNow(now: () => number, report: (error: ChorusError) => void): () => number {
  let reported = false
  return () => {
    try {
      return now()
    } catch (error) {
      if (!reported) {
        reported = true
        report(
          new ChorusError(
            ErrorCode.InvalidArgument,
            `option now threw (${error instanceof Error ? error.message : String(error)}): this replica reads the system clock while it does`,
          ),
        )
      }
      return Date.now()
    }
  }
}

/** Why a replica whose data another tab or `deleteReplica` deleted closed. */
const DELETED_UNDER_IT =
  "this replica's data was deleted (destroy in another tab, or deleteReplica), so it closed: create the replica again to start afresh"

/** What the leading tab tells the others, every heartbeat and on every change. */
interface LeaderReport {
  readonly type: 'leader'
  readonly status: SyncStatus
  readonly pending: number
  readonly lag: number
  /** The highest own counter the relay acknowledged. */
  readonly acked: number
  readonly online: boolean
  /** The number of the setting `online` is (`#wantSeq`; absent from tabs of older builds). */
  readonly onlineSeq?: number
  /** The relay lets the replica only read the space (absent from tabs of older builds). */
  readonly readOnly?: boolean
  /** The relay refused the replica for good (see `Replica.synced`): why. */
  readonly refused?: { readonly code: string; readonly message: string }
  /** The leading tab answers `sync` (absent from tabs of older builds, which ignore it). */
  readonly asks?: true
  /**
   * The other replicas' presence the leading tab hears, and the seq of each other tab's own
   * presence it holds (absent from tabs of older builds).
   */
  readonly presence?: {
    readonly peers: readonly PresencePeerWire[]
    readonly tabs: Readonly<Record<string, number>>
  }
}

type TabMessage =
  | LeaderReport
  | {
      readonly type: 'changed'
      readonly collection: string
      readonly ids: readonly RecordId[]
      readonly origin: 'local' | 'remote'
    }
  | {
      readonly type: 'online'
      readonly on: boolean
      /** The setting's number (`#wantSeq`; absent from tabs of older builds). */
      readonly seq?: number
    }
  /**
   * A following tab's `synced()`: the leading tab asks the relay where its log ends, and
   * answers with `synced` once it has caught up with that.
   */
  | { readonly type: 'sync'; readonly nonce: string }
  /** The leading tab caught up with the relay's answer to these `sync`s. */
  | { readonly type: 'synced'; readonly nonces: readonly string[] }
  /**
   * Every live query reads its collection whole: a tab took the lead, or found writes it was
   * not told of, so notices of a tab that vanished between its commit and its notice may be
   * missing everywhere.
   */
  | { readonly type: 'reload' }
  /** The database is being deleted (`destroy`, `deleteReplica`): every tab closes its replica. */
  | { readonly type: 'destroyed' }
  /** A following tab's presence, for the leading tab to hold (null: cleared). */
  | {
      readonly type: 'presence'
      readonly key: string
      readonly seq: number
      readonly state: JsonObject | null
    }

/** Messages come from other tabs of the same app, but a channel is shared by name: check. */
function isTabMessage(value: unknown): value is TabMessage {
  if (typeof value !== 'object' || value === null) return false
  const message = value as Record<string, unknown>
  switch (message.type) {
    case 'leader':
      return (
        typeof message.status === 'string' &&
        typeof message.pending === 'number' &&
        typeof message.lag === 'number' &&
        typeof message.acked === 'number' &&
        (message.onlineSeq === undefined ||
          (isCount(message.onlineSeq) && typeof message.online === 'boolean')) &&
        (message.readOnly === undefined || typeof message.readOnly === 'boolean') &&
        (message.asks === undefined || message.asks === true) &&
        (message.refused === undefined || isRefusal(message.refused)) &&
        (message.presence === undefined || isReportedPresence(message.presence))
      )
    case 'presence':
      return (
        typeof message.key === 'string' &&
        typeof message.seq === 'number' &&
        (message.state === null || (typeof message.state === 'object' && !Array.isArray(message.state)))
      )
    case 'changed':
      return (
        typeof message.collection === 'string' &&
        Array.isArray(message.ids) &&
        message.ids.every((id) => typeof id === 'string') &&
        (message.origin === 'local' || message.origin === 'remote')
      )
    case 'online':
      return typeof message.on === 'boolean' && (message.seq === undefined || isCount(message.seq))
    case 'sync':
      return typeof message.nonce === 'string'
    case 'synced':
      return Array.isArray(message.nonces) && message.nonces.every((nonce) => typeof nonce === 'string')
    case 'reload':
    case 'destroyed':
      return true
    default:
      return false
  }
}

/** A whole number from 0: a count another tab sent. */
function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

function isReportedPresence(value: unknown): value is LeaderReport['presence'] {
  if (typeof value !== 'object' || value === null) return false
  const presence = value as Record<string, unknown>
  return (
    isPeerList(presence.peers) &&
    typeof presence.tabs === 'object' &&
    presence.tabs !== null &&
    Object.values(presence.tabs).every((seq) => typeof seq === 'number')
  )
}

function isRefusal(value: unknown): value is LeaderReport['refused'] {
  if (typeof value !== 'object' || value === null) return false
  const refusal = value as Record<string, unknown>
  return typeof refusal.code === 'string' && typeof refusal.message === 'string'
}

/** A failure as a `ChorusError`, for the app: an unexpected one is `internal`, its cause kept. */
function asChorusError(error: unknown): ChorusError {
  return isChorusError(error)
    ? error
    : new ChorusError(ErrorCode.Internal, 'an unexpected failure in the replica', { cause: error })
}
