import { randomUUID } from 'node:crypto'
import {
  type Authenticate,
  asSpaceId,
  ChorusError,
  createHubEngine,
  DEFAULT_HUB_SESSION,
  type DialOptions,
  ErrorCode,
  encodeMessage,
  errorMessage,
  type HubConnection,
  type HubPeer,
  isChorusError,
  isRelayId,
  isSpaceId,
  RELAY_ID_PREFIX,
  type ReplicaId,
  type SharedPresence,
  type SpaceId,
} from '@chorus/core'
import { exportRecords } from './export.js'
import { byteLength, createFrameBytes, textOf } from './frame-text.js'
import {
  CommitHistogram,
  type LinkStatus,
  type RelayMetrics,
  type ReplicaLag,
  zeroCounters,
} from './metrics.js'
import { type RateLimits, type TokenBuckets, takeTokens } from './rate-limit.js'
import {
  type CompactionOptions,
  DEFAULT_COMPACTION,
  DEFAULT_RELAY_LIMITS,
  type LinkSocket,
  type RelayLimits,
  type RelayLinkOptions,
  type RelayOptions,
  socketMaxPayload,
} from './relay-options.js'
import type { CompactResult, SpaceSummary, StoreEvent } from './relay-store.js'
import { CloseCode, type RelaySocket } from './socket.js'
import { refusalReason } from './token-auth.js'

/** The relay's health, as `/healthz` reports it. */
export interface RelayHealth {
  /**
   * `ok` while the store answers, its last commit of changes did not fail, and the relay is
   * not shutting down (and, on a shared store, hears of the other relays' appends).
   */
  readonly status: 'ok' | 'failing' | 'closing'
  /** Present, true, while the store's last commit of changes failed (a full disk): nothing is acknowledged. */
  readonly commitsFailing?: true
  readonly connections: number
  /** Spaces the store holds; null when the store did not answer. */
  readonly spaces: number | null
  readonly uptimeSeconds: number
  /** For a store shared with other relays: whether this relay hears of their appends (`failing` while not). */
  readonly listening?: boolean
  /**
   * With links to other relays: how many are up, of how many. A link that is down does not
   * make the relay `failing`: its clients sync through it all the same, and the other relay
   * gets their changes once the link is back.
   */
  readonly links?: { readonly up: number; readonly total: number }
}

/** A running relay. */
export interface Relay {
  metrics(): Promise<RelayMetrics>
  health(): Promise<RelayHealth>
  /** Compacts every space now (it also runs every `compaction.intervalMs`). */
  compact(): Promise<Map<SpaceId, CompactResult>>
  /**
   * Deletes a space for good (`RelayStore.deleteSpace`): its data is gone, every connection
   * on it is closed with `space-deleted`, and so is every later one that names it (on every
   * relay sharing the store). Resolves true when it deleted the space, false when the space
   * was deleted already.
   */
  deleteSpace(space: string): Promise<boolean>
  /** Every space the store holds changes of, with its sizes (`RelayStore.describeSpaces`). */
  describeSpaces(): Promise<SpaceSummary[]>
  /**
   * The records of `space` as lines of JSON (see `ExportedRecord`), read from the store a
   * page at a time; none for a space that holds nothing. Rejects with `space-deleted` for a
   * deleted space.
   */
  exportSpace(space: SpaceId): AsyncGenerator<string>
  /**
   * The spaces another relay linking every space may take from this one, for its token: the
   * spaces the store holds that the token grants, to a token that claims `relay` (checked by
   * the relay's `authenticate` hook). Refused on an open relay (no hook), where knowing a
   * space's name is what it takes to read it.
   */
  listSpacesFor(token: string | undefined): Promise<SpaceListing>
  /** Resolves when every frame received so far has been handled and its appends settled. */
  idle(): Promise<void>
  /**
   * Stops accepting connections and frames, lets pending appends commit (and their acks go
   * out), closes every socket with 1001, and writes buffered acknowledgements. It closes
   * neither the server nor the store: their owner does.
   */
  close(): Promise<void>
}

/** What {@link Relay.listSpacesFor} answers: the spaces, or why the token may not list them. */
export type SpaceListing =
  | { readonly ok: true; readonly spaces: readonly SpaceId[] }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string }

/** The replica id a token is checked under when it asks for the spaces (no session has one). */
export const LISTING_REPLICA_ID = `${RELAY_ID_PREFIX}listing` as ReplicaId

/** Where a link's other relay lists its spaces: the link's URL over HTTP(S), with `/spaces` after its path. */
export function spacesUrlOf(linkUrl: string): string {
  const url = new URL(linkUrl)
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/spaces`
  url.search = ''
  url.hash = ''
  return url.toString()
}

/** What the relay keeps per connection (see `Client` in {@link createRelay}). */
interface ClientState extends TokenBuckets {
  readonly socket: RelaySocket
  readonly connection: HubConnection
  strikes: number
  alive: boolean
  /** Bytes of frames handed to the socket since it opened. */
  queued: number
  /** How many of those the socket had written out when its latest ping went (see the heartbeat). */
  writtenAtPing: number
  /** How many it had written out when the ping its latest pong answers went: read by then. */
  writtenAtPong: number
  /** How many it had written out at the heartbeat before, and when it last wrote out more. */
  writtenAtCheck: number
  writingAt: number
  /**
   * The bytes the connection's TCP socket had read when its latest ping went, and the socket
   * (null when the server gave none with `bytesRead`).
   */
  readAtPing: number
  readonly tcp: TcpCounts | null
  open: boolean
  /** Set while the relay waits for the socket to close (shutting down); called once it has. */
  onClosed: (() => void) | null
  /** True for a connection linking another relay (either way): no rate limit applies. */
  relay: boolean
}

/** A link this relay dials (see `RelayOptions.links`), and where it is. */
interface Link {
  readonly url: string
  /** The spaces it keeps: those to link, less any deleted on either relay. */
  spaces: readonly SpaceId[]
  readonly token?: string
  /** For one of the connections of a link of every space: its link (see {@link LinkGroup}). */
  readonly group: LinkGroup | null
  /** Attempts since it was last up (for the backoff). */
  attempts: number
  /** The socket dialing or connected, if any. */
  socket: LinkSocket | null
  /** Whether its session got past both hellos. */
  up: boolean
  retry: NodeJS.Timeout | null
  /**
   * The reason of the last failure reported (less what differs between refusals of one
   * token, see `refusalReason`), so that one repeated at every retry is reported once.
   */
  lastFailure: string | null
}

/**
 * A link of every space (`spaces: '*'`): its spaces go over connections of its own (`Link`s
 * with this group), up to `maxSpaces` each, added as the relay holds or serves new ones.
 */
interface LinkGroup {
  readonly url: string
  readonly token?: string
  /** Spaces deleted on either relay: not linked again. */
  readonly dropped: Set<string>
  /** As `Link.lastFailure`, for listing the other relay's spaces. */
  listFailure: string | null
  /** The etag of the other relay's last listing, sent back so that an unchanged one comes as 304 without a body. */
  listTag: string | null
  /** The other relay's last listing was read (a 304 counts): it is reachable and lists for this link. */
  listed: boolean
}

/** Checks a link's URL: ws:// or wss://. */
function checkLinkUrl(url: string): void {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ChorusError(ErrorCode.InvalidArgument, `link URL ${JSON.stringify(url)} is not a URL`)
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new ChorusError(ErrorCode.InvalidArgument, `link URL ${url} must be ws:// or wss://`)
  }
}

/** A link's state before its first dial. */
function newLink(
  url: string,
  spaces: readonly SpaceId[],
  token: string | undefined,
  group: LinkGroup | null,
): Link {
  return {
    url,
    spaces,
    ...(token === undefined ? {} : { token }),
    group,
    attempts: 0,
    socket: null,
    up: false,
    retry: null,
    lastFailure: null,
  }
}

/**
 * Checks the links' options: each with a URL and one to `maxSpaces` spaces (one hello's
 * worth), or `'*'`; a link of every space is a {@link LinkGroup}, with no connection yet.
 */
function checkLinks(
  links: readonly RelayLinkOptions[],
  maxSpaces: number,
): { readonly links: Link[]; readonly groups: LinkGroup[] } {
  const fixed: Link[] = []
  const groups: LinkGroup[] = []
  for (const link of links) {
    checkLinkUrl(link.url)
    if (link.spaces === '*') {
      groups.push({
        url: link.url,
        ...(link.token === undefined ? {} : { token: link.token }),
        dropped: new Set(),
        listFailure: null,
        listTag: null,
        listed: false,
      })
      continue
    }
    fixed.push(checkFixedLink(link, link.spaces, maxSpaces))
  }
  return { links: fixed, groups }
}

/** A link of the spaces it names. */
function checkFixedLink(link: RelayLinkOptions, named: readonly string[], maxSpaces: number): Link {
  if (!Array.isArray(named) || named.length === 0 || !named.every(isSpaceId)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `link to ${link.url} needs spaces: space names, at least one (or '*' for every space)`,
    )
  }
  const spaces = [...new Set(named)] as SpaceId[]
  if (spaces.length > maxSpaces) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `link to ${link.url} names ${spaces.length} spaces; one link carries at most ${maxSpaces} (the spaces of one hello): split them over several links, or link every space ('*')`,
    )
  }
  return newLink(link.url, spaces, link.token, null)
}

const OPEN = 1
const CLOSING = 2

/** How long a link waits for the other relay to list its spaces. */
const LIST_TIMEOUT_MS = 10_000

function defaultOnError(error: ChorusError): void {
  console.error(`chorus-relay: ${error.code}: ${error.message}`, error.cause ?? '')
}

function defaultOnLinkUp(url: string): void {
  console.error(`chorus-relay: link to ${url} is up again`)
}

/**
 * Runs a Chorus relay over a WebSocket server and a `RelayStore`.
 *
 * Each connection feeds core's hub engine, which authenticates the `hello`, binds the
 * connection to its replica id, stores changes and acknowledges them only after the store
 * committed, and streams each space's log (or a snapshot) to its replicas. Around it the
 * relay enforces frame size and a per-connection rate limit, keeps acknowledged positions
 * for compaction, ticks the engine, pings idle sockets, and counts what `/metrics` shows.
 * No listener lets an exception escape: a bad peer is answered or dropped, never felt by others.
 */
export function createRelay(options: RelayOptions): Relay {
  const { server, store } = options
  const now = options.now ?? Date.now
  const limits: RelayLimits = { ...DEFAULT_RELAY_LIMITS, ...options.limits }
  const rateLimits: RateLimits = { ...limits, byteBurst: Math.max(limits.byteBurst, limits.maxFrameBytes) }
  const compaction: CompactionOptions = { ...DEFAULT_COMPACTION, ...options.compaction }
  const onError = options.onError ?? defaultOnError
  const onLinkUp = options.onLinkUp ?? defaultOnLinkUp
  const { links, groups } = checkLinks(options.links ?? [], limits.maxSpaces)
  const LinkWebSocket = options.WebSocket
  if ((links.length > 0 || groups.length > 0) && LinkWebSocket === undefined) {
    throw new ChorusError(ErrorCode.InvalidArgument, 'links need a WebSocket constructor (WebSocket from ws)')
  }
  const backoff = options.linkBackoffMs ?? { min: 500, max: 30_000 }
  const linkedSpaces = new Set<string>(links.flatMap((link) => link.spaces))
  /** The spaces links of every space have been given (see `growGroups`). */
  const offered = new Set<string>()
  const startedAt = now()
  /** Every open connection, by its socket: the socket listeners are shared and look it up. */
  const clients = new Map<RelaySocket, Client>()
  const counters = zeroCounters()
  /** Connections refused and closed, by the code given (`sessionsRefused`). */
  const refusals = new Map<string, number>()
  const commits = new CommitHistogram()
  /**
   * The kinds of commit to the store whose latest try failed — of changes, or of the relay's own
   * work (a compaction, the replicas' positions): a full disk, say, or the database deleted
   * under it. A kind leaves once a commit of it succeeds (the replicas' positions: the next
   * write of the buffered ones, at each tick); a commit of changes or a compaction that
   * succeeds clears every kind (the store commits again).
   */
  const commitsFailing = new Set<'changes' | 'compaction' | 'positions'>()
  /** A commit of the relay's own work the store refused marks the relay failing (see above). */
  function noteRefusedCommit(kind: 'compaction' | 'positions', error: unknown): void {
    if (isChorusError(error, ErrorCode.StorageFailed)) commitsFailing.add(kind)
  }
  let closing = false
  let closePromise: Promise<void> | null = null

  function report(error: unknown, what = 'the relay failed'): void {
    counters.relayErrors++
    const wrapped = isChorusError(error) ? error : new ChorusError(ErrorCode.Internal, what, { cause: error })
    try {
      onError(wrapped)
    } catch (hookError) {
      console.error('chorus-relay: the onError hook threw', hookError)
    }
  }

  /** Runs a listener's body; whatever it throws is reported, never left to crash the process. */
  function guard(what: string, body: () => void): void {
    try {
      body()
    } catch (error) {
      report(error, what)
    }
  }

  const hookAuth = options.authenticate
  const authenticate: Authenticate | undefined =
    hookAuth === undefined
      ? undefined
      : async (token, replicaId) => {
          const result = await hookAuth(token, replicaId)
          if (!result.ok || result.subject === undefined) return result
          const subject = result.subject
          // Bound once the hub has found the hello's spaces usable: a hello refused anyway (a
          // deleted space) leaves no binding behind.
          return {
            ...result,
            confirm: async () =>
              (await store.claimReplica(replicaId, subject))
                ? undefined
                : {
                    ok: false,
                    code: ErrorCode.Forbidden,
                    message: `replica id ${replicaId} belongs to another user: use a replica id of your own (a client opens a replica of its own for each user: another database or file)`,
                  },
          }
        }

  const hub = createHubEngine({
    store,
    now,
    limits,
    ...(authenticate === undefined ? {} : { authenticate }),
    // Over a WebSocket, frames arrive whole and in order or the connection closes: with a
    // replica that offers `resend`, nothing is sent again for silence alone.
    session: { reliable: true, ...options.session },
    onStored: (space, _replica, appended, recovered) => {
      counters.changesStored += appended
      if (recovered) counters.changesRecovered += appended
      // A space written for the first time since start: a link of every space takes it.
      if (groups.length > 0 && !offered.has(space)) growGroups([space])
    },
    onCommitted: (_space, _appends, ms) => {
      commits.observe(ms)
      commitsFailing.clear()
    },
    onCommitFailed: () => {
      commitsFailing.add('changes')
    },
    elapsed: () => performance.now(),
    onAcked: (space, replica, position) => {
      store.noteAck(space, replica, position, now()).catch((error: unknown) => {
        // A replica's position not stored: the relay is failing even where no client writes.
        noteRefusedCommit('positions', error)
        report(error)
      })
    },
    onError: (error) => report(error),
    // After the frames already read: appends from many connections share one commit.
    defer: (task) => setImmediate(task),
    // Unique per run: a restarted relay's changes are numbered afresh (see `PresenceMessage.seq`).
    presenceOrigin: randomUUID(),
    ...(store.publishPresence === undefined
      ? {}
      : { onPresence: (entry: SharedPresence) => sharePresence(entry) }),
  })

  // Presence between relays sharing a store: each tells the others of its connections'
  // changes at once, of all of them every `presenceRefreshMs`, and of what its links bring;
  // an entry not heard again within three of those (its relay stopped, or its clearing was
  // lost) is cleared by the hub at the next tick (`expirePresence`, every second), as presence
  // over links is. Entries carry their origin relay and its seq, so a relay
  // passes them on over its own links.
  const presenceRefreshMs = options.presenceRefreshMs ?? 5_000
  const presenceOut: SharedPresence[] = []
  function sharePresence(entry: SharedPresence): void {
    if (closing) return
    presenceOut.push(entry)
    if (presenceOut.length === 1) setImmediate(publishPresence)
  }
  function publishPresence(): void {
    const entries = presenceOut.splice(0)
    if (entries.length === 0 || store.publishPresence === undefined) return
    store
      .publishPresence(entries)
      .catch((error: unknown) => report(error, 'telling other relays of presence failed'))
  }
  // A store shared with other relays tells this one what they stored: its connections on
  // those spaces stream it from the store.
  const unwatch = store.watch?.((event) => {
    otherRelay(event).catch((error: unknown) => report(error))
  })
  async function otherRelay(event: StoreEvent): Promise<void> {
    switch (event.type) {
      case 'appended':
        counters.remoteAppends++
        // A space written through another relay sharing the store: a link of every space takes
        // it now, not at this relay's next compaction (the one listing of the store it makes).
        if (groups.length > 0 && !offered.has(event.space)) growGroups([event.space])
        await hub.advanced(event.space, event.head, event.received, event.entries)
        // Without the counters (too many for one notice), read them for a space in use: a
        // replica that connects here would otherwise take its changes above a lagging counter
        // for lost, and send them all again from its records.
        if (event.received === undefined && hub.spacesInUse().includes(event.space))
          await reloadSpace(event.space)
        return
      case 'collected':
        await hub.collected(event.space, event.mark)
        return
      case 'deleted':
        await hub.spaceDeleted(event.space)
        return
      case 'resync':
        for (const space of hub.spacesInUse()) await reloadSpace(space)
        // The news of spaces written meanwhile is gone with the rest: a link of every space
        // lists the store for them (once per lost connection, not per notice).
        await storedSpaces()
        return
      case 'presence':
        for (const entry of event.entries) hub.remotePresence(event.from, entry)
        return
    }
  }
  /** For a shared store: whether this relay hears the others now; undefined for a store of its own. */
  function listening(): boolean | undefined {
    return unwatch === undefined ? undefined : store.listening?.() !== false
  }
  async function reloadSpace(space: SpaceId): Promise<void> {
    const meta = await store.loadSpace(space)
    // Deleted by another relay while this one did not hear it.
    if (meta.deleted === true) return hub.spaceDeleted(space)
    if (meta.collected !== undefined) await hub.collected(space, meta.collected)
    await hub.advanced(space, meta.head, meta.received)
  }

  // The hub hands the same frame text to every connection of a space in a row (fan-out):
  // encode it to UTF-8 once, not once per connection.
  const frameBytes = createFrameBytes()
  // One options object and one callback for every frame sent, not a pair per frame.
  const textFrame = { binary: false } as const
  function onSent(error?: Error | null): void {
    if (error !== undefined && error !== null) counters.socketErrors++
  }
  /** Bytes a socket may hold unsent before its session stops reading more to send (`sendBuffer`). */
  const sendBuffer = options.session?.sendBuffer ?? DEFAULT_HUB_SESSION.sendBuffer ?? Number.POSITIVE_INFINITY
  function send(client: ClientState, frame: string): void {
    const socket = client.socket
    if (socket.readyState !== OPEN) return
    const bytes = frameBytes(frame)
    counters.framesOut++
    counters.bytesOut += bytes.byteLength
    client.queued += bytes.byteLength
    // A frame that takes the socket past the bound, after which its session reads nothing more
    // to send, says when it is written out: then the socket may have room again (a closure
    // only on this rare path).
    if (socket.bufferedAmount + bytes.byteLength < sendBuffer) socket.send(bytes, textFrame, onSent)
    else socket.send(bytes, textFrame, (error) => drained(client, error))
  }

  /** A socket over `sendBuffer` wrote out what it held when it went over: its session goes on if it has room. */
  function drained(client: ClientState, error?: Error | null): void {
    onSent(error)
    if (!client.open || client.socket.bufferedAmount >= sendBuffer) return
    client.connection.writable().catch((failure: unknown) => report(failure, 'resuming a session failed'))
  }

  function hangUp(client: ClientState, code: number, reason: string): void {
    if (!client.open) return
    client.open = false
    closeSocket(client.socket, code, reason)
  }

  /**
   * Closes `socket` and drops it if its peer has not answered the close within
   * `closeGraceMs`: a peer that ignores closes would otherwise keep it (and its slot under
   * `maxConnections`) until the WebSocket library's own 30 s.
   */
  function closeSocket(socket: RelaySocket, code: number, reason: string): void {
    socket.close(code, reason)
    setTimeout(() => socket.terminate(), limits.closeGraceMs).unref()
  }

  function refused(client: ClientState, why: ErrorCode | undefined): void {
    if (client.open) {
      const code = why ?? 'refused'
      refusals.set(code, (refusals.get(code) ?? 0) + 1)
    }
    hangUp(
      client,
      why === ErrorCode.UnsupportedProtocol ? CloseCode.ProtocolError : CloseCode.PolicyViolation,
      why ?? 'refused',
    )
  }

  function receive(client: ClientState, data: unknown, isBinary: boolean): void {
    if (closing || !client.open) return
    const size = byteLength(data)
    counters.framesIn++
    counters.bytesIn += size
    if (size > limits.maxFrameBytes) {
      counters.framesRefused++
      // Named in the refusal as in our hello: a replica that sent this before our hello told
      // it sizes its uploads to it after the reconnect, instead of sending it again for good.
      const why = `frames are limited to ${limits.maxFrameBytes} bytes`
      send(
        client,
        encodeMessage({ ...errorMessage(ErrorCode.FrameTooLarge, why), maxFrame: limits.maxFrameBytes }),
      )
      hangUp(client, CloseCode.MessageTooBig, why)
      return
    }
    // A linked relay catching up sends as fast as it reads: its frames are not rate limited.
    if (!client.relay) client.relay = client.connection.session().relay
    if (!client.relay && !takeTokens(client, rateLimits, size, now())) {
      counters.rateLimited++
      client.strikes++
      if (client.strikes === 1) {
        send(
          client,
          encodeMessage(
            errorMessage(
              ErrorCode.RateLimited,
              'too many frames or bytes: frames are dropped until you slow down',
            ),
          ),
        )
      }
      if (client.strikes > limits.maxStrikes) hangUp(client, CloseCode.PolicyViolation, ErrorCode.RateLimited)
      return
    }
    client.strikes = 0
    const text = textOf(data, isBinary)
    if (text === null) {
      counters.framesRefused++
      send(
        client,
        encodeMessage(errorMessage(ErrorCode.MalformedFrame, 'a binary frame must hold UTF-8 JSON text')),
      )
      return
    }
    deliver(client, text)
  }

  /** Hands a frame to the engine, which authenticates the hello before it loads anything. */
  function deliver(client: ClientState, text: string): void {
    client.connection.receive(text).catch((error: unknown) => report(error, 'handling a frame failed'))
  }

  /**
   * One connection: the socket, its hub connection, and its limits. It is the hub's peer
   * itself, and the socket's listeners are shared by all connections (they find the client
   * by the socket they are called on), so an idle connection holds no closures of its own.
   */
  class Client implements ClientState, HubPeer {
    readonly socket: RelaySocket
    readonly connection: HubConnection
    frames: number
    bytes: number
    updatedAt: number
    strikes = 0
    alive = true
    queued = 0
    writtenAtPing = 0
    writtenAtPong = 0
    writtenAtCheck = 0
    writingAt = 0
    readAtPing = 0
    readonly tcp: TcpCounts | null
    open = true
    relay = false
    /**
     * While its hello is not answered: when it connected (see `helloTimeoutMs`). 0 once its
     * session is ready (set as the hello answer goes out), and for a link this relay dialed.
     */
    openedAt: number
    onClosed: (() => void) | null = null

    constructor(socket: RelaySocket, dial?: DialOptions, tcp: TcpCounts | null = null) {
      this.socket = socket
      this.tcp = tcp
      this.frames = rateLimits.frameBurst
      this.bytes = rateLimits.byteBurst
      this.updatedAt = now()
      this.openedAt = dial === undefined && limits.helloTimeoutMs > 0 ? this.updatedAt : 0
      // The hub calls `send` and `close` only after `accept` (or `dial`) returns.
      this.connection = dial === undefined ? hub.accept(this) : hub.dial(this, dial)
      this.relay = dial !== undefined
    }

    send(frame: string): void {
      // The hub answers a hello once the session is ready: from then on no timeout applies.
      if (this.openedAt !== 0 && this.connection.session().phase === 'ready') this.openedAt = 0
      guard('sending a frame', () => send(this, frame))
    }

    close(code?: ErrorCode): void {
      guard('closing a connection', () => refused(this, code))
    }

    backlog(): number {
      return this.socket.bufferedAmount
    }
  }

  /** The client of the socket a listener was called on (`ws` calls listeners on the socket). */
  function clientOf(socket: RelaySocket, event: string): Client | undefined {
    const client = clients.get(socket)
    if (client === undefined && event !== 'close') {
      report(new ChorusError(ErrorCode.Internal, `a socket event (${event}) for no known connection`))
    }
    return client
  }

  function onSocketError(this: RelaySocket): void {
    counters.socketErrors++
    const client = clients.get(this)
    if (client !== undefined) client.open = false
    guard('handling a socket error', () => this.terminate())
  }

  function onSocketClose(this: RelaySocket): void {
    const client = clientOf(this, 'close')
    if (client === undefined) return
    guard('handling a closed socket', () => {
      client.open = false
      clients.delete(this)
      release(this)
      client.onClosed?.()
      client.connection.closed().catch((error: unknown) => report(error, 'closing a session failed'))
    })
  }

  function onSocketMessage(this: RelaySocket, data: unknown, isBinary: boolean): void {
    const client = clientOf(this, 'message')
    if (client !== undefined) guard('handling a frame', () => receive(client, data, isBinary))
  }

  function onSocketPong(this: RelaySocket): void {
    const client = clients.get(this)
    if (client === undefined) return
    client.alive = true
    client.writtenAtPong = client.writtenAtPing
  }

  function onClosingSocketError(): void {
    counters.socketErrors++
  }

  /** Connections open per remote address (see `RelayLimits.maxConnectionsPerAddress`). */
  const perAddress = new Map<string, number>()
  /** The remote address each counted connection holds a place of. */
  const addressOf = new WeakMap<RelaySocket, string>()

  /** Gives back the place `socket` held in its address's count. */
  function release(socket: RelaySocket): void {
    const address = addressOf.get(socket)
    if (address === undefined) return
    addressOf.delete(socket)
    const left = (perAddress.get(address) ?? 1) - 1
    if (left > 0) perAddress.set(address, left)
    else perAddress.delete(address)
  }

  function accept(socket: RelaySocket, request: unknown): void {
    // Read only when a limit needs it: asking a socket its address makes Node keep an object
    // of its peer's name on it, about 140 B of every idle connection.
    const address = Number.isFinite(limits.maxConnectionsPerAddress) ? remoteAddress(request) : undefined
    if (closing) {
      socket.on('error', onClosingSocketError)
      closeSocket(socket, CloseCode.GoingAway, 'the relay is shutting down')
      return
    }
    if (clients.size >= limits.maxConnections) {
      counters.connectionsRefused++
      socket.on('error', onClosingSocketError)
      closeSocket(
        socket,
        CloseCode.TryAgainLater,
        `the relay is at its limit of ${limits.maxConnections} connections: try again later`,
      )
      return
    }
    if (address !== undefined && Number.isFinite(limits.maxConnectionsPerAddress)) {
      const open = perAddress.get(address) ?? 0
      if (open >= limits.maxConnectionsPerAddress) {
        counters.connectionsRefused++
        socket.on('error', onClosingSocketError)
        closeSocket(
          socket,
          CloseCode.TryAgainLater,
          `this address has ${open} connections open, the relay's limit for one address: try again later`,
        )
        return
      }
      perAddress.set(address, open + 1)
      addressOf.set(socket, address)
    }
    clients.set(socket, new Client(socket, undefined, tcpOf(request)))
    socket.on('error', onSocketError)
    socket.on('close', onSocketClose)
    socket.on('message', onSocketMessage)
    socket.on('pong', onSocketPong)
  }

  server.on('connection', (socket, request) => guard('accepting a connection', () => accept(socket, request)))

  /**
   * Reports a link's failure, unless it is the one reported last for it. A refusal for the
   * token's times names the other relay's clock, which reads later at every retry, and an
   * expired token's is worded otherwise when it ends a session than when it refuses a hello:
   * the same reason all the same, reported (as first worded) once.
   */
  function linkFailed(link: Link, why: string): void {
    const reason = refusalReason(why)
    if (link.lastFailure === reason) return
    link.lastFailure = reason
    report(new ChorusError(ErrorCode.LinkFailed, `link to ${link.url}: ${why}`))
  }

  /** Dials a link; once open, its session runs as any connection's, its hello sent first. */
  function dialLink(link: Link): void {
    link.retry = null
    if (closing || LinkWebSocket === undefined) return
    let socket: LinkSocket
    try {
      socket = new LinkWebSocket(link.url, { maxPayload: socketMaxPayload(limits) })
    } catch (error) {
      linkFailed(link, error instanceof Error ? error.message : String(error))
      retryLink(link)
      return
    }
    link.socket = socket
    socket.on('error', (error: Error) => {
      if (!clients.has(socket)) linkFailed(link, `cannot connect: ${error.message}`)
    })
    socket.on('open', () =>
      guard('opening a link', () => {
        if (closing) {
          socket.close(CloseCode.GoingAway, 'the relay is shutting down')
          return
        }
        const client = new Client(socket, {
          spaces: link.spaces,
          ...(link.token === undefined ? {} : { token: link.token }),
          onError: (error, space) => {
            if (error.code === ErrorCode.SpaceDeleted && space !== undefined && link.spaces.includes(space)) {
              dropLinkSpace(link, space)
              return
            }
            linkFailed(link, `the other relay said ${error.code}: ${error.message}`)
          },
        })
        clients.set(socket, client)
        socket.on('error', onSocketError)
        socket.on('close', onSocketClose)
        socket.on('message', onSocketMessage)
        socket.on('pong', onSocketPong)
        // Up once both hellos are answered: its backoff starts afresh (checked at each frame
        // until then, since a link cut soon after would never be seen up at a tick).
        const linked = (): void => {
          if (client.connection.session().phase !== 'ready') return
          socket.off('message', linked)
          linkStatus()
        }
        socket.on('message', linked)
      }),
    )
    socket.on('close', (code) =>
      guard('closing a link', () => {
        if (link.socket === socket) link.socket = null
        // A frame over one relay's limit (a change larger than it, sent again at every dial):
        // the space's later changes that way wait behind it.
        if (code === CloseCode.MessageTooBig)
          linkFailed(
            link,
            `closed on a frame over a relay's frame limit (this relay's is ${limits.maxFrameBytes} bytes): a change larger than the smaller limit of the two cannot cross, and the changes after it in its space wait behind it; give both relays the same --max-frame-bytes`,
          )
        retryLink(link)
      }),
    )
  }

  /**
   * A space to link was deleted, here or on the other relay: the link keeps the others (it
   * stops when none is left). Deleting is for good on each relay, and not carried over a link.
   */
  function dropLinkSpace(link: Link, space: SpaceId): void {
    link.spaces = link.spaces.filter((kept) => kept !== space)
    link.group?.dropped.add(space)
    const rest = link.spaces.length === 0 ? 'no space is left to link: the link stops' : 'it links the others'
    report(new ChorusError(ErrorCode.LinkFailed, `link to ${link.url}: space ${space} is deleted; ${rest}`))
  }

  /** Dials a link again after a backoff that doubles with each attempt since it was last up. */
  function retryLink(link: Link): void {
    if (closing || link.retry !== null || link.spaces.length === 0) return
    link.up = false
    const delay = Math.min(backoff.max, backoff.min * 2 ** Math.min(link.attempts, 20))
    link.attempts++
    link.retry = setTimeout(() => dialLink(link), delay * (0.5 + Math.random() / 2))
    link.retry.unref()
  }

  /** Whether a link's session is up now; one that came up starts its backoff afresh. */
  function isUp(link: Link): boolean {
    const client = link.socket === null ? undefined : clients.get(link.socket)
    const up = client?.open === true && client.connection.session().phase === 'ready'
    if (up && !link.up) {
      link.attempts = 0
      if (link.lastFailure !== null) {
        link.lastFailure = null
        try {
          onLinkUp(link.url)
        } catch (hookError) {
          report(hookError, 'the onLinkUp hook threw')
        }
      }
    }
    link.up = up
    return up
  }

  /**
   * Each link's state: a link of named spaces is up with its connection; a link of every
   * space, when each of its connections is up, or, with no space to link yet (or none left),
   * when the other relay's last listing was read: reachable, with nothing to carry.
   */
  function linkStatus(): LinkStatus[] {
    const named = links
      .filter((link) => link.group === null)
      .map((link) => ({ url: link.url, up: isUp(link) ? 1 : 0 }))
    const every = groups.map((group) => {
      const parts = links.filter((link) => link.group === group && link.spaces.length > 0)
      const up = parts.length > 0 ? parts.map(isUp).every(Boolean) : group.listed
      return { url: group.url, up: up ? 1 : 0 }
    })
    return [...named, ...every]
  }

  /**
   * Links of every space take `spaces` they do not link yet (nor dropped): onto a connection
   * with room, which dials again with them, or onto a new one.
   */
  function growGroups(spaces: Iterable<SpaceId>): void {
    if (closing || groups.length === 0) return
    const fresh = [...spaces].filter((space) => !offered.has(space))
    if (fresh.length === 0) return
    for (const space of fresh) offered.add(space)
    for (const group of groups) {
      const parts = links.filter((link) => link.group === group)
      const linked = new Set(parts.flatMap((link) => link.spaces))
      const grown = new Set<Link>()
      for (const space of fresh) {
        if (linked.has(space) || group.dropped.has(space)) continue
        linked.add(space)
        let part = parts.find((link) => link.spaces.length < limits.maxSpaces)
        if (part === undefined) {
          part = newLink(group.url, [], group.token, group)
          parts.push(part)
          links.push(part)
        }
        part.spaces = [...part.spaces, space]
        grown.add(part)
      }
      for (const part of grown) {
        const client = part.socket === null ? undefined : clients.get(part.socket)
        if (client !== undefined) {
          // Its session names the spaces it had: it hangs up and dials again, at once.
          part.attempts = 0
          hangUp(client, CloseCode.GoingAway, 'linking more spaces')
        } else if (part.socket === null && part.retry === null) dialLink(part)
      }
    }
  }

  /** The spaces a link of every space takes: those the store holds (and, each tick, those in use). */
  async function storedSpaces(): Promise<void> {
    if (groups.length === 0) return
    growGroups(await store.listSpaces())
  }

  /** Reports a failure to list a link's other relay's spaces, unless it is the one reported last. */
  function listingFailed(group: LinkGroup, why: string): void {
    group.listed = false
    const reason = refusalReason(why)
    if (group.listFailure === reason) return
    group.listFailure = reason
    report(new ChorusError(ErrorCode.LinkFailed, `link to ${group.url}: listing its spaces failed: ${why}`))
  }

  /**
   * Asks the other relay of each link of every space which spaces it holds (see
   * `Relay.listSpacesFor`), and links those: so a space only the other relay holds comes
   * before any client here opens it.
   */
  async function listedSpaces(): Promise<void> {
    await Promise.all(
      groups.map(async (group) => {
        const spaces = await fetchSpaceList(group)
        if (spaces !== null && !closing) growGroups(spaces)
      }),
    )
  }

  async function fetchSpaceList(group: LinkGroup): Promise<SpaceId[] | null> {
    let response: Response
    let body: string
    try {
      const headers: Record<string, string> = {}
      if (group.token !== undefined) headers.authorization = `Bearer ${group.token}`
      if (group.listTag !== null) headers['if-none-match'] = group.listTag
      response = await fetch(spacesUrlOf(group.url), {
        headers,
        signal: AbortSignal.timeout(LIST_TIMEOUT_MS),
      })
      body = await response.text()
    } catch (error) {
      listingFailed(group, `cannot reach it: ${error instanceof Error ? error.message : String(error)}`)
      return null
    }
    // Nothing changed since the last listing, whose spaces are linked already.
    if (response.status === 304 && group.listTag !== null) {
      group.listFailure = null
      group.listed = true
      return null
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch {
      parsed = undefined
    }
    const answer = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {}
    if (!response.ok) {
      const said = typeof answer.error === 'string' ? answer.error : body.slice(0, 200).trim()
      listingFailed(group, `it answered ${response.status}: ${said}`)
      return null
    }
    const spaces = answer.spaces
    if (!Array.isArray(spaces) || !spaces.every(isSpaceId)) {
      listingFailed(group, 'its answer is not a list of space names')
      return null
    }
    group.listFailure = null
    group.listed = true
    group.listTag = response.headers.get('etag')
    return spaces
  }

  for (const link of links) dialLink(link)
  void storedSpaces().catch((error: unknown) => report(error, 'listing the spaces to link failed'))
  const linkListMs = options.linkListMs ?? 10_000
  if (linkListMs > 0 && groups.length > 0) void listedSpaces()

  const timers: NodeJS.Timeout[] = []
  function every(ms: number, task: () => Promise<void>): void {
    if (!(ms > 0)) return
    let running = false
    const timer = setInterval(() => {
      if (running) return
      running = true
      task()
        .catch((error: unknown) => report(error))
        .finally(() => {
          running = false
        })
    }, ms)
    timer.unref()
    timers.push(timer)
  }

  every(options.tickMs ?? 1000, async () => {
    // A client that closed its socket (the relay closes only those it no longer counts open)
    // wants nothing more on it: what is still queued for it, here and in the system's socket
    // buffer, would cross its link first, then our close, while its next connection starts (a
    // browser cannot drop a socket it closed: it waits for our close). Dropped instead.
    for (const client of clients.values()) {
      if (client.open && !closing && client.socket.readyState === CLOSING) {
        client.open = false
        guard('dropping a closed socket', () => client.socket.terminate())
      }
    }
    growGroups(hub.spacesInUse())
    linkStatus()
    // Presence from other relays not heard again within three refreshes goes now, not at the
    // next refresh (up to one more period later).
    hub.expirePresence(3 * presenceRefreshMs)
    await hub.tick()
    // Positions a failed write left buffered are written here: once that succeeds, so do they.
    await store.flushAcks().then(
      () => commitsFailing.delete('positions'),
      (error: unknown) => {
        noteRefusedCommit('positions', error)
        throw error
      },
    )
  })
  if (groups.length > 0) every(linkListMs, listedSpaces)
  // Presence over links (either way: a relay linked to may be dialed) and a shared store.
  every(presenceRefreshMs, async () => {
    // Given again over links and to relays sharing the store (through `onPresence`), and
    // what other relays stopped giving cleared.
    hub.refreshPresence(3 * presenceRefreshMs)
  })
  // Connections that say nothing: closed once their hello has waited `helloTimeoutMs`.
  if (limits.helloTimeoutMs > 0) {
    every(Math.max(10, Math.min(1_000, limits.helloTimeoutMs / 4)), async () => {
      const before = now() - limits.helloTimeoutMs
      for (const client of clients.values()) {
        if (client.openedAt === 0 || client.openedAt > before || !client.open) continue
        if (client.connection.session().phase === 'ready') {
          client.openedAt = 0
          continue
        }
        guard('closing a connection without a hello', () => {
          counters.helloTimeouts++
          const why = `no hello answered within ${limits.helloTimeoutMs} ms of connecting`
          send(client, encodeMessage(errorMessage(ErrorCode.HelloRequired, why)))
          hangUp(client, CloseCode.PolicyViolation, why)
        })
      }
    })
  }
  // A socket that has not answered the last ping by the next one is dead, unless it may still
  // be reading: a pong comes only once the ping is read, behind everything sent before it (up
  // to `sendBuffer` held here, and what the network's buffers hold), so a reader on a slow link
  // answers late. It is kept while the relay writes out more to it, and then for half a
  // heartbeat plus the time its bytes not yet answered for take at `minReadBytesPerSecond`;
  // after that it is dropped (an idle one at once, as before).
  const heartbeatMs = options.heartbeatMs ?? 30_000
  const minReadRate =
    limits.minReadBytesPerSecond > 0 ? limits.minReadBytesPerSecond : Number.POSITIVE_INFINITY
  every(heartbeatMs, async () => {
    const at = performance.now()
    for (const client of clients.values()) {
      guard('pinging a socket', () => {
        const written = client.queued - client.socket.bufferedAmount
        if (written > client.writtenAtCheck) client.writingAt = at
        client.writtenAtCheck = written
        const read = client.tcp?.bytesRead ?? 0
        // Bytes arriving since the ping say the peer lives as a pong does: its pong waits
        // behind a frame it is still sending (a long upload over a slow link).
        if (!client.alive && read > client.readAtPing) client.alive = true
        if (!client.alive) {
          const grace = heartbeatMs / 2 + ((written - client.writtenAtPong) / minReadRate) * 1000
          if (at - client.writingAt <= grace) return
          client.open = false
          client.socket.terminate()
          return
        }
        client.alive = false
        client.readAtPing = read
        client.writtenAtPing = written
        client.writingAt = at
        if (client.socket.readyState === OPEN) client.socket.ping()
      })
    }
  })

  let compacting: Promise<Map<SpaceId, CompactResult>> | null = null
  async function compactAll(): Promise<Map<SpaceId, CompactResult>> {
    const time = now()
    // A connected replica is seen now, even when it has nothing new to acknowledge.
    for (const info of hub.sessions()) {
      if (info.replicaId === null || info.phase !== 'ready') continue
      for (const stream of info.spaces) {
        if (stream.acked > 0) await store.noteAck(stream.space, stream.source, stream.acked, time)
      }
    }
    const results = new Map<SpaceId, CompactResult>()
    const spaces = await store.listSpaces()
    // Spaces other relays sharing the store made that this one heard nothing of: a link of
    // every space takes them too (those it heard of, it took as it heard).
    growGroups(spaces)
    for (const space of spaces) {
      // A space kept in step with other relays collects no deletions: it would diverge from
      // theirs. It is linked when this relay links it, or another relay's stream is counted in it.
      const linked =
        groups.length > 0 ||
        linkedSpaces.has(space) ||
        Object.keys((await store.loadSpace(space)).received).some(isRelayId)
      const result = await store.compact(space, {
        now: time,
        horizonMs: compaction.horizonMs,
        ...(linked ? { collect: false } : {}),
      })
      // At once, before a later append is streamed: the replicas are told at the mark.
      if (result.collected !== undefined) await hub.collected(space, result.collected)
      counters.tombstonesCollected += result.tombstonesDeleted
      results.set(space, result)
    }
    counters.compactions++
    commitsFailing.clear()
    return results
  }
  function compact(): Promise<Map<SpaceId, CompactResult>> {
    if (compacting === null) {
      compacting = compactAll()
        .catch((error: unknown) => {
          // Whoever asked for it is told; the health check says it too.
          noteRefusedCommit('compaction', error)
          throw error
        })
        .finally(() => {
          compacting = null
        })
    }
    return compacting
  }
  every(compaction.intervalMs, async () => {
    await compact()
  })

  /**
   * Each replica's lag in each space it reads. A replica with two connections (the old one
   * half-open, not yet found dead) counts once, by the connection furthest along: one series
   * per space and replica, as the exposition format needs.
   */
  function lag(): ReplicaLag[] {
    const byStream = new Map<string, ReplicaLag>()
    for (const info of hub.sessions()) {
      if (info.replicaId === null || info.phase !== 'ready') continue
      for (const stream of info.spaces) {
        const key = `${stream.space}\u0000${stream.source}`
        const held = byStream.get(key)
        if (held !== undefined && held.acked >= stream.acked) continue
        byStream.set(key, {
          space: stream.space,
          replica: stream.source,
          head: stream.head,
          acked: stream.acked,
          lag: Math.max(0, stream.head - stream.acked),
        })
      }
    }
    return [...byStream.values()]
  }

  async function waitForClients(pending: readonly Promise<void>[], ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    })
    await Promise.race([Promise.all(pending), timeout])
    clearTimeout(timer)
  }

  async function shutDown(): Promise<void> {
    // The connection listener stays: a socket that arrives from now on is closed with 1001.
    for (const timer of timers) clearInterval(timer)
    for (const link of links) {
      if (link.retry !== null) clearTimeout(link.retry)
      // Still dialing: there is no session to close.
      if (link.socket !== null && !clients.has(link.socket))
        guard('ending a link', () => link.socket?.terminate())
    }
    unwatch?.()
    await hub.idle()
    const pending = [...clients.values()].map(
      (client) =>
        new Promise<void>((resolve) => {
          client.onClosed = resolve
        }),
    )
    for (const client of clients.values()) {
      guard('closing a socket', () => hangUp(client, CloseCode.GoingAway, 'the relay is shutting down'))
    }
    await waitForClients(pending, options.closeTimeoutMs ?? 2000)
    for (const client of clients.values()) guard('terminating a socket', () => client.socket.terminate())
    await hub.idle()
    await compacting?.catch((error: unknown) => report(error))
    await store.flushAcks().catch((error: unknown) => report(error))
  }

  return {
    async metrics() {
      // A store that does not answer (a database down) leaves out what only it knows; the
      // relay's own counters, and whether it hears the other relays, are what matter then.
      let stats: Awaited<ReturnType<typeof store.stats>> | null
      try {
        stats = await store.stats()
      } catch (error) {
        report(error, 'the store did not answer for /metrics')
        stats = null
      }
      let sendBacklog = 0
      for (const client of clients.values()) sendBacklog += client.socket.bufferedAmount
      return {
        connections: clients.size,
        sendBacklog,
        ...(stats === null ? {} : { spaces: stats.spaces, logEntries: stats.logEntries }),
        ...counters,
        sessionsRefused: Object.fromEntries(refusals),
        commits: commits.times(),
        lag: lag(),
        ...(listening() === undefined ? {} : { storeListening: listening() ? 1 : 0 }),
        ...(stats?.appendRetries === undefined ? {} : { appendRetries: stats.appendRetries }),
        ...(links.length === 0 && groups.length === 0 ? {} : { links: linkStatus() }),
      }
    },
    async health() {
      const uptimeSeconds = Math.max(0, Math.round((now() - startedAt) / 1000))
      // A relay that does not hear the other relays sharing its store would serve its clients a
      // stale view: a load balancer should send them elsewhere meanwhile.
      const hearing = listening()
      const linked = links.length === 0 && groups.length === 0 ? null : linkStatus()
      const facts = {
        connections: clients.size,
        uptimeSeconds,
        ...(hearing === undefined ? {} : { listening: hearing }),
        ...(linked === null
          ? {}
          : { links: { up: linked.filter((link) => link.up === 1).length, total: linked.length } }),
      }
      let spaces: number
      try {
        spaces = (await store.stats()).spaces
      } catch (error) {
        report(error, 'the store did not answer a health check')
        // The count of spaces is unknown, not 0.
        return { status: 'failing', spaces: null, ...facts }
      }
      // A relay whose store refuses its commits acknowledges nothing: failing, though it reads.
      const failing = commitsFailing.size > 0
      const status = closing ? 'closing' : hearing === false || failing ? 'failing' : 'ok'
      return { status, spaces, ...(failing ? { commitsFailing: true } : {}), ...facts }
    },
    compact,
    async deleteSpace(space) {
      const deleted = await hub.deleteSpace(asSpaceId(space))
      if (deleted) counters.spacesDeleted++
      return deleted
    },
    describeSpaces: () => store.describeSpaces(),
    exportSpace: (space) => exportRecords(store, space),
    async listSpacesFor(token) {
      if (hookAuth === undefined) {
        return {
          ok: false,
          code: ErrorCode.Forbidden,
          message:
            'this relay runs open (no auth secret), so it lists its spaces to no one: a space name is all it takes to read one. Start it with --auth-secret',
        }
      }
      if (token === undefined || token === '') {
        return {
          ok: false,
          code: ErrorCode.Unauthenticated,
          message:
            'listing spaces needs a relay token as a bearer token: mint one with chorus-relay token --relay',
        }
      }
      let result: Awaited<ReturnType<typeof hookAuth>>
      try {
        result = await hookAuth(token, LISTING_REPLICA_ID)
      } catch (error) {
        report(error, 'the authenticate hook threw')
        return { ok: false, code: ErrorCode.Unauthenticated, message: 'the token could not be checked' }
      }
      if (!result.ok) return { ok: false, code: result.code, message: result.message }
      if (result.relay !== true) {
        return {
          ok: false,
          code: ErrorCode.Forbidden,
          message: 'the token does not claim relay: only relays list spaces (chorus-relay token --relay)',
        }
      }
      const access = result.access
      const spaces = (await store.listSpaces()).filter((space) => access(space) !== null)
      return { ok: true, spaces }
    },
    idle: () => hub.idle(),
    close() {
      closing = true
      closePromise ??= shutDown()
      return closePromise
    },
  }
}

/** The part of a TCP socket the heartbeat reads. */
interface TcpCounts {
  readonly bytesRead: number
}

/** The socket under the HTTP request a WebSocket came in on, as far as the relay reads it. */
interface RequestSocket {
  readonly bytesRead?: unknown
  readonly remoteAddress?: unknown
}

function socketOf(request: unknown): RequestSocket | undefined {
  return (request as { readonly socket?: RequestSocket } | undefined)?.socket
}

/** The TCP socket under `request`, if it has one that counts the bytes it read. */
function tcpOf(request: unknown): TcpCounts | null {
  const socket = socketOf(request)
  return socket !== undefined && typeof socket.bytesRead === 'number' ? (socket as TcpCounts) : null
}

/** The TCP peer's address of the HTTP request a WebSocket came in on, where there is one. */
function remoteAddress(request: unknown): string | undefined {
  const address = socketOf(request)?.remoteAddress
  return typeof address === 'string' ? address : undefined
}
