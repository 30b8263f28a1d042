// Where the PostgreSQL server binaries (initdb and postgres) are: PG_BIN when set, else the
// newest Debian /usr/lib/postgresql/<version>/bin. Shared by scripts/ensure-postgres.mjs and
// the tests' throwaway servers (packages/relay/test/support/postgres-server.ts).
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Where Debian installs PostgreSQL: one `<version>/bin` directory per installed major version. */
export const DEBIAN_ROOT = '/usr/lib/postgresql'

/** Whether `dir` holds both server binaries. */
export function hasServerBinaries(dir) {
  return existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'))
}

/** Orders version directory names ("9.6", "15", "16") newest first. */
function byVersionDescending(a, b) {
  const left = a.split('.').map(Number)
  const right = b.split('.').map(Number)
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const difference = (right[i] ?? 0) - (left[i] ?? 0)
    if (difference !== 0) return difference
  }
  return 0
}

/** The newest Debian PostgreSQL bin directory holding the server binaries, or undefined. */
export function findDebianBinDir() {
  if (!existsSync(DEBIAN_ROOT)) return undefined
  const version = readdirSync(DEBIAN_ROOT)
    .filter((name) => /^\d+(\.\d+)*$/.test(name) && hasServerBinaries(join(DEBIAN_ROOT, name, 'bin')))
    .sort(byVersionDescending)[0]
  return version === undefined ? undefined : join(DEBIAN_ROOT, version, 'bin')
}
