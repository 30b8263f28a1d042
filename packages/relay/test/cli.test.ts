import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { type AddressInfo, createServer } from 'node:net'
import { join } from 'node:path'
import { asReplicaId, type Message } from '@chorus/core'
import { jwtVerify } from 'jose'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { type CliIo, printable, runCli } from '../src/cli.js'
import { DATABASE_FILE } from '../src/serve.js'
import { SqliteRelayStore } from '../src/sqlite-relay-store.js'
import { mintToken } from '../src/token-auth.js'
import { runCliProcess } from './support/cli-process.js'
import { makeRun, makeTempDir, within } from './support/fixtures.js'
import { startTestRelay } from './support/harness.js'
import { changes, connectClient, hello, is, type TestClient } from './support/test-client.js'

const SPACE = 'team-notes'
const A = asReplicaId('alice')
const SECRET = 'cli-test-secret-0123456789-abcdefghijklmnopq'
const URL_LINE = /listening on (ws:\/\/127\.0\.0\.1:(\d+)\/sync)/

function captureIo(): CliIo & { readonly lines: { out: string[]; err: string[] } } {
  const lines = { out: [] as string[], err: [] as string[] }
  return {
    lines,
    out: (line) => lines.out.push(line),
    err: (line) => lines.err.push(line),
    env: {},
  }
}

describe('chorus-relay command line (in process)', () => {
  it.each([
    [['--port', 'abc'], /--port must be a whole number/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['serve', 'extra'], /Unexpected argument 'extra'/],
    [['launch'], /unknown command "launch"/],
    [['--horizon', 'forever'], /--horizon: cannot read the duration "forever"/],
    [['--max-frame-bytes', '4MiB'], /--max-frame-bytes must be a whole number of bytes from 16384/],
    [['--max-frame-bytes', '1000'], /--max-frame-bytes must be a whole number of bytes from 16384/],
    [['--hello-timeout', '0s'], /--hello-timeout: cannot read the duration "0s"/],
    [['--max-connections', '0'], /--max-connections must be a whole number of at least 1, got "0"/],
    [['--max-connections', 'lots'], /--max-connections must be a whole number of at least 1/],
    [
      ['--max-connections-per-address', '0'],
      /--max-connections-per-address must be a whole number of at least 1, got "0"/,
    ],
    [['--tls-cert', 'cert.pem'], /--tls-cert and --tls-key go together/],
    [['--tls-key', 'key.pem'], /--tls-cert and --tls-key go together/],
    [['--tls-cert', '', '--tls-key', 'key.pem'], /--tls-cert and --tls-key need file names/],
    [['--hsts', '180d'], /--hsts goes with --tls-cert and --tls-key/],
    [
      ['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--hsts', 'long'],
      /--hsts: cannot read the duration "long"/,
    ],
    [['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--hsts', '500ms'], /--hsts must be at least 1s \(or 0\)/],
    [
      ['--allowed-origin', 'https://notes.example.com/app'],
      /--allowed-origin: "https:\/\/notes.example.com\/app" is not an origin/,
    ],
    [['--allowed-origin', '*'], /--allowed-origin: "\*" is not an origin/],
    [['token', '--secret', SECRET, '--space', 'a:write'], /token needs --sub/],
    [['token', '--secret', SECRET, '--sub', 'alice'], /at least one --space/],
    [['token', '--sub', 'alice', '--space', 'a:write'], /token needs --secret/],
    [['token', '--secret', SECRET, '--sub', 'alice', '--space', 'team-notes'], /NAME:read or NAME:write/],
    [['token', '--secret', SECRET, '--sub', 'alice', '--space', 'has space:read'], /is not a space name/],
    [['backup', '--data', 'somewhere'], /backup needs --out/],
    [['--static', '/sync=somewhere'], /--static: cannot mount an app at \/sync: the relay answers it/],
    [['--static', '/lab/=somewhere'], /--static: cannot mount an app at "\/lab\/"/],
    [['--static', '/lab='], /--static \/lab= names no directory/],
    [
      ['--postgres', 'mysql://db/chorus'],
      /--postgres must be a postgres:\/\/ or postgresql:\/\/ connection URL/,
    ],
    [
      ['--postgres', 'postgres://db/chorus', '--data', 'here'],
      /give --data \(SQLite\) or --postgres, not both/,
    ],
    [['--postgres', 'postgres://db/chorus', '--store', 'worker'], /--store applies to the SQLite store/],
    [
      ['--presence-refresh', '1s'],
      /--presence-refresh applies to relays sharing --postgres or linked with --link/,
    ],
    [
      ['--postgres', 'postgres://db/chorus', '--presence-refresh', 'often'],
      /--presence-refresh: cannot read the duration/,
    ],
    [['delete-space', '--data', 'here'], /delete-space needs --space NAME$/m],
    [['delete-space', '--space', 's', '--relay', 'http://127.0.0.1:1'], /--relay needs the relay's --secret/],
    [['delete-space', '--space', 's', '--relay', 'ftp://x', '--secret', SECRET], /--relay must be an http/],
    [
      ['delete-space', '--space', 's', '--relay', 'http://x', '--data', 'here'],
      /give one of --data, --postgres and --relay/,
    ],
    [['--static', '/admin=somewhere'], /--static: cannot mount an app at \/admin: the relay answers it/],
    [['spaces', '--relay', 'http://x'], /spaces --relay needs the relay's --secret/],
    [['export', '--data', 'here'], /export needs --space NAME/],
    [['export', '--space', 'has space'], /export needs --space NAME, got "has space"/],
    [['export', '--space', 's', '--out', ''], /export --out needs a file name/],
    [
      ['spaces', '--data', 'here', '--postgres', 'postgres://db/chorus'],
      /give one of --data, --postgres and --relay/,
    ],
    [['delete-space', '--space', 'has space'], /delete-space needs --space NAME, got "has space"/],
    [['delete-space', '--space', 's', '--postgres', 'mysql://db'], /--postgres must be a postgres:\/\//],
    [
      ['delete-space', '--space', 's', '--postgres', 'postgres://db/chorus', '--data', 'here'],
      /give one of --data, --postgres and --relay/,
    ],
    [['--link', 'ws://127.0.0.1:1/sync'], /--link needs --link-space NAME/],
    [['--link', 'http://127.0.0.1:1/sync', '--link-space', 's'], /--link must be a ws:\/\/ or wss:\/\/ URL/],
    [
      ['--link', 'ws://127.0.0.1:1/sync', '--link-space', 'has space'],
      /--link-space: "has space" is not a space name/,
    ],
    [['--link-space', 's'], /--link-space and --link-token go with --link URL/],
    [
      ['--link', 'ws://127.0.0.1:1/sync', '--link-space', '*', '--link-space', 'x'],
      /'\*' links every space: give it alone/,
    ],
    [
      [
        '--link',
        'ws://127.0.0.1:1/sync',
        ...Array.from({ length: 65 }, (_, i) => ['--link-space', `s${i}`]).flat(),
      ],
      /--link-space: at most 64 spaces/,
    ],
    [
      ['token', '--secret', SECRET, '--sub', 'r', '--admin', '--relay'],
      /for --admin or for --relay, not both/,
    ],
    [['--port', '8787', '--port', '8788'], /--port is given twice/],
    [['backup', '--out', 'a.db', '--out', 'b.db'], /--out is given twice/],
    [
      ['token', '--secret', SECRET, '--sub', 'a', '--space', 't:write', '--space', 't:read'],
      /--space t is given twice \(t:write and t:read\)/,
    ],
    [['restore', '--data', 'somewhere'], /restore needs --from FILE/],
    [['--static', '/lab=a', '--static', '/lab=b'], /two apps are mounted at \/lab/],
    [['--static', 'lab=apps/lab/dist'], /a mount path starts with "\/" \(--static \/lab=apps\/lab\/dist\)/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const io = captureIo()
    expect(await runCli(args, io)).toBe(2)
    expect(io.lines.err.join('\n')).toMatch(message)
    expect(io.lines.err.join('\n')).toContain('Usage:')
  })

  it('mints a token whose grants read back, space names with colons included', async () => {
    const io = captureIo()
    const args = [
      'token',
      '--secret',
      SECRET,
      '--sub',
      'alice',
      '--space',
      'team:notes:write',
      '--space',
      'b:read',
    ]
    expect(await runCli([...args, '--expires', '7d'], io)).toBe(0)
    const { payload } = await jwtVerify(io.lines.out[0] as string, new TextEncoder().encode(SECRET))
    expect(payload).toMatchObject({ sub: 'alice', spaces: { 'team:notes': 'write', b: 'read' } })
    expect((payload.exp as number) - (payload.iat as number)).toBe(7 * 86_400)
    const never = captureIo()
    expect(await runCli([...args, '--expires', 'never'], never)).toBe(0)
    expect(
      (await jwtVerify(never.lines.out[0] as string, new TextEncoder().encode(SECRET))).payload.exp,
    ).toBeUndefined()
  })

  it('backs up a data directory into a file that opens as the same data', async () => {
    const temp = makeTempDir()
    const store = new SqliteRelayStore(join(temp.dir, DATABASE_FILE))
    await store.append(SPACE as never, A, makeRun(A, 1, 3))
    const out = join(temp.dir, 'backup.db')
    const io = captureIo()
    expect(await runCli(['backup', '--data', temp.dir, '--out', out], io)).toBe(0)
    expect(await runCli(['backup', '--data', temp.dir, '--out', out], captureIo())).toBe(1)
    await store.close()
    const copy = new SqliteRelayStore(out)
    expect(await copy.readLog(SPACE as never, 0, 10)).toHaveLength(3)
    await copy.close()
    temp.remove()
  })

  it('restores a backup into a data directory, moving the files there aside whole, under a new log name each time', async () => {
    const temp = makeTempDir()
    const live = join(temp.dir, 'live')
    const crashed = join(temp.dir, 'crashed')
    const copy = join(temp.dir, 'backup.db')
    mkdirSync(live)
    mkdirSync(crashed)
    const store = new SqliteRelayStore(join(live, DATABASE_FILE))
    await store.append(SPACE as never, A, makeRun(A, 1, 3))
    expect(await runCli(['backup', '--data', live, '--out', copy], captureIo())).toBe(0)
    await store.append(SPACE as never, A, makeRun(A, 4, 5))
    const original = (await store.loadSpace(SPACE as never)).log
    // What a relay killed now leaves: the database and a -wal holding changes it committed.
    for (const suffix of ['', '-wal']) {
      copyFileSync(join(live, `${DATABASE_FILE}${suffix}`), join(crashed, `${DATABASE_FILE}${suffix}`))
    }
    await store.close()
    const logs = new Set([original])
    const openRestored = async () => {
      const restored = new SqliteRelayStore(join(crashed, DATABASE_FILE))
      try {
        expect(await restored.readLog(SPACE as never, 0, 10)).toHaveLength(3)
        logs.add((await restored.loadSpace(SPACE as never)).log)
      } finally {
        await restored.close()
      }
    }
    for (const round of [1, 2]) {
      const io = captureIo()
      expect(await runCli(['restore', '--from', copy, '--data', crashed], io)).toBe(0)
      expect(io.lines.err[0]).toBe(`restored ${copy} to ${join(crashed, DATABASE_FILE)}`)
      const aside = /^moved the files it replaced aside: (.*)$/.exec(io.lines.err[1] ?? '')?.[1]?.split(', ')
      // The first time the crashed relay's database with its -wal, then the first restore's.
      expect(aside).toHaveLength(round === 1 ? 2 : 1)
      expect(existsSync(join(crashed, `${DATABASE_FILE}-wal`))).toBe(false)
      await openRestored()
      expect(logs.size).toBe(round + 1)
      if (round === 1) {
        // Moved as a pair, the crashed database still holds what its -wal did.
        const kept = new SqliteRelayStore(aside?.[0] as string)
        expect(await kept.readLog(SPACE as never, 0, 10)).toHaveLength(5)
        await kept.close()
      }
    }
    // Refused: what is not a relay database, a database a relay is serving, a served directory.
    writeFileSync(join(temp.dir, 'other.db'), '')
    const inUse = new SqliteRelayStore(join(live, DATABASE_FILE))
    await inUse.append(SPACE as never, A, makeRun(A, 6, 6))
    const relay = await startTestRelay()
    const refusals: [string[], RegExp][] = [
      [['restore', '--from', join(temp.dir, 'none.db'), '--data', crashed], /cannot read it/],
      [['restore', '--from', join(temp.dir, 'other.db'), '--data', crashed], /it is not a relay database/],
      [
        ['restore', '--from', join(live, DATABASE_FILE), '--data', crashed],
        /-wal is beside it: it is a database a relay was serving/,
      ],
      [
        ['restore', '--from', copy, '--data', relay.dataDir],
        /another relay is serving .*stop it first, then restore/,
      ],
    ]
    try {
      for (const [args, message] of refusals) {
        const io = captureIo()
        expect(await runCli(args, io), args.join(' ')).toBe(1)
        expect(io.lines.err.join('\n')).toMatch(message)
      }
    } finally {
      await relay.stop()
      await inUse.close()
    }
    // Each refusal left the restored database as it was, under the name it took.
    await openRestored()
    expect(logs.size).toBe(3)
    temp.remove()
  })

  it('says why it cannot reach a relay', async () => {
    // A port nothing listens on any more.
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    await new Promise((resolve) => server.close(resolve))
    const io = captureIo()
    expect(await runCli(['spaces', '--relay', `http://127.0.0.1:${port}`, '--secret', SECRET], io)).toBe(1)
    expect(io.lines.err.join('\n')).toContain(
      `cannot reach the relay at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`,
    )
  })

  it('says a relay failed, with the text it answered, when its administration API answers 500', async () => {
    // Answers as the relay does when its database is down: 500 with a plain-text reason; a
    // long one, over several lines, for the export.
    const reason = 'internal error: describing spaces failed: connect ECONNREFUSED 127.0.0.1:5432'
    const page = `internal error:\n${'x'.repeat(2_000)}\n`
    const server = createHttpServer((request, response) => {
      response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
      response.end(request.url?.endsWith('/records') === true ? page : `${reason}\n`)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const relay = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const listing = captureIo()
      expect(await runCli(['spaces', '--relay', relay, '--secret', SECRET], listing)).toBe(1)
      expect(listing.lines.err).toEqual([`chorus-relay: the relay at ${relay} failed: HTTP 500: ${reason}`])
      const deleting = captureIo()
      expect(
        await runCli(['delete-space', '--space', SPACE, '--relay', relay, '--secret', SECRET], deleting),
      ).toBe(1)
      expect(deleting.lines.err).toEqual(listing.lines.err)
      const exporting = captureIo()
      expect(
        await runCli(['export', '--space', SPACE, '--relay', relay, '--secret', SECRET], exporting),
      ).toBe(1)
      expect(exporting.lines.err).toEqual([
        `chorus-relay: the relay at ${relay} failed: HTTP 500: internal error: ${'x'.repeat(284)}…`,
      ])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('warns when minting a token with a short secret', async () => {
    const io = captureIo()
    expect(await runCli(['token', '--secret', 'short', '--sub', 'a', '--space', 'a:read'], io)).toBe(0)
    expect(io.lines.err).toEqual([
      'warning: the auth secret is shorter than 32 characters; use a long random one',
    ])
    expect(io.lines.out).toHaveLength(1)
  })

  it('mints an admin token, which needs no space', async () => {
    const io = captureIo()
    expect(
      await runCli(['token', '--secret', SECRET, '--sub', 'ops', '--admin', '--expires', '1h'], io),
    ).toBe(0)
    const { payload } = await jwtVerify(io.lines.out[0] as string, new TextEncoder().encode(SECRET))
    expect(payload).toMatchObject({ sub: 'ops', admin: true, spaces: {} })
  })

  it('mints a relay token, for linking another relay to this one', async () => {
    const io = captureIo()
    expect(
      await runCli(
        ['token', '--secret', SECRET, '--sub', 'edge-1', '--space', `${SPACE}:write`, '--relay'],
        io,
      ),
    ).toBe(0)
    const { payload } = await jwtVerify(io.lines.out[0] as string, new TextEncoder().encode(SECRET))
    expect(payload).toMatchObject({ sub: 'edge-1', relay: true, spaces: { [SPACE]: 'write' } })
  })

  it('mints a token for every space with --space *:write', async () => {
    const io = captureIo()
    expect(
      await runCli(['token', '--secret', SECRET, '--sub', 'edge-2', '--space', '*:write', '--relay'], io),
    ).toBe(0)
    const { payload } = await jwtVerify(io.lines.out[0] as string, new TextEncoder().encode(SECRET))
    expect(payload).toMatchObject({ sub: 'edge-2', relay: true, spaces: { '*': 'write' } })
  })

  it('lists and deletes the spaces of a data directory no relay serves, and exits 1 where there is none', async () => {
    const temp = makeTempDir()
    const store = new SqliteRelayStore(join(temp.dir, DATABASE_FILE))
    await store.append(SPACE as never, A, makeRun(A, 1, 3))
    await store.close()
    const before = captureIo()
    expect(await runCli(['spaces', '--data', temp.dir], before)).toBe(0)
    expect(before.lines.out).toEqual([
      'space\thead\tlog entries\twriters\treaders\tlinks',
      `${SPACE}\t3\t3\t1\t0\t0`,
    ])
    const io = captureIo()
    expect(await runCli(['delete-space', '--data', temp.dir, '--space', SPACE], io)).toBe(0)
    expect(io.lines.err).toEqual([`deleted space ${SPACE}`])
    const reopened = new SqliteRelayStore(join(temp.dir, DATABASE_FILE))
    expect(await reopened.loadSpace(SPACE as never)).toMatchObject({ deleted: true, head: 0 })
    await reopened.close()
    // The spaces left, read beside whatever relay may serve the directory.
    const listed = captureIo()
    expect(await runCli(['spaces', '--data', temp.dir], listed)).toBe(0)
    expect(listed.lines.out).toEqual(['space\thead\tlog entries\twriters\treaders\tlinks'])
    const missing = captureIo()
    expect(
      await runCli(['delete-space', '--data', join(temp.dir, 'nowhere'), '--space', SPACE], missing),
    ).toBe(1)
    expect(missing.lines.err.join('\n')).toMatch(/there is no relay database at .*nowhere/)
    temp.remove()
  })

  it('exports every record of a large space through a pipe, as a process, before it exits', async () => {
    const temp = makeTempDir()
    try {
      const store = new SqliteRelayStore(join(temp.dir, DATABASE_FILE))
      const count = 3_000
      for (let from = 1; from <= count; from += 500) {
        await store.append(SPACE as never, A, makeRun(A, from, from + 499))
      }
      await store.close()
      // A pipe to this process, read as it comes: the exit used to drop what was still queued.
      const exported = runCliProcess(['export', '--space', SPACE, '--data', temp.dir])
      expect(await within(exported.exited, 60_000, 'the export to end')).toEqual({ code: 0, signal: null })
      const lines = exported.stdout.filter((line) => line !== '')
      expect(lines).toHaveLength(count)
      expect(new Set(lines.map((line) => JSON.parse(line).id)).size).toBe(count)
      expect(exported.stderr.join('\n')).toContain(`exported ${count} records`)
    } finally {
      temp.remove()
    }
  })

  it('exports a space from the data directory a relay is serving, from the relay itself, and to a new file', async () => {
    const relay = await startTestRelay({ authSecret: SECRET })
    try {
      const client = await connectClient(relay.url)
      client.send(
        hello(
          'alice',
          { [SPACE]: 0 },
          await mintToken({ secret: SECRET, sub: 'a', spaces: { [SPACE]: 'write' } }),
        ),
      )
      await client.waitFor(is.hello, 'the hello answer')
      client.send(changes(SPACE, 0, makeRun(A, 1, 3)))
      await client.waitFor(is.ack(3), 'the ack')
      await client.close()
      const fromData = captureIo()
      expect(await runCli(['export', '--space', SPACE, '--data', relay.dataDir], fromData)).toBe(0)
      expect(fromData.lines.out.map((line) => JSON.parse(line).id)).toEqual(['alice-1', 'alice-2', 'alice-3'])
      expect(JSON.parse(fromData.lines.out[0] as string)).toEqual({
        collection: 'notes',
        id: 'alice-1',
        versions: [
          {
            dot: ['alice', 1],
            hlc: expect.any(String),
            context: {},
            op: { type: 'put', value: { by: 'alice', n: 1 } },
          },
        ],
      })
      expect(fromData.lines.err).toEqual([`exported 3 records of space ${SPACE}`])
      const fromRelay = captureIo()
      expect(
        await runCli(['export', '--space', SPACE, '--relay', relay.httpUrl, '--secret', SECRET], fromRelay),
      ).toBe(0)
      expect(fromRelay.lines.out).toEqual(fromData.lines.out)
      const file = join(relay.dataDir, 'export.ndjson')
      expect(
        await runCli(['export', '--space', SPACE, '--data', relay.dataDir, '--out', file], captureIo()),
      ).toBe(0)
      expect(readFileSync(file, 'utf8')).toBe(`${fromData.lines.out.join('\n')}\n`)
      const again = captureIo()
      expect(await runCli(['export', '--space', SPACE, '--data', relay.dataDir, '--out', file], again)).toBe(
        1,
      )
      expect(again.lines.err.join('\n')).toMatch(/export\.ndjson exists/)
      // A space never written exports nothing; a deleted one says so.
      const empty = captureIo()
      expect(await runCli(['export', '--space', 'nothing-here', '--data', relay.dataDir], empty)).toBe(0)
      expect(empty.lines.out).toEqual([])
      await relay.relay.deleteSpace(SPACE)
      for (const target of [
        ['--data', relay.dataDir],
        ['--relay', relay.httpUrl, '--secret', SECRET],
      ]) {
        const deleted = captureIo()
        expect(await runCli(['export', '--space', SPACE, ...target], deleted)).toBe(1)
        expect(deleted.lines.err.join('\n')).toMatch(/was deleted/)
      }
    } finally {
      await relay.stop()
    }
  })

  it('serves one app at / and another at the path --static /PATH=DIR names', async () => {
    const data = makeTempDir()
    const notes = makeTempDir()
    const lab = makeTempDir()
    writeFileSync(join(notes.dir, 'index.html'), '<title>Notes</title>')
    writeFileSync(join(lab.dir, 'index.html'), '<title>Lab</title>')
    let stop = (_reason: string) => {}
    const io = {
      ...captureIo(),
      waitForStop: () =>
        new Promise<string>((resolve) => {
          stop = resolve
        }),
    }
    const args = ['--port', '0', '--data', data.dir, '--static', notes.dir, '--static', `/lab=${lab.dir}`]
    const exit = runCli(args, io)
    await vi.waitFor(() => expect(io.lines.out).toHaveLength(3))
    const http = (/ws:\/\/(127\.0\.0\.1:\d+)\/sync/.exec(io.lines.out[0] as string) ?? [])[1]
    expect(io.lines.out.slice(1)).toEqual([
      `serving ${notes.dir} at http://${http}/`,
      `serving ${lab.dir} at http://${http}/lab/`,
    ])
    expect(await (await fetch(`http://${http}/`)).text()).toBe('<title>Notes</title>')
    expect(await (await fetch(`http://${http}/lab`)).text()).toBe('<title>Lab</title>')
    stop('test')
    expect(await exit).toBe(0)
    for (const dir of [data, notes, lab]) dir.remove()
  })

  it('exits 1 naming the database it cannot reach, without its password', async () => {
    const io = captureIo()
    const env = { CHORUS_RELAY_POSTGRES: 'postgresql://relay:s3cret@/chorus?host=%2Fno%2Fsuch%2Fdir&port=5' }
    expect(await runCli(['--port', '0', '--postgres-wait', '0'], { ...io, env })).toBe(1)
    const printed = [...io.lines.out, ...io.lines.err].join('\n')
    expect(printed).toMatch(/cannot open the relay database at \/no\/such\/dir\/chorus/)
    expect(printed).not.toContain('s3cret')
    // With a wait, it says it tries again, then gives up as before.
    const waiting = captureIo()
    expect(await runCli(['--port', '0', '--postgres-wait', '600ms'], { ...waiting, env })).toBe(1)
    const told = waiting.lines.err.join('\n')
    expect(told).toMatch(
      /cannot open the relay database at \/no\/such\/dir\/chorus: .*; trying again for up to 1 s/,
    )
    expect(told).not.toContain('s3cret')
    const misplaced = captureIo()
    expect(await runCli(['--port', '0', '--postgres-wait', '5s'], misplaced)).toBe(2)
    expect(misplaced.lines.err.join('\n')).toMatch(/--postgres-wait applies to a relay on --postgres/)
  })

  it.each([['--help'], ['help'], ['serve', '--help'], ['token', '-h'], ['restore', '--from', 'x', '--help']])(
    'prints the usage for %j',
    async (...args) => {
      const io = captureIo()
      expect(await runCli(args, io)).toBe(0)
      expect(io.lines.out.join('\n')).toMatch(/chorus-relay token --secret/)
      expect(io.lines.err).toEqual([])
    },
  )

  it('says why it cannot open a data directory: a file in the way, a file that is not a database', async () => {
    const temp = makeTempDir()
    const file = join(temp.dir, 'a-file')
    writeFileSync(file, 'not a directory')
    const inTheWay = captureIo()
    expect(await runCli(['--port', '0', '--data', file], inTheWay)).toBe(1)
    expect(inTheWay.lines.err.at(-1)).toBe(
      `chorus-relay: cannot make the data directory ${file}: a file is in the way`,
    )
    const corrupt = join(temp.dir, 'corrupt')
    mkdirSync(corrupt)
    writeFileSync(join(corrupt, DATABASE_FILE), 'x'.repeat(4096))
    const notDatabase = captureIo()
    expect(await runCli(['--port', '0', '--data', corrupt], notDatabase)).toBe(1)
    expect(notDatabase.lines.err.at(-1)).toMatch(
      /cannot prepare the relay database at .*corrupt.*: file is not a database \(SQLITE_NOTADB\)$/,
    )
    temp.remove()
  })
})

describe('chorus-relay as a real process', () => {
  let temp: ReturnType<typeof makeTempDir>

  beforeEach(() => {
    temp = makeTempDir()
  })

  afterEach(() => {
    temp.remove()
  })

  it.each(['in-thread', 'worker'] as const)(
    'prints its URL, warns when open, serves, and exits 0 on SIGTERM with the store (%s) closed',
    async (store) => {
      const relay = runCliProcess([
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--data',
        temp.dir,
        '--store',
        store,
      ])
      const [, url, port] = await relay.line(URL_LINE)
      expect(relay.stderr.join('\n')).toMatch(/WARNING: .*this relay is OPEN/)
      const health = await fetch(`http://127.0.0.1:${port}/healthz`)
      expect(health.status).toBe(200)
      const client = await connectClient(url as string)
      client.send(hello('alice', { [SPACE]: 0 }))
      client.send(changes(SPACE, 0, makeRun(A, 1, 3)))
      await client.waitFor(is.ack(3), 'ack 3')

      relay.child.kill('SIGTERM')
      expect(await within(relay.exited, 20_000, 'the relay to exit')).toEqual({ code: 0, signal: null })
      expect((await client.closed).code).toBe(1001)
      const file = join(temp.dir, DATABASE_FILE)
      expect(existsSync(`${file}-wal`), 'a clean close checkpoints and removes the WAL').toBe(false)
      const check = new SqliteRelayStore(file)
      expect(await check.loadSpace(SPACE as never)).toMatchObject({ head: 3, received: { alice: 3 } })
      await check.close()
    },
    30_000,
  )

  it('prints a token that the relay accepts', async () => {
    const minter = runCliProcess(['token', '--secret', SECRET, '--sub', 'alice', '--space', `${SPACE}:write`])
    const [minted] = await minter.line(/^ey[\w-]+\.[\w-]+\.[\w-]+$/)
    expect(await within(minter.exited, 20_000, 'token to exit')).toEqual({ code: 0, signal: null })
    const { payload } = await jwtVerify(minted, new TextEncoder().encode(SECRET))
    expect(payload).toMatchObject({ sub: 'alice', spaces: { [SPACE]: 'write' } })

    const relay = runCliProcess(['--port', '0', '--data', temp.dir], { CHORUS_RELAY_SECRET: SECRET })
    const [, url] = await relay.line(URL_LINE)
    expect(relay.stderr.join('\n')).not.toMatch(/OPEN/)
    const client = await connectClient(url as string)
    client.send(hello('alice', { [SPACE]: 0 }, minted))
    await client.waitFor(is.hello, 'hello with a minted token')
    const stranger = await connectClient(url as string)
    stranger.send(hello('eve', { [SPACE]: 0 }))
    await stranger.waitFor(is.error('unauthenticated'), 'a refusal without a token')
    relay.child.kill('SIGINT')
    expect(await within(relay.exited, 20_000, 'the relay to exit')).toEqual({ code: 0, signal: null })
  }, 30_000)

  it('a second relay on the same data directory exits 1 saying so; after the first is killed with SIGKILL, one starts', async () => {
    const first = runCliProcess(['--port', '0', '--data', temp.dir])
    await first.line(URL_LINE)
    const second = runCliProcess(['--port', '0', '--data', temp.dir])
    expect(await within(second.exited, 20_000, 'the second relay to exit')).toEqual({ code: 1, signal: null })
    expect(second.stderr.join('\n')).toMatch(/another relay is serving the data directory .* stop it first/)
    expect(second.stdout.join('\n')).not.toMatch(URL_LINE)

    first.child.kill('SIGKILL')
    await within(first.exited, 20_000, 'the first relay to die')
    const third = runCliProcess(['--port', '0', '--data', temp.dir])
    const [, port] = (await third.line(URL_LINE)).slice(1)
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    third.child.kill('SIGTERM')
    expect(await within(third.exited, 20_000, 'the relay to exit')).toEqual({ code: 0, signal: null })
  }, 40_000)

  it('will not start on a data directory whose database is gone but whose write-ahead log is there', async () => {
    writeFileSync(join(temp.dir, `${DATABASE_FILE}-wal`), 'changes it acknowledged')
    const io = captureIo()
    expect(await runCli(['--port', '0', '--data', temp.dir], io)).toBe(1)
    expect(io.lines.err.join('\n')).toMatch(
      /holds relay\.db-wal but no relay\.db: the database was deleted or moved/,
    )
    expect(existsSync(join(temp.dir, DATABASE_FILE))).toBe(false)
  })

  it('exits 2 with the usage on a bad flag', async () => {
    const relay = runCliProcess(['--port', '70000'])
    expect(await within(relay.exited, 20_000, 'the process to exit')).toEqual({ code: 2, signal: null })
    const unknownStore = runCliProcess(['--port', '0', '--store', 'elsewhere'])
    expect(await within(unknownStore.exited, 20_000, 'the process to exit')).toEqual({
      code: 2,
      signal: null,
    })
  }, 30_000)

  it.each(['in-thread', 'worker'] as const)(
    'loses no acknowledged change when killed with SIGKILL mid-stream (store %s), and the client resumes',
    async (store) => {
      const TOTAL = 2000
      const BATCH = 20
      const first = runCliProcess(['--port', '0', '--data', temp.dir, '--store', store])
      const [, firstUrl] = await first.line(URL_LINE)
      const client = await connectClient(firstUrl as string)
      client.send(hello('alice', { [SPACE]: 0 }))
      await client.waitFor(is.hello, 'hello')

      // Keep several batches in flight, so the kill lands between commits and acks.
      let acked = 0
      let sent = 0
      const pump = (target: TestClient) => {
        while (sent < TOTAL && sent - acked < BATCH * 5) {
          const batch = makeRun(A, sent + 1, Math.min(TOTAL, sent + BATCH))
          target.send(changes(SPACE, sent, batch))
          sent += batch.length
        }
      }
      const killed = new Promise<void>((resolve) => {
        client.onMessage((message: Message) => {
          if (message.type !== 'ack' || message.upTo <= acked) return
          acked = message.upTo
          if (acked >= TOTAL / 4 && first.child.exitCode === null && first.child.signalCode === null) {
            // Batches committed together are acknowledged together, so what was in flight may
            // all be acknowledged by now: send more first, so the kill lands with changes the
            // relay has not acknowledged (acks already on the wire may still arrive).
            pump(client)
            first.child.kill('SIGKILL')
            resolve()
            return
          }
          pump(client)
        })
      })
      pump(client)
      await within(killed, 20_000, 'a quarter of the changes acknowledged')
      expect(await within(first.exited, 20_000, 'the killed relay to exit')).toEqual({
        code: null,
        signal: 'SIGKILL',
      })
      await client.closed
      expect(sent).toBeGreaterThan(acked)

      const file = join(temp.dir, DATABASE_FILE)
      expect(existsSync(`${file}-wal`), 'the killed relay left its WAL to recover from').toBe(true)
      const check = new SqliteRelayStore(file)
      const { received } = await check.loadSpace(SPACE as never)
      expect(received.alice).toBeGreaterThanOrEqual(acked)
      const log = await check.readLog(SPACE as never, 0, TOTAL)
      expect(log.map((entry) => entry.change.dot[1])).toEqual(
        Array.from({ length: received.alice ?? 0 }, (_, i) => i + 1),
      )
      await check.close()

      const second = runCliProcess(['--port', '0', '--data', temp.dir, '--store', store])
      const [, secondUrl] = await second.line(URL_LINE)
      const resumed = await connectClient(secondUrl as string)
      resumed.send(hello('alice', { [SPACE]: 0 }))
      const reply = await resumed.waitFor(is.hello, 'hello after the restart')
      expect(reply.have[SPACE]).toBe(received.alice)
      acked = reply.have[SPACE] ?? 0
      sent = acked
      resumed.onMessage((message: Message) => {
        if (message.type !== 'ack' || message.upTo <= acked) return
        acked = message.upTo
        pump(resumed)
      })
      pump(resumed)
      await resumed.waitFor(is.ack(TOTAL), 'every change acknowledged after the restart', { ms: 20_000 })
      second.child.kill('SIGTERM')
      expect(await within(second.exited, 20_000, 'the relay to exit')).toEqual({ code: 0, signal: null })

      const final = new SqliteRelayStore(file)
      const all = await final.readLog(SPACE as never, 0, TOTAL + 1)
      expect(all.map((entry) => entry.change.dot[1])).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1))
      await final.close()
    },
    60_000,
  )
})

describe('the log', () => {
  it("escapes what a token names, so that a subject cannot forge a line of the relay's log", () => {
    expect(printable('ops')).toBe('ops')
    expect(printable('ops\nadmin: evil deleted space team-notes')).toBe(
      'ops\\nadmin: evil deleted space team-notes',
    )
    expect(printable('a\u0007b"c\\')).toBe('a\\u0007b\\"c\\\\')
  })
})
