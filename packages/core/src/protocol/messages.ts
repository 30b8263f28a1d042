import type { Change } from '../change.js'
import type { ErrorCode } from '../errors.js'
import type { ReplicaId, SpaceId } from '../ids.js'
import type { JsonObject } from '../json.js'

/**
 * The protocol version this build speaks. A peer that sends another version in `hello` is
 * refused with `unsupported-protocol`; versions are bumped only for incompatible changes.
 */
export const PROTOCOL_VERSION = 1

/**
 * Opens a session; both sides send one.
 *
 * `have` is, per space, the sender's position in the *receiver's* stream: a replica says
 * which hub log position it has applied; the hub answers with the highest counter of that
 * replica's changes it has stored. Each side then resumes sending from there.
 */
export interface HelloMessage {
  readonly type: 'hello'
  readonly protocol: number
  readonly replicaId: ReplicaId
  readonly token?: string
  readonly spaces: readonly SpaceId[]
  readonly have: { readonly [space: string]: number }
  /**
   * Per space, the length of the sender's own stream (optional): the hub's log head, or the
   * replica's latest counter. A replica knows it has caught up when its cursor reaches the
   * hub's head; the hub reports a replica's upload backlog from it.
   */
  readonly heads?: { readonly [space: string]: number }
  /**
   * Optional features the sender speaks (see {@link Feature}). A replica offers them; the hub
   * answers with those it speaks too, and only those are used on the session. Names this
   * build does not know are dropped when decoding, so a newer peer may offer more.
   */
  readonly features?: readonly Feature[]
  /**
   * Per space, the name of the hub's log that `have` is a position in (optional): the hub
   * sends its own; a replica sends back the one it was last sent. A relay restored from a
   * backup names its log anew, and a replica whose position is in another log than the
   * hub's is read the log from its start (a snapshot) and resets its cursor.
   */
  readonly logs?: { readonly [space: string]: string }
  /**
   * The longest frame the sender reads, in bytes (optional): the hub sends its own. A replica
   * sizes its uploads to it, and refuses a write whose change could never fit it.
   */
  readonly maxFrame?: number
  /**
   * The spaces the hub's `hello` answers in which this connection may only read (optional;
   * none when absent). A replica then keeps its own changes of such a space (it does not
   * upload them, as the hub would refuse them) and refuses new writes to it, while it keeps
   * receiving everyone else's.
   */
  readonly readOnly?: readonly SpaceId[]
  /**
   * From a replica, per space, a snapshot it holds the first pages of (optional; the hub
   * reads it only on a session that negotiates `resume`, see {@link Feature}): the hub may
   * send the rest of that snapshot instead of a new one from its first page.
   */
  readonly resume?: { readonly [space: string]: SnapshotResume }
}

/**
 * Where a replica's interrupted snapshot stands (`hello.resume`): the snapshot at log position
 * `cursor`, of which it has durably applied every record up to and including the record key
 * `after` (`recordKey(collection, id)`). The hub's log since `cursor` covers whatever changed
 * in the records already sent, as it does for a snapshot whose pages are read over a long time.
 */
export interface SnapshotResume {
  readonly cursor: number
  readonly after: string
}

/**
 * Optional protocol features, negotiated in `hello`; a peer that offers none gets protocol 1
 * exactly as it was first specified.
 *
 * - `compact`: the hub may send `changes` and `snapshot` batches as compact rows (a table of
 *   collection names and replica ids per frame, one array per change) instead of change
 *   objects. Every decoder of this build reads both forms, whoever sends them.
 * - `sparse`: the replica may send `changes` marked `sparse` (see {@link ChangesMessage}),
 *   to give a hub that lost changes it had acknowledged what is left of them.
 * - `collect`: the hub tells the replica which deletions it collected (see
 *   `ChangesMessage.collected`), and the replica removes them too.
 * - `relay`: the session links two hubs (relay↔relay). Each streams its log to the other,
 *   changes of every writer, and takes the other's log into its own; positions in the
 *   other's log count under the id the other names (the dialing hub's `replicaId`, the
 *   accepting hub's log name). The accepting hub answers it only to a token that may relay.
 * - `presence`: both sides may send `presence` (see {@link PresenceMessage}): the replica its
 *   own ephemeral state in a space, the hub everyone else's.
 * - `ping`: the replica may send `ping` (see {@link PingMessage}), and the hub answers each
 *   with a `pong` naming its log's head then: how a replica learns it holds everything the
 *   hub had stored when it asked (`synced()`), not only what the hub last reported.
 * - `resend`: both sides' transports deliver a connection's frames whole and in order, or
 *   close it (a WebSocket), so neither sends anything again for silence alone — on a slow
 *   link, what went unanswered for `retransmitMs` is mostly still on its way, and sending it
 *   again only doubles what the link must carry. A replica that could not take a frame says
 *   so with an `ack` marked `resend`; a hub that could not store an upload says so with an
 *   `error` (`storage-failed`, `rate-limited`, `frame-too-large`), and the replica sends again.
 * - `resume`: a replica whose snapshot was cut off (the connection dropped part way) names in
 *   its next `hello` how far it got (`resume`), and the hub sends the rest of that snapshot,
 *   from the record after, when its log still holds every change since the snapshot's
 *   position; otherwise it sends a new snapshot, as without the feature.
 */
export const Feature = {
  Compact: 'compact',
  Sparse: 'sparse',
  Collect: 'collect',
  Relay: 'relay',
  Presence: 'presence',
  Ping: 'ping',
  Resend: 'resend',
  Resume: 'resume',
} as const

/** A feature name (see {@link Feature}). */
export type Feature = (typeof Feature)[keyof typeof Feature]

/**
 * The features a replica offers and a hub speaks over any transport: all but `relay`, which
 * only linked hubs speak, and `resend`, which needs a transport that delivers whole frames in
 * order or closes (see `HubSessionConfig.reliable`, `ReplicaEngineOptions.reliableTransport`).
 */
export const STREAM_FEATURES: readonly Feature[] = [
  Feature.Compact,
  Feature.Sparse,
  Feature.Collect,
  Feature.Presence,
  Feature.Ping,
  Feature.Resume,
]

/**
 * Everything in the sender's stream for this space after position `from`, up to `to`.
 *
 * From a replica: its own changes with counters `from + 1 … to`, gap-free, in order (unless
 * `sparse`). From the
 * hub: the log entries after `from` up to and including `to`, minus the receiver's own
 * changes (so `batch` may be empty while `to` still advances). A receiver takes a batch only
 * when `from` is at or behind its position and `to` ahead of it; anything else is a gap or a
 * duplicate, answered with an `ack` of its real position.
 */
export interface ChangesMessage {
  readonly type: 'changes'
  readonly space: SpaceId
  readonly from: number
  readonly to: number
  readonly batch: readonly Change[]
  /** The sender's stream length when it sent this (optional; at least `to`). */
  readonly head?: number
  /**
   * From a replica only, on a session that negotiated `sparse` (see {@link Feature}): `batch`
   * holds those of its changes `from + 1 … to` it still has, in
   * counter order, and the others are gone for good. A replica sends this when the hub has
   * lost changes it had acknowledged (a relay restored from a backup): it no longer keeps
   * them in its outbox, so it sends again the versions of them its records still hold; the
   * rest were superseded there. The hub stores the batch and counts `to` as received.
   */
  readonly sparse?: true
  /**
   * From the hub only, on a session that negotiated `collect` (see {@link Feature}): at
   * position `from`, the hub's compaction collected deletions — every record whose versions
   * were all deletes, each with a dot this covers (per replica, the highest counter covered).
   * The receiver removes those records too before it applies the batch, so that a later
   * write to one of them, by a replica that never saw the deletion, is taken alone there as
   * it is at the hub. The hub sends no batch across such a position: the first batch from it
   * carries this, and a batch sent again from it carries it again.
   */
  readonly collected?: Readonly<Record<string, number>>
}

/** The receiver has durably stored (hub) or applied (replica) the stream up to `upTo`. */
export interface AckMessage {
  readonly type: 'ack'
  readonly space: SpaceId
  readonly upTo: number
  /**
   * From a replica, with the `resend` feature: it could not take what followed `upTo` (its
   * storage failed applying it), and asks the hub to send from there again — from a
   * snapshot's first page, when it was in one.
   */
  readonly resend?: true
  /**
   * With `resend`, on a session that negotiated `resume`: the snapshot the replica was taking
   * in when its storage failed, and how far it got (see {@link SnapshotResume}). The hub may
   * send the rest of it instead of the snapshot from its first page.
   */
  readonly resume?: SnapshotResume
}

/**
 * One page of a compacted snapshot: the current versions of records, not their history.
 *
 * Sent to a replica that is new (position 0) or older than the retained log. Pages are
 * numbered from 0; after the `last` one the receiver's position is `cursor`, and the stream
 * continues with `changes` from there. A replica applies pages in order, ignoring others.
 */
export interface SnapshotMessage {
  readonly type: 'snapshot'
  readonly space: SpaceId
  readonly cursor: number
  readonly page: number
  readonly last: boolean
  readonly batch: readonly Change[]
  /**
   * On page 0 (optional): per replica, the highest counter of its changes the hub had stored
   * at `cursor`. A record the replica holds that no page carries, and whose versions these
   * cover, was deleted and its deletion collected while the replica was away: it drops those
   * versions. Without it, the replica keeps what no page carries.
   */
  readonly received?: Readonly<Record<string, number>>
}

/** A refusal or failure, with a stable code. `space` is set when it concerns one space. */
export interface ErrorMessage {
  readonly type: 'error'
  readonly code: ErrorCode
  readonly message: string
  readonly space?: SpaceId
  /** With `frame-too-large`: the longest frame the sender reads, in bytes (optional). */
  readonly maxFrame?: number
}

/**
 * Ephemeral state in a space (optional feature `presence`): who is here, what they look at.
 * Not stored, not acknowledged, not sent again: a hub keeps the latest `state` per connection
 * and `key` while the connection lasts, and a replica sends its own again on reconnecting.
 *
 * From a replica: its state under `key` (one per tab, say), null to clear it; `replicaId`
 * absent. From the hub: another connection's, naming its replica (`replicaId`); null when it
 * cleared it or went away. A hub sends a replica everyone's current state once it joins the
 * space, then each change.
 */
export interface PresenceMessage {
  readonly type: 'presence'
  readonly space: SpaceId
  /** 1–{@link MAX_PRESENCE_KEY_LENGTH} characters. */
  readonly key: string
  /** At most {@link MAX_PRESENCE_CHARS} characters of JSON; null: gone. */
  readonly state: JsonObject | null
  readonly replicaId?: ReplicaId
  /**
   * Between linked hubs only: the hub whose connection the presence is (its presence id, at
   * most {@link MAX_PRESENCE_KEY_LENGTH} characters), and that hub's count of its changes, so
   * that a hub reached by two paths keeps the latest.
   */
  readonly origin?: string
  readonly seq?: number
}

/**
 * From a replica, on a session that negotiated `ping` (see {@link Feature}): where does the
 * hub's log of `space` end now? The hub answers with a {@link PongMessage} of the same `id`.
 * Frames on one connection arrive in order, so every change the hub had stored when it read
 * the ping is at or below the head it answers with.
 */
export interface PingMessage {
  readonly type: 'ping'
  readonly space: SpaceId
  readonly id: number
}

/** The hub's answer to a {@link PingMessage}: `head` is its log head of `space` when it read the ping. */
export interface PongMessage {
  readonly type: 'pong'
  readonly space: SpaceId
  readonly id: number
  readonly head: number
}

/** Longest presence `key`. */
export const MAX_PRESENCE_KEY_LENGTH = 64
/** Longest presence `state`, in characters of its JSON text. */
export const MAX_PRESENCE_CHARS = 4096
/** Most presence keys one connection holds in a space at once; more are refused. */
export const MAX_PRESENCE_KEYS = 32

/** Every message of the sync protocol. */
export type Message =
  | HelloMessage
  | ChangesMessage
  | AckMessage
  | SnapshotMessage
  | ErrorMessage
  | PresenceMessage
  | PingMessage
  | PongMessage

/** The message type names. */
export const MessageType = {
  Hello: 'hello',
  Changes: 'changes',
  Ack: 'ack',
  Snapshot: 'snapshot',
  Error: 'error',
  Presence: 'presence',
  Ping: 'ping',
  Pong: 'pong',
} as const

/** Bounds a receiver enforces on inbound frames. */
export interface ProtocolLimits {
  /** Largest frame, in UTF-16 code units of its JSON text. */
  readonly maxFrameBytes: number
  /** Most changes in one `changes` or `snapshot` batch. */
  readonly maxBatch: number
  /** Most spaces named in one `hello`. */
  readonly maxSpaces: number
  /** Longest token. */
  readonly maxTokenLength: number
  /** Most entries in one version vector. */
  readonly maxVectorEntries: number
}

/** Default limits: generous for real use, small enough to bound memory per frame. */
export const DEFAULT_LIMITS: ProtocolLimits = {
  maxFrameBytes: 4 * 1024 * 1024,
  maxBatch: 1000,
  maxSpaces: 64,
  maxTokenLength: 8192,
  maxVectorEntries: 4096,
}
