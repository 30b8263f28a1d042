import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { within } from './fixtures.js'

/** The repository root, where `tsx` is installed. */
export const repoRoot = fileURLToPath(new URL('../../../..', import.meta.url))

/** A `chorus-relay` process run from source, with its output collected line by line. */
export interface CliProcess {
  readonly child: ChildProcess
  readonly stdout: string[]
  readonly stderr: string[]
  /** Resolves with the exit code (or the signal that ended it). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** The first stdout line matching `pattern`, waiting up to `ms`. */
  line(pattern: RegExp, ms?: number): Promise<RegExpExecArray>
}

/** Runs `node --import tsx --conditions=@chorus/source packages/relay/src/cli.ts …args` from the repo root. */
export function runCliProcess(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): CliProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=@chorus/source', 'packages/relay/src/cli.ts', ...args],
    { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const stdout: string[] = []
  const stderr: string[] = []
  const waiters = new Set<() => void>()
  const collect = (into: string[]) => {
    let partial = ''
    return (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n')
      partial = lines.pop() ?? ''
      into.push(...lines)
      for (const waiter of [...waiters]) waiter()
    }
  }
  child.stdout?.on('data', collect(stdout))
  child.stderr?.on('data', collect(stderr))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve({ code, signal })
      for (const waiter of [...waiters]) waiter()
    })
  })
  let hasExited = false
  void exited.then(() => {
    hasExited = true
  })
  return {
    child,
    stdout,
    stderr,
    exited,
    line(pattern, ms = 20_000) {
      let waiter: () => void = () => {}
      const found = new Promise<RegExpExecArray>((resolve, reject) => {
        waiter = () => {
          for (const text of stdout) {
            const match = pattern.exec(text)
            if (match !== null) {
              resolve(match)
              return
            }
          }
          if (hasExited || child.exitCode !== null) {
            reject(new Error(`exited without printing ${pattern}; stderr:\n${stderr.join('\n')}`))
          }
        }
        waiters.add(waiter)
        waiter()
      })
      return within(found, ms, `a line matching ${pattern}`).finally(() => waiters.delete(waiter))
    },
  }
}
