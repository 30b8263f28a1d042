import { closeSync, existsSync, openSync, realpathSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { type Access, ChorusError, DEFAULT_LIMITS, ErrorCode, isChorusError, isSpaceId } from '@chorus/core'
import { lockDataDir } from './data-dir-lock.js'
import { parseDuration } from './duration.js'
import { exportRecords } from './export.js'
import { normalizeOrigin } from './origin.js'
import { PostgresRelayStore, postgresTarget } from './postgres-relay-store.js'
import type { RelayLinkOptions } from './relay-options.js'
import type { SpaceSummary } from './relay-store.js'
import { DATABASE_FILE, makeDataDir, startRelay } from './serve.js'
import { SqliteRelayStore } from './sqlite-relay-store.js'
import {
  backupDatabase,
  describeSpacesIn,
  exportSpaceIn,
  type RestoreResult,
  restoreDatabase,
} from './sqlite-tools.js'
import { checkMountPath, type StaticMount } from './static-files.js'
import { EVERY_SPACE, mintToken, type SpaceGrants } from './token-auth.js'

/** Where the CLI writes and what it reads from its environment; injectable for tests. */
export interface CliIo {
  /** One line of output meant for programs (the URL, a token). */
  out(line: string): void
  /** One line for the operator: warnings, progress, errors. */
  err(line: string): void
  readonly env: Readonly<Record<string, string | undefined>>
  /** Resolves with the name of what asked the server to stop (default: SIGTERM or SIGINT). */
  waitForStop?(): Promise<string>
  /**
   * Calls `reload` whenever the operator asks the server to read its TLS certificate again
   * (default: on SIGHUP); returns what stops that.
   */
  onReload?(reload: () => void): () => void
}

/** Exit codes: success, a runtime failure, a usage error. */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2 } as const

/** The environment variable read when `--auth-secret` / `--secret` is not given. */
export const SECRET_ENV = 'CHORUS_RELAY_SECRET'

/**
 * The environment variable read when `--postgres` is not given: a connection string with a
 * password is better kept out of the command line, which other users of the machine can see.
 */
export const POSTGRES_ENV = 'CHORUS_RELAY_POSTGRES'

/** The environment variable read when `--link-token` is not given. */
export const LINK_TOKEN_ENV = 'CHORUS_RELAY_LINK_TOKEN'

const USAGE = `Usage:
  chorus-relay [serve] [--port 8787] [--host 127.0.0.1] [--data ./data] [--auth-secret S]
                       [--compact-every 5m] [--horizon 30d] [--store in-thread | worker]
                       [--postgres postgres://user:password@host:5432/db [--postgres-wait 30s]]
                       [--max-frame-bytes 4194304] [--hello-timeout 10s] [--max-connections N]
                       [--max-connections-per-address N]
                       [--static ./apps/notes/dist] [--static /lab=./apps/lab/dist]
                       [--tls-cert cert.pem --tls-key key.pem [--hsts 180d]]
                       [--allowed-origin https://notes.example.com]
                       [--link ws://10.0.0.2:8787/sync --link-space team-notes | '*' [--link-token T]]
                       [--presence-refresh 5s]   (with --postgres or --link)
                       [--metrics-names]
  chorus-relay token --secret S --sub alice --space team-notes:write [--space other:read]
                     [--expires 30d | never] [--admin | --relay]
  chorus-relay backup --data ./data --out ./relay-backup.db
  chorus-relay restore --from ./relay-backup.db --data ./data
  chorus-relay delete-space --space team-notes (--data ./data | --postgres URL
                            | --relay http://127.0.0.1:8787 --secret S [--sub ops])
  chorus-relay spaces (--data ./data | --postgres URL | --relay http://127.0.0.1:8787 --secret S)
  chorus-relay export --space team-notes [--out FILE] (--data ./data | --postgres URL
                      | --relay http://127.0.0.1:8787 --secret S)

--static DIR serves a built app at /; --static /PATH=DIR serves one at /PATH (repeatable).
--link URL links this relay to another (repeatable): the two keep each other's changes of the
--link-space spaces (repeatable; '*' for every space it holds or serves, and every one the
other relay lists for the token, every 10s; linked as they come), through a token the other
relay signed with --relay (--space '*:write' grants every space).
--admin mints a token for the relay's administration API (GET /admin/spaces,
DELETE /admin/spaces/NAME). spaces lists the spaces with their sizes, tab-separated.
restore puts a backup in place as a stopped relay's database, moving the files there aside.
delete-space deletes a space's data for good and refuses its name from then on: with --data
the relay must be stopped; with --postgres, or --relay (a running relay's HTTP address and its
secret; --sub names who asks in the relay's log, default $USER), the relays close its
connections at once.
--tls-cert and --tls-key serve https:// and wss:// with that certificate (PEM, chain after the
leaf) and unencrypted key; SIGHUP reads both files again (a renewed certificate). --hsts
makes every HTTPS response tell browsers to use only HTTPS for this host that long (0: forget).
--allowed-origin (repeatable) refuses WebSocket connections from browser pages of any other
origin (403); programs that send no Origin header are not affected. Without it any page may
connect, so give it when the relay is open or serves browsers that hold tokens.
/metrics labels replicas' lag with hashes of space names and replica ids (# and 16 hex digits
of SHA-256): a space's name is all it takes to read it on an open relay. --metrics-names
writes them as they are, for a /metrics that only operators reach.
--postgres keeps the data in PostgreSQL instead of --data (SQLite); relays may share it. A
relay started while the database cannot be reached tries again for --postgres-wait (30s; 0: no
wait) before it gives up.
Relays sharing it, or linked, pass each other their clients' presence, all of it again every
--presence-refresh (5s).
The secret may come from ${SECRET_ENV} instead of --auth-secret / --secret,
the PostgreSQL URL from ${POSTGRES_ENV} instead of --postgres,
and the link token from ${LINK_TOKEN_ENV} instead of --link-token.
Durations: 250ms, 30s, 15m, 12h, 7d, 2w.`

const SHORT_SECRET = 'warning: the auth secret is shorter than 32 characters; use a long random one'

/** A problem with the command line: reported with the usage and exit code 2. */
class UsageError extends Error {}

type OptionSpecs = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>

/**
 * `parseArgs`, strict and without positionals, that also refuses an option given twice
 * unless it may be repeated: `--port 8787 --port 8788` is a mistake, not a choice.
 */
function parseOptions<const TOptions extends OptionSpecs>(args: readonly string[], options: TOptions) {
  const parsed = parseArgs({ args: [...args], strict: true, allowPositionals: false, tokens: true, options })
  const seen = new Set<string>()
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || options[token.name]?.multiple === true) continue
    if (seen.has(token.name)) throw new UsageError(`--${token.name} is given twice`)
    seen.add(token.name)
  }
  return parsed.values
}

function parsePort(text: string): number {
  const port = Number(text)
  if (!/^\d+$/.test(text) || port > 65_535) {
    throw new UsageError(`--port must be a whole number from 0 to 65535, got ${JSON.stringify(text)}`)
  }
  return port
}

function parseMaxConnections(text: string, flag = 'max-connections'): number {
  const count = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(count) || count < 1) {
    throw new UsageError(`--${flag} must be a whole number of at least 1, got ${JSON.stringify(text)}`)
  }
  return count
}

/** `--hsts`: a duration of at least a second, in whole seconds; `0` tells browsers to forget it. */
function parseHsts(text: string): number {
  if (text === '0') return 0
  const ms = durationFlag('hsts', text, 0)
  if (ms < 1000) throw new UsageError(`--hsts must be at least 1s (or 0), got ${JSON.stringify(text)}`)
  return Math.floor(ms / 1000)
}

function parseOrigin(text: string): string {
  try {
    return normalizeOrigin(text)
  } catch (error) {
    throw new UsageError(`--allowed-origin: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/** Fewest and most bytes `--max-frame-bytes` takes: a hello with a token fits the least. */
const FRAME_BYTES_RANGE = [16 * 1024, 256 * 1024 * 1024] as const

function parseFrameBytes(text: string): number {
  const bytes = Number(text)
  const [least, most] = FRAME_BYTES_RANGE
  if (!/^\d+$/.test(text) || bytes < least || bytes > most) {
    throw new UsageError(
      `--max-frame-bytes must be a whole number of bytes from ${least} to ${most}, got ${JSON.stringify(text)}`,
    )
  }
  return bytes
}

function checkPostgresUrl(url: string): void {
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new UsageError('--postgres must be a postgres:// or postgresql:// connection URL')
}

/**
 * `text` for one line of the log: control characters (a newline in a token's `sub`, which
 * would forge a line of its own) escaped as in JSON, and backslashes and quotes too.
 */
export function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1)
}

function durationFlag(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  try {
    return parseDuration(text)
  } catch (error) {
    throw new UsageError(`--${flag}: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/** Reads `DIR` (an app at `/`) or `/PATH=DIR` (an app at `/PATH`). */
function parseMount(text: string): StaticMount {
  const at = text.indexOf('=')
  // `lab=DIR` is most likely a mount path without its `/`, not a directory named so.
  if (!text.startsWith('/') && /^[\w.-]+=/.test(text) && !existsSync(text)) {
    throw new UsageError(`--static ${text}: a mount path starts with "/" (--static /${text})`)
  }
  if (!text.startsWith('/') || at < 0) return { path: '/', dir: text }
  const mount = { path: text.slice(0, at), dir: text.slice(at + 1) }
  if (mount.dir === '') throw new UsageError(`--static ${text} names no directory after "="`)
  try {
    checkMountPath(mount.path)
  } catch (error) {
    throw new UsageError(`--static: ${error instanceof Error ? error.message : String(error)}`)
  }
  return mount
}

/** Reads `name:read` / `name:write`; the access follows the last colon, as space names may hold colons. */
function parseGrant(text: string): [string, Access] {
  const at = text.lastIndexOf(':')
  const space = text.slice(0, at)
  const access = text.slice(at + 1)
  if (at <= 0 || (access !== 'read' && access !== 'write')) {
    throw new UsageError(`--space must be NAME:read or NAME:write, got ${JSON.stringify(text)}`)
  }
  if (space !== EVERY_SPACE && !isSpaceId(space)) {
    throw new UsageError(
      `--space ${JSON.stringify(space)} is not a space name: use 1–128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit (or * for every space)`,
    )
  }
  return [space, access]
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      resolve(signal)
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}

function onSighup(reload: () => void): () => void {
  process.on('SIGHUP', reload)
  return () => process.off('SIGHUP', reload)
}

async function serve(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    'auth-secret': { type: 'string' },
    'compact-every': { type: 'string' },
    horizon: { type: 'string' },
    static: { type: 'string', multiple: true },
    store: { type: 'string' },
    postgres: { type: 'string' },
    'postgres-wait': { type: 'string' },
    'max-frame-bytes': { type: 'string' },
    link: { type: 'string', multiple: true },
    'link-space': { type: 'string', multiple: true },
    'link-token': { type: 'string' },
    'presence-refresh': { type: 'string' },
    'hello-timeout': { type: 'string' },
    'max-connections': { type: 'string' },
    'max-connections-per-address': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'allowed-origin': { type: 'string', multiple: true },
    hsts: { type: 'string' },
    'metrics-names': { type: 'boolean' },
  })
  const links = parseLinks(values, io)
  const certFile = values['tls-cert']
  const keyFile = values['tls-key']
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new UsageError('--tls-cert and --tls-key go together: the certificate and its private key')
  if (certFile === '' || keyFile === '') throw new UsageError('--tls-cert and --tls-key need file names')
  const tls = certFile === undefined || keyFile === undefined ? undefined : { certFile, keyFile }
  if (values.hsts !== undefined && tls === undefined)
    throw new UsageError('--hsts goes with --tls-cert and --tls-key: browsers heed it over HTTPS only')
  const hstsMaxAgeSeconds = values.hsts === undefined ? undefined : parseHsts(values.hsts)
  const port = parsePort(values.port ?? '8787')
  const frameText = values['max-frame-bytes']
  const limits = {
    ...(frameText === undefined ? {} : { maxFrameBytes: parseFrameBytes(frameText) }),
    ...(values['hello-timeout'] === undefined
      ? {}
      : { helloTimeoutMs: durationFlag('hello-timeout', values['hello-timeout'], 10_000) }),
    ...(values['max-connections'] === undefined
      ? {}
      : { maxConnections: parseMaxConnections(values['max-connections']) }),
    ...(values['max-connections-per-address'] === undefined
      ? {}
      : {
          maxConnectionsPerAddress: parseMaxConnections(
            values['max-connections-per-address'],
            'max-connections-per-address',
          ),
        }),
  }
  const mounts = (values.static ?? []).map(parseMount)
  const twice = mounts.find((mount, at) => mounts.findIndex((other) => other.path === mount.path) !== at)
  if (twice !== undefined)
    throw new UsageError(`--static: two apps are mounted at ${twice.path}: give each its own path`)
  const allowedOrigins = values['allowed-origin']?.map(parseOrigin)
  const store = values.store
  if (store !== undefined && store !== 'in-thread' && store !== 'worker') {
    throw new UsageError(`--store must be in-thread or worker, got ${JSON.stringify(store)}`)
  }
  const host = values.host ?? '127.0.0.1'
  const postgres = values.postgres ?? (io.env[POSTGRES_ENV] || undefined)
  if (postgres !== undefined) {
    checkPostgresUrl(postgres)
    if (values.data !== undefined) throw new UsageError('give --data (SQLite) or --postgres, not both')
    if (store !== undefined) throw new UsageError('--store applies to the SQLite store, not to --postgres')
  }
  const waitText = values['postgres-wait']
  if (waitText !== undefined && postgres === undefined)
    throw new UsageError('--postgres-wait applies to a relay on --postgres')
  const postgresWaitMs =
    waitText === undefined
      ? undefined
      : waitText.trim() === '0'
        ? 0
        : durationFlag('postgres-wait', waitText, 0)
  const presenceText = values['presence-refresh']
  if (presenceText !== undefined && postgres === undefined && links.length === 0)
    throw new UsageError('--presence-refresh applies to relays sharing --postgres or linked with --link')
  const presenceRefreshMs = durationFlag('presence-refresh', presenceText, 5_000)
  const dataDir = values.data ?? './data'
  const secret = values['auth-secret'] ?? io.env[SECRET_ENV]
  const compaction = {
    intervalMs: durationFlag('compact-every', values['compact-every'], 5 * 60_000),
    horizonMs: durationFlag('horizon', values.horizon, 30 * 86_400_000),
  }
  if (secret === undefined || secret === '') {
    io.err(
      `WARNING: no --auth-secret (or ${SECRET_ENV}) given: this relay is OPEN. Anyone who can reach it can read and write every space. Start it with a secret and give clients tokens from "chorus-relay token".`,
    )
  } else if (secret.length < 32) {
    io.err(SHORT_SECRET)
  }
  // Listen for the stop signal before starting, so an early SIGTERM still shuts down cleanly.
  const stop = (io.waitForStop ?? waitForSignal)()
  const running = await startRelay({
    ...(postgres === undefined ? { dataDir } : { postgres }),
    ...(postgresWaitMs === undefined ? {} : { postgresWaitMs }),
    ...(values['metrics-names'] === true ? { metricsNames: true } : {}),
    port,
    host,
    compaction,
    staticMounts: mounts,
    ...(store === undefined ? {} : { store }),
    ...(Object.keys(limits).length === 0 ? {} : { limits }),
    ...(secret === undefined || secret === '' ? {} : { authSecret: secret }),
    ...(links.length === 0 ? {} : { links }),
    ...(presenceText === undefined ? {} : { presenceRefreshMs }),
    ...(tls === undefined ? {} : { tls }),
    ...(allowedOrigins === undefined ? {} : { allowedOrigins }),
    ...(hstsMaxAgeSeconds === undefined ? {} : { hstsMaxAgeSeconds }),
    onError: (error) => io.err(`error: ${error.code}: ${error.message}`),
    onLinkUp: (url) => io.err(`link to ${url}: up again`),
    onAdmin: (event) =>
      io.err(
        `admin: ${printable(event.subject)} ${event.deleted ? 'deleted' : 'asked to delete (deleted already)'} space ${event.space}`,
      ),
  })
  io.out(`chorus-relay listening on ${running.url}`)
  for (const link of links)
    io.err(`linking to ${link.url} for ${link.spaces === '*' ? 'every space' : link.spaces.join(', ')}`)
  for (const mount of mounts) {
    io.out(`serving ${mount.dir} at ${running.httpUrl}${mount.path === '/' ? '/' : `${mount.path}/`}`)
  }
  const data =
    postgres === undefined ? join(dataDir, DATABASE_FILE) : `PostgreSQL at ${postgresTarget(postgres)}`
  io.err(`health: ${running.httpUrl}/healthz  metrics: ${running.httpUrl}/metrics  data: ${data}`)
  const unwatch =
    tls === undefined
      ? () => undefined
      : (io.onReload ?? onSighup)(() => {
          running.reloadTls().then(
            () => io.err(`reloaded the TLS certificate ${tls.certFile} and key ${tls.keyFile}`),
            (error: unknown) =>
              io.err(
                `error: ${error instanceof Error ? error.message : String(error)}; still serving the certificate loaded before`,
              ),
          )
        })
  const reason = await stop
  unwatch()
  io.err(`${reason}: closing connections, finishing pending writes`)
  await running.close()
  io.err('chorus-relay stopped')
  return ExitCode.Ok
}

/** Reads `--link`, `--link-space` and `--link-token`: every link gets the same spaces and token. */
function parseLinks(
  values: { link?: string[]; 'link-space'?: string[]; 'link-token'?: string },
  io: CliIo,
): RelayLinkOptions[] {
  const urls = values.link ?? []
  const spaces = values['link-space'] ?? []
  const token = values['link-token'] ?? (io.env[LINK_TOKEN_ENV] || undefined)
  if (urls.length === 0) {
    if (spaces.length > 0 || values['link-token'] !== undefined)
      throw new UsageError('--link-space and --link-token go with --link URL')
    return []
  }
  if (spaces.length === 0)
    throw new UsageError(
      "--link needs --link-space NAME: the spaces to keep in step (or '*' for every space)",
    )
  if (spaces.includes(EVERY_SPACE)) {
    if (spaces.length > 1) throw new UsageError("--link-space '*' links every space: give it alone")
  }
  if (new Set(spaces).size > DEFAULT_LIMITS.maxSpaces)
    throw new UsageError(`--link-space: at most ${DEFAULT_LIMITS.maxSpaces} spaces (the spaces of one hello)`)
  for (const space of spaces) {
    if (space !== EVERY_SPACE && !isSpaceId(space))
      throw new UsageError(`--link-space: ${JSON.stringify(space)} is not a space name`)
  }
  return urls.map((url) => {
    let parsed: URL | undefined
    try {
      parsed = new URL(url)
    } catch {
      parsed = undefined
    }
    if (parsed === undefined || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:'))
      throw new UsageError(
        `--link must be a ws:// or wss:// URL such as ws://10.0.0.2:8787/sync, got ${JSON.stringify(url)}`,
      )
    return {
      url,
      spaces: spaces.includes(EVERY_SPACE) ? ('*' as const) : spaces,
      ...(token === undefined ? {} : { token }),
    }
  })
}

async function token(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, {
    secret: { type: 'string' },
    sub: { type: 'string' },
    space: { type: 'string', multiple: true },
    expires: { type: 'string' },
    admin: { type: 'boolean' },
    relay: { type: 'boolean' },
  })
  if (values.admin === true && values.relay === true)
    throw new UsageError('a token is for --admin or for --relay, not both')
  const secret = values.secret ?? io.env[SECRET_ENV]
  if (secret === undefined || secret === '') throw new UsageError(`token needs --secret (or ${SECRET_ENV})`)
  if (secret.length < 32) io.err(SHORT_SECRET)
  if (values.sub === undefined || values.sub === '')
    throw new UsageError('token needs --sub, the user it names')
  const grants = values.space ?? []
  if (grants.length === 0 && values.admin !== true)
    throw new UsageError('token needs at least one --space NAME:read or NAME:write (or --admin)')
  const spaces: Record<string, Access> = {}
  for (const grant of grants) {
    const [space, access] = parseGrant(grant)
    if (spaces[space] !== undefined)
      throw new UsageError(
        `--space ${space} is given twice (${space}:${spaces[space]} and ${grant}): give one`,
      )
    spaces[space] = access
  }
  const expires = values.expires ?? '30d'
  const expiresIn = expires === 'never' ? undefined : Math.floor(durationFlag('expires', expires, 0) / 1000)
  const minted = await mintToken({
    secret,
    sub: values.sub,
    spaces: spaces as SpaceGrants,
    ...(expiresIn === undefined ? {} : { expiresIn: Math.max(1, expiresIn) }),
    ...(values.admin === true ? { admin: true } : {}),
    ...(values.relay === true ? { relay: true } : {}),
  })
  io.out(minted)
  return ExitCode.Ok
}

async function backup(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, { data: { type: 'string' }, out: { type: 'string' } })
  if (values.out === undefined || values.out === '') throw new UsageError('backup needs --out FILE')
  const source = join(values.data ?? './data', DATABASE_FILE)
  backupDatabase(source, values.out)
  io.err(`backed up ${source} to ${values.out}`)
  return ExitCode.Ok
}

async function restore(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, { data: { type: 'string' }, from: { type: 'string' } })
  if (values.from === undefined || values.from === '')
    throw new UsageError('restore needs --from FILE, a backup')
  const dir = values.data ?? './data'
  makeDataDir(dir)
  const database = join(dir, DATABASE_FILE)
  const lock = lockDataDir(dir, 'stop it first, then restore')
  let restored: RestoreResult
  try {
    restored = restoreDatabase(values.from, database)
  } finally {
    lock.release()
  }
  io.err(`restored ${values.from} to ${database}`)
  if (restored.movedAside.length > 0)
    io.err(`moved the files it replaced aside: ${restored.movedAside.join(', ')}`)
  return ExitCode.Ok
}

/** Where an operator command acts: a running relay, a PostgreSQL database, or a data directory. */
type Target =
  | { readonly kind: 'relay'; readonly base: string; readonly secret: string; readonly sub: string }
  | { readonly kind: 'postgres'; readonly url: string }
  | { readonly kind: 'data'; readonly dir: string }

const TARGET_OPTIONS = {
  data: { type: 'string' },
  postgres: { type: 'string' },
  relay: { type: 'string' },
  secret: { type: 'string' },
  sub: { type: 'string' },
} as const

/** Reads `--data`, `--postgres` or `--relay` (with `--secret`) of `command`; `--data ./data` by default. */
function parseTarget(
  command: string,
  values: { data?: string; postgres?: string; relay?: string; secret?: string; sub?: string },
  io: CliIo,
): Target {
  if ([values.data, values.postgres, values.relay].filter((value) => value !== undefined).length > 1)
    throw new UsageError('give one of --data, --postgres and --relay')
  if (values.relay !== undefined) {
    const secret = values.secret ?? io.env[SECRET_ENV]
    if (secret === undefined || secret === '')
      throw new UsageError(`${command} --relay needs the relay's --secret (or ${SECRET_ENV})`)
    // The admin token names who asks: the relay's log says so.
    return { kind: 'relay', base: values.relay, secret, sub: values.sub || io.env.USER || 'chorus-relay' }
  }
  const postgres =
    values.data === undefined ? (values.postgres ?? (io.env[POSTGRES_ENV] || undefined)) : undefined
  if (postgres !== undefined) {
    checkPostgresUrl(postgres)
    return { kind: 'postgres', url: postgres }
  }
  return { kind: 'data', dir: values.data ?? './data' }
}

/** The relay database of a data directory, which must exist. */
function databaseIn(dir: string): string {
  const file = join(dir, DATABASE_FILE)
  if (!existsSync(file))
    throw new ChorusError(ErrorCode.StorageFailed, `there is no relay database at ${file}`)
  return file
}

async function withPostgres<TResult>(url: string, work: (store: PostgresRelayStore) => Promise<TResult>) {
  const store = await PostgresRelayStore.open(url)
  try {
    return await work(store)
  } finally {
    await store.close()
  }
}

async function deleteSpace(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, { space: { type: 'string' }, ...TARGET_OPTIONS })
  const space = values.space
  if (space === undefined || !isSpaceId(space)) {
    throw new UsageError(
      `delete-space needs --space NAME${space === undefined ? '' : `, got ${JSON.stringify(space)}, which is not a space name`}`,
    )
  }
  const target = parseTarget('delete-space', values, io)
  let deleted: boolean
  if (target.kind === 'relay') {
    const answer = await askRelay(target, 'DELETE', `/admin/spaces/${encodeURIComponent(space)}`)
    if (typeof (answer as { deleted?: unknown }).deleted !== 'boolean')
      throw new ChorusError(ErrorCode.Internal, `the relay at ${target.base} answered what is not a deletion`)
    deleted = (answer as { deleted: boolean }).deleted
  } else if (target.kind === 'postgres') {
    deleted = await withPostgres(target.url, (store) => store.deleteSpace(space))
  } else {
    const file = databaseIn(target.dir)
    const lock = lockDataDir(target.dir, 'stop it first, or give --relay and the secret to delete through it')
    try {
      const store = new SqliteRelayStore(file)
      try {
        deleted = await store.deleteSpace(space)
      } finally {
        await store.close()
      }
    } finally {
      lock.release()
    }
  }
  io.err(deleted ? `deleted space ${space}` : `space ${space} was deleted already`)
  return ExitCode.Ok
}

async function spaces(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, TARGET_OPTIONS)
  const target = parseTarget('spaces', values, io)
  let listed: readonly SpaceSummary[]
  if (target.kind === 'relay') {
    const answer = await askRelay(target, 'GET', '/admin/spaces')
    if (!Array.isArray(answer))
      throw new ChorusError(ErrorCode.Internal, `the relay at ${target.base} answered what is not a list`)
    listed = answer as SpaceSummary[]
  } else if (target.kind === 'postgres') {
    listed = await withPostgres(target.url, (store) => store.describeSpaces())
  } else {
    // Read-only, beside the relay that may be serving the directory.
    listed = describeSpacesIn(databaseIn(target.dir))
  }
  io.out(['space', 'head', 'log entries', 'writers', 'readers', 'links'].join('\t'))
  for (const row of listed)
    io.out([row.space, row.head, row.logEntries, row.writers, row.readers, row.links].join('\t'))
  return ExitCode.Ok
}

/** Calls a running relay's administration API with a short-lived admin token; resolves with its JSON answer. */
async function askRelay(target: Target & { kind: 'relay' }, method: string, path: string): Promise<unknown> {
  const response = await adminRequest(target, method, path)
  return response.json().catch(() => undefined)
}

/**
 * Sends a request to a running relay's administration API with a short-lived admin token;
 * resolves with its answer when it is 200, and throws with the relay's reason otherwise.
 */
async function adminRequest(
  target: Target & { kind: 'relay' },
  method: string,
  path: string,
): Promise<Response> {
  let url: URL
  try {
    // Under the address's path, for a relay behind a proxy at a prefix.
    const base = new URL(target.base)
    url = new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base)
  } catch {
    throw new UsageError(
      `--relay must be the relay's HTTP address, such as http://127.0.0.1:8787, got ${JSON.stringify(target.base)}`,
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--relay must be an http:// or https:// address, got ${JSON.stringify(target.base)}`)
  }
  const token = await mintToken({
    secret: target.secret,
    sub: target.sub,
    spaces: {},
    admin: true,
    expiresIn: '5m',
  })
  let response: Response
  try {
    response = await fetch(url, { method, headers: { authorization: `Bearer ${token}` } })
  } catch (error) {
    // fetch says "fetch failed"; its cause says why (ECONNREFUSED, a bad certificate, …).
    const cause = (error as { cause?: unknown }).cause
    const why =
      cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error)
    throw new ChorusError(ErrorCode.StorageFailed, `cannot reach the relay at ${url.origin}: ${why}`, {
      cause: error,
    })
  }
  if (response.status !== 200) {
    // A 5xx is the relay failing (its database down, say), not refusing what was asked.
    const failed = response.status >= 500
    throw new ChorusError(
      failed ? ErrorCode.Internal : ErrorCode.Forbidden,
      `the relay at ${url.origin} ${failed ? 'failed' : 'refused'}: ${await reasonOf(response)}`,
    )
  }
  return response
}

/** The most of a relay's answer's text {@link reasonOf} shows. */
const MAX_REASON_CHARS = 300

/**
 * Why a relay's administration API did not answer 200: the `error` of its JSON answer, or,
 * for an answer that is not JSON (the relay's plain-text 500s, a proxy's page), the status and
 * the answer's text on one line (a run of spaces or control characters as one space), cut to
 * `MAX_REASON_CHARS` characters so that a whole page does not fill the terminal.
 */
async function reasonOf(response: Response): Promise<string> {
  const status = `HTTP ${response.status}`
  const text = await response.text().catch(() => '')
  let answer: unknown
  try {
    answer = JSON.parse(text)
  } catch {
    answer = undefined
  }
  const error =
    typeof answer === 'object' && answer !== null ? (answer as { error?: unknown }).error : undefined
  if (typeof error === 'string') return error
  const line = text.replace(/[\s\p{Cc}]+/gu, ' ').trim()
  if (line === '') return status
  const chars = [...line]
  return `${status}: ${chars.length > MAX_REASON_CHARS ? `${chars.slice(0, MAX_REASON_CHARS).join('')}…` : line}`
}

async function exportSpace(args: readonly string[], io: CliIo): Promise<number> {
  const values = parseOptions(args, { space: { type: 'string' }, out: { type: 'string' }, ...TARGET_OPTIONS })
  const space = values.space
  if (space === undefined || !isSpaceId(space)) {
    throw new UsageError(
      `export needs --space NAME${space === undefined ? '' : `, got ${JSON.stringify(space)}, which is not a space name`}`,
    )
  }
  if (values.out === '') throw new UsageError('export --out needs a file name')
  const target = parseTarget('export', values, io)
  // Written as they are read: a large space never sits whole in memory.
  const out = values.out === undefined ? null : openExportFile(values.out)
  let count = 0
  const write = (line: string) => {
    count++
    if (out === null) io.out(line)
    else writeSync(out, `${line}\n`)
  }
  try {
    if (target.kind === 'relay') {
      const response = await adminRequest(target, 'GET', `/admin/spaces/${encodeURIComponent(space)}/records`)
      for await (const line of linesOf(response)) write(line)
    } else if (target.kind === 'postgres') {
      await withPostgres(target.url, async (store) => {
        for await (const line of exportRecords(store, space)) write(line)
      })
    } else {
      // Read-only, beside the relay that may be serving the directory.
      for (const line of exportSpaceIn(databaseIn(target.dir), space)) write(line)
    }
  } finally {
    if (out !== null) closeSync(out)
  }
  io.err(
    `exported ${count} record${count === 1 ? '' : 's'} of space ${space}${values.out === undefined ? '' : ` to ${values.out}`}`,
  )
  return ExitCode.Ok
}

/** Opens `path` for an export, refusing to overwrite a file that exists. */
function openExportFile(path: string): number {
  try {
    return openSync(path, 'wx')
  } catch (error) {
    const code = (error as { code?: unknown }).code
    throw new ChorusError(
      ErrorCode.StorageFailed,
      code === 'EEXIST'
        ? `${path} exists: export writes a new file, so name one that does not`
        : `cannot create ${path}: ${error instanceof Error ? error.message : String(error)}`,
    )
  }
}

/** The lines of a response's body, as they arrive. */
async function* linesOf(response: Response): AsyncGenerator<string> {
  if (response.body === null) return
  const decoder = new TextDecoder()
  let rest = ''
  for await (const chunk of response.body) {
    rest += decoder.decode(chunk as Uint8Array, { stream: true })
    const lines = rest.split('\n')
    rest = lines.pop() ?? ''
    for (const line of lines) if (line !== '') yield line
  }
  rest += decoder.decode()
  if (rest !== '') yield rest
}

const defaultIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
}

/**
 * Runs `chorus-relay` with `argv` (without `node` and the script); resolves with the exit
 * code: 0 done, 1 a runtime failure (cannot listen, cannot open the data), 2 a bad command line.
 * `serve` resolves once a stop signal has shut the relay down cleanly.
 */
export async function runCli(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const [first, ...rest] = argv
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(USAGE)
    return ExitCode.Ok
  }
  const command = first === undefined || first.startsWith('-') ? 'serve' : first
  const args = command === first ? rest : argv
  if (args.includes('--help') || args.includes('-h')) {
    io.out(USAGE)
    return ExitCode.Ok
  }
  try {
    switch (command) {
      case 'serve':
        return await serve(args, io)
      case 'token':
        return await token(args, io)
      case 'backup':
        return await backup(args, io)
      case 'restore':
        return await restore(args, io)
      case 'delete-space':
        return await deleteSpace(args, io)
      case 'spaces':
        return await spaces(args, io)
      case 'export':
        return await exportSpace(args, io)
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (error) {
    const parseError =
      error instanceof TypeError && String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
    if (error instanceof UsageError || parseError) {
      io.err(`chorus-relay: ${error.message}\n\n${USAGE}`)
      return ExitCode.Usage
    }
    io.err(`chorus-relay: ${describeFailure(error)}`)
    return ExitCode.Failed
  }
}

/**
 * What went wrong, for the operator: a Chorus error's message, with what caused it when the
 * message does not say (the SQLite or system error behind "cannot open the data directory").
 */
function describeFailure(error: unknown): string {
  if (!isChorusError(error)) return String(error)
  const cause = (error as { cause?: unknown }).cause
  if (!(cause instanceof Error) || error.message.includes(cause.message)) return error.message
  const code = (cause as { code?: unknown }).code
  return `${error.message}: ${cause.message}${typeof code === 'string' && !cause.message.includes(code) ? ` (${code})` : ''}`
}

function isEntryPoint(): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href
  } catch {
    return false
  }
}

/**
 * Exits with `code` once everything written to stdout and stderr is out: output to a pipe is
 * written after the turn that wrote it, and `process.exit` drops what is still waiting (an
 * export to a pipe lost most of its records so).
 */
export async function exitWhenWritten(code: number): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map(
      (stream) => new Promise<void>((resolve) => stream.write('', () => resolve())),
    ),
  )
  process.exit(code)
}

if (isEntryPoint()) {
  runCli(process.argv.slice(2)).then(exitWhenWritten, (error: unknown) => {
    console.error('chorus-relay: unexpected failure', error)
    return exitWhenWritten(ExitCode.Failed)
  })
}
