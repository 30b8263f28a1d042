import { type ChorusError, DEFAULT_LIMITS, type HubSessionConfig, type ProtocolLimits } from '@chorus/core'
import type { RelayAuthenticate } from './authenticate.js'
import { DEFAULT_RATE_LIMITS, type RateLimits } from './rate-limit.js'
import type { RelayStore } from './relay-store.js'
import type { RelaySocket, RelaySocketServer } from './socket.js'

/** Every bound the relay enforces on a connection: the protocol's and the rate limits. */
export interface RelayLimits extends ProtocolLimits, RateLimits {
  /**
   * Frames dropped in a row by the rate limiter before the connection is closed (1008).
   * The first drop of a run is answered with a `rate-limited` error frame.
   */
  readonly maxStrikes: number
  /**
   * How long a connection may take to have its `hello` answered (authenticated, its spaces
   * loaded) before it is closed (1008, after a `hello-required` error frame): so sockets that
   * connect and say nothing cannot pile up. 0 never closes them. Links this relay dials are
   * not held to it.
   */
  readonly helloTimeoutMs: number
  /**
   * Most connections open at once, links included; one past it is closed at once with 1013
   * (try again later), which clients take as a reason to reconnect with backoff. `Infinity`:
   * no limit.
   */
  readonly maxConnections: number
  /**
   * Most connections open at once from one remote address (the TCP peer's), so that one
   * client cannot take every connection `maxConnections` allows; one past it is closed at once
   * with 1013, as past `maxConnections`. Behind a reverse proxy every connection comes from
   * the proxy's address: leave it at `Infinity` there (the default), and limit at the proxy.
   */
  readonly maxConnectionsPerAddress: number
  /**
   * The slowest a connection may read what the relay sends it (bytes a second) and still be
   * taken for alive. A pong comes only once the ping behind everything sent before it is read:
   * a connection that has not answered by the next ping is given, beyond that, the time its
   * unanswered bytes take at this rate (and kept while the relay writes out more to it) before
   * it is dropped. The lower, the longer a dead connection that was being sent to holds its
   * slot; one not above 0 gives no extra time (a pong is due by the next ping).
   */
  readonly minReadBytesPerSecond: number
  /**
   * How long a connection the relay closes (a refusal, a `hello` not answered in time, one
   * past `maxConnections`, shutting down) has to answer the close before its socket is
   * dropped: a peer that ignores the close keeps its slot no longer than this.
   */
  readonly closeGraceMs: number
}

/**
 * Defaults: core's protocol limits, {@link DEFAULT_RATE_LIMITS}, 100 strikes, 10 s for a
 * `hello`, no limit on connections, and 5 s to answer a close.
 */
export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  ...DEFAULT_LIMITS,
  ...DEFAULT_RATE_LIMITS,
  maxStrikes: 100,
  helloTimeoutMs: 10_000,
  maxConnections: Number.POSITIVE_INFINITY,
  maxConnectionsPerAddress: Number.POSITIVE_INFINITY,
  minReadBytesPerSecond: 16_384,
  closeGraceMs: 5_000,
}

/**
 * The `maxPayload` to give the `WebSocketServer` for a relay with `limits`: its frame limit,
 * and no less than the clients' default one (4 MiB). `ws` closes a longer frame (1009) before
 * the relay sees it; a frame between the relay's limit and this is read, and refused with a
 * `frame-too-large` error naming the limit before the close, so a replica that sent it before
 * it learnt the limit from the relay's `hello` sizes its next uploads to it.
 */
export function socketMaxPayload(limits: Partial<RelayLimits> = {}): number {
  return Math.max(limits.maxFrameBytes ?? DEFAULT_RELAY_LIMITS.maxFrameBytes, DEFAULT_LIMITS.maxFrameBytes)
}

/** When the relay compacts its spaces. */
export interface CompactionOptions {
  /** How often to compact every space; 0 runs compaction only when `compact()` is called. */
  readonly intervalMs: number
  /** Replicas not heard from for this long are forgotten (see `RelayStore.compact`). */
  readonly horizonMs: number
}

/** Defaults: compact every 5 minutes, forget replicas after 30 days. */
export const DEFAULT_COMPACTION: CompactionOptions = { intervalMs: 5 * 60_000, horizonMs: 30 * 86_400_000 }

/**
 * A link this relay keeps to another relay (relay↔relay): it dials `url`, and the two stream
 * their logs of `spaces` to each other, so that replicas on either see every change. It
 * reconnects with backoff whenever the connection drops or is refused.
 */
export interface RelayLinkOptions {
  /** The other relay's sync endpoint, e.g. `ws://10.0.0.2:8787/sync`. */
  readonly url: string
  /**
   * The spaces to link (1 to 64), or `'*'` for every space this relay holds or its clients
   * open, linked as they come (the other relay's token must grant them all: `*:write`). With
   * `'*'` the spaces go over as many connections as it takes, 64 to each.
   */
  readonly spaces: readonly string[] | '*'
  /** A token the other relay accepts with the relay claim (`chorus-relay token --relay`). */
  readonly token?: string
}

/** What dials a link: `ws`'s `WebSocket` constructor, or anything alike. */
export type LinkSocketConstructor = new (url: string, options: { readonly maxPayload: number }) => LinkSocket

/** A dialing WebSocket: a relay socket that also tells when it opens. */
export interface LinkSocket extends RelaySocket {
  on(event: 'open', listener: () => void): unknown
  on(event: 'message', listener: (data: unknown, isBinary: boolean) => void): unknown
  on(event: 'close', listener: (code: number, reason: unknown) => void): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
  on(event: 'pong', listener: () => void): unknown
  off(event: 'message', listener: (data: unknown, isBinary: boolean) => void): unknown
}

/** Options for `createRelay`. */
export interface RelayOptions {
  /**
   * Accepts the WebSocket connections, e.g. `new WebSocketServer({ noServer: true, maxPayload })`.
   * Set `maxPayload` to {@link socketMaxPayload}`(limits)`: `ws` then refuses a longer frame
   * (close 1009) before buffering it, and the relay refuses one over `limits.maxFrameBytes`
   * with an error frame naming its limit, then the same close.
   */
  readonly server: RelaySocketServer
  /** Where spaces live; the relay does not close it (its owner does). */
  readonly store: RelayStore
  /** Who may connect and what they may do. Without it the relay is open to everyone. */
  readonly authenticate?: RelayAuthenticate
  /** Wall-clock milliseconds (default `Date.now`). */
  readonly now?: () => number
  /** Overrides of {@link DEFAULT_RELAY_LIMITS}. */
  readonly limits?: Partial<RelayLimits>
  /** Overrides of the hub session's batch, window, snapshot page, retransmission and send-buffer (`sendBuffer`) settings. */
  readonly session?: Partial<HubSessionConfig>
  /** How often the hub's sessions are ticked (retransmission, retries); default 1000 ms. */
  readonly tickMs?: number
  /** Ping interval; a socket that has not answered the previous ping is dropped. 0 disables; default 30 s. */
  readonly heartbeatMs?: number
  /** Overrides of {@link DEFAULT_COMPACTION}. */
  readonly compaction?: Partial<CompactionOptions>
  /** How long `close()` waits for clients to finish the closing handshake; default 2000 ms. */
  readonly closeTimeoutMs?: number
  /** Links to other relays this relay dials and keeps up (see {@link RelayLinkOptions}). */
  readonly links?: readonly RelayLinkOptions[]
  /** Dials the links (required with `links`): `WebSocket` from `ws`. */
  readonly WebSocket?: LinkSocketConstructor
  /** Backoff between attempts to dial a link: from `min` doubling to `max` ms, with jitter (default 500 and 30,000). */
  readonly linkBackoffMs?: { readonly min: number; readonly max: number }
  /**
   * How often a link of every space (`spaces: '*'`) asks the other relay which spaces it
   * holds (`GET` the link's URL + `/spaces`, see `Relay.listSpacesFor`), to link those this
   * relay lacks; default 10,000 ms, 0 never (spaces only the other relay holds then come when a
   * client here opens them). It asks once at start too.
   */
  readonly linkListMs?: number
  /**
   * How often this relay tells the relays sharing its store (`publishPresence`) and the
   * relays linked to it (either way) all its connections' presence again (default 5,000 ms);
   * an entry heard from another relay and not again within three times this is cleared at
   * the relay's next tick (every second).
   */
  readonly presenceRefreshMs?: number
  /** Failures with no caller to tell (a failed append, a throwing hook); default: stderr. */
  readonly onError?: (error: ChorusError) => void
  /**
   * A link whose failure was reported through `onError` is up again (both hellos answered);
   * `url` as the link names it. Default: a line on stderr, beside the failure's.
   */
  readonly onLinkUp?: (url: string) => void
}
