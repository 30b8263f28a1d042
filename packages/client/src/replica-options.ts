import {
  asSpaceId,
  ChorusError,
  createResolverLookup,
  DEFAULT_LIMITS,
  ErrorCode,
  type ReplicaEngineOptions,
  type ReplicaStore,
  type ResolverConfig,
  type SpaceId,
} from '@chorus/core'
import type { IndexedDbFactory, KeyRangeLike } from './storage/idb-replica-store.js'
import type { ChannelLike, LockManagerLike, OpenChannel } from './tabs/tab-group.js'
import { systemTimers, type Timers } from './timers.js'
import { DEFAULT_RECONNECT, type ReconnectPolicy } from './transport/reconnect.js'
import type { WebSocketConstructorLike } from './transport/websocket-like.js'

/** Where a replica keeps its data: a built-in kind, or any {@link ReplicaStore}. */
export type StorageChoice = 'indexeddb' | 'memory' | ReplicaStore

/** Something that announces the network came back (a browser's `window`). */
export interface NetworkEventsLike {
  addEventListener(type: 'online' | 'offline', listener: () => void): void
  removeEventListener(type: 'online' | 'offline', listener: () => void): void
}

/** A token, or where to get the next one (see {@link ReplicaOptions.token}). */
export type TokenOption = string | (() => string | Promise<string>)

/** Options for `createReplica`. Only `space` is required. */
export interface ReplicaOptions {
  /** The space to replicate: the unit of sync and of permission. */
  readonly space: string
  /** The relay's WebSocket URL (`ws:` or `wss:`). Without it the replica works offline only. */
  readonly url?: string
  /**
   * Sent to the relay in `hello`; its `authenticate` hook decides. A string is the token of
   * every connection, and its refusal (`unauthenticated`: expired or bad) is final. A function
   * is asked for the token before each connection is opened (a rejection counts as one more
   * failed attempt, retried with backoff), and after a refusal the replica connects again with
   * the next token it gives: tokens that expire are renewed without the app creating the
   * replica again. Giving back the very token just refused makes the refusal final.
   */
  readonly token?: TokenOption
  /**
   * `'indexeddb'` (default): one database per replica, named `dbName`. `'memory'`: nothing
   * survives the process (tests, server-side rendering). A store instance (such as
   * `openSqliteReplicaStore` from `@chorus/client/sqlite`): the replica owns it from then on
   * and closes it in `close()`.
   */
  readonly storage?: StorageChoice
  /** The IndexedDB database name; default `chorus:<space>`. */
  readonly dbName?: string
  /** The IndexedDB to use; default `globalThis.indexedDB`. */
  readonly indexedDB?: IndexedDbFactory
  /**
   * That IndexedDB's `IDBKeyRange`; default the global one when `indexedDB` is the global
   * factory. Pass fake-indexeddb's with its factory: without it, a batch of writes reads its
   * records one request each, and a collection is read with a cursor.
   */
  readonly IDBKeyRange?: KeyRangeLike
  /** The WebSocket constructor; default `globalThis.WebSocket`. In Node 20, pass `WebSocket` from `ws`. */
  readonly WebSocket?: WebSocketConstructorLike
  /** Conflict resolvers per collection (`'lww'` for any collection not named), or a function. */
  readonly resolvers?: ResolverConfig
  /** Connect as soon as the replica is open (default true); otherwise wait for `connect()`. */
  readonly autoConnect?: boolean
  /**
   * Reconnect backoff, default 250 ms doubling up to 30 s, with full jitter; and how long a
   * silent connection is trusted (`silenceMs`, default 30 s; see {@link ReconnectPolicy}).
   */
  readonly reconnect?: Partial<ReconnectPolicy>
  /** Uniform draws in [0, 1) for the backoff's jitter; default `Math.random`. */
  readonly random?: () => number
  /** Timer functions; default the platform's. */
  readonly timers?: Timers
  /** Wall-clock milliseconds for the hybrid clock; default `Date.now`. */
  readonly now?: () => number
  /** How often the engine checks for retransmissions, in ms; default 1000. */
  readonly tickMs?: number
  /**
   * Where to hear that the network went away (`offline`: hang up at once, as a socket may
   * linger half-open) or came back (`online`: reconnect without waiting out the backoff);
   * default `globalThis` when it has `addEventListener` (browsers), `null` for none.
   */
  readonly networkEvents?: NetworkEventsLike | null
  /** Protocol tunables (batch size, window, retransmit interval). */
  readonly session?: ReplicaEngineOptions['session']
  /** How far ahead of local time a remote clock may pull this one, in ms. */
  readonly maxDriftMs?: number
  /**
   * Tabs of one origin that open the same IndexedDB database share one replica: one tab
   * holds the relay connection (chosen with Web Locks; another takes over when it closes or
   * freezes), the others write through the shared outbox and hear of changes over a
   * BroadcastChannel. Default true where Web Locks and BroadcastChannel exist and storage
   * is `'indexeddb'`; false makes this replica the database's only user (a second tab then
   * fails with `storage-failed`).
   */
  readonly tabs?: boolean
}

/** {@link ReplicaOptions} checked, with defaults filled in. */
export interface ReplicaConfig {
  readonly space: SpaceId
  readonly url: string | null
  readonly token: TokenOption | undefined
  readonly storage: StorageChoice
  readonly dbName: string
  readonly indexedDB: IndexedDbFactory | undefined
  readonly IDBKeyRange: KeyRangeLike | undefined
  readonly WebSocket: WebSocketConstructorLike | null
  readonly resolvers: ResolverConfig | undefined
  readonly autoConnect: boolean
  readonly reconnect: ReconnectPolicy
  readonly random: () => number
  readonly timers: Timers
  readonly now: () => number
  readonly tickMs: number
  readonly networkEvents: NetworkEventsLike | null
  readonly session: ReplicaEngineOptions['session']
  readonly maxDriftMs: number | undefined
  /** Web Locks and a channel maker when tabs share the replica; null otherwise. */
  readonly tabs: { readonly locks: LockManagerLike; readonly openChannel: OpenChannel } | null
}

const knownOptions: ReadonlySet<string> = new Set([
  'space',
  'url',
  'token',
  'storage',
  'dbName',
  'indexedDB',
  'IDBKeyRange',
  'WebSocket',
  'resolvers',
  'autoConnect',
  'reconnect',
  'random',
  'timers',
  'now',
  'tickMs',
  'networkEvents',
  'session',
  'maxDriftMs',
  'tabs',
])

const storeMethods = [
  'loadMeta',
  'initMeta',
  'getRecord',
  'listRecords',
  'allRecords',
  'commitLocal',
  'applyRemote',
  'readOutbox',
  'outboxSize',
  'dropOutbox',
  'close',
] as const

function invalid(message: string): ChorusError {
  return new ChorusError(ErrorCode.InvalidArgument, message)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

/**
 * Checks `createReplica`'s options before anything is opened, so a mistake costs no
 * database or socket. Every problem is an `invalid-argument` ChorusError naming the option.
 */
export function parseReplicaOptions(options: unknown): ReplicaConfig {
  try {
    return parseOptions(options)
  } catch (error) {
    if (error instanceof ChorusError) throw error
    // A getter or a Proxy trap of the options threw as they were read.
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `reading the options threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
      { cause: error },
    )
  }
}

function parseOptions(options: unknown): ReplicaConfig {
  if (!isObject(options)) throw invalid('createReplica needs an options object: createReplica({ space: … })')
  for (const key of Object.keys(options)) {
    if (!knownOptions.has(key))
      throw invalid(`unknown option ${JSON.stringify(key)}: use ${[...knownOptions].join(', ')}`)
  }
  const get = (key: string): unknown => (Object.hasOwn(options, key) ? options[key] : undefined)

  const spaceOption = get('space')
  if (typeof spaceOption !== 'string') throw invalid('option space must be a string naming the space to sync')
  const space = asSpaceId(spaceOption)

  const url = get('url')
  if (url !== undefined) checkUrl(url)

  const token = get('token')
  if (token !== undefined && typeof token !== 'string' && typeof token !== 'function')
    throw invalid('option token must be a string or a function that returns one')
  if (token === '') throw invalid('option token is empty: give the token, or leave the option out')

  const storage = get('storage') ?? 'indexeddb'
  if (typeof storage === 'string') {
    if (storage !== 'indexeddb' && storage !== 'memory') {
      throw invalid(
        `unknown storage ${JSON.stringify(storage)}: use 'indexeddb', 'memory' or a ReplicaStore (e.g. openSqliteReplicaStore from '@chorus/client/sqlite')`,
      )
    }
  } else if (!isObject(storage) || storeMethods.some((method) => typeof storage[method] !== 'function')) {
    throw invalid(
      `option storage must be 'indexeddb', 'memory' or a ReplicaStore (an object with ${storeMethods.join(', ')})`,
    )
  }

  const dbName = get('dbName')
  if (dbName !== undefined && (typeof dbName !== 'string' || dbName === ''))
    throw invalid('option dbName must be a non-empty string')

  const indexedDB = get('indexedDB')
  if (indexedDB !== undefined && !(isObject(indexedDB) && typeof indexedDB.open === 'function'))
    throw invalid('option indexedDB must be an IDBFactory (an object with open())')

  const keyRange = get('IDBKeyRange')
  if (
    keyRange !== undefined &&
    !(
      (typeof keyRange === 'function' || isObject(keyRange)) &&
      typeof (keyRange as { bound?: unknown }).bound === 'function'
    )
  )
    throw invalid('option IDBKeyRange must be the IDBKeyRange class of that IndexedDB (with bound())')

  const WebSocket = get('WebSocket') ?? (globalThis as { WebSocket?: unknown }).WebSocket
  if (get('WebSocket') !== undefined && typeof WebSocket !== 'function')
    throw invalid('option WebSocket must be a WebSocket constructor')
  if (url !== undefined && typeof WebSocket !== 'function') {
    throw invalid(
      "there is no WebSocket here to connect with: pass the WebSocket option (in Node 20: import { WebSocket } from 'ws')",
    )
  }

  const resolvers = get('resolvers')
  if (resolvers !== undefined && typeof resolvers !== 'function' && !isObject(resolvers))
    throw invalid(
      "option resolvers must map collections to 'lww', 'merge', 'manual' or a resolver, or be a function",
    )
  // Validates a map's entries now (an unknown resolver name is an invalid-argument).
  createResolverLookup(resolvers as ResolverConfig | undefined)

  const autoConnect = get('autoConnect') ?? true
  if (typeof autoConnect !== 'boolean') throw invalid('option autoConnect must be a boolean')

  const reconnectOption = get('reconnect') ?? {}
  if (!isObject(reconnectOption))
    throw invalid('option reconnect must be an object { baseMs?, maxMs?, silenceMs? }')
  for (const key of Object.keys(reconnectOption)) {
    if (key !== 'baseMs' && key !== 'maxMs' && key !== 'silenceMs')
      throw invalid(`unknown option reconnect.${key}: use baseMs, maxMs, silenceMs`)
  }
  const reconnect: ReconnectPolicy = {
    baseMs: delay(reconnectOption.baseMs ?? DEFAULT_RECONNECT.baseMs, 'reconnect.baseMs'),
    maxMs: delay(reconnectOption.maxMs ?? DEFAULT_RECONNECT.maxMs, 'reconnect.maxMs'),
    silenceMs: delay(reconnectOption.silenceMs ?? DEFAULT_RECONNECT.silenceMs, 'reconnect.silenceMs'),
  }
  if (reconnect.maxMs < reconnect.baseMs)
    throw invalid(
      `option reconnect.maxMs (${reconnect.maxMs}) is below reconnect.baseMs (${reconnect.baseMs}): the backoff starts at baseMs and grows up to maxMs`,
    )

  const random = get('random') ?? Math.random
  if (typeof random !== 'function')
    throw invalid('option random must be a function returning a number in [0, 1)')
  const now = get('now') ?? Date.now
  if (typeof now !== 'function') throw invalid('option now must be a function returning milliseconds')
  const timers = get('timers') ?? systemTimers
  if (
    !isObject(timers) ||
    !['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'].every(
      (name) => typeof timers[name] === 'function',
    )
  )
    throw invalid('option timers must have setTimeout, clearTimeout, setInterval and clearInterval')
  const tickMs = delay(get('tickMs') ?? 1000, 'tickMs')

  const networkOption = get('networkEvents')
  const networkEvents =
    networkOption === undefined
      ? typeof (globalThis as { addEventListener?: unknown }).addEventListener === 'function'
        ? (globalThis as unknown as NetworkEventsLike)
        : null
      : networkOption
  if (
    networkEvents !== null &&
    !(
      isObject(networkEvents) &&
      typeof networkEvents.addEventListener === 'function' &&
      typeof networkEvents.removeEventListener === 'function'
    )
  )
    throw invalid('option networkEvents must have addEventListener and removeEventListener, or be null')

  const session = get('session')
  if (session !== undefined) checkSession(session)
  const maxDriftMs = get('maxDriftMs')
  if (maxDriftMs !== undefined) positive(maxDriftMs, 'maxDriftMs')

  const tabsOption = get('tabs')
  if (tabsOption !== undefined && typeof tabsOption !== 'boolean')
    throw invalid('option tabs must be a boolean')
  const tabs = tabsOption === false || storage !== 'indexeddb' ? null : platformTabs()
  if (tabsOption === true && tabs === null) {
    throw invalid(
      'option tabs needs Web Locks (navigator.locks) and BroadcastChannel, which this platform lacks; leave tabs out to share only where possible',
    )
  }

  return {
    space,
    url: url === undefined ? null : (url as string),
    token: token as TokenOption | undefined,
    storage: storage as StorageChoice,
    dbName: (dbName as string | undefined) ?? `chorus:${space}`,
    indexedDB: indexedDB as IndexedDbFactory | undefined,
    IDBKeyRange: keyRange as KeyRangeLike | undefined,
    WebSocket: url === undefined ? null : (WebSocket as WebSocketConstructorLike),
    resolvers: resolvers as ResolverConfig | undefined,
    autoConnect,
    reconnect,
    random: random as () => number,
    timers: timers as unknown as Timers,
    now: now as () => number,
    tickMs,
    networkEvents: networkEvents as NetworkEventsLike | null,
    session: session as ReplicaEngineOptions['session'],
    maxDriftMs: maxDriftMs as number | undefined,
    tabs,
  }
}

/** The platform's Web Locks and BroadcastChannel, when it has both (browsers do). */
function platformTabs(): { locks: LockManagerLike; openChannel: OpenChannel } | null {
  const global = globalThis as {
    navigator?: { locks?: unknown }
    BroadcastChannel?: new (name: string) => ChannelLike
  }
  const locks = global.navigator?.locks
  const Channel = global.BroadcastChannel
  if (!isObject(locks) || typeof locks.request !== 'function' || typeof Channel !== 'function') return null
  return { locks: locks as unknown as LockManagerLike, openChannel: (name) => new Channel(name) }
}

function checkUrl(url: unknown): void {
  if (typeof url !== 'string') throw invalid(`option url must be a string such as 'wss://relay.example/sync'`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (error) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `option url ${JSON.stringify(url)} is not an absolute URL: use one such as 'wss://relay.example/sync'`,
      { cause: error },
    )
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw invalid(`option url must be a ws: or wss: URL, got ${JSON.stringify(url)}`)
  }
  // A WebSocket refuses a URL with a fragment at every attempt (a `#` in it, even an empty one).
  if (url.includes('#')) {
    throw invalid(`option url must not have a fragment (a # part), got ${JSON.stringify(url)}`)
  }
}

/**
 * Checks `session`: an object of whole positive numbers, `batchSize` at most the changes a
 * relay takes in one frame. A zero or negative window or batch would leave the replica unable
 * to upload anything, without an error.
 */
function checkSession(session: unknown): void {
  const fields = ['batchSize', 'window', 'retransmitMs'] as const
  if (!isObject(session))
    throw invalid('option session must be an object { batchSize?, window?, retransmitMs? }')
  for (const key of Object.keys(session)) {
    if (!(fields as readonly string[]).includes(key))
      throw invalid(`unknown option session.${key}: use ${fields.join(', ')}`)
  }
  for (const field of fields) {
    const value = session[field]
    if (value === undefined) continue
    if (!Number.isSafeInteger(value) || (value as number) < 1)
      throw invalid(`option session.${field} must be a whole number from 1, got ${String(value)}`)
    if (field === 'retransmitMs') delay(value, 'session.retransmitMs')
  }
  if (
    (session.batchSize as number | undefined) !== undefined &&
    (session.batchSize as number) > DEFAULT_LIMITS.maxBatch
  )
    throw invalid(
      `option session.batchSize must be at most ${DEFAULT_LIMITS.maxBatch}, the changes a relay takes in one frame`,
    )
}

function positive(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw invalid(`option ${name} must be a positive number of milliseconds`)
  return value
}

/**
 * The longest delay a timer takes: 2^31 − 1 ms (about 24.8 days). Browsers and Node run a
 * longer one after 1 ms, which would turn a long pause into a spin.
 */
export const MAX_DELAY_MS = 2_147_483_647

/** A timer's delay option: a positive number of milliseconds up to {@link MAX_DELAY_MS}. */
function delay(value: unknown, name: string): number {
  const ms = positive(value, name)
  if (ms > MAX_DELAY_MS)
    throw invalid(`option ${name} must be at most ${MAX_DELAY_MS} milliseconds (about 24.8 days), got ${ms}`)
  return ms
}
