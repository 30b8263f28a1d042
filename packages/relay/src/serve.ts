import { createPublicKey, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import { ChorusError, ErrorCode } from '@chorus/core'
import { WebSocket, WebSocketServer } from 'ws'
import { lockDataDir } from './data-dir-lock.js'
import { type AdminEvent, createHttpHandler, createUpgradeHandler, SYNC_PATH } from './http.js'
import { normalizeOrigin } from './origin.js'
import { PostgresRelayStore } from './postgres-relay-store.js'
import { createRelay, type Relay } from './relay.js'
import { type LinkSocketConstructor, type RelayOptions, socketMaxPayload } from './relay-options.js'
import { sharedPongSocketClass } from './shared-pong-socket.js'
import { SqliteRelayStore } from './sqlite-relay-store.js'
import { createStaticMounts, type StaticMount } from './static-files.js'
import { createTokenAuthenticator, verifyAdminToken } from './token-auth.js'
import { WorkerRelayStore } from './worker-relay-store.js'

/** The database's file name inside the data directory (with SQLite's `-wal` and `-shm` beside it). */
export const DATABASE_FILE = 'relay.db'

/** Options for {@link startRelay}: where to listen and keep data, and the relay's own options. */
export interface StartRelayOptions extends Omit<RelayOptions, 'server' | 'store'> {
  /**
   * Directory for the embedded SQLite database; created if missing. One relay per directory.
   * Give this or `postgres`, not both.
   */
  readonly dataDir?: string
  /**
   * A PostgreSQL connection string (`postgres://user:password@host:5432/chorus`): the relay
   * keeps its data there ({@link PostgresRelayStore}) instead of in `dataDir`, and any number
   * of relays may share the database, each streaming to its clients what the others store.
   */
  readonly postgres?: string
  /**
   * How long a relay starting on `postgres` waits for the database to take connections, trying
   * again with backoff while it refuses them or is starting up (default 30,000 ms; 0 does not
   * wait). Each new reason is reported through `onError`. A wrong password, a missing
   * database or a schema from a newer relay fails at once.
   */
  readonly postgresWaitMs?: number
  /**
   * `/metrics` labels replicas' lag with space names and replica ids as they are, rather
   * than as hashes (see `PrometheusOptions.names`). Only where `/metrics` is private.
   */
  readonly metricsNames?: boolean
  /** TCP port (default 8787; 0 picks a free one). */
  readonly port?: number
  /** Interface to bind (default 127.0.0.1). */
  readonly host?: string
  /** Shared secret for HS256 tokens; ignored when `authenticate` is given. Without either the relay is open. */
  readonly authSecret?: string
  /** A built web app to serve at `/` (a directory with `index.html`), beside `/sync`. */
  readonly staticDir?: string
  /**
   * More built web apps, each under its own path (`{ path: '/lab', dir: 'apps/lab/dist' }`);
   * `staticDir` is the same as a mount at `/`. See `createStaticMounts`.
   */
  readonly staticMounts?: readonly StaticMount[]
  /**
   * Where the SQLite store runs: on a worker thread ({@link WorkerRelayStore}), so commits
   * and their fsyncs do not block the event loop, or `in-thread` ({@link SqliteRelayStore}).
   * Default `in-thread`. Not for `postgres`.
   */
  readonly store?: RelayStoreThread
  /**
   * The web origins (`https://notes.example.com`) whose pages may open a sync connection: an
   * upgrade from a browser page of any other origin is refused with 403. Connections without
   * an `Origin` header (Node replicas, linked relays, other programs) are not affected. Without
   * it every origin may connect. Throws `invalid-argument` for a text that is not an origin.
   */
  readonly allowedOrigins?: readonly string[]
  /** Told what the administration API did (see `createHttpHandler`), for the operator's log. */
  readonly onAdmin?: (event: AdminEvent) => void
  /**
   * Serve HTTPS and `wss://` with this certificate (PEM, the chain after the leaf) and its
   * private key (PEM, unencrypted), read from their files at start and again by
   * {@link RunningRelay.reloadTls}. Without it the relay serves plain HTTP (put TLS in front).
   */
  readonly tls?: RelayTlsFiles
  /**
   * With `tls`: every HTTPS response carries `Strict-Transport-Security: max-age=` this many
   * seconds, so browsers that saw it reach this host over HTTPS only, until it runs out (0
   * tells them to forget it). Throws `invalid-argument` without `tls`, or for a number that is
   * not a whole number of seconds.
   */
  readonly hstsMaxAgeSeconds?: number
}

/** Where {@link startRelay} reads its TLS certificate and key. */
export interface RelayTlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

/**
 * Reads a certificate and its key and checks that they make a TLS context (each is PEM, the
 * key is the certificate's); throws `invalid-argument` saying which file is wrong otherwise.
 */
export function readTlsFiles(files: RelayTlsFiles): { readonly cert: Buffer; readonly key: Buffer } {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file)
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      throw new ChorusError(ErrorCode.InvalidArgument, `cannot read the TLS ${what} ${file}: ${detail}`, {
        cause: error,
      })
    }
  }
  const cert = read(files.certFile, 'certificate')
  const key = read(files.keyFile, 'key')
  try {
    createSecureContext({ cert, key })
    // OpenSSL compares a key with the certificate only when both are of one type: an EC key
    // beside an RSA certificate (a renewal half done) made a context, and then failed every
    // handshake. The certificate's public key must be the key's.
    const certified = new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'der' })
    const own = createPublicKey(key).export({ type: 'spki', format: 'der' })
    if (!certified.equals(own)) throw new Error("the key is not the certificate's (its public key differs)")
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `the TLS certificate ${files.certFile} and key ${files.keyFile} do not make a TLS context (each must be PEM, the key the certificate's, not encrypted): ${detail}`,
      { cause: error },
    )
  }
  return { cert, key }
}

/** Where {@link startRelay} runs the SQLite store. */
export type RelayStoreThread = 'worker' | 'in-thread'

/** A relay listening on HTTP: WebSocket at `/sync`, `/healthz`, `/metrics`. */
export interface RunningRelay {
  /** The WebSocket URL clients connect to, e.g. `ws://127.0.0.1:8787/sync`. */
  readonly url: string
  /** The HTTP base URL, e.g. `http://127.0.0.1:8787`. */
  readonly httpUrl: string
  readonly port: number
  readonly relay: Relay
  readonly store: SqliteRelayStore | WorkerRelayStore | PostgresRelayStore
  /**
   * Reads the TLS certificate and key files again and serves the new pair to connections made
   * from now on (a renewed certificate, without a restart). Throws `invalid-argument`, and
   * keeps serving the pair in use, when they cannot be read or do not match; without `tls`.
   */
  reloadTls(): Promise<void>
  /** Stops listening, closes every socket (1001) after pending appends commit, closes the store. */
  close(): Promise<void>
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** Creates the data directory `dir` (and its parents) if it does not exist; throws `storage-failed` saying why it cannot. */
export function makeDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true })
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if (code === 'EEXIST' || code === 'ENOTDIR')
      throw new ChorusError(
        ErrorCode.StorageFailed,
        `cannot make the data directory ${dir}: a file is in the way`,
      )
    const detail = error instanceof Error ? error.message : String(error)
    throw new ChorusError(ErrorCode.StorageFailed, `cannot make the data directory ${dir}: ${detail}`, {
      cause: error,
    })
  }
}

/** How long a relay starting on PostgreSQL waits for the database by default (`postgresWaitMs`). */
export const DEFAULT_POSTGRES_WAIT_MS = 30_000

/**
 * Why a connection could not be made that a database still starting (or not yet reachable)
 * gives: worth trying again. Checked on the cause `PostgresRelayStore.open` keeps.
 */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'ECONNRESET',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  '57P03',
])

function unreachable(error: unknown): boolean {
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined
  return typeof cause?.code === 'string' && UNREACHABLE.has(cause.code)
}

/** The clock and the sleep {@link openWaiting} waits with: the real ones, unless a test gives its own. */
export interface WaitClock {
  readonly now: () => number
  readonly sleep: (ms: number) => Promise<void>
}

const REAL_CLOCK: WaitClock = {
  now: Date.now,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
}

/**
 * Opens a store with `open`, trying again with backoff (250 ms doubling to 2 s) for up to
 * `waitMs` while the database cannot be reached: a relay and its database started together
 * (a compose file, a reboot) need no ordering. Each new reason is reported once. The last
 * try is at the deadline itself, not a backoff step before it: a database that is up by then
 * is used.
 */
export async function openWaiting<TStore>(
  open: () => Promise<TStore>,
  waitMs: number,
  onError: ((error: ChorusError) => void) | undefined,
  clock: WaitClock = REAL_CLOCK,
): Promise<TStore> {
  const deadline = clock.now() + waitMs
  let delay = 250
  let told: string | null = null
  for (;;) {
    try {
      return await open()
    } catch (error) {
      const left = deadline - clock.now()
      if (!unreachable(error) || left <= 0) throw error
      const reason = error instanceof Error ? error.message : String(error)
      if (reason !== told) {
        told = reason
        const waiting = new ChorusError(
          ErrorCode.StorageFailed,
          `${reason}; trying again for up to ${Math.ceil(left / 1000)} s`,
          { cause: error },
        )
        if (onError === undefined) console.error(`chorus-relay: ${waiting.message}`)
        else onError(waiting)
      }
      await clock.sleep(Math.min(delay, left))
      delay = Math.min(delay * 2, 2_000)
    }
  }
}

/** The store {@link startRelay} opens, and how to give up its data directory. */
async function openStore(
  options: Pick<StartRelayOptions, 'dataDir' | 'postgres' | 'store' | 'onError' | 'postgresWaitMs'>,
): Promise<{ store: RunningRelay['store']; release: () => void }> {
  const { dataDir, postgres, store: thread = 'in-thread', onError } = options
  if ((dataDir === undefined) === (postgres === undefined)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'a relay needs either a data directory or a PostgreSQL URL, not both',
    )
  }
  if (postgres !== undefined) {
    if (options.store !== undefined) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        'the SQLite store thread does not apply to a PostgreSQL store',
      )
    }
    const store = await openWaiting(
      () => PostgresRelayStore.open(postgres, onError === undefined ? {} : { onError }),
      options.postgresWaitMs ?? DEFAULT_POSTGRES_WAIT_MS,
      onError,
    )
    return { store, release: () => undefined }
  }
  const dir = dataDir as string
  makeDataDir(dir)
  // One relay per data directory: a second one fails here, before it opens the database.
  const lock = lockDataDir(dir)
  const file = join(dir, DATABASE_FILE)
  // A write-ahead log without its database: the database was deleted or moved, and starting
  // would make an empty one beside a log of changes it acknowledged.
  if (!existsSync(file) && existsSync(`${file}-wal`)) {
    lock.release()
    throw new ChorusError(
      ErrorCode.StorageFailed,
      `${dir} holds ${DATABASE_FILE}-wal but no ${DATABASE_FILE}: the database was deleted or moved. Put it back (or restore it from a backup); to start afresh on purpose, remove ${DATABASE_FILE}-wal too.`,
    )
  }
  try {
    const store = thread === 'worker' ? await WorkerRelayStore.open(file) : new SqliteRelayStore(file)
    return { store, release: () => lock.release() }
  } catch (error) {
    lock.release()
    throw error
  }
}

/**
 * Starts a relay the way the `chorus-relay` command does: a SQLite store in `dataDir` (or a
 * PostgreSQL store at `postgres`), an HTTP server on `host:port`, WebSocket upgrades only on
 * `/sync` with `maxPayload` set to the frame limit, and token authentication when
 * `authSecret` is given.
 */
export async function startRelay(options: StartRelayOptions): Promise<RunningRelay> {
  const {
    dataDir,
    postgres,
    port = 8787,
    host = '127.0.0.1',
    authSecret,
    staticDir,
    staticMounts = [],
    store: storeThread,
    postgresWaitMs,
    metricsNames,
    onAdmin,
    tls,
    allowedOrigins,
    hstsMaxAgeSeconds,
    ...relayOptions
  } = options
  if (postgresWaitMs !== undefined && (!Number.isSafeInteger(postgresWaitMs) || postgresWaitMs < 0)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'postgresWaitMs must be a whole number of milliseconds, 0 or more',
    )
  }
  if (hstsMaxAgeSeconds !== undefined) {
    if (tls === undefined)
      throw new ChorusError(ErrorCode.InvalidArgument, 'HSTS needs TLS: give tls with hstsMaxAgeSeconds')
    if (!Number.isSafeInteger(hstsMaxAgeSeconds) || hstsMaxAgeSeconds < 0)
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `hstsMaxAgeSeconds must be a whole number of seconds, got ${String(hstsMaxAgeSeconds)}`,
      )
  }
  // An origin that is not one fails before anything is opened.
  const origins = allowedOrigins === undefined ? undefined : new Set(allowedOrigins.map(normalizeOrigin))
  // A certificate that cannot be read fails before anything is opened.
  const pair = tls === undefined ? undefined : readTlsFiles(tls)
  // A missing app or a bad mount fails before anything is opened.
  const mounts = staticDir === undefined ? staticMounts : [{ path: '/', dir: staticDir }, ...staticMounts]
  const serveFile = mounts.length === 0 ? undefined : createStaticMounts(mounts)
  const { store, release } = await openStore({
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(postgres === undefined ? {} : { postgres }),
    ...(storeThread === undefined ? {} : { store: storeThread }),
    ...(relayOptions.onError === undefined ? {} : { onError: relayOptions.onError }),
    ...(postgresWaitMs === undefined ? {} : { postgresWaitMs }),
  })
  const maxPayload = socketMaxPayload(relayOptions.limits)
  // The relay tracks its own connections; `ws`'s set of them would cost a listener per socket.
  // Its sockets share one pong listener, for the same reason (see `sharedPongSocketClass`).
  const sockets = new WebSocketServer({
    noServer: true,
    maxPayload,
    clientTracking: false,
    WebSocket: sharedPongSocketClass(),
  })
  const authenticate =
    relayOptions.authenticate ??
    (authSecret === undefined
      ? undefined
      : createTokenAuthenticator(authSecret, relayOptions.now === undefined ? {} : { now: relayOptions.now }))
  let relay: Relay
  try {
    relay = createRelay({
      // Links to other relays dial with `ws`'s client.
      WebSocket: WebSocket as unknown as LinkSocketConstructor,
      ...relayOptions,
      ...(authenticate === undefined ? {} : { authenticate }),
      server: sockets,
      store,
    })
  } catch (error) {
    sockets.close()
    await store.close()
    release()
    throw error
  }
  // The administration API takes tokens signed with the relay's secret that claim `admin`.
  const admin =
    authSecret === undefined
      ? undefined
      : (token: string | undefined) =>
          verifyAdminToken(authSecret, token, relayOptions.now === undefined ? {} : { now: relayOptions.now })
  // Upgrades refused for their origin are counted here, before any socket reaches the relay,
  // and shown with the relay's own metrics.
  let originsRefused = 0
  // (The relay with its metrics widened; every other call goes to the relay itself.)
  const metered: Relay =
    origins === undefined
      ? relay
      : Object.assign(Object.create(relay) as Relay, {
          metrics: async () => ({ ...(await relay.metrics()), originsRefused }),
        })
  const answer = createHttpHandler(metered, serveFile, admin, onAdmin, { names: metricsNames === true })
  const hsts = hstsMaxAgeSeconds === undefined ? undefined : `max-age=${hstsMaxAgeSeconds}`
  const handler: typeof answer =
    hsts === undefined
      ? answer
      : (request, response) => {
          response.setHeader('strict-transport-security', hsts)
          answer(request, response)
        }
  // A request's headers must arrive within 10 s and the whole of it within 30 s (checked every
  // second): a client that trickles them holds a socket no longer.
  const timeouts = { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 }
  // Over TLS the same 10 s for the handshake, which comes before any header (Node's default
  // is 120 s: silent or half-sent handshakes held their sockets that long).
  const secure =
    pair === undefined
      ? null
      : createTlsServer({ cert: pair.cert, key: pair.key, handshakeTimeout: 10_000, ...timeouts }, handler)
  const http: Server = secure ?? createServer(timeouts, handler)
  http.on(
    'upgrade',
    createUpgradeHandler(
      sockets,
      SYNC_PATH,
      origins,
      () => {
        originsRefused++
      },
      hsts === undefined ? '' : `Strict-Transport-Security: ${hsts}\r\n`,
    ),
  )
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(port, host, () => {
        http.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    await relay.close()
    sockets.close()
    await store.close()
    release()
    const detail = error instanceof Error ? error.message : String(error)
    throw new ChorusError(ErrorCode.InvalidArgument, `cannot listen on ${host}:${port}: ${detail}`, {
      cause: error,
    })
  }
  http.on('error', (error) => {
    const wrapped = new ChorusError(ErrorCode.Internal, 'the HTTP server failed', { cause: error })
    if (relayOptions.onError === undefined) console.error(`chorus-relay: ${wrapped.message}`, error)
    else relayOptions.onError(wrapped)
  })
  const bound = (http.address() as AddressInfo).port
  const base = `${hostForUrl(host)}:${bound}`
  let closing: Promise<void> | null = null
  async function shutDown(): Promise<void> {
    const stopped = new Promise<void>((resolve) => http.close(() => resolve()))
    await relay.close()
    http.closeAllConnections()
    await stopped
    await new Promise<void>((resolve) => sockets.close(() => resolve()))
    try {
      await store.close()
    } finally {
      release()
    }
  }
  const scheme = secure === null ? '' : 's'
  return {
    url: `ws${scheme}://${base}${SYNC_PATH}`,
    httpUrl: `http${scheme}://${base}`,
    port: bound,
    relay,
    store,
    async reloadTls() {
      if (secure === null || tls === undefined) {
        throw new ChorusError(
          ErrorCode.InvalidArgument,
          'this relay was started without TLS: there is nothing to reload',
        )
      }
      const fresh = readTlsFiles(tls)
      secure.setSecureContext({ cert: fresh.cert, key: fresh.key })
    },
    close() {
      closing ??= shutDown()
      return closing
    },
  }
}
