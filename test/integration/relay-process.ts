import { type ChildProcess, spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFileSizeLimit, underFileSizeLimit } from './file-size-limit.js'

/** The repository root, where the relay's CLI runs from. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/**
 * Puts the backup `copy` in place as the relay's `database` file, with no `-wal` or `-shm`
 * file beside it, as the relay README says to restore one (the relay must be stopped).
 */
export function restoreBackup(copy: string, database: string): void {
  copyFileSync(copy, database)
  for (const suffix of ['-wal', '-shm']) rmSync(`${database}${suffix}`, { force: true })
}

const CLI = ['--import', 'tsx', '--conditions=@chorus/source', 'packages/relay/src/cli.ts']

/** A relay running as its own process, as an operator runs it. */
export interface RelayProcess {
  readonly port: number
  /** `ws://127.0.0.1:PORT/sync` (`wss://` for a relay serving TLS) */
  readonly url: string
  /** `http://127.0.0.1:PORT` (`https://` for a relay serving TLS) */
  readonly http: string
  /** The SQLite data directory, or undefined for a relay on PostgreSQL. */
  readonly dataDir: string | undefined
  readonly child: ChildProcess
  /** Everything the process printed so far. */
  output(): string
  /** Sends `signal` and resolves with the exit code (null when killed by the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** A fresh temporary data directory, removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** Resolves with `promise`, or rejects after `ms` with `what` in the message. */
export function within<TValue>(promise: Promise<TValue>, ms: number, what: string): Promise<TValue> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Runs the relay CLI with its arguments and waits until it prints where it listens: on the
 * SQLite database in `dataDir`, or on the PostgreSQL database at `postgres` (handed over in
 * the environment, as an operator keeps a password out of the command line).
 */
export async function startRelay(options: {
  dataDir?: string
  postgres?: string
  port?: number
  authSecret?: string
  args?: readonly string[]
  /** More environment variables for the process. */
  env?: Readonly<Record<string, string>>
  /**
   * The largest file, in bytes, the process may write (see `file-size-limit.ts`): a write past
   * it fails as on a full disk, until `raiseFileSizeLimit` lifts it.
   */
  fileSizeLimit?: number
}): Promise<RelayProcess> {
  const args = [
    ...CLI,
    '--host',
    '127.0.0.1',
    '--port',
    String(options.port ?? 0),
    ...(options.dataDir === undefined ? [] : ['--data', options.dataDir]),
    ...(options.authSecret === undefined ? [] : ['--auth-secret', options.authSecret]),
    ...(options.args ?? []),
  ]
  const env = {
    ...process.env,
    ...(options.postgres === undefined ? {} : { CHORUS_RELAY_POSTGRES: options.postgres }),
    ...options.env,
  }
  const run =
    options.fileSizeLimit === undefined
      ? { command: process.execPath, args }
      : underFileSizeLimit(options.fileSizeLimit, process.execPath, args)
  const child = spawn(run.command, run.args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)))
  const listening = new Promise<{ secure: boolean; port: number }>((resolvePort, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8')
      const match = /(ws|http)(s?):\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match !== null) resolvePort({ secure: match[2] === 's', port: Number(match[3]) })
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    void exited.then((code) => reject(new Error(`the relay exited (${code}) before listening:\n${output}`)))
  })
  const { secure, port } = await within(listening, 20_000, 'the relay to print its URL')
  const s = secure ? 's' : ''
  return {
    port,
    url: `ws${s}://127.0.0.1:${port}/sync`,
    http: `http${s}://127.0.0.1:${port}`,
    dataDir: options.dataDir,
    child,
    output: () => output,
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return exited
      child.kill(signal)
      return within(exited, 20_000, `the relay to exit on ${signal}`)
    },
  }
}

/** Lifts the file size limit `startRelay` set on `relay` (as an operator frees disk space). */
export function raiseFileSizeLimit(relay: RelayProcess): Promise<void> {
  return setFileSizeLimit(relay.child.pid, 'unlimited')
}

/** Runs the relay CLI once (e.g. `token …`) and resolves with what it printed. */
export function runRelayCli(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  return within(
    new Promise((resolveRun) => child.once('exit', (code) => resolveRun({ code, stdout, stderr }))),
    20_000,
    `chorus-relay ${args.join(' ')}`,
  )
}

/**
 * Re-checks `check` until it returns true, at a short interval, for at most `ms`.
 *
 * For states reached over real sockets, where no single event says "done" (every replica
 * can be synced with the head it last heard of while another's upload is still in flight).
 */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolveWait) => setTimeout(resolveWait, 20))
  }
}
