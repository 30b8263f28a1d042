import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root, where `tsx` is installed. */
export const repoRoot = fileURLToPath(new URL('../../../..', import.meta.url))

/** A CLI process run from source, with its output collected line by line. */
export interface CliProcess {
  readonly child: ChildProcess
  readonly stdout: string[]
  readonly stderr: string[]
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** The first stdout line matching `pattern` at or after line `from`, waiting up to `ms`. */
  line(pattern: RegExp, ms?: number, from?: number): Promise<RegExpExecArray>
}

/** Runs `node --import tsx --conditions=@chorus/source <script> …args` from the repository root. */
export function runCliProcess(script: string, args: readonly string[]): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@chorus/source', script, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
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
  let hasExited = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      hasExited = true
      resolve({ code, signal })
      for (const waiter of [...waiters]) waiter()
    })
  })
  return {
    child,
    stdout,
    stderr,
    exited,
    line(pattern, ms = 30_000, from = 0) {
      let waiter: () => void = () => {}
      let timer: NodeJS.Timeout | undefined
      const found = new Promise<RegExpExecArray>((resolve, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`no line matching ${pattern} within ${ms} ms; stderr:\n${stderr.join('\n')}`)),
          ms,
        )
        waiter = () => {
          for (const text of stdout.slice(from)) {
            const match = pattern.exec(text)
            if (match !== null) {
              resolve(match)
              return
            }
          }
          if (hasExited)
            reject(new Error(`exited without printing ${pattern}; stderr:\n${stderr.join('\n')}`))
        }
        waiters.add(waiter)
        waiter()
      })
      return found.finally(() => {
        clearTimeout(timer)
        waiters.delete(waiter)
      })
    },
  }
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Polls `check` every 50 ms until it returns a value that is not undefined, or throws after `ms`. */
export async function poll<T>(what: string, check: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what}: not within ${ms} ms`)
}
