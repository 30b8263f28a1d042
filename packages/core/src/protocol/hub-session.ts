import type { Change } from '../change.js'
import { approximateChangeLength } from '../change-size.js'
import { ErrorCode } from '../errors.js'
import { isReplicaId, type ReplicaId, type SpaceId } from '../ids.js'
import { type JsonObject, ownNumber, ownValue } from '../json.js'
import { type CollectedMark, type LogEntry, recordKey } from '../storage.js'
import type { Dot } from '../version-vector.js'
import { type FramesInFlight, NO_FRAMES_IN_FLIGHT, pushFrame, settleFrames } from './frames-in-flight.js'
import {
  type ChangesMessage,
  DEFAULT_LIMITS,
  Feature,
  type HelloMessage,
  type Message,
  PROTOCOL_VERSION,
  type SnapshotMessage,
  type SnapshotResume,
  STREAM_FEATURES,
} from './messages.js'

/** What a connection may do in a space. */
export type Access = 'read' | 'write'

/**
 * The outcome of authenticating a `hello`'s token. `expiresAt`, when the token expires, is
 * the time (on the clock of the session's `now`) from which the session is over: its first
 * input at or after it closes the connection with `unauthenticated`, and the replica must
 * come back with a new token.
 */
export type AuthResult =
  | {
      readonly ok: true
      readonly access: (space: SpaceId) => Access | null
      readonly expiresAt?: number
      /**
       * A last step the hub runs once the hello's spaces are loaded and none of them is
       * refused (deleted, say), before the session starts: a refusal it resolves with refuses
       * the hello instead. For what should not happen for a hello refused anyway, such as
       * binding the replica id to its user.
       */
      readonly confirm?: () => Promise<AuthRefusal | undefined>
      /**
       * The connection may link another hub to this one (the `relay` feature): upload changes
       * of every writer, as that hub's log holds them. Without it, a hello offering `relay`
       * is refused with `forbidden`.
       */
      readonly relay?: boolean
    }
  | AuthRefusal

/** A refused authentication: the code and message the session is closed with. */
export interface AuthRefusal {
  readonly ok: false
  readonly code: ErrorCode
  readonly message: string
  /** The space the refusal is about, when it is about one (a deleted space): named in the error frame. */
  readonly space?: SpaceId
}

/** Tunables of the hub side. */
export interface HubSessionConfig {
  /** Most log entries read per `changes` frame. */
  readonly batchSize: number
  /** Most log positions sent and not yet acknowledged, per space. */
  readonly window: number
  /**
   * Most bytes of changes sent and not yet acknowledged, per space, as {@link HubFacts.size}
   * estimates them (absent: positions only). Bounds what a slow reader holds in buffers by
   * what it costs, not by a count of changes of any size; the last batch read may pass it.
   */
  readonly windowBytes?: number
  /**
   * Most bytes of changes one `changes` frame or snapshot page carries, as
   * {@link HubFacts.size} estimates them (absent, or without `size`: counts only). A frame
   * starts with its first change whatever its size; a snapshot page keeps a record's versions
   * together unless they alone pass it (see {@link SnapshotSplit}). The default, 256 KiB of
   * text: a WebSocket delivers a frame whole, so a replica's silence watchdog hears nothing
   * while one crosses a slow link (at 20 KB/s, 13 s for 256 KiB, 52 s for 1 MiB against the
   * watchdog's 30 s); and any value stays under a receiver's 4 MiB frame limit even when
   * every character takes 3 bytes of UTF-8.
   */
  readonly frameBytes?: number
  /**
   * The longest frame the hub reads, in bytes: named in its `hello` (`maxFrame`) so replicas
   * size their uploads to it (absent: not named, and replicas go by their own limit).
   */
  readonly maxFrame?: number
  /** Records per snapshot page. */
  readonly snapshotPage: number
  /** Resend what is unacknowledged after this long without progress. */
  readonly retransmitMs: number
  /**
   * Most bytes the connection's transport may hold unsent (as {@link HubFacts.backlog} reports
   * them) before the session reads more to send: at or above it every stream waits — a log
   * batch or a snapshot page alike — until the runtime reports the transport `writable`. It
   * bounds what a slow or stalled reader costs the hub in memory per connection, whatever
   * the number of its spaces, and a snapshot, which no acknowledgement paces. Absent, or
   * without `backlog`: unbounded.
   */
  readonly sendBuffer?: number
  /**
   * The runtime's transport delivers a connection's frames whole and in order, or closes it
   * (a WebSocket): the hub then speaks the `resend` feature, and with a replica that offers it
   * sends nothing again for silence alone, only when the replica asks (see `Feature`).
   * Absent: a transport that may lose frames, and `retransmitMs` of silence sends again.
   */
  readonly reliable?: boolean
}

/** Defaults for {@link HubSessionConfig}. */
export const DEFAULT_HUB_SESSION: HubSessionConfig = {
  batchSize: 200,
  window: 20_000,
  windowBytes: 4 * 1024 * 1024,
  frameBytes: 256 * 1024,
  snapshotPage: 200,
  retransmitMs: 3000,
  sendBuffer: 4 * 1024 * 1024,
}

/**
 * Durable facts about spaces, read synchronously by the session.
 *
 * The hub runtime keeps them in memory, loads a space before a `hello` that names it is
 * stepped, and updates them after each append commits.
 */
export interface HubFacts {
  /** The last log position of the space (0 when empty). */
  head(space: SpaceId): number
  /** Positions at or below this are compacted away: a replica behind it needs a snapshot. */
  floor(space: SpaceId): number
  /** The highest counter of `replica`'s changes stored in the space (gap-free from 1). */
  received(space: SpaceId, replica: ReplicaId): number
  /**
   * `received` of every replica with changes in the space (optional): a snapshot's first
   * page names them (see `SnapshotMessage.received`), so a replica can tell which records it
   * holds were deleted and collected while it was away.
   */
  receivedAll?(space: SpaceId): Readonly<Record<string, number>>
  /** The name of the space's log (see `SpaceMeta.log`); optional, and undefined when unnamed. */
  log?(space: SpaceId): string | undefined
  /**
   * The space's latest mark of collected deletions (see `SpaceMeta.collected`); optional, and
   * undefined when there is none. A session that negotiated `collect` tells its replica of it
   * at the mark's position (see `ChangesMessage.collected`).
   */
  collected?(space: SpaceId): CollectedMark | undefined
  /**
   * About how many bytes `change` takes in a frame, in the compact form or as a change object
   * (optional; for `windowBytes`). A runtime that encodes each change once answers from that
   * text; without it, only positions count.
   */
  size?(change: Change, compact: boolean): number
  /**
   * What {@link outgoing} computes, from a runtime that can share it (optional): the sessions
   * of a space stream the same entries one after another, and all but their writers send
   * every change, so one array and one byte count serve them all.
   */
  outgoing?(entries: readonly LogEntry[], receiver: ReplicaId | null, compact: boolean): Outgoing
  /**
   * The stream a change came in on, when it came from a linked hub (optional): the id its
   * positions count under (see {@link HubStream.source}). A relay session does not send a
   * change back to the hub it came from; without it, or when unknown, it is sent (and dropped
   * there as one it holds).
   */
  origin?(change: Change): ReplicaId | undefined
  /**
   * Bytes this connection has handed its transport that are not written out yet (optional;
   * for `sendBuffer`). A runtime that reports it reports `writable` once it falls again.
   */
  backlog?(): number
}

/** The changes of some log entries a session sends, and their estimated bytes. */
export interface Outgoing {
  readonly batch: readonly Change[]
  readonly bytes: number
}

/**
 * The changes of `entries` to send to `receiver` (its own are not sent), and their bytes by
 * `facts.size` (0 without it).
 */
export function outgoing(
  entries: readonly LogEntry[],
  receiver: ReplicaId | null,
  compact: boolean,
  size: HubFacts['size'],
): Outgoing {
  const batch: Change[] = []
  let bytes = 0
  for (const { change } of entries) {
    if (change.dot[0] === receiver) continue
    batch.push(change)
    if (size !== undefined) bytes += size(change, compact)
  }
  return { batch, bytes }
}

/** Per-space stream state of one session. */
export interface HubStream {
  readonly access: Access
  /**
   * The id the peer's stream positions are stored under (`HubFacts.received`): the replica's
   * own id; on a relay session, the dialing hub's id or the accepting hub's log name.
   */
  readonly source: ReplicaId
  /**
   * Nothing is sent on this stream: a linked hub has not yet said where to start (its first
   * hello leaves the space out of `have`), or, dialing, the other hub takes no changes from it.
   */
  readonly waiting: boolean
  /** On a relay session, the pages of a snapshot being received, kept until its last. */
  readonly incoming: IncomingSnapshot | null
  /** Own counter of the peer queued for storing (≥ the durable `received`). */
  readonly accepting: number
  /** Log position sent to the peer, and acknowledged by it. */
  readonly sent: number
  readonly acked: number
  /** The `changes` frames after `acked`, oldest first, and the sum of their bytes. */
  readonly inFlight: FramesInFlight
  readonly bytesInFlight: number
  readonly reading: boolean
  readonly lastProgressAt: number
  /** A snapshot being streamed, if any. */
  readonly snapshot: HubSnapshot | null
}

/**
 * A snapshot another hub is sending over a relay session: its position, the pages received
 * so far by number (they may arrive in any order), and how many it has once its last arrived.
 */
export interface IncomingSnapshot {
  readonly cursor: number
  readonly pages: ReadonlyMap<number, readonly Change[]>
  readonly count: number | null
  /** The counters the first page named (`SnapshotMessage.received`), once it arrived. */
  readonly received?: Readonly<Record<string, number>>
}

/**
 * A snapshot being streamed: at log position `cursor`, next page `page` after `afterKey`;
 * `split` when the page before ended inside a record (see {@link SnapshotSplit}); `received`,
 * the counters its first page names, taken when it started (at `cursor`).
 */
export interface HubSnapshot {
  readonly cursor: number
  readonly page: number
  readonly afterKey: string | null
  readonly split: SnapshotSplit | null
  readonly received?: Readonly<Record<string, number>>
}

/**
 * Most replicas a snapshot's first page names in `received`: a receiver's default
 * `maxVectorEntries`. A space with more writers sends none, and its replicas keep the
 * records no page carries (see `SnapshotMessage.received`).
 */
const MAX_RECEIVED_ENTRIES = DEFAULT_LIMITS.maxVectorEntries

/** A snapshot of `space` starting now, at its head. */
function startSnapshot(space: SpaceId, facts: HubFacts): HubSnapshot {
  const snapshot = { cursor: facts.head(space), page: 0, afterKey: null, split: null }
  const received = facts.receivedAll?.(space)
  if (received === undefined || Object.keys(received).length > MAX_RECEIVED_ENTRIES) return snapshot
  return { ...snapshot, received }
}

/**
 * A record whose versions were too long for one snapshot page together: the next page reads
 * it again (from the same `afterKey`) and leaves out the versions already sent, by dot — not
 * by position, as the record may have changed in between. A replica merges the versions of
 * several pages as it would one page's: applying changes is order-free.
 */
export interface SnapshotSplit {
  readonly key: string
  readonly sent: readonly Dot[]
}

/**
 * The dialing side of a relay session: this hub opened the connection to another hub. Its
 * first hello asks for the other's log names (`hello`); its second says where to start in
 * each (`join`); then both stream (`linked`).
 */
export interface DialState {
  readonly token?: string
  readonly spaces: readonly SpaceId[]
  readonly stage: 'hello' | 'join' | 'linked'
}

/** The hub side of one connection. */
export interface HubSessionState {
  readonly config: HubSessionConfig
  readonly phase: 'awaiting-hello' | 'authenticating' | 'dialing' | 'ready' | 'closed'
  /** The replica's id; on a session this hub dialed, this hub's own. */
  readonly replicaId: ReplicaId | null
  /** True for a session linking two hubs (see `Feature.Relay`). */
  readonly relay: boolean
  /** Set on a session this hub dialed (see {@link DialState}). */
  readonly dial: DialState | null
  readonly pendingHello: HelloMessage | null
  /** The optional features negotiated in `hello`: what the peer offered and this hub speaks. */
  readonly features: readonly Feature[]
  readonly streams: { readonly [space: string]: HubStream }
  /** When the token this session was authenticated with expires (`AuthResult.expiresAt`), or null. */
  readonly expiresAt: number | null
  /**
   * The longest frame the peer reads (its hello's `maxFrame`: the other hub's on a relay
   * session, a replica's on a slow link, at least {@link MIN_REPLICA_READ_FRAME}), or null:
   * what this side sends it is sized to a quarter of it (a character of JSON text may take
   * up to 3 bytes of UTF-8), as replicas size their uploads.
   */
  readonly peerMaxFrame: number | null
}

/** The features this hub side speaks, answered to a `hello` that offers them. */
export const HUB_FEATURES: readonly Feature[] = STREAM_FEATURES

/** The features a hub side on a reliable transport speaks (see `HubSessionConfig.reliable`). */
const RELIABLE_HUB_FEATURES: readonly Feature[] = [...HUB_FEATURES, Feature.Resend]

/** Inputs to the hub session. */
export type HubSessionInput =
  | { readonly type: 'message'; readonly now: number; readonly message: Message }
  | { readonly type: 'authenticated'; readonly now: number; readonly result: AuthResult }
  | { readonly type: 'stored'; readonly now: number; readonly space: SpaceId; readonly ok: boolean }
  | {
      readonly type: 'log-read'
      readonly now: number
      readonly space: SpaceId
      readonly after: number
      readonly entries: readonly { readonly seq: number; readonly change: Change }[]
    }
  | {
      readonly type: 'snapshot-read'
      readonly now: number
      readonly space: SpaceId
      readonly page: number
      /**
       * The position of the snapshot the page was read for (`read-snapshot`'s `cursor`;
       * absent: the current one). A page read for a snapshot since started over at a later
       * position may predate that position, and is not taken.
       */
      readonly cursor?: number
      readonly changes: readonly Change[]
      readonly nextKey: string | null
    }
  | { readonly type: 'head-advanced'; readonly now: number; readonly space: SpaceId }
  /** The transport's backlog fell below `sendBuffer` again: the streams that waited go on. */
  | { readonly type: 'writable'; readonly now: number }
  /** A log or snapshot read failed; the next tick tries again. */
  | { readonly type: 'read-failed'; readonly now: number; readonly space: SpaceId }
  /** The log no longer holds what the peer needs next: switch it to a snapshot. */
  | { readonly type: 'log-compacted'; readonly now: number; readonly space: SpaceId }
  /** The space has a new mark of collected deletions (`HubFacts.collected`). */
  | { readonly type: 'collected'; readonly now: number; readonly space: SpaceId }
  | { readonly type: 'tick'; readonly now: number }
  /** A session made by {@link initialDialSession} starts: it sends its first hello. */
  | { readonly type: 'dial'; readonly now: number }
  | { readonly type: 'closed' }

/** Effects of the hub session, performed in order by the runtime. */
export type HubSessionEffect =
  | { readonly type: 'send'; readonly message: Message }
  /** Check the token; then load the spaces it grants before reporting `authenticated`. */
  | {
      readonly type: 'authenticate'
      readonly token: string | undefined
      readonly replicaId: ReplicaId
      readonly spaces: readonly SpaceId[]
    }
  /**
   * Append the peer's changes durably (only the gap-free continuation of what is stored, or
   * with `through`, the changes of a sparse batch and every counter up to `through` counted
   * as received), then report `stored`.
   */
  | {
      readonly type: 'store'
      readonly space: SpaceId
      readonly replicaId: ReplicaId
      readonly changes: readonly Change[]
      readonly through?: number
      /**
       * On a relay session: the changes are another hub's, of any writers, up to position
       * `through` of its stream, counted under `replicaId` (see {@link HubStream.source}).
       * Each writer's are stored as a sparse append of its own: in the order of the other
       * hub's log (`log`), or sorted by counter (`snapshot`, whose pages go by record).
       */
      readonly relayed?: 'log' | 'snapshot'
      /**
       * With a snapshot: the counters it covers, per writer (`SnapshotMessage.received`): each
       * writer's changes up to them are in it or replaced by one that is, so they count as
       * received, whether the snapshot holds that writer's last change or not.
       */
      readonly counters?: Readonly<Record<string, number>>
    }
  | { readonly type: 'read-log'; readonly space: SpaceId; readonly after: number; readonly limit: number }
  | {
      readonly type: 'read-snapshot'
      readonly space: SpaceId
      readonly page: number
      readonly afterKey: string | null
      readonly limit: number
      /** The snapshot's position: handed back with the page (`snapshot-read`'s `cursor`). */
      readonly cursor: number
    }
  /** Send the error, then close the connection. */
  | { readonly type: 'close'; readonly code: ErrorCode; readonly message: string; readonly space?: SpaceId }
  /**
   * Answer the replica's `ping` with a `pong` of `id` naming the space's head: the one the hub
   * keeps, or, over a store other hubs append to too (`HubStore.readHead`), the stored one.
   */
  | { readonly type: 'pong'; readonly space: SpaceId; readonly id: number }
  /**
   * The replica's presence in a space changed (`PresenceMessage`): keep it for the connection
   * and tell the others on the space.
   */
  | {
      readonly type: 'presence'
      readonly space: SpaceId
      readonly key: string
      readonly state: JsonObject | null
    }
  /**
   * On a relay session: presence the other hub passed on, of a connection of the hub `origin`
   * (its `seq`-th change there): keep it unless a later one is held, and pass it on.
   */
  | {
      readonly type: 'presence-relayed'
      readonly space: SpaceId
      readonly replicaId: ReplicaId
      readonly key: string
      readonly state: JsonObject | null
      readonly origin: string
      readonly seq: number
    }

/** A step's outcome. */
export interface HubStep {
  readonly state: HubSessionState
  readonly effects: readonly HubSessionEffect[]
}

/** The state of a freshly accepted connection. */
export function initialHubSession(config: HubSessionConfig = DEFAULT_HUB_SESSION): HubSessionState {
  return {
    config,
    phase: 'awaiting-hello',
    replicaId: null,
    relay: false,
    dial: null,
    peerMaxFrame: null,
    pendingHello: null,
    features: noFeatures,
    streams: {},
    expiresAt: null,
  }
}

/**
 * The state of a connection this hub opened to another hub, to link the two (see
 * `Feature.Relay`): `replicaId` is this hub's id on the other, under which the other counts
 * what it has of this hub's log. The `dial` input sends its first hello.
 */
export function initialDialSession(
  config: HubSessionConfig,
  dial: { readonly replicaId: ReplicaId; readonly token?: string; readonly spaces: readonly SpaceId[] },
  now: number,
): HubSessionState {
  const streams: Record<string, HubStream> = {}
  for (const space of dial.spaces) {
    streams[space] = { ...freshStream('write', dial.replicaId, now), waiting: true }
  }
  return {
    ...initialHubSession(config),
    phase: 'dialing',
    replicaId: dial.replicaId,
    relay: true,
    dial: {
      spaces: dial.spaces,
      stage: 'hello',
      ...(dial.token === undefined ? {} : { token: dial.token }),
    },
    streams,
  }
}

/**
 * The shortest frame a replica's `hello.maxFrame` has the hub size its frames to: a replica
 * on a slow link names less than the default (see `ReplicaSessionInput`'s `connected`), but a
 * frame per change of a whole space would cost the hub more than the link gains.
 */
export const MIN_REPLICA_READ_FRAME = 64 * 1024

/** The most bytes of changes one frame carries (see `HubSessionConfig.frameBytes` and `peerMaxFrame`). */
function frameBudget(state: HubSessionState): number | undefined {
  const own = state.config.frameBytes
  if (state.peerMaxFrame === null) return own
  const theirs = Math.max(1, Math.floor(state.peerMaxFrame / 4))
  return own === undefined ? theirs : Math.min(own, theirs)
}

/** A stream before its first hello answer: nothing sent, nothing received. */
function freshStream(access: Access, source: ReplicaId, now: number): HubStream {
  return {
    access,
    source,
    waiting: false,
    incoming: null,
    accepting: 0,
    sent: 0,
    acked: 0,
    inFlight: NO_FRAMES_IN_FLIGHT,
    bytesInFlight: 0,
    reading: false,
    lastProgressAt: now,
    snapshot: null,
  }
}

/**
 * How the ids that count linked hubs' streams start (see {@link HubStream.source}): the id a
 * hub dials another with, by default (`HubEngine.dial`), and the id it counts the other's log
 * under. A store can tell from its counters that a space is linked (see {@link isRelayId}).
 */
export const RELAY_ID_PREFIX = 'relay-'

/** True for an id that counts a linked hub's stream: a log name after {@link RELAY_ID_PREFIX}. */
export function isRelayId(id: string): boolean {
  return id.startsWith(RELAY_ID_PREFIX)
}

/**
 * The id a linked hub whose log is named `log` is known by: {@link RELAY_ID_PREFIX} and the
 * name, when that makes a valid replica id (a name of up to 58 characters), else the name.
 */
export function relayIdOf(log: string): ReplicaId {
  const prefixed = `${RELAY_ID_PREFIX}${log}`
  return isReplicaId(prefixed) ? prefixed : (log as ReplicaId)
}

/** The features a relay session uses, of those offered. */
const RELAY_FEATURES: readonly Feature[] = [Feature.Relay, Feature.Compact, Feature.Presence]

/**
 * Advances the hub side of one connection by one input.
 *
 * Pure, given `facts`. The hub acknowledges a replica's changes only after the runtime
 * reports them `stored` (durably committed), and streams the space's log to the replica
 * from the position the replica says it has, or a snapshot when that position is gone.
 */
export function stepHubSession(state: HubSessionState, input: HubSessionInput, facts: HubFacts): HubStep {
  const effects: HubSessionEffect[] = []
  const next = reduce(state, input, facts, effects)
  return { state: next, effects }
}

/** A session's stream for a space; own properties only, so `constructor` is just a name. */
function streamOf(state: HubSessionState, space: string): HubStream | undefined {
  return Object.hasOwn(state.streams, space) ? state.streams[space] : undefined
}

const noFeatures: readonly Feature[] = []

/** What stays in flight once the peer has acknowledged up to `acked`. */
function settle(stream: HubStream, acked: number): Pick<HubStream, 'inFlight' | 'bytesInFlight'> {
  const { left, released } = settleFrames(stream.inFlight, acked)
  return { inFlight: left, bytesInFlight: stream.bytesInFlight - released }
}

function setStream(state: HubSessionState, space: SpaceId, stream: HubStream): HubSessionState {
  return { ...state, streams: { ...state.streams, [space]: stream } }
}

function refuse(
  state: HubSessionState,
  code: ErrorCode,
  message: string,
  effects: HubSessionEffect[],
  space?: SpaceId,
): HubSessionState {
  effects.push(
    space === undefined ? { type: 'close', code, message } : { type: 'close', code, message, space },
  )
  return { ...state, phase: 'closed' }
}

/** Ends a session whose token has expired (see `AuthResult.expiresAt`). */
function expired(state: HubSessionState, effects: HubSessionEffect[]): HubSessionState {
  return refuse(
    state,
    ErrorCode.Unauthenticated,
    'the token has expired: connect again with a new one (a client with a fixed token must be created again with it; one with a token function gets it at its next attempt)',
    effects,
  )
}

function reduce(
  state: HubSessionState,
  input: HubSessionInput,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  if (state.phase === 'closed') return state
  if (input.type === 'closed') return { ...state, phase: 'closed' }
  // Nothing flows on a token past its expiry: not a frame received, nor one sent.
  if (state.expiresAt !== null && input.now >= state.expiresAt) return expired(state, effects)
  switch (input.type) {
    case 'message':
      return receive(state, input.message, input.now, facts, effects)
    case 'authenticated':
      return authenticated(state, input.result, input.now, facts, effects)
    case 'stored': {
      const stream = streamOf(state, input.space)
      if (stream === undefined || state.replicaId === null) return state
      const received = facts.received(input.space, stream.source)
      // A failed append: the writer is told why its changes go unacknowledged (not fatal: it
      // sends them again), before the ack that leaves them so.
      if (!input.ok) {
        effects.push({
          type: 'send',
          message: {
            type: 'error',
            code: ErrorCode.StorageFailed,
            space: input.space,
            message: 'the relay’s storage failed to store them; send them again',
          },
        })
      }
      effects.push({ type: 'send', message: { type: 'ack', space: input.space, upTo: received } })
      // A failed append stored nothing past `received`: take retransmissions from there again.
      return input.ok ? state : setStream(state, input.space, { ...stream, accepting: received })
    }
    case 'log-read':
      return logRead(state, input, facts, effects)
    case 'snapshot-read':
      return snapshotRead(state, input, facts, effects)
    case 'head-advanced':
      return pump(state, input.space, facts, effects)
    case 'writable': {
      let next = state
      for (const space of Object.keys(state.streams) as SpaceId[]) next = pump(next, space, facts, effects)
      return next
    }
    case 'read-failed': {
      const stream = streamOf(state, input.space)
      return stream === undefined ? state : setStream(state, input.space, { ...stream, reading: false })
    }
    case 'log-compacted': {
      const stream = streamOf(state, input.space)
      if (stream === undefined) return state
      const next = overSnapshot(stream, input.space, input.now, facts)
      return pump(setStream(state, input.space, next), input.space, facts, effects)
    }
    case 'collected':
      return collected(state, input.space, input.now, facts, effects)
    case 'tick':
      return tick(state, input.now, facts, effects)
    case 'dial':
      return dialed(state, effects)
  }
}

function receive(
  state: HubSessionState,
  message: Message,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  if (message.type === 'hello' && state.dial !== null) return dialHello(state, message, now, facts, effects)
  if (message.type === 'hello') {
    if (message.protocol !== PROTOCOL_VERSION) {
      return refuse(
        state,
        ErrorCode.UnsupportedProtocol,
        `this hub speaks protocol ${PROTOCOL_VERSION}`,
        effects,
      )
    }
    if (state.replicaId !== null && state.replicaId !== message.replicaId) {
      return refuse(state, ErrorCode.ReplicaMismatch, 'a connection cannot change its replica id', effects)
    }
    if (state.phase === 'ready') return welcome(state, message, now, facts, effects, false)
    effects.push({
      type: 'authenticate',
      token: message.token,
      replicaId: message.replicaId,
      spaces: message.spaces,
    })
    return { ...state, phase: 'authenticating', replicaId: message.replicaId, pendingHello: message }
  }
  if (state.phase !== 'ready' || state.replicaId === null) {
    if (message.type === 'error') return state
    effects.push({
      type: 'send',
      message: { type: 'error', code: ErrorCode.HelloRequired, message: 'send hello before anything else' },
    })
    return state
  }
  switch (message.type) {
    case 'changes':
      return state.relay
        ? relayChanges(state, message, facts, effects)
        : changes(state, state.replicaId, message, facts, effects)
    case 'ack': {
      const stream = streamOf(state, message.space)
      if (stream === undefined) return unknownSpace(state, message.space, effects)
      const upTo = Math.min(message.upTo, facts.head(message.space))
      if (upTo === 0 && stream.acked > 0 && stream.snapshot === null) {
        // The replica holds none of our log although it had said it held part: it started
        // over, finding its position was in another log (we were restored from a backup) in
        // a hello answer we sent for an older hello of it. Read it our log from the start.
        return pump(
          setStream(state, message.space, startedAt(stream, 0, startSnapshot(message.space, facts), now)),
          message.space,
          facts,
          effects,
        )
      }
      if (message.resend === true && state.features.includes(Feature.Resend)) {
        const resume = state.features.includes(Feature.Resume) ? message.resume : undefined
        return resendFrom(state, message.space, stream, upTo, resume, now, facts, effects)
      }
      if (upTo <= stream.acked && upTo <= stream.sent) return state
      const acked = Math.max(stream.acked, upTo)
      const next = {
        ...stream,
        ...settle(stream, acked),
        acked,
        sent: Math.max(stream.sent, upTo),
        lastProgressAt: now,
      }
      return pump(setStream(state, message.space, next), message.space, facts, effects)
    }
    case 'snapshot':
      if (state.relay) return snapshotIn(state, message, facts, effects)
      effects.push({
        type: 'send',
        message: { type: 'error', code: ErrorCode.InvalidMessage, message: 'only the hub sends snapshots' },
      })
      return state
    case 'error':
      return state
    case 'presence': {
      if (streamOf(state, message.space) === undefined) return unknownSpace(state, message.space, effects)
      const { replicaId, origin, seq } = message
      const why = !state.features.includes(Feature.Presence)
        ? 'presence needs the presence feature, offered in hello'
        : state.relay && (replicaId === undefined || origin === undefined || seq === undefined)
          ? 'presence between hubs names its replicaId, origin and seq'
          : null
      if (why !== null) {
        effects.push({
          type: 'send',
          message: { type: 'error', code: ErrorCode.InvalidMessage, message: why, space: message.space },
        })
        return state
      }
      if (state.relay) {
        effects.push({
          type: 'presence-relayed',
          space: message.space,
          replicaId: replicaId as ReplicaId,
          key: message.key,
          state: message.state,
          origin: origin as string,
          seq: seq as number,
        })
        return state
      }
      effects.push({ type: 'presence', space: message.space, key: message.key, state: message.state })
      return state
    }
    case 'ping': {
      if (streamOf(state, message.space) === undefined) return unknownSpace(state, message.space, effects)
      if (!state.features.includes(Feature.Ping)) {
        effects.push({
          type: 'send',
          message: {
            type: 'error',
            code: ErrorCode.InvalidMessage,
            message: 'ping needs the ping feature, offered in hello',
            space: message.space,
          },
        })
        return state
      }
      effects.push({ type: 'pong', space: message.space, id: message.id })
      // The answer may name positions this stream has not reached: the replica's own changes,
      // which the hub does not stream to a lone writer at once (nothing in them to apply).
      // Stream them now, or the replica waits for the next tick to pass them.
      return pump(state, message.space, facts, effects)
    }
    case 'pong':
      effects.push({
        type: 'send',
        message: { type: 'error', code: ErrorCode.InvalidMessage, message: 'only the hub sends pong' },
      })
      return state
  }
}

/**
 * A stream (re)started at `position`, nothing in flight; with `snapshot` (of a space that
 * has a log) it first sends that snapshot.
 */
function startedAt(
  stream: HubStream,
  position: number,
  snapshot: HubSnapshot | null,
  now: number,
): HubStream {
  return {
    ...stream,
    sent: position,
    acked: position,
    inFlight: NO_FRAMES_IN_FLIGHT,
    bytesInFlight: 0,
    reading: false,
    lastProgressAt: now,
    snapshot: snapshot !== null && snapshot.cursor > 0 ? snapshot : null,
  }
}

function unknownSpace(state: HubSessionState, space: SpaceId, effects: HubSessionEffect[]): HubSessionState {
  effects.push({
    type: 'send',
    message: {
      type: 'error',
      code: ErrorCode.UnknownSpace,
      message: `space ${space} was not named in hello`,
      space,
    },
  })
  return state
}

function authenticated(
  state: HubSessionState,
  result: AuthResult,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const hello = state.pendingHello
  if (state.phase !== 'authenticating' || hello === null) return state
  if (!result.ok) return refuse(state, result.code, result.message, effects, result.space)
  const expiresAt = result.expiresAt ?? null
  if (expiresAt !== null && now >= expiresAt) return expired(state, effects)
  const relay = hello.features?.includes(Feature.Relay) === true
  if (relay && hello.features?.includes(Feature.Compact) !== true) {
    return refuse(
      state,
      ErrorCode.InvalidMessage,
      'the relay feature is offered only with compact beside it: a linked hub streams its log as compact rows',
      effects,
    )
  }
  if (relay && result.relay !== true) {
    return refuse(
      state,
      ErrorCode.Forbidden,
      'this token may not link a relay: relaying other replicas’ changes needs a token with the relay claim',
      effects,
    )
  }
  // Ids under the prefix count linked hubs' streams (a space with one is taken as linked, and
  // keeps its deletions): a replica may not take one.
  if (!relay && isRelayId(hello.replicaId)) {
    return refuse(
      state,
      ErrorCode.Forbidden,
      `replica id ${hello.replicaId} starts with "${RELAY_ID_PREFIX}", which only linked relays use: choose another`,
      effects,
    )
  }
  let next: HubSessionState = {
    ...state,
    phase: 'ready',
    pendingHello: null,
    expiresAt,
    relay,
    peerMaxFrame: relay
      ? (hello.maxFrame ?? null)
      : hello.maxFrame === undefined
        ? null
        : Math.max(MIN_REPLICA_READ_FRAME, hello.maxFrame),
  }
  for (const space of hello.spaces) {
    const access = result.access(space)
    if (access === null) return refuse(next, ErrorCode.Forbidden, `no access to space ${space}`, effects)
    next = setStream(next, space, freshStream(access, hello.replicaId, now))
  }
  return welcome(next, hello, now, facts, effects, true)
}

/** Answers a hello: tells the peer what we have of its stream, then starts ours. */
function welcome(
  state: HubSessionState,
  hello: HelloMessage,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
  first: boolean,
): HubSessionState {
  const replicaId = state.replicaId as ReplicaId
  const have: Record<string, number> = {}
  const logs: Record<string, string> = {}
  const speaks = state.relay
    ? RELAY_FEATURES
    : state.config.reliable === true
      ? RELIABLE_HUB_FEATURES
      : HUB_FEATURES
  const offered =
    hello.features === undefined ? [] : speaks.filter((feature) => hello.features?.includes(feature))
  const features = offered.length === 0 ? noFeatures : offered
  let next = state
  for (const space of hello.spaces) {
    const stream = streamOf(next, space)
    if (stream === undefined)
      return refuse(next, ErrorCode.UnknownSpace, `space ${space} was not authorised`, effects)
    const received = facts.received(space, replicaId)
    // A linked hub that did not say where it is in our log asks for our log names first: it
    // is answered without `have`, so that it cannot take this answer for the next one's.
    const asking = state.relay && ownValue(hello.have, space) === undefined
    if (!asking) have[space] = received
    const log = facts.log?.(space)
    if (log !== undefined) logs[space] = log
    // A position in another log than ours (we were restored from a backup) says nothing of
    // what the replica holds of ours: it is read our log from the start.
    const theirs = ownValue(hello.logs, space)
    const position =
      theirs !== undefined && log !== undefined && theirs !== log ? 0 : ownNumber(hello.have, space)
    // A linked hub's first hello, again (a copy the network delayed): it is answered, and
    // the stream a later hello started goes on.
    if (asking && !first) continue
    const resumed = features.includes(Feature.Resume)
      ? resumedSnapshot(ownValue(hello.resume, space), space, position, theirs === log, facts)
      : null
    next = setStream(next, space, {
      ...(resumed === null
        ? streamFrom(stream, space, position, state.relay, now, facts)
        : startedAt(stream, 0, resumed, now)),
      accepting: received,
      incoming: null,
      waiting: asking,
    })
  }
  const heads: Record<string, number> = {}
  for (const space of hello.spaces) heads[space] = facts.head(space)
  const readOnly = hello.spaces.filter((space) => streamOf(next, space)?.access === 'read')
  effects.push({
    type: 'send',
    message: {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId,
      spaces: hello.spaces,
      have,
      heads,
      ...(features.length === 0 ? {} : { features }),
      ...(Object.keys(logs).length === 0 ? {} : { logs }),
      ...(state.config.maxFrame === undefined ? {} : { maxFrame: state.config.maxFrame }),
      ...(readOnly.length === 0 ? {} : { readOnly }),
    },
  })
  next = { ...next, features }
  for (const space of hello.spaces) next = pump(next, space, facts, effects)
  return next
}

/**
 * The rest of the snapshot a replica's `hello` says it holds the start of (`resume`), or null
 * to send it what a replica at `position` is sent without one. It is sent only when the
 * replica's position is in our log (`sameLog`) and behind the snapshot's, and our log still
 * holds every change since the snapshot's position: those cover what changed in the records
 * it already holds, as they do for a snapshot whose pages take long to read. Without
 * `received` (that was the first page's), as the records were read at the snapshot's start.
 */
function resumedSnapshot(
  resume: SnapshotResume | undefined,
  space: SpaceId,
  position: number,
  sameLog: boolean,
  facts: HubFacts,
): HubSnapshot | null {
  if (resume === undefined || !sameLog || position >= resume.cursor) return null
  if (resume.cursor < facts.floor(space) || resume.cursor > facts.head(space)) return null
  return { cursor: resume.cursor, page: 0, afterKey: resume.after, split: null }
}

/**
 * `stream` restarted to send `space` from `position` of our log, or from a snapshot when the
 * log no longer holds what follows it (or never held it). A replica at 0 is sent a snapshot
 * too, which is shorter than the log; a linked hub is sent the log from its start while it
 * is all there, since its own records are not replaced by a snapshot's (see PROTOCOL.md), and
 * since stored as it arrives, batch by batch, it is no slower than a snapshot held until its
 * last page.
 */
function streamFrom(
  stream: HubStream,
  space: SpaceId,
  position: number,
  relay: boolean,
  now: number,
  facts: HubFacts,
): HubStream {
  const head = facts.head(space)
  const needsSnapshot =
    head > 0 && ((position === 0 && !relay) || position < facts.floor(space) || position > head)
  return needsSnapshot
    ? startedAt(stream, 0, startSnapshot(space, facts), now)
    : startedAt(stream, position, null, now)
}

/** A dialing session starts: its first hello names the spaces and asks for their log names. */
function dialed(state: HubSessionState, effects: HubSessionEffect[]): HubSessionState {
  const dial = state.dial
  if (dial === null || state.phase !== 'dialing' || dial.stage !== 'hello' || state.replicaId === null)
    return state
  effects.push({
    type: 'send',
    message: {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId: state.replicaId,
      ...(dial.token === undefined ? {} : { token: dial.token }),
      spaces: dial.spaces,
      have: {},
      features: RELAY_FEATURES,
      ...(state.config.maxFrame === undefined ? {} : { maxFrame: state.config.maxFrame }),
    },
  })
  return state
}

/**
 * The other hub answered a hello of this dialing session. To the first: its log names say
 * which of our counters hold our positions in its logs, and our second hello says them. To
 * the second: where it is in our log, from which we stream.
 */
function dialHello(
  state: HubSessionState,
  hello: HelloMessage,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const dial = state.dial as DialState
  if (state.phase === 'closed' || dial.stage === 'linked') return state
  if (hello.protocol !== PROTOCOL_VERSION) {
    return refuse(
      state,
      ErrorCode.UnsupportedProtocol,
      `this hub speaks protocol ${PROTOCOL_VERSION}`,
      effects,
    )
  }
  if (hello.features?.includes(Feature.Relay) !== true) {
    return refuse(state, ErrorCode.Forbidden, 'the other hub did not take this one as a relay', effects)
  }
  for (const space of dial.spaces) {
    if (!hello.spaces.includes(space)) {
      return refuse(
        state,
        ErrorCode.InvalidMessage,
        `the other hub's hello leaves out space ${space}`,
        effects,
      )
    }
  }
  const replicaId = state.replicaId as ReplicaId
  const features = RELAY_FEATURES.filter((feature) => hello.features?.includes(feature))
  if (dial.stage === 'hello') {
    let next: HubSessionState = state
    const have: Record<string, number> = {}
    const logs: Record<string, string> = {}
    for (const space of dial.spaces) {
      const log = ownValue(hello.logs, space)
      if (log === undefined || !isReplicaId(log)) {
        return refuse(
          state,
          ErrorCode.InvalidMessage,
          `the other hub names no log for space ${space} that can key positions in it: it cannot be linked`,
          effects,
        )
      }
      const stream = streamOf(next, space) as HubStream
      const source = relayIdOf(log)
      const received = facts.received(space, source)
      have[space] = received
      logs[space] = log
      next = setStream(next, space, {
        ...stream,
        source,
        accepting: received,
        // The other hub takes nothing from a read-only link: we only read from it.
        access: hello.readOnly?.includes(space) === true ? 'read' : 'write',
      })
    }
    effects.push({
      type: 'send',
      message: {
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        replicaId,
        spaces: dial.spaces,
        have,
        logs,
        features: RELAY_FEATURES,
        ...(state.config.maxFrame === undefined ? {} : { maxFrame: state.config.maxFrame }),
      },
    })
    return { ...next, dial: { ...dial, stage: 'join' }, peerMaxFrame: hello.maxFrame ?? null }
  }
  // A copy of the answer to our first hello (no `have`) is not the answer to our second.
  if (dial.spaces.some((space) => ownValue(hello.have, space) === undefined)) return state
  let next: HubSessionState = { ...state, phase: 'ready', features, dial: { ...dial, stage: 'linked' } }
  for (const space of dial.spaces) {
    const stream = streamOf(next, space) as HubStream
    next = setStream(next, space, {
      ...streamFrom(stream, space, ownNumber(hello.have, space), true, now, facts),
      waiting: stream.access === 'read',
    })
  }
  for (const space of dial.spaces) next = pump(next, space, facts, effects)
  return next
}

/**
 * A linked hub's `changes`: its log from `from` to `to`, any writers' changes. Taken when it
 * continues what we hold of that log, and acknowledged once stored.
 */
function relayChanges(
  state: HubSessionState,
  message: ChangesMessage,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const space = message.space
  const stream = streamOf(state, space)
  if (stream === undefined) return unknownSpace(state, space, effects)
  if (state.dial === null && stream.access !== 'write') return readOnly(state, space, effects)
  if (message.collected !== undefined || message.sparse === true) {
    return refuse(
      state,
      ErrorCode.InvalidMessage,
      'a linked hub sends its log as it is: neither sparse nor with collected deletions',
      effects,
    )
  }
  const accepting = takesFrom(state, stream, stream.source, message, facts, effects)
  if (typeof accepting !== 'number') return accepting
  effects.push({
    type: 'store',
    space,
    replicaId: stream.source,
    changes: message.batch,
    through: message.to,
    relayed: 'log',
  })
  return setStream(state, space, { ...stream, accepting: message.to })
}

/**
 * A page of a linked hub's snapshot: kept until the last, then stored at once (its writers'
 * counters are only right for the whole of it), up to the snapshot's position.
 */
function snapshotIn(
  state: HubSessionState,
  message: SnapshotMessage,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const space = message.space
  const stream = streamOf(state, space)
  if (stream === undefined) return unknownSpace(state, space, effects)
  if (state.dial === null && stream.access !== 'write') return readOnly(state, space, effects)
  // Pages of another snapshot (the other hub started again) replace those held.
  const held = stream.incoming !== null && stream.incoming.cursor === message.cursor ? stream.incoming : null
  const pages = new Map(held?.pages)
  pages.set(message.page, message.batch)
  const count = message.last ? message.page + 1 : (held?.count ?? null)
  const received = message.page === 0 ? message.received : held?.received
  const incoming: IncomingSnapshot = {
    cursor: message.cursor,
    pages,
    count,
    ...(received === undefined ? {} : { received }),
  }
  if (count === null || pages.size < count) return setStream(state, space, { ...stream, incoming })
  const changes: Change[] = []
  for (let page = 0; page < count; page++) {
    const batch = pages.get(page)
    // A page numbered past the last (not from this hub's snapshots): wait for the start again.
    if (batch === undefined) return setStream(state, space, { ...stream, incoming: null })
    for (const change of batch) changes.push(change)
  }
  effects.push({
    type: 'store',
    space,
    replicaId: stream.source,
    changes,
    through: incoming.cursor,
    relayed: 'snapshot',
    ...(incoming.received === undefined ? {} : { counters: incoming.received }),
  })
  const accepting = Math.max(stream.accepting, facts.received(space, stream.source), incoming.cursor)
  return setStream(state, space, { ...stream, incoming: null, accepting })
}

/** Refuses changes on a space the connection may only read. */
function readOnly(state: HubSessionState, space: SpaceId, effects: HubSessionEffect[]): HubSessionState {
  effects.push({
    type: 'send',
    message: {
      type: 'error',
      code: ErrorCode.Forbidden,
      message: `read-only access to space ${space}`,
      space,
    },
  })
  return state
}

/**
 * The space's mark of collected deletions, on a session that negotiated `collect`, if the
 * replica can take it: one naming more replicas than a receiver reads by default, or too long
 * to ride along a batch (over a quarter of a frame), is neither told nor waited for (those
 * replicas keep the deletions, as one without `collect` does).
 */
function markFor(state: HubSessionState, space: SpaceId, facts: HubFacts): CollectedMark | undefined {
  if (!state.features.includes(Feature.Collect)) return undefined
  const mark = facts.collected?.(space)
  if (mark === undefined) return undefined
  const { entries, length } = markSize(mark)
  const frameBytes = frameBudget(state)
  if (entries > MAX_RECEIVED_ENTRIES || (frameBytes !== undefined && length > frameBytes / 4))
    return undefined
  return mark
}

/** Each mark's counters and the length of their text, reckoned once: every read asks. */
const markSizes = new WeakMap<CollectedMark, { readonly entries: number; readonly length: number }>()
function markSize(mark: CollectedMark): { readonly entries: number; readonly length: number } {
  let size = markSizes.get(mark)
  if (size === undefined) {
    size = { entries: Object.keys(mark.received).length, length: JSON.stringify(mark.received).length }
    markSizes.set(mark, size)
  }
  return size
}

/**
 * The position a stream behind the space's mark may send up to: its replica is told of the
 * mark with the first batch from there (see `ChangesMessage.collected`), none across it.
 */
function stopAt(mark: CollectedMark | undefined, sent: number): number {
  return mark === undefined || sent >= mark.at ? Number.POSITIVE_INFINITY : mark.at
}

/**
 * The space has a new mark of collected deletions. A stream at it or behind it tells its
 * replica with its first batch from the mark (see `logRead`). A stream already past the mark
 * — which the runtime's order of commits and compactions rules out — cannot be told at it any
 * more: it is read a snapshot, which leaves out what was collected.
 */
function collected(
  state: HubSessionState,
  space: SpaceId,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const stream = streamOf(state, space)
  const mark = markFor(state, space, facts)
  if (stream === undefined || mark === undefined || state.phase !== 'ready' || stream.snapshot !== null)
    return state
  if (stream.sent <= mark.at) return state
  return pump(setStream(state, space, overSnapshot(stream, space, now, facts)), space, facts, effects)
}

/** `stream` started over with a snapshot of `space` as it is now, nothing in flight. */
function overSnapshot(stream: HubStream, space: SpaceId, now: number, facts: HubFacts): HubStream {
  return {
    ...stream,
    inFlight: NO_FRAMES_IN_FLIGHT,
    bytesInFlight: 0,
    reading: false,
    sent: 0,
    acked: 0,
    lastProgressAt: now,
    snapshot: startSnapshot(space, facts),
  }
}

function changes(
  state: HubSessionState,
  replicaId: ReplicaId,
  message: ChangesMessage,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const space = message.space
  const stream = streamOf(state, space)
  if (stream === undefined) return unknownSpace(state, space, effects)
  if (stream.access !== 'write') return readOnly(state, space, effects)
  if (message.collected !== undefined) {
    return refuse(state, ErrorCode.InvalidMessage, 'only the hub says which deletions it collected', effects)
  }
  const sparse = message.sparse === true
  if (sparse && !state.features.includes(Feature.Sparse)) {
    return refuse(
      state,
      ErrorCode.InvalidMessage,
      'a sparse batch needs the sparse feature, offered in hello',
      effects,
    )
  }
  let previous = message.from
  for (let i = 0; i < message.batch.length; i++) {
    const dot = (message.batch[i] as Change).dot
    const numbered = sparse ? dot[1] > previous && dot[1] <= message.to : dot[1] === message.from + i + 1
    if (dot[0] !== replicaId || !numbered) {
      return refuse(
        state,
        ErrorCode.ReplicaMismatch,
        sparse
          ? `changes must be this replica's own, numbered within ${message.from + 1}…${message.to} in rising order`
          : `changes must be this replica's own, numbered ${message.from + 1}…${message.to} in order`,
        effects,
      )
    }
    previous = dot[1]
  }
  if (!sparse && message.from + message.batch.length !== message.to) {
    return refuse(state, ErrorCode.InvalidMessage, 'a changes batch must hold exactly from+1…to', effects)
  }
  const accepting = takesFrom(state, stream, replicaId, message, facts, effects)
  if (typeof accepting !== 'number') return accepting
  const fresh = sparse
    ? message.batch.filter((change) => change.dot[1] > accepting)
    : message.batch.slice(accepting - message.from)
  effects.push(
    sparse
      ? { type: 'store', space, replicaId, changes: fresh, through: message.to }
      : { type: 'store', space, replicaId, changes: fresh },
  )
  return setStream(state, space, { ...stream, accepting: message.to })
}

/**
 * Where a batch of `source`'s stream must start to be taken: the position it continues from,
 * or, for a gap (an earlier batch was lost) or a duplicate, the state after saying where we
 * really are. What the store holds of the source may be past what this session took in:
 * another hub sharing the store stored it (the replica wrote through it before), or the
 * source's previous connection did. Batches continue from there.
 */
function takesFrom(
  state: HubSessionState,
  stream: HubStream,
  source: ReplicaId,
  message: ChangesMessage,
  facts: HubFacts,
  effects: HubSessionEffect[],
): number | HubSessionState {
  const { space } = message
  const received = facts.received(space, source)
  const accepting = Math.max(stream.accepting, received)
  if (message.from <= accepting && message.to > accepting) return accepting
  effects.push({ type: 'send', message: { type: 'ack', space, upTo: received } })
  return accepting === stream.accepting ? state : setStream(state, space, { ...stream, accepting })
}

function pump(
  state: HubSessionState,
  space: SpaceId,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const stream = streamOf(state, space)
  if (stream === undefined || stream.reading) return state
  const read = nextRead(state, space, stream, facts)
  if (read === null) return state
  effects.push(read)
  return setStream(state, space, { ...stream, reading: true })
}

/** The read a stream that is not reading asks for next, if any: a snapshot page, or the log up to its window. */
function nextRead(
  state: HubSessionState,
  space: SpaceId,
  stream: HubStream,
  facts: HubFacts,
): HubSessionEffect | null {
  if (state.phase !== 'ready' || stream.waiting) return null
  // The transport holds enough already: nothing more is read until it is `writable` again.
  if (facts.backlog !== undefined && facts.backlog() >= (state.config.sendBuffer ?? Number.POSITIVE_INFINITY))
    return null
  if (stream.snapshot !== null) {
    const { page, afterKey } = stream.snapshot
    // Over a link, one snapshot at a time: the other hub keeps a snapshot's pages until its
    // last, so snapshots of many spaces sent at once would sit in its memory together.
    if (state.relay && page === 0 && snapshotUnderWay(state, space)) return null
    return {
      type: 'read-snapshot',
      space,
      page,
      afterKey,
      limit: state.config.snapshotPage,
      cursor: stream.snapshot.cursor,
    }
  }
  if (stream.sent >= facts.head(space)) return null
  const room = state.config.window - (stream.sent - stream.acked)
  if (room <= 0 || stream.bytesInFlight >= (state.config.windowBytes ?? Number.POSITIVE_INFINITY)) return null
  const stop = stopAt(markFor(state, space, facts), stream.sent)
  const limit = Math.min(room, state.config.batchSize, stop - stream.sent)
  return { type: 'read-log', space, after: stream.sent, limit }
}

/** True when a stream of this session other than `space`'s has begun sending its snapshot (or reading its first page). */
function snapshotUnderWay(state: HubSessionState, space: SpaceId): boolean {
  for (const other in state.streams) {
    if (other === space) continue
    const stream = state.streams[other] as HubStream
    if (stream.snapshot !== null && (stream.snapshot.page > 0 || stream.reading)) return true
  }
  return false
}

function logRead(
  state: HubSessionState,
  input: Extract<HubSessionInput, { type: 'log-read' }>,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const stream = streamOf(state, input.space)
  if (stream === undefined || state.phase !== 'ready') return state
  if (input.after !== stream.sent || stream.snapshot !== null || input.entries.length === 0) {
    const idle = setStream(state, input.space, { ...stream, reading: false })
    // Nothing past `sent`, though the head said there was: the hub's news ran ahead of its
    // store (a store put back under it). Read again at the next tick or news, not at once,
    // which would read nothing again, for ever, without a pause.
    if (input.entries.length === 0 && input.after === stream.sent && stream.snapshot === null) return idle
    return pump(idle, input.space, facts, effects)
  }
  // The receiver's own changes are not sent, and cost no bytes of the window.
  const compact = state.features.includes(Feature.Compact)
  let entries = input.entries
  const mark = markFor(state, input.space, facts)
  const stop = stopAt(mark, stream.sent)
  if ((entries[entries.length - 1] as LogEntry).seq > stop)
    entries = entries.filter((entry) => entry.seq <= stop)
  // To a linked hub, not what came from it: left out before anything is sized or encoded.
  const origin = state.relay ? facts.origin?.bind(facts) : undefined
  const echoed = origin === undefined ? undefined : (change: Change) => origin(change) === stream.source
  const sendable = (list: readonly LogEntry[]) =>
    echoed === undefined ? list : list.filter((entry) => !echoed(entry.change))
  let { batch, bytes } =
    facts.outgoing?.(sendable(entries), state.replicaId, compact) ??
    outgoing(sendable(entries), state.replicaId, compact, facts.size?.bind(facts))
  const frameBytes = frameBudget(state)
  // The batch that carries the mark has that much less room for changes.
  const limit =
    frameBytes === undefined || mark === undefined || mark.at !== input.after
      ? frameBytes
      : Math.max(1, frameBytes - markSize(mark).length)
  if (limit !== undefined && bytes > limit && facts.size !== undefined) {
    // Too much for one frame: the rest is read again for the next one.
    entries = entries.slice(
      0,
      entriesWithin(entries, state.replicaId, compact, limit, facts.size.bind(facts), echoed),
    )
    ;({ batch, bytes } = outgoing(sendable(entries), state.replicaId, compact, facts.size.bind(facts)))
  }
  const last = entries[entries.length - 1] as LogEntry
  effects.push({
    type: 'send',
    message: {
      type: 'changes',
      space: input.space,
      from: input.after,
      to: last.seq,
      batch,
      head: Math.max(last.seq, facts.head(input.space)),
      ...(mark !== undefined && mark.at === input.after ? { collected: mark.received } : {}),
    },
  })
  const lastProgressAt = stream.sent === stream.acked ? input.now : stream.lastProgressAt
  // One new stream per frame: built here, and marked reading before anything sees it when
  // the next read follows at once (as `pump` would, with one copy fewer).
  const next: { -readonly [K in keyof HubStream]: HubStream[K] } = {
    ...stream,
    reading: false,
    sent: last.seq,
    inFlight: bytes === 0 ? stream.inFlight : pushFrame(stream.inFlight, last.seq, bytes),
    bytesInFlight: stream.bytesInFlight + bytes,
    lastProgressAt,
  }
  const read = nextRead(state, input.space, next, facts)
  if (read !== null) {
    effects.push(read)
    next.reading = true
  }
  return setStream(state, input.space, next)
}

/**
 * How many of `entries`, from the first, one frame carries: those whose changes (not the
 * receiver's own, nor those `skip` leaves out, which are not sent) fit in `limit` bytes, and
 * at least one.
 */
function entriesWithin(
  entries: readonly LogEntry[],
  receiver: ReplicaId | null,
  compact: boolean,
  limit: number,
  size: NonNullable<HubFacts['size']>,
  skip?: (change: Change) => boolean,
): number {
  let bytes = 0
  for (let i = 0; i < entries.length; i++) {
    const change = (entries[i] as LogEntry).change
    if (change.dot[0] === receiver || skip?.(change) === true) continue
    bytes += size(change, compact)
    if (bytes > limit && i > 0) return i
  }
  return entries.length
}

/**
 * The changes of a snapshot page read that one page carries: whole records (a record's
 * versions are consecutive and stay together) within about `limit` bytes, and at least one
 * version; with the key to continue after when the page was cut between records, or the
 * {@link SnapshotSplit} to continue with when the page's first record alone is longer than
 * `limit` and was cut between its versions (a conflict of large values: each version fits a
 * frame, as writes are refused otherwise, but together they may not). Versions `split` names
 * as sent are left out first.
 *
 * Sized by `approximateChangeLength` with escapes counted, not `HubFacts.size`: a page's
 * changes are read once and sent once, and caching their texts to size them cost more than
 * encoding them. Escapes must count: text of control characters is six times as long as
 * JSON, which would make a page of about `limit` characters a frame no receiver accepts.
 */
function pageWithin(
  read: readonly Change[],
  nextKey: string | null,
  limit: number,
  split: SnapshotSplit | null,
): {
  readonly changes: readonly Change[]
  readonly nextKey: string | null
  readonly split: SnapshotSplit | null
} {
  const changes = split === null ? read : read.filter((change) => !sentBefore(change, split))
  let bytes = 0
  let recordStart = 0
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as Change
    const size = approximateChangeLength(change, true)
    const previous = changes[i - 1]
    const newRecord =
      previous === undefined || previous.collection !== change.collection || previous.id !== change.id
    if (newRecord) recordStart = i
    if (i > 0 && bytes + size > limit) {
      const kept = previous as Change
      if (newRecord)
        return { changes: changes.slice(0, i), nextKey: recordKey(kept.collection, kept.id), split: null }
      if (recordStart === 0) {
        const key = recordKey(change.collection, change.id)
        const before = split?.key === key ? split.sent : []
        const sent = [...before, ...changes.slice(0, i).map((version) => version.dot)]
        return { changes: changes.slice(0, i), nextKey, split: { key, sent } }
      }
    }
    bytes += size
  }
  return { changes, nextKey, split: null }
}

/** True for a version of the split record that an earlier page sent. */
function sentBefore(change: Change, split: SnapshotSplit): boolean {
  const [replica, counter] = change.dot
  if (!split.sent.some((dot) => dot[0] === replica && dot[1] === counter)) return false
  return recordKey(change.collection, change.id) === split.key
}

function snapshotRead(
  state: HubSessionState,
  input: Extract<HubSessionInput, { type: 'snapshot-read' }>,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const stream = streamOf(state, input.space)
  const snapshot = stream?.snapshot
  if (
    stream === undefined ||
    snapshot === null ||
    snapshot === undefined ||
    snapshot.page !== input.page ||
    (input.cursor !== undefined && input.cursor !== snapshot.cursor)
  ) {
    return stream === undefined ? state : setStream(state, input.space, { ...stream, reading: false })
  }
  // The first page names the counters the snapshot covers, in its budget.
  const received = snapshot.page === 0 ? snapshot.received : undefined
  const frameBytes = frameBudget(state)
  const limit =
    frameBytes === undefined || received === undefined
      ? frameBytes
      : Math.max(1, frameBytes - JSON.stringify(received).length)
  const { changes, nextKey, split } =
    limit === undefined
      ? { ...input, split: null }
      : pageWithin(input.changes, input.nextKey, limit, snapshot.split)
  const last = nextKey === null && split === null
  effects.push({
    type: 'send',
    message: {
      type: 'snapshot',
      space: input.space,
      cursor: snapshot.cursor,
      page: snapshot.page,
      last,
      batch: changes,
      ...(received === undefined ? {} : { received }),
    },
  })
  const next: HubStream = last
    ? { ...stream, reading: false, snapshot: null, sent: snapshot.cursor, lastProgressAt: input.now }
    : {
        ...stream,
        reading: false,
        // Cut inside a record: read from the same key again, that record first.
        snapshot: {
          ...snapshot,
          page: snapshot.page + 1,
          afterKey: split === null ? nextKey : snapshot.afterKey,
          split,
        },
      }
  let after = pump(setStream(state, input.space, next), input.space, facts, effects)
  // Over a link, a snapshot waiting for this one to end goes now (see `nextRead`).
  if (last && state.relay) {
    for (const space of Object.keys(after.streams) as SpaceId[])
      if (space !== input.space) after = pump(after, space, facts, effects)
  }
  return after
}

function tick(
  state: HubSessionState,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  if (state.phase !== 'ready') return state
  let next = state
  // What the transport has not written out yet has not reached the replica, which owes no
  // answer for it: the wait for one starts once the transport has written it out. (A slow
  // reader, whose last snapshot pages wait here, was sent the whole snapshot again every
  // `retransmitMs`, queued behind the copy it was still reading.)
  const holding = (facts.backlog?.() ?? 0) > 0
  // With `resend`, nothing goes again for silence: the replica asks when it must.
  const asked = state.features.includes(Feature.Resend)
  for (const space of Object.keys(state.streams) as SpaceId[]) {
    const stream = streamOf(next, space) as HubStream
    const unanswered = stream.sent > stream.acked
    if (holding && unanswered) next = setStream(next, space, { ...stream, lastProgressAt: now })
    else if (
      !asked &&
      unanswered &&
      now - stream.lastProgressAt >= state.config.retransmitMs &&
      stream.snapshot === null
    ) {
      next = setStream(next, space, goneBack(next, space, stream, now, facts))
    }
    // Also resumes a stream whose last read failed.
    next = pump(next, space, facts, effects)
  }
  return next
}

/**
 * Go-back-N: `stream` sent again from its last acknowledged position. A snapshot the replica
 * never confirmed is restarted from its first page, or from where `resume` says the replica
 * got to when that snapshot can be resumed (see {@link resumedSnapshot}); a linked hub is
 * read the log from its start again while the log is all there.
 */
function goneBack(
  state: HubSessionState,
  space: SpaceId,
  stream: HubStream,
  now: number,
  facts: HubFacts,
  resume?: SnapshotResume,
): HubStream {
  const restart = stream.acked === 0 && facts.head(space) > 0 && (!state.relay || facts.floor(space) > 0)
  return {
    ...stream,
    inFlight: NO_FRAMES_IN_FLIGHT,
    bytesInFlight: 0,
    sent: stream.acked,
    reading: false,
    lastProgressAt: now,
    snapshot: restart
      ? (resumedSnapshot(resume, space, stream.acked, true, facts) ?? startSnapshot(space, facts))
      : null,
  }
}

/**
 * A replica's `ack` marked `resend` (see `Feature`): it holds everything up to `upTo` (an
 * acknowledgement like any other) and could not take what followed, which goes again from its
 * last acknowledged position (see {@link goneBack}, which `resume` is handed to).
 */
function resendFrom(
  state: HubSessionState,
  space: SpaceId,
  stream: HubStream,
  upTo: number,
  resume: SnapshotResume | undefined,
  now: number,
  facts: HubFacts,
  effects: HubSessionEffect[],
): HubSessionState {
  const acked = Math.max(stream.acked, upTo)
  const settled: HubStream = { ...stream, ...settle(stream, acked), acked }
  const next = goneBack(state, space, settled, now, facts, resume)
  return pump(setStream(state, space, next), space, facts, effects)
}
