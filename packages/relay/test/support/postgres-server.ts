import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, escapeIdentifier } from 'pg'
import { DEBIAN_ROOT, findDebianBinDir, hasServerBinaries } from '../../../../scripts/pg-bin.mjs'

/** The superuser initdb creates; trust authentication, so no password. */
const USER = 'chorus'
/** How long the server may take to accept connections before starting counts as failed. */
const START_TIMEOUT_MS = 30_000
/** How long a fast shutdown may take before the server is killed. */
const STOP_TIMEOUT_MS = 10_000
/** The most server output kept for error messages. */
const OUTPUT_LIMIT = 64 * 1024
/** Unix socket paths are limited to 107 bytes (sun_path), terminating NUL aside. */
const SOCKET_PATH_LIMIT = 107

/** A throwaway PostgreSQL server reachable only through a unix socket in its own temporary directory. */
export interface PostgresServer {
  /** A connection string for database `postgres`, as `new pg.Pool({ connectionString: url })` takes it. */
  readonly url: string
  /** The same connection as a `pg` client config object. */
  readonly config: { host: string; port: number; user: string; database: string }
  /** Creates a fresh empty database (a random name unless given) and returns its connection string. */
  createDatabase(name?: string): Promise<string>
  /**
   * Crashes the server (SIGKILL: what was committed must survive, what was not is rolled back
   * at the restart) and starts it again on the same data, once `down` (optional) has run
   * while it is down. Every connection to it is broken.
   */
  crashAndRestart(down?: () => Promise<void>): Promise<void>
  /** Shuts the server down (killing it if that takes too long) and removes its directory. */
  stop(): Promise<void>
}

/**
 * The directory holding the PostgreSQL server binaries: `PG_BIN` when set, else the newest
 * `/usr/lib/postgresql/<version>/bin`. Throws when there is none.
 */
export function pgBinDir(): string {
  const fromEnv = process.env.PG_BIN
  if (fromEnv !== undefined) {
    if (hasServerBinaries(fromEnv)) return fromEnv
    throw new Error(
      `PG_BIN=${fromEnv} holds no initdb and postgres: point it at a PostgreSQL server bin directory`,
    )
  }
  const newest = findDebianBinDir()
  if (newest === undefined) {
    throw new Error(
      `No PostgreSQL server binaries (initdb and postgres) under ${DEBIAN_ROOT}/<version>/bin and PG_BIN ` +
        'is not set: run `node scripts/ensure-postgres.mjs` (or `sudo apt-get install postgresql`).',
    )
  }
  return newest
}

/** The user and group the server processes run as. */
interface ServerUser {
  readonly uid: number
  readonly gid: number
}

/**
 * The `postgres` OS user when running as root (initdb and postgres refuse to run as root), or
 * undefined to run them as the current user.
 */
function serverUser(): ServerUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  const idOf = (flag: '-u' | '-g'): number => {
    try {
      return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: 'pipe' }).trim())
    } catch {
      return Number.NaN
    }
  }
  const uid = idOf('-u')
  const gid = idOf('-g')
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(
      'Running as root, and PostgreSQL refuses to run as root: the server is started as the `postgres` ' +
        'OS user, which does not exist. Create it (`useradd --system postgres`) or run the tests as a ' +
        'non-root user.',
    )
  }
  return { uid, gid }
}

/** Collects a child's output, keeping only the last OUTPUT_LIMIT characters. */
function collectOutput(child: ChildProcess): { text(): string } {
  let text = ''
  const append = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-OUTPUT_LIMIT)
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  return { text: () => text }
}

/** Resolves once `child` has exited (or failed to spawn at all). */
function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', () => resolve())
  })
}

/** Whether `child` is still running (spawned, and neither exited nor killed by a signal). */
function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null
}

/** Runs `command` to completion, rejecting with its output when it fails. */
async function runToCompletion(
  command: string,
  args: readonly string[],
  options: { readonly cwd: string; readonly user: ServerUser | undefined },
): Promise<void> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.user ?? {}),
  })
  const output = collectOutput(child)
  let spawnError: Error | undefined
  child.once('error', (error) => {
    spawnError = error
  })
  await exitOf(child)
  if (spawnError !== undefined) throw new Error(`${command} could not be run: ${spawnError.message}`)
  if (child.exitCode !== 0) {
    const how = child.exitCode === null ? `signal ${child.signalCode}` : `code ${child.exitCode}`
    throw new Error(`${command} ${args.join(' ')} failed with ${how}:\n${output.text()}`)
  }
}

/** Resolves after `ms`. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  return Promise.race([promise.then(() => true), timeout]).finally(() => clearTimeout(timer))
}

/** Retries connecting until the server accepts a connection; throws if it exits or START_TIMEOUT_MS passes. */
async function waitUntilAccepting(
  config: PostgresServer['config'],
  child: ChildProcess,
  output: { text(): string },
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS
  let lastError = 'no attempt made'
  while (Date.now() < deadline) {
    if (!isRunning(child)) {
      const how = child.exitCode === null ? `signal ${child.signalCode}` : `code ${child.exitCode}`
      throw new Error(`postgres exited with ${how} while starting:\n${output.text()}`)
    }
    const client = new Client({ ...config, connectionTimeoutMillis: 2_000 })
    try {
      await client.connect()
      await client.end()
      return
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error)
      await client.end().catch(() => {})
    }
    await sleep(100)
  }
  throw new Error(
    `postgres did not accept connections within ${START_TIMEOUT_MS} ms (last error: ${lastError}):\n${output.text()}`,
  )
}

/** A connection string for `database` on the server listening on the unix socket in `dir`. */
function connectionString(dir: string, port: number, database: string): string {
  return `postgresql://${USER}@/${encodeURIComponent(database)}?host=${encodeURIComponent(dir)}&port=${port}`
}

/**
 * Starts a throwaway PostgreSQL server in a fresh temporary directory: initdb with trust
 * authentication for superuser `chorus`, then `postgres` listening only on a unix socket in that
 * directory (no TCP). fsync stays on. Stop it with `stop()`; should the test process exit first,
 * the server is killed on the way out.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = pgBinDir()
  const user = serverUser()
  const dir = mkdtempSync(join(tmpdir(), 'chorus-pg-'))
  // The port only names the socket file (.s.PGSQL.<port>): nothing is bound on TCP.
  const port = 5433 + randomInt(50_000)
  const socketPath = join(dir, `.s.PGSQL.${port}`)
  if (Buffer.byteLength(socketPath) > SOCKET_PATH_LIMIT) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(
      `The socket path ${socketPath} is too long for a unix socket: set TMPDIR to a shorter path`,
    )
  }
  const dataDir = join(dir, 'data')
  const config = { host: dir, port, user: USER, database: 'postgres' }
  let child: ChildProcess | undefined
  // An aborted run leaves no server behind, and (best effort: its backends may still be exiting) no directory.
  const onProcessExit = () => {
    if (child !== undefined && isRunning(child)) child.kill('SIGKILL')
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {}
  }
  process.on('exit', onProcessExit)
  try {
    if (user !== undefined) chownSync(dir, user.uid, user.gid)
    await runToCompletion(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', USER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      { cwd: dir, user },
    )
    const launch = async () => {
      const server = spawn(
        join(bin, 'postgres'),
        ['-D', dataDir, '-k', dir, '-c', 'listen_addresses=', '-p', String(port)],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...(user ?? {}) },
      )
      child = server
      const output = collectOutput(server)
      const exited = exitOf(server)
      await waitUntilAccepting(config, server, output)
      return { server, exited }
    }
    let { server, exited } = await launch()

    let stopping: Promise<void> | undefined
    const stop = async (): Promise<void> => {
      if (isRunning(server)) {
        server.kill('SIGINT') // fast shutdown: ends sessions, then a clean shutdown checkpoint
        if (!(await settlesWithin(exited, STOP_TIMEOUT_MS))) {
          server.kill('SIGKILL')
          await exited
        }
      }
      process.off('exit', onProcessExit)
      rmSync(dir, { recursive: true, force: true })
    }

    return {
      url: connectionString(dir, port, 'postgres'),
      config,
      async createDatabase(name = `t_${randomBytes(8).toString('hex')}`) {
        if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
          throw new Error(`Not a safe database name: ${JSON.stringify(name)} (letters, digits and _ only)`)
        }
        const client = new Client(config)
        await client.connect()
        try {
          await client.query(`CREATE DATABASE ${escapeIdentifier(name)}`)
        } finally {
          await client.end()
        }
        return connectionString(dir, port, name)
      },
      stop() {
        stopping ??= stop()
        return stopping
      },
      async crashAndRestart(down) {
        server.kill('SIGKILL')
        await exited
        await down?.()
        ;({ server, exited } = await launch())
      },
    }
  } catch (error) {
    if (child !== undefined && isRunning(child)) {
      const exited = exitOf(child)
      child.kill('SIGKILL')
      await exited
    }
    process.off('exit', onProcessExit)
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}
