import type { Change } from '../change.js'
import { ErrorCode } from '../errors.js'
import type { ReplicaId, SpaceId } from '../ids.js'
import { type JsonObject, ownNumber, ownValue } from '../json.js'
import { Feature, type Message, PROTOCOL_VERSION, type SnapshotResume, STREAM_FEATURES } from './messages.js'

/** Tunables of the replica side of the protocol. */
export interface ReplicaSessionConfig {
  readonly replicaId: ReplicaId
  readonly space: SpaceId
  readonly token?: string
  /**
   * The runtime can fetch a new token: the hub's `unauthenticated` (an expired or refused
   * token) ends this connection only, and the next one presents the token it brings
   * (`connected`'s `token`). Absent: the refusal is final, as `forbidden` always is.
   */
  readonly renewToken?: boolean
  /** Most own changes per `changes` frame. */
  readonly batchSize: number
  /** Most own changes sent and not yet acknowledged. */
  readonly window: number
  /** Resend what is unacknowledged (and `hello`, if unanswered) after this long without progress. */
  readonly retransmitMs: number
  /**
   * Acknowledge applied hub positions at most this often (ms); later ones wait for the next
   * apply after the interval, or the next tick. Without it a replica answers every frame of
   * a busy space with an ack, one frame back per frame received. Absent: every apply is
   * acknowledged at once.
   */
  readonly ackIntervalMs?: number
  /** …unless this many positions are unacknowledged: then at once, so the hub's window never stalls. */
  readonly ackEvery?: number
  /**
   * Send own changes right behind `hello` instead of after the hub's answer, saving a round
   * trip on every reconnect. Safe because a hub handles a connection's frames in order, and
   * the first batch continues from `acked`, which the hub holds durably. Absent: wait.
   */
  readonly pipeline?: boolean
  /**
   * Optional protocol features to offer in `hello` (see {@link Feature}); the hub uses those
   * it speaks too. Every feature a replica can offer is one its decoder always reads, so
   * nothing here depends on the hub's answer. Absent: none.
   */
  readonly features?: readonly Feature[]
}

/** Defaults for {@link ReplicaSessionConfig}'s tunables. */
export const DEFAULT_REPLICA_SESSION = {
  batchSize: 100,
  window: 1000,
  retransmitMs: 3000,
  ackIntervalMs: 50,
  ackEvery: 500,
  pipeline: true,
  features: STREAM_FEATURES,
} as const

/** Where the session is: no transport, hello sent, or streaming. */
export type ReplicaPhase = 'offline' | 'connecting' | 'ready'

/**
 * The replica side of one sync session, as plain data.
 *
 * Positions: `cursor` is the hub log position durably applied here; `applyingTo` is where
 * it will be once queued applies land. `acked` is the highest own counter the hub has
 * acknowledged as durable, `sent` the highest sent in this session, `local` the highest
 * written locally. Invariant: acked ≤ sent ≤ local and cursor ≤ applyingTo.
 */
export interface ReplicaSessionState {
  readonly config: ReplicaSessionConfig
  readonly phase: ReplicaPhase
  readonly cursor: number
  readonly applyingTo: number
  readonly acked: number
  readonly sent: number
  readonly local: number
  readonly reading: boolean
  /**
   * When our own stream last made progress (an ack, or a send from idle). Only outgoing
   * progress counts: incoming frames must not postpone our retransmissions, or a peer that
   * keeps re-sending would starve them.
   */
  readonly lastProgressAt: number
  readonly snapshot: { readonly cursor: number; readonly nextPage: number } | null
  /** The snapshot this connection's `hello` asks the hub to resume (see the `connected` input). */
  readonly resume: SnapshotResume | null
  /** The longest frame this connection's `hello` asks the hub for (see the `connected` input). */
  readonly readLimit: number | null
  /** The hub's log head as last reported: caught up means `cursor` has reached it. */
  readonly hubHead: number
  /**
   * The hub answered this session's hello accepting `compact` (see `Feature`): own batches
   * may then be sent in the compact form. False until that answer, and after a disconnect.
   */
  readonly compact: boolean
  /**
   * The hub answered this session's hello accepting `presence`: own presence may be sent,
   * and the hub sends everyone else's. False until that answer, and after a disconnect.
   */
  readonly presence: boolean
  /** The position last acknowledged to the hub in this session, and when. */
  readonly ackSent: number
  readonly ackAt: number
  /** Set when the hub refused the session for good (bad token, forbidden, protocol). */
  readonly fatal: { readonly code: ErrorCode; readonly message: string } | null
  /**
   * The hub said it dropped frames of ours (`rate-limited`): the next tick sends again from
   * the last acknowledged position, whatever acknowledgements came meanwhile (those of the
   * frames before the dropped one do), instead of after `retransmitMs` of silence.
   */
  readonly dropped: boolean
  /**
   * Own counters up to this one (above `acked`) were acknowledged by a hub that has since
   * lost them — a relay restored from a backup answered `hello` with less than we knew it
   * held. They are no longer in the outbox, so they are read from the records instead
   * (`read-lost`) and sent as sparse batches: the versions of them the records still hold.
   * 0 when nothing was lost.
   */
  readonly lostUpTo: number
  /** The hub log `cursor` is a position in, as the hub last named it (null: never named). */
  readonly log: string | null
  /**
   * The longest frame the hub said it reads, in bytes (its `hello`, or its `frame-too-large`
   * refusal of a frame sent before that hello); null until it says. Kept across reconnects:
   * uploads, and the writes this replica takes, are sized to it.
   */
  readonly maxFrame: number | null
  /**
   * The hub lets this replica only read the space: its hello answer said so, or it refused
   * a batch of ours (`forbidden`, naming the space) on a hub that does not say. Nothing is
   * uploaded meanwhile — own changes stay in the outbox — and the engine refuses new writes;
   * changes from the others still arrive. Each hello answer says again (access can change).
   */
  readonly readOnly: boolean
  /**
   * The hub answered this session's hello accepting `ping`: it answers a `ping` with its
   * log's head. False until that answer, and after a disconnect.
   */
  readonly ping: boolean
  /**
   * The hub answered this session's hello accepting `resend` (see `Feature`): nothing goes
   * again for silence alone; this side asks the hub to send again when it could not take a
   * frame, and sends its own again when the hub says it could not take them. False until that
   * answer, and after a disconnect.
   */
  readonly resend: boolean
  /**
   * The hub answered this session's hello accepting `resume`: an ask to send again names the
   * snapshot this replica holds the first pages of. False until that answer, and after a
   * disconnect.
   */
  readonly resumes: boolean
  /**
   * With `resend`: when the hub last said it could not take what we sent (`storage-failed`,
   * `rate-limited`), and how far we had sent then. Until it acknowledges that far, what it has
   * not acknowledged goes again after each `retransmitMs` without progress, as without
   * `resend` (a rate limiter says so only for the first frame of a run it drops), and our
   * position with it (the frames dropped may have been our acks). With nothing of ours
   * unacknowledged, that lasts the connection: an ack each `retransmitMs`.
   */
  readonly refused: { readonly at: number; readonly sent: number } | null
  /**
   * With `resend`: when we last asked the hub to send again from our cursor (an apply failed),
   * until something it sends is stored. Asked again each `retransmitMs` meanwhile: the ask
   * itself may be dropped (a rate limiter), and the storage may still be failing.
   */
  readonly asked: number | null
  /**
   * How many times the runtime asked where the hub's log ends (`ping` inputs, counted over
   * the session's life), and how many of those asks are answered: by a `pong` to a ping sent
   * after the ask, or, from a hub without `ping`, by its hello answer (it says no more than
   * that). An answered ask has raised `hubHead` to a head the hub held after the ask.
   */
  readonly syncAsked: number
  readonly syncAnswered: number
  /**
   * The last ping sent: its id (ids rise over the session's life), the `syncAsked` it
   * answers, and when it went out (null: none is awaited). One is awaited at a time; asks
   * made meanwhile wait for its answer and then go out together in the next.
   */
  readonly pingId: number
  readonly pingCovers: number
  readonly pingAt: number | null
}

/** What the runtime tells the session. */
export type ReplicaSessionInput =
  /**
   * A transport is up; `token`, when given, is presented from now on instead of the config's.
   * `resume`: a snapshot the runtime holds the first pages of, to ask the hub for the rest of
   * (see `HelloMessage.resume`).
   */
  | {
      readonly type: 'connected'
      readonly now: number
      readonly token?: string
      readonly resume?: SnapshotResume
      /**
       * The longest frame to ask the hub for (`hello.maxFrame`), on a link too slow for a
       * frame of the hub's own size to arrive before the runtime takes it for dead.
       */
      readonly readLimit?: number
    }
  | { readonly type: 'disconnected'; readonly now: number }
  | { readonly type: 'message'; readonly now: number; readonly message: Message }
  | { readonly type: 'local-write'; readonly now: number; readonly counter: number }
  | {
      readonly type: 'outbox-read'
      readonly now: number
      readonly after: number
      readonly changes: readonly Change[]
      /** Set for what `read-lost` read: the counter the batch covers up to (it may be empty). */
      readonly to?: number
    }
  /**
   * The runtime cannot send what comes next (an own change larger than the hub reads): the
   * session stops for good, as on a fatal refusal.
   */
  | { readonly type: 'fail'; readonly now: number; readonly code: ErrorCode; readonly message: string }
  /** Reading the outbox failed; the next tick tries again. */
  | { readonly type: 'outbox-failed'; readonly now: number }
  | { readonly type: 'applied'; readonly now: number; readonly cursor: number | null }
  /**
   * Storing what the hub sent failed. `resume`: the snapshot the runtime holds the first pages
   * of, to ask the hub for the rest of (see `AckMessage.resume`).
   */
  | { readonly type: 'apply-failed'; readonly now: number; readonly resume?: SnapshotResume }
  /**
   * The runtime dropped its cursor to 0 to read the hub's state afresh: the session asks the
   * hub for its log from the start (an `ack` of 0, which the hub answers with a snapshot).
   */
  | { readonly type: 'resync'; readonly now: number }
  | { readonly type: 'tick'; readonly now: number }
  /**
   * Find out where the hub's log ends now: the session pings the hub once it is ready (see
   * `syncAsked`), so that `isReplicaSynced` then also means caught up with that head.
   */
  | { readonly type: 'ping'; readonly now: number }

/**
 * A snapshot page being applied. Pages reach the runtime in order, from 0, each once, and a
 * page that fails to apply ends the snapshot (the hub sends it again from page 0).
 */
export interface SnapshotPage {
  /** The snapshot's log position (`SnapshotMessage.cursor`). */
  readonly cursor: number
  readonly page: number
  readonly last: boolean
  /** Page 0's `SnapshotMessage.received`, if the hub sent it. */
  readonly received?: Readonly<Record<string, number>>
}

/** What the session asks the runtime to do, in order. */
export type ReplicaSessionEffect =
  | { readonly type: 'send'; readonly message: Message }
  /** Read own unacknowledged changes with counters > `after`, at most `limit`, in order. */
  | { readonly type: 'read-outbox'; readonly after: number; readonly limit: number }
  /**
   * Read, from the records, the versions they still hold of own changes with counters in
   * `after + 1 … upTo` (at most `limit`, in counter order); answer with `outbox-read` and
   * `to`, the counter that read covers up to (`upTo` when it took the rest).
   */
  | { readonly type: 'read-lost'; readonly after: number; readonly upTo: number; readonly limit: number }
  /** The hub has durably stored own changes up to `upTo`: drop them from the outbox. */
  | { readonly type: 'drop-outbox'; readonly upTo: number }
  /**
   * Apply remote changes durably; when `cursor` is set, store it in the same transaction.
   * `from` is the position the batch continues: the runtime must skip it unless its durable
   * cursor is at least `from` (an earlier apply failed), so no position is ever skipped.
   * Snapshot pages have `from: null`: they are joins that any state may take.
   */
  | {
      readonly type: 'apply'
      readonly batch: readonly Change[]
      readonly from: number | null
      readonly cursor: number | null
      /** For a snapshot page: which one, and its `received` (page 0). */
      readonly snapshot?: SnapshotPage
      /**
       * The hub collected deletions at `from` (see `ChangesMessage.collected`): if the durable
       * cursor is `from`, first remove every record whose versions are all deletes with dots
       * this covers.
       */
      readonly collected?: Readonly<Record<string, number>>
    }
  /** The hub refused the session for good; the runtime closes the transport and reports it. */
  | { readonly type: 'fail'; readonly code: ErrorCode; readonly message: string }
  /**
   * The hub refused the token (`unauthenticated`) of a session whose runtime renews tokens
   * (`renewToken`): the runtime reports it, and its next connection brings a new token.
   */
  | { readonly type: 'token-refused'; readonly message: string }
  /**
   * The hub accepted `presence` in its hello answer: it holds none of this replica's presence
   * (a new connection), so the runtime sends its current state for each of its keys.
   */
  | { readonly type: 'presence-joined' }
  /**
   * The hub dropped frames of this session for going too fast (`rate-limited`), presence
   * among them perhaps: the runtime sends its presence again at its next tick (changes are
   * sent again by the session itself, see `dropped`).
   */
  | { readonly type: 'presence-dropped' }
  /** Another replica's presence under `key` changed (null: gone); the runtime reports it. */
  | {
      readonly type: 'presence'
      readonly replicaId: ReplicaId
      readonly key: string
      readonly state: JsonObject | null
    }
  /** The hub lets this replica only read the space (see `readOnly`), and own changes are left unsent: the runtime reports it. */
  | { readonly type: 'read-only'; readonly message: string }
  /**
   * The hub could not store changes this replica sent (its storage failed: a full disk, a
   * database down): they stay in the outbox and are sent again; the runtime reports it, so an
   * app can tell a failing relay from a slow network.
   */
  | { readonly type: 'hub-storage-failed'; readonly message: string }
  /**
   * The hub named its log `log`: store the name, and with `reset` the cursor 0 as well (the
   * cursor was a position in another log, one a restored relay replaced), in one write.
   */
  | { readonly type: 'set-log'; readonly log: string; readonly reset: boolean }
  /** The hub named the longest frame it reads (another than before): store it. */
  | { readonly type: 'set-max-frame'; readonly maxFrame: number }

/** A step's outcome. */
export interface ReplicaStep {
  readonly state: ReplicaSessionState
  readonly effects: readonly ReplicaSessionEffect[]
}

/** Positions restored from storage when a replica starts. */
export interface ReplicaPositions {
  readonly cursor: number
  readonly acked: number
  readonly local: number
  /** The hub log the cursor is a position in, when a hub named it. */
  readonly log?: string
  /** The longest frame the hub last named, if one did (see `ReplicaSessionState.maxFrame`). */
  readonly maxFrame?: number
}

/** The session of a replica that has just started, offline. */
export function initialReplicaSession(
  config: ReplicaSessionConfig,
  positions: ReplicaPositions,
): ReplicaSessionState {
  return {
    config,
    phase: 'offline',
    cursor: positions.cursor,
    applyingTo: positions.cursor,
    acked: positions.acked,
    sent: positions.acked,
    local: positions.local,
    reading: false,
    lastProgressAt: 0,
    snapshot: null,
    resume: null,
    readLimit: null,
    hubHead: 0,
    compact: false,
    presence: false,
    ackSent: positions.cursor,
    ackAt: Number.NEGATIVE_INFINITY,
    fatal: null,
    dropped: false,
    lostUpTo: 0,
    log: positions.log ?? null,
    maxFrame: positions.maxFrame ?? null,
    readOnly: false,
    ping: false,
    resend: false,
    resumes: false,
    refused: null,
    asked: null,
    syncAsked: 0,
    syncAnswered: 0,
    pingId: 0,
    pingCovers: 0,
    pingAt: null,
  }
}

const fatalCodes: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.Unauthenticated,
  ErrorCode.Forbidden,
  ErrorCode.UnsupportedProtocol,
  ErrorCode.ReplicaMismatch,
  ErrorCode.SpaceDeleted,
])

/** The hub's frame limit after it named `named` (if it did), asking to store one it changed. */
function limitFrom(
  named: number | undefined,
  state: ReplicaSessionState,
  effects: ReplicaSessionEffect[],
): number | null {
  if (named === undefined || named === state.maxFrame) return state.maxFrame
  effects.push({ type: 'set-max-frame', maxFrame: named })
  return named
}

/**
 * Tells the runtime, when the replica holds own changes the hub will not take, that they
 * stay here: the hub lets it only read. (Without any, there is nothing to report: a write
 * is refused when it is made.)
 */
function readOnlyNotice(state: ReplicaSessionState, effects: ReplicaSessionEffect[]): void {
  const pending = state.local - state.acked
  if (pending === 0) return
  effects.push({
    type: 'read-only',
    message: `this replica may only read space ${state.config.space}: its ${pending} own change${pending === 1 ? '' : 's'} not uploaded stay here, and new writes are refused`,
  })
}

function hello(state: ReplicaSessionState): ReplicaSessionEffect {
  const { replicaId, space, token, features } = state.config
  const { resume } = state
  return {
    type: 'send',
    message: {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId,
      ...(token === undefined ? {} : { token }),
      spaces: [space],
      have: { [space]: state.cursor },
      heads: { [space]: state.local },
      ...(features === undefined || features.length === 0 ? {} : { features }),
      ...(state.log === null ? {} : { logs: { [space]: state.log } }),
      ...(state.readLimit === null ? {} : { maxFrame: state.readLimit }),
      // Only where the hub could take it: in the log it named, with the feature offered.
      ...(resume === null || state.log === null || features?.includes(Feature.Resume) !== true
        ? {}
        : { resume: { [space]: resume } }),
    },
  }
}

function ack(state: ReplicaSessionState): ReplicaSessionEffect {
  return { type: 'send', message: { type: 'ack', space: state.config.space, upTo: state.cursor } }
}

/** Acknowledges the cursor now, noting when. */
function ackNow(
  state: ReplicaSessionState,
  now: number,
  effects: ReplicaSessionEffect[],
): ReplicaSessionState {
  effects.push(ack(state))
  return { ...state, ackSent: state.cursor, ackAt: now }
}

/**
 * Sends a ping for the asks not answered yet, when the session is ready and none is awaited.
 * A hub without `ping` cannot say more than it last reported: its asks count as answered.
 */
function askHead(
  state: ReplicaSessionState,
  now: number,
  effects: ReplicaSessionEffect[],
): ReplicaSessionState {
  if (state.syncAsked <= state.syncAnswered || state.phase !== 'ready' || state.pingAt !== null) return state
  if (!state.ping) return { ...state, syncAnswered: state.syncAsked }
  const id = state.pingId + 1
  effects.push({ type: 'send', message: { type: 'ping', space: state.config.space, id } })
  return { ...state, pingId: id, pingCovers: state.syncAsked, pingAt: now }
}

/** True when own changes may be sent: the session is ready, or pipelining behind its hello. */
function streaming(state: ReplicaSessionState): boolean {
  return state.phase === 'ready' || (state.phase === 'connecting' && state.config.pipeline === true)
}

/** Asks for the next outbox batch when the window allows. */
function pump(state: ReplicaSessionState, effects: ReplicaSessionEffect[]): ReplicaSessionState {
  if (!streaming(state) || state.reading || state.readOnly || state.sent >= state.local) return state
  const room = state.config.window - (state.sent - state.acked)
  if (room <= 0) return state
  const limit = Math.min(room, state.config.batchSize)
  effects.push(
    state.sent < state.lostUpTo
      ? { type: 'read-lost', after: state.sent, upTo: state.lostUpTo, limit }
      : { type: 'read-outbox', after: state.sent, limit },
  )
  return { ...state, reading: true }
}

/**
 * Advances the replica side of the protocol by one input.
 *
 * Pure: the same state and input always give the same state and effects. Loss, duplication
 * and reordering are absorbed by positions: a batch is taken only when it continues what is
 * here, and an unanswered send is repeated after `retransmitMs` (go-back-N).
 */
export function stepReplicaSession(state: ReplicaSessionState, input: ReplicaSessionInput): ReplicaStep {
  const effects: ReplicaSessionEffect[] = []
  const next = reduce(state, input, effects)
  return { state: next, effects }
}

function reduce(
  state: ReplicaSessionState,
  input: ReplicaSessionInput,
  effects: ReplicaSessionEffect[],
): ReplicaSessionState {
  switch (input.type) {
    case 'connected': {
      if (state.fatal !== null) return state
      const next: ReplicaSessionState = {
        ...state,
        config: input.token === undefined ? state.config : { ...state.config, token: input.token },
        phase: 'connecting',
        lastProgressAt: input.now,
        snapshot: null,
        resume: input.resume ?? null,
        readLimit: input.readLimit ?? null,
        ackSent: state.cursor,
        ackAt: Number.NEGATIVE_INFINITY,
        pingAt: null,
      }
      effects.push(hello(next))
      return pump({ ...next, sent: next.acked, reading: false }, effects)
    }
    case 'disconnected':
      return {
        ...state,
        phase: 'offline',
        sent: state.acked,
        reading: false,
        snapshot: null,
        compact: false,
        presence: false,
        dropped: false,
        ping: false,
        resend: false,
        resumes: false,
        refused: null,
        asked: null,
        pingAt: null,
      }
    case 'local-write': {
      const next = { ...state, local: Math.max(state.local, input.counter) }
      return pump(next, effects)
    }
    case 'outbox-read': {
      let next: ReplicaSessionState = { ...state, reading: false }
      if (!streaming(next) || next.readOnly || input.after !== next.sent) return pump(next, effects)
      const to = input.to ?? input.changes[input.changes.length - 1]?.dot[1]
      if (to === undefined || to <= input.after) return next
      const space = next.config.space
      effects.push({
        type: 'send',
        message:
          input.to === undefined
            ? { type: 'changes', space, from: input.after, to, batch: input.changes }
            : { type: 'changes', space, from: input.after, to, batch: input.changes, sparse: true },
      })
      next = {
        ...next,
        sent: to,
        lastProgressAt: next.sent === next.acked ? input.now : next.lastProgressAt,
      }
      return pump(next, effects)
    }
    case 'outbox-failed':
      return { ...state, reading: false }
    case 'fail':
      return fail({ ...state, reading: false }, input.code, input.message, effects)
    case 'applied': {
      // Something the hub sent was stored: an ask to send again (see `asked`) was answered.
      const stored = state.asked === null ? state : { ...state, asked: null }
      if (input.cursor === null) return stored
      // Acknowledge even when the cursor did not move (a re-sent snapshot or batch), or the
      // hub keeps re-sending what we already hold — but coalesced: within `ackIntervalMs` of
      // the last ack, a moved cursor waits (for `ackEvery` positions, a later apply or a tick).
      const next = { ...stored, cursor: Math.max(stored.cursor, input.cursor) }
      const { ackIntervalMs = 0, ackEvery = 1 } = next.config
      const moved = next.cursor > next.ackSent
      if (moved && input.now - next.ackAt < ackIntervalMs && next.cursor - next.ackSent < ackEvery)
        return next
      return ackNow(next, input.now, effects)
    }
    case 'apply-failed': {
      // Nothing was stored: forget what was queued so the hub's retransmission is taken again
      // — asked for, where the hub sends again only when asked: at once, unless we asked
      // within a retransmit period (a storage failing for every frame would have the hub send
      // its window again and again, as fast as the link goes).
      const next = { ...state, applyingTo: state.cursor, snapshot: null, resume: input.resume ?? null }
      if (!next.resend || next.phase !== 'ready') return next
      if (next.asked !== null && input.now - next.asked < next.config.retransmitMs) return next
      return askAgain(next, input.now, effects)
    }
    case 'resync': {
      const next = { ...state, cursor: 0, applyingTo: 0, ackSent: 0, snapshot: null }
      if (next.phase === 'ready') effects.push(ack(next))
      return next
    }
    case 'tick':
      return tick(state, input.now, effects)
    case 'ping':
      return askHead({ ...state, syncAsked: state.syncAsked + 1 }, input.now, effects)
    case 'message': {
      const next = receive(state, input.message, input.now, effects)
      // Asks made before this hello answer: a ping goes after it (the hub read our hello,
      // perhaps, before they were made).
      return input.message.type === 'hello' ? askHead(next, input.now, effects) : next
    }
  }
}

function tick(given: ReplicaSessionState, now: number, effects: ReplicaSessionEffect[]): ReplicaSessionState {
  // A ping unanswered for a retransmit period (a lossy transport): ask again under a new id.
  const state =
    given.pingAt !== null && given.phase === 'ready' && now - given.pingAt >= given.config.retransmitMs
      ? askHead({ ...given, pingAt: null }, now, effects)
      : given
  if (state.dropped && state.phase === 'ready') {
    // The hub refilled its buckets for a tick's time: send what it dropped again.
    const rewound = { ...state, dropped: false, sent: state.acked, reading: false, lastProgressAt: now }
    return pump(rewound, effects)
  }
  if (state.resend && state.phase === 'ready') {
    // Nothing goes again for silence alone: what is unanswered is on its way, unless the hub
    // said it could not take some of it.
    if (state.asked !== null && now - state.asked >= state.config.retransmitMs)
      return askAgain(state, now, effects)
    // A retransmit period after the hub said it dropped frames of ours, without progress: our
    // changes again, and our position (the frames it dropped may have been our acks, which
    // the hub, sending nothing again for silence, would wait for for good).
    const refused = state.refused
    if (refused !== null && now - Math.max(refused.at, state.lastProgressAt) >= state.config.retransmitMs) {
      const rewound = { ...state, sent: state.acked, reading: false, lastProgressAt: now }
      return pump(ackNow(rewound, now, effects), effects)
    }
    // A coalesced ack still owed goes out now; a failed outbox read is tried again after a
    // retransmit period.
    const acked = state.cursor > state.ackSent ? ackNow(state, now, effects) : state
    if (acked.reading || now - acked.lastProgressAt < acked.config.retransmitMs) return acked
    return pump({ ...acked, lastProgressAt: now }, effects)
  }
  if (now - state.lastProgressAt < state.config.retransmitMs) {
    // A coalesced ack still owed goes out now.
    return state.phase === 'ready' && state.cursor > state.ackSent ? ackNow(state, now, effects) : state
  }
  if (state.phase === 'connecting') {
    effects.push(hello(state))
    return { ...state, lastProgressAt: now }
  }
  if (state.phase !== 'ready') return state
  // Re-announce our position: if the hub's last frames were lost, this prompts it to resend.
  const announced = ackNow(state, now, effects)
  const rewound =
    announced.sent > announced.acked ? { ...announced, sent: announced.acked, reading: false } : announced
  // Also resumes sending after a failed outbox read.
  return pump({ ...rewound, lastProgressAt: now }, effects)
}

function receive(
  state: ReplicaSessionState,
  message: Message,
  now: number,
  effects: ReplicaSessionEffect[],
): ReplicaSessionState {
  const space = state.config.space
  switch (message.type) {
    case 'hello': {
      const have = Math.min(ownNumber(message.have, space), state.local)
      const hubHead = Math.max(
        state.hubHead,
        message.heads === undefined ? 0 : ownNumber(message.heads, space),
      )
      const offered = state.config.features ?? []
      const compact = offered.includes(Feature.Compact) && (message.features ?? []).includes(Feature.Compact)
      const presence =
        offered.includes(Feature.Presence) && (message.features ?? []).includes(Feature.Presence)
      const ping = offered.includes(Feature.Ping) && (message.features ?? []).includes(Feature.Ping)
      const resend = offered.includes(Feature.Resend) && (message.features ?? []).includes(Feature.Resend)
      const resumes = offered.includes(Feature.Resume) && (message.features ?? []).includes(Feature.Resume)
      // The hub forgets a connection's presence when it ends: the runtime sends its own again.
      if (presence) effects.push({ type: 'presence-joined' })
      let next: ReplicaSessionState = {
        ...state,
        phase: 'ready',
        lastProgressAt: now,
        hubHead,
        compact,
        presence,
        ping,
        resend,
        resumes,
        maxFrame: limitFrom(message.maxFrame, state, effects),
        readOnly: message.readOnly?.includes(space) === true,
      }
      if (next.readOnly && !state.readOnly) readOnlyNotice(next, effects)
      const log = ownValue(message.logs, space)
      if (log !== undefined && log !== state.log) {
        // Our cursor is a position in the log we last heard named, and the hub (which got
        // that name in our hello) reads us its log from the start when it has another.
        const reset = state.log !== null
        effects.push({ type: 'set-log', log, reset })
        // The old log's head, like its positions, says nothing of this one.
        const head = message.heads === undefined ? 0 : ownNumber(message.heads, space)
        next = reset
          ? { ...next, log, cursor: 0, applyingTo: 0, ackSent: 0, snapshot: null, hubHead: head }
          : { ...next, log }
      }
      if (have > next.acked) {
        next = { ...next, acked: have }
        effects.push({ type: 'drop-outbox', upTo: have })
      }
      if (have < next.acked) {
        // The hub no longer holds changes it acknowledged (restored from a backup, or its
        // data lost): send again what the records hold of them, then the outbox as before.
        // Whatever was pipelined behind our hello continued from `acked`: a gap to the hub.
        const sparse = offered.includes(Feature.Sparse) && (message.features ?? []).includes(Feature.Sparse)
        if (!sparse) {
          // A hub that cannot take them back would refuse every batch after the gap for good.
          const why = `the hub lost own changes ${have + 1}…${next.acked} it had acknowledged and does not take them back (no sparse feature): upgrade the relay`
          return fail(next, ErrorCode.UnsupportedProtocol, why, effects)
        }
        next = { ...next, lostUpTo: Math.max(next.lostUpTo, next.acked), acked: have }
        return pump({ ...next, sent: have, reading: false }, effects)
      }
      // Without pipelining nothing was sent yet: start from what the hub holds. Pipelined
      // batches are already on their way, behind our hello, and the hub takes them in order.
      next =
        state.phase === 'connecting' && state.config.pipeline === true
          ? { ...next, sent: Math.max(next.sent, next.acked) }
          : { ...next, sent: next.acked, reading: false }
      return pump(next, effects)
    }
    case 'ack': {
      if (message.space !== space) return state
      const upTo = Math.min(message.upTo, state.local)
      if (upTo <= state.acked) return state
      effects.push({ type: 'drop-outbox', upTo })
      // The hub took everything sent before it refused some: the refusal is over.
      const refused = state.refused !== null && upTo >= state.refused.sent ? null : state.refused
      return pump(
        { ...state, acked: upTo, sent: Math.max(state.sent, upTo), lastProgressAt: now, refused },
        effects,
      )
    }
    case 'changes': {
      // Before the hub's hello, we cannot know our position is in its log (see `set-log`):
      // a frame overtaking that answer is left for the hub to send again.
      if (message.space !== space || state.phase !== 'ready') return state
      const next = { ...state, hubHead: Math.max(state.hubHead, message.head ?? message.to) }
      if (message.from <= next.applyingTo && message.to > next.applyingTo) {
        const { collected } = message
        effects.push(
          collected === undefined
            ? { type: 'apply', batch: message.batch, from: message.from, cursor: message.to }
            : { type: 'apply', batch: message.batch, from: message.from, cursor: message.to, collected },
        )
        return { ...next, applyingTo: message.to }
      }
      effects.push(ack(next))
      return next
    }
    case 'snapshot': {
      if (message.space !== space || state.phase !== 'ready') return state
      const current = message.page === 0 ? { cursor: message.cursor, nextPage: 0 } : state.snapshot
      if (current === null || current.cursor !== message.cursor || current.nextPage !== message.page) {
        return state
      }
      const next = { ...state, hubHead: Math.max(state.hubHead, message.cursor) }
      const page: SnapshotPage = {
        cursor: message.cursor,
        page: message.page,
        last: message.last,
        ...(message.received === undefined ? {} : { received: message.received }),
      }
      effects.push({
        type: 'apply',
        batch: message.batch,
        from: null,
        cursor: message.last ? message.cursor : null,
        snapshot: page,
      })
      if (!message.last)
        return { ...next, snapshot: { cursor: current.cursor, nextPage: current.nextPage + 1 } }
      return { ...next, snapshot: null, applyingTo: Math.max(next.applyingTo, message.cursor) }
    }
    case 'pong': {
      // The answer to the ping awaited: a ping of an earlier connection is not awaited (a
      // connection awaits none until it sends one, under a higher id), and older ids were
      // asked again.
      if (message.space !== space || state.phase !== 'ready' || state.pingAt === null) return state
      if (message.id !== state.pingId) return state
      const answered: ReplicaSessionState = {
        ...state,
        hubHead: Math.max(state.hubHead, message.head),
        syncAnswered: Math.max(state.syncAnswered, state.pingCovers),
        pingAt: null,
      }
      return askHead(answered, now, effects)
    }
    case 'ping':
      // Only the hub is asked.
      return state
    case 'presence': {
      if (message.space !== space || !state.presence || message.replicaId === undefined) return state
      effects.push({ type: 'presence', replicaId: message.replicaId, key: message.key, state: message.state })
      return state
    }
    case 'error': {
      if (message.code === ErrorCode.HelloRequired) {
        effects.push(hello(state))
        return { ...state, phase: 'connecting', sent: state.acked, reading: false, lastProgressAt: now }
      }
      // A batch of ours refused in a space we may only read (by a hub whose hello did not
      // say so): stop uploading, and keep receiving.
      if (message.code === ErrorCode.Forbidden && message.space === state.config.space) {
        if (state.readOnly) return state
        const next = { ...state, readOnly: true, sent: state.acked }
        readOnlyNotice(next, effects)
        return next
      }
      if (message.code === ErrorCode.Unauthenticated && state.config.renewToken === true) {
        // The hub hangs up after this; nothing more goes out on this connection.
        effects.push({ type: 'token-refused', message: message.message })
        return { ...state, phase: 'offline', sent: state.acked, reading: false, snapshot: null }
      }
      if (fatalCodes.has(message.code)) return fail(state, message.code, message.message, effects)
      // A frame of ours passed the hub's limit (sent before its hello named it): what follows
      // is sized to what it named — from the last acknowledged change at the next tick, or
      // after the reconnect when the hub closes the connection, as a relay does.
      if (message.code === ErrorCode.FrameTooLarge && message.maxFrame !== undefined) {
        const maxFrame = limitFrom(message.maxFrame, state, effects)
        return { ...state, maxFrame, dropped: state.dropped || state.sent > state.acked }
      }
      // The hub could not store what we sent: its ack (which follows) leaves them unacknowledged,
      // and they go again as any unacknowledged changes do. Reported, not fatal.
      if (message.code === ErrorCode.StorageFailed) {
        effects.push({ type: 'hub-storage-failed', message: message.message })
        return state.resend && state.sent > state.acked ? { ...state, refused: refusal(state, now) } : state
      }
      // Dropped for going too fast: wait a tick, not a whole retransmit period.
      if (message.code === ErrorCode.RateLimited) {
        if (state.presence) effects.push({ type: 'presence-dropped' })
        // With `resend` also when nothing of ours is unacknowledged: the frames dropped may
        // have been our acks, pings or presence, and our position is said again.
        const refused = state.resend ? { ...state, refused: refusal(state, now) } : state
        if (state.resend || state.sent > state.acked) return { ...refused, dropped: true }
      }
      return state
    }
  }
}

/** With `resend`: asks the hub to send again from our cursor (see `asked`). */
function askAgain(
  state: ReplicaSessionState,
  now: number,
  effects: ReplicaSessionEffect[],
): ReplicaSessionState {
  const { resume } = state
  effects.push({
    type: 'send',
    message: {
      type: 'ack',
      space: state.config.space,
      upTo: state.cursor,
      resend: true,
      ...(resume === null || !state.resumes ? {} : { resume }),
    },
  })
  return { ...state, asked: now, ackSent: state.cursor, ackAt: now }
}

/** The hub's word, now, that it could not take some of what was sent (see `refused`). */
function refusal(state: ReplicaSessionState, now: number): NonNullable<ReplicaSessionState['refused']> {
  return { at: now, sent: Math.max(state.sent, state.refused?.sent ?? 0) }
}

/** Stops the session for good: a refusal no retry can change. */
function fail(
  state: ReplicaSessionState,
  code: ErrorCode,
  message: string,
  effects: ReplicaSessionEffect[],
): ReplicaSessionState {
  effects.push({ type: 'fail', code, message })
  return { ...state, phase: 'offline', fatal: { code, message } }
}

/**
 * True when everything written here is acknowledged and everything the hub last reported
 * having is applied here: "synced", as far as this replica can know.
 */
export function isReplicaSynced(state: ReplicaSessionState): boolean {
  return (
    state.phase === 'ready' &&
    state.acked >= state.local &&
    state.cursor >= state.applyingTo &&
    state.cursor >= state.hubHead
  )
}
