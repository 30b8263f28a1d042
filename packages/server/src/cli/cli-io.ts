import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/** Where a CLI writes and how it learns it should stop; injectable for tests. */
export interface CliIo {
  /** One line meant for programs (a URL, a table). */
  out(line: string): void
  /** One line for the operator: progress, warnings, errors. */
  err(line: string): void
  /** Resolves with the name of what asked a long-running command to stop (default: SIGTERM or SIGINT). */
  waitForStop?(): Promise<string>
}

/** Exit codes of both CLIs: success, a runtime failure, a bad command line. */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2 } as const

/** A problem with the command line: reported with the usage text and exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** True for the errors `node:util` `parseArgs` throws on an unknown or malformed option. */
export function isParseArgsError(error: unknown): error is Error {
  return error instanceof TypeError && String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
}

/** The process's own streams and signals. */
export const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** Resolves on the first SIGTERM or SIGINT, with its name. */
export function waitForSignal(): Promise<string> {
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

/** Reads a whole number in `[min, max]` from a flag's text; a {@link UsageError} otherwise. */
export function intFlag(
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(
      `--${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
    )
  }
  return value
}

/**
 * Answers a command-line problem: the error and the usage text on `io.err`, and
 * {@link ExitCode.Usage}. Anything that is not a usage error is thrown on.
 */
export function usageFailure(io: CliIo, command: string, usage: string, error: unknown): number {
  if (error instanceof UsageError || isParseArgsError(error)) {
    io.err(`${command}: ${error.message}\n\n${usage}`)
    return ExitCode.Usage
  }
  throw error
}

/**
 * Runs `main` on the process's arguments when the module at `url` is the script node was
 * started with, and exits with the code it resolves with.
 */
export function runIfEntryPoint(
  url: string,
  command: string,
  main: (argv: readonly string[]) => Promise<number>,
): void {
  if (!isEntryPoint(url)) return
  main(process.argv.slice(2)).then(exitWhenWritten, (error: unknown) => {
    process.stderr.write(`${command}: unexpected failure: ${String(error)}\n`)
    return exitWhenWritten(ExitCode.Failed)
  })
}

/**
 * Exits with `code` once everything written to stdout and stderr is out: output to a pipe is
 * written after the turn that wrote it, and `process.exit` drops what is still waiting.
 */
export async function exitWhenWritten(code: number): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map(
      (stream) => new Promise<void>((resolve) => stream.write('', () => resolve())),
    ),
  )
  process.exit(code)
}

/** True when the module at `url` is the script node was started with (so it should run itself). */
export function isEntryPoint(url: string): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return url === pathToFileURL(realpathSync(script)).href
  } catch {
    return false
  }
}
