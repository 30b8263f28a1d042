import { join } from 'node:path'
import { ErrorCode } from '@chorus/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import { type CliIo, runCli } from '../src/cli.js'
import { normalizeOrigin, originAllowed } from '../src/origin.js'
import { type RunningRelay, startRelay } from '../src/serve.js'
import { makeTempDir, within } from './support/fixtures.js'
import { connectClient, hello, is } from './support/test-client.js'

const SPACE = 'team-notes'

/**
 * How an upgrade to `url` with this `Origin` header (none when undefined) ends: `open`, or
 * the HTTP status and body the relay answered instead of a WebSocket.
 */
function upgrade(
  url: string,
  origin: string | undefined,
): Promise<'open' | { status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url, origin === undefined ? {} : { origin })
      socket.on('open', () => {
        socket.close()
        resolve('open')
      })
      socket.on('unexpected-response', (_request, response) => {
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          body += chunk
        })
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
      })
      socket.on('error', reject)
    }),
    10_000,
    'the upgrade to end',
  )
}

describe('origins', () => {
  it('normalizes what a browser sends: lowercase, no default port, no trailing slash', () => {
    expect(normalizeOrigin('https://Notes.Example.com/')).toBe('https://notes.example.com')
    expect(normalizeOrigin('https://notes.example.com:443')).toBe('https://notes.example.com')
    expect(normalizeOrigin('http://127.0.0.1:8787')).toBe('http://127.0.0.1:8787')
    expect(normalizeOrigin('http://[::1]:5173')).toBe('http://[::1]:5173')
  })

  it.each([
    'https://notes.example.com/app',
    'https://notes.example.com?x=1',
    'https://user:pass@notes.example.com',
    'ftp://notes.example.com',
    'notes.example.com',
    '*',
    'null',
    'https://notes.example.com:99999',
    '',
  ])('refuses %j as an origin (invalid-argument)', (text) => {
    expect(() => normalizeOrigin(text)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }))
  })

  it('lets through a listed origin however it is spelled, and no other; a request without the header passes', () => {
    const allowed = new Set([normalizeOrigin('https://notes.example.com')])
    expect(originAllowed(allowed, 'https://NOTES.example.com:443')).toBe(true)
    expect(originAllowed(allowed, undefined)).toBe(true)
    expect(originAllowed(allowed, 'https://notes.example.com.evil.test')).toBe(false)
    expect(originAllowed(allowed, 'http://notes.example.com')).toBe(false)
    expect(originAllowed(allowed, 'null')).toBe(false)
    expect(originAllowed(allowed, 'not a url')).toBe(false)
  })
})

describe('a relay with allowed origins', () => {
  let relay: RunningRelay | null = null
  const dirs: { remove(): void }[] = []
  afterEach(async () => {
    await relay?.close()
    relay = null
    for (const dir of dirs.splice(0)) dir.remove()
  })

  it('refuses a page of another origin with 403 before any frame, and syncs a listed origin and a program without one', async () => {
    const temp = makeTempDir()
    dirs.push(temp)
    relay = await startRelay({
      dataDir: join(temp.dir, 'data'),
      port: 0,
      allowedOrigins: ['https://Notes.Example.com', 'http://127.0.0.1:5173'],
    })
    const refused = await upgrade(relay.url, 'https://evil.example')
    expect(refused).toMatchObject({ status: 403 })
    expect(JSON.parse((refused as { body: string }).body)).toMatchObject({ code: ErrorCode.Forbidden })
    expect(await upgrade(relay.url, 'null')).toMatchObject({ status: 403 })
    expect(await upgrade(relay.url, 'http://127.0.0.1:5174')).toMatchObject({ status: 403 })
    // The refused upgrades left nothing behind, and /metrics counts them.
    expect((await relay.relay.health()).connections).toBe(0)
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/^chorus_relay_origins_refused_total 3$/m)

    const origins = ['https://notes.example.com', 'http://127.0.0.1:5173', undefined]
    for (const [i, origin] of origins.entries()) {
      const client = await connectClient(relay.url, origin === undefined ? {} : { origin })
      client.send(hello(`replica-${i}`, { [SPACE]: 0 }))
      await client.waitFor(is.hello, `the hello answered (origin ${origin ?? 'none'})`)
      await client.close()
    }
  })

  it('without allowed origins takes a page of any origin', async () => {
    const temp = makeTempDir()
    dirs.push(temp)
    relay = await startRelay({ dataDir: join(temp.dir, 'data'), port: 0 })
    expect(await upgrade(relay.url, 'https://anywhere.example')).toBe('open')
    expect(await (await fetch(`${relay.httpUrl}/metrics`)).text()).not.toMatch(/origins_refused/)
  })

  it('does not start with an allowed origin that is not one, and leaves its data directory free', async () => {
    const temp = makeTempDir()
    dirs.push(temp)
    const dataDir = join(temp.dir, 'data')
    await expect(
      startRelay({ dataDir, port: 0, allowedOrigins: ['https://notes.example.com/app'] }),
    ).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
    })
    relay = await startRelay({ dataDir, port: 0 })
    expect(await upgrade(relay.url, undefined)).toBe('open')
  })

  it('chorus-relay --allowed-origin refuses other origins', async () => {
    const temp = makeTempDir()
    dirs.push(temp)
    const lines = { out: [] as string[], err: [] as string[] }
    let stop = (_reason: string) => {}
    const io: CliIo = {
      out: (line) => lines.out.push(line),
      err: (line) => lines.err.push(line),
      env: {},
      waitForStop: () =>
        new Promise<string>((resolve) => {
          stop = resolve
        }),
    }
    const args = ['--port', '0', '--data', temp.dir, '--allowed-origin', 'https://notes.example.com']
    const exit = runCli(args, io)
    await vi.waitFor(() => expect(lines.out).toHaveLength(1))
    const url = (/(ws:\/\/127\.0\.0\.1:\d+\/sync)/.exec(lines.out[0] as string) ?? [])[1] as string
    expect(await upgrade(url, 'https://evil.example')).toMatchObject({ status: 403 })
    expect(await upgrade(url, 'https://notes.example.com')).toBe('open')
    stop('test')
    expect(await exit).toBe(0)
  })
})
