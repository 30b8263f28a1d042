#!/usr/bin/env node
// Makes sure the PostgreSQL relay store tests have server binaries (initdb and postgres) to start
// their own throwaway servers with, so `pnpm test` works on a fresh Debian machine: Debian's
// `postgresql` package is installed with apt-get when they are missing (as root, or through
// passwordless sudo). With neither, it stops with what to do: these tests never skip silently.
// The binaries are looked for in PG_BIN, else in the newest /usr/lib/postgresql/<version>/bin,
// through scripts/pg-bin.mjs, as the tests' servers do.
import { spawnSync } from 'node:child_process'
import { canInstall, installDebianPackage, isRoot } from './debian-install.mjs'
import { DEBIAN_ROOT, findDebianBinDir, hasServerBinaries } from './pg-bin.mjs'

/** As root the tests run the server as the `postgres` OS user (PostgreSQL refuses root). */
const checkServerUser = () => {
  if (!isRoot) return
  if (spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status === 0) return
  console.error(
    'The PostgreSQL tests run as root here, and PostgreSQL refuses to run as root: they start it as the ' +
      '`postgres` OS user, which does not exist. Create it (`useradd --system postgres`) or run the ' +
      'tests as a non-root user.',
  )
  process.exit(1)
}

if (process.env.PG_BIN !== undefined) {
  if (!hasServerBinaries(process.env.PG_BIN)) {
    console.error(
      `PG_BIN=${process.env.PG_BIN} holds no initdb and postgres: point it at a PostgreSQL server bin directory`,
    )
    process.exit(1)
  }
  checkServerUser()
  process.exit(0)
}
if (findDebianBinDir() !== undefined) {
  checkServerUser()
  process.exit(0)
}

if (!canInstall()) {
  console.error(
    'The PostgreSQL relay store tests need PostgreSQL server binaries (initdb and postgres) under ' +
      `${DEBIAN_ROOT}/<version>/bin (or PG_BIN). Install them with \`sudo apt-get install postgresql\` ` +
      '(Debian/Ubuntu) or point PG_BIN at the bin directory of a PostgreSQL installation.',
  )
  process.exit(1)
}

// Debian's package may also create and start a system cluster on port 5432: harmless, the tests
// start their own servers on unix sockets in temporary directories.
console.error('Installing Debian postgresql for the PostgreSQL relay store tests…')
installDebianPackage('postgresql')
if (findDebianBinDir() === undefined) {
  console.error(`apt-get finished but ${DEBIAN_ROOT}/<version>/bin still holds no initdb and postgres`)
  process.exit(1)
}
checkServerUser()
