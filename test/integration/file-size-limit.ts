import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'

/**
 * A full disk, for real, for the tests of processes that store: a process's largest file
 * (its soft `RLIMIT_FSIZE`), set and lifted with util-linux's `prlimit`. A write past it fails
 * in the kernel with `EFBIG` (Node ignores `SIGXFSZ`), as one fails with `ENOSPC` on a full
 * disk: SQLite reports it as an I/O error, a full disk as `SQLITE_FULL`.
 */

/** util-linux's `prlimit`: the tests that need it fail (never skip) without it; `.ci/run` installs it. */
export function prlimitPath(): string {
  for (const path of ['/usr/bin/prlimit', '/bin/prlimit']) if (existsSync(path)) return path
  throw new Error('the full-disk tests need util-linux prlimit (apt-get install util-linux)')
}

/**
 * `command` with `args`, run under a file size limit of `bytes` (the hard limit unlimited, so
 * {@link setFileSizeLimit} can lift it): `prlimit` sets it and runs the command in its own
 * place, so the process id is the command's.
 */
export function underFileSizeLimit(
  bytes: number,
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  return { command: prlimitPath(), args: [`--fsize=${bytes}:unlimited`, '--', command, ...args] }
}

/** Sets the file size limit of the running process `pid` to `bytes`, or lifts it (`unlimited`). */
export async function setFileSizeLimit(pid: number | undefined, bytes: number | 'unlimited'): Promise<void> {
  if (pid === undefined) throw new Error('the process has no id: it did not start')
  const child = spawn(prlimitPath(), ['--pid', String(pid), `--fsize=${bytes}:unlimited`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exit) => resolve(exit)))
  if (code !== 0) throw new Error(`prlimit --pid ${pid} --fsize=${bytes} failed (${code}): ${stderr}`)
}
