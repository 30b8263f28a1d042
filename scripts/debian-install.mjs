// Installs a Debian package for the tests when the machine lacks it: as root, or through
// passwordless sudo. The ensure-* scripts use it; they say what to do when it cannot.
import { execFileSync, spawnSync } from 'node:child_process'

/** Whether this process runs as root. */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** Whether apt-get is here and may be run (as root, or with `sudo -n`). */
export function canInstall() {
  const hasAptGet = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0
  const hasSudo = !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0
  return hasAptGet && (isRoot || hasSudo)
}

/** `apt-get update`, then `apt-get install` of `name`, without questions; throws when either fails. */
export function installDebianPackage(name) {
  const run = (args) => {
    const [command, ...rest] = isRoot ? args : ['sudo', '-n', ...args]
    execFileSync(command, rest, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    })
  }
  run(['apt-get', 'update', '-qq'])
  run(['apt-get', 'install', '-y', '-qq', name])
}
