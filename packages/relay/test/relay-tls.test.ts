import { generateKeyPairSync } from 'node:crypto'
import { once } from 'node:events'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { get } from 'node:https'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { connect, type PeerCertificate } from 'node:tls'
import { asReplicaId, isChorusError } from '@chorus/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type RunningRelay, startRelay } from '../src/serve.js'
import { runCliProcess } from './support/cli-process.js'
import { makeRun, makeTempDir, within } from './support/fixtures.js'
import { changes, connectClient, hello, is } from './support/test-client.js'

const SPACE = 'team-notes'
const fixture = (name: string) => new URL(`./fixtures/tls/${name}`, import.meta.url).pathname
const CERT_A = readFileSync(fixture('cert-a.pem'))
const CERT_B = readFileSync(fixture('cert-b.pem'))

/** The subject of the certificate `port` serves on 127.0.0.1, trusting `ca`. */
function servedSubject(port: number, ca: readonly Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: [...ca], servername: 'localhost' }, () => {
      const certificate: PeerCertificate = socket.getPeerCertificate()
      socket.end()
      resolve(String(certificate.subject.CN))
    })
    socket.on('error', reject)
  })
}

/** The `Strict-Transport-Security` header of `GET url` over HTTPS, trusting `ca` (null without one). */
function hstsHeader(url: string, ca: readonly Buffer[]): Promise<string | null> {
  return new Promise((resolve, reject) => {
    get(url, { ca: [...ca] }, (response) => {
      response.resume()
      const header = response.headers['strict-transport-security']
      resolve(typeof header === 'string' ? header : null)
    }).on('error', reject)
  })
}

/** `GET path` over HTTPS, trusting `ca`: the status code, or the error's code. */
function httpsStatus(url: string, ca: readonly Buffer[]): Promise<number | string> {
  return new Promise((resolve) => {
    get(url, { ca: [...ca] }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    }).on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
}

/** Polls `lines` until one matches `pattern`, for up to `ms`. */
async function lineIn(lines: readonly string[], pattern: RegExp, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms
  for (;;) {
    const found = lines.find((line) => pattern.test(line))
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`no line matching ${pattern}; got:\n${lines.join('\n')}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('a relay serving TLS', () => {
  let temp: ReturnType<typeof makeTempDir>
  let relay: RunningRelay | null = null
  let certFile: string
  let keyFile: string

  beforeEach(() => {
    temp = makeTempDir()
    certFile = join(temp.dir, 'cert.pem')
    keyFile = join(temp.dir, 'key.pem')
    copyFileSync(fixture('cert-a.pem'), certFile)
    copyFileSync(fixture('key-a.pem'), keyFile)
  })

  afterEach(async () => {
    await relay?.close()
    relay = null
    temp.remove()
  })

  it('serves wss:// and https:// with its certificate; a client that does not trust it is refused', async () => {
    relay = await startRelay({ dataDir: join(temp.dir, 'data'), port: 0, tls: { certFile, keyFile } })
    expect(relay.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/sync$/)
    expect(relay.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect(await httpsStatus(`${relay.httpUrl}/healthz`, [CERT_A])).toBe(200)
    expect(await httpsStatus(`${relay.httpUrl}/healthz`, [CERT_B])).toMatch(/CERT|SIGNATURE|SELF_SIGNED/)

    const client = await connectClient(relay.url, { ca: [CERT_A] })
    client.send(hello('alice', { [SPACE]: 0 }))
    client.send(changes(SPACE, 0, makeRun(asReplicaId('alice'), 1, 3)))
    await client.waitFor(is.ack(3), 'ack 3 over wss')
    await client.close()

    const stranger = await connectClient(relay.url, { ca: [CERT_B] }).then(
      () => 'connected',
      (error: Error) => error.message,
    )
    expect(stranger).not.toBe('connected')
  })

  it('reloads a renewed certificate for new connections, and keeps the old one when the new files are bad', async () => {
    relay = await startRelay({ dataDir: join(temp.dir, 'data'), port: 0, tls: { certFile, keyFile } })
    const both = [CERT_A, CERT_B]
    expect(await servedSubject(relay.port, both)).toBe('chorus-test-a')
    copyFileSync(fixture('cert-b.pem'), certFile)
    copyFileSync(fixture('key-b.pem'), keyFile)
    await relay.reloadTls()
    expect(await servedSubject(relay.port, both)).toBe('chorus-test-b')

    // A half-written renewal: b's certificate with a's key.
    copyFileSync(fixture('key-a.pem'), keyFile)
    const mismatch = await relay.reloadTls().then(
      () => null,
      (error: unknown) => error,
    )
    expect(isChorusError(mismatch, 'invalid-argument')).toBe(true)
    expect((mismatch as Error).message).toContain(certFile)
    writeFileSync(certFile, 'not a certificate')
    await expect(relay.reloadTls()).rejects.toMatchObject({ code: 'invalid-argument' })
    expect(await servedSubject(relay.port, both)).toBe('chorus-test-b')
    expect(await httpsStatus(`${relay.httpUrl}/healthz`, [CERT_B])).toBe(200)
  })

  it('sends Strict-Transport-Security on every HTTPS response when asked to, and not otherwise', async () => {
    const dataDir = join(temp.dir, 'data')
    relay = await startRelay({ dataDir, port: 0, tls: { certFile, keyFile }, hstsMaxAgeSeconds: 15_552_000 })
    expect(await hstsHeader(`${relay.httpUrl}/healthz`, [CERT_A])).toBe('max-age=15552000')
    // Answers the relay refuses carry it too, an upgrade's refused before any WebSocket as well.
    expect(await hstsHeader(`${relay.httpUrl}/no-such-page`, [CERT_A])).toBe('max-age=15552000')
    const upgrade = await new Promise<string>((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port: Number(new URL(relay?.httpUrl ?? '').port),
        ca: [CERT_A],
        servername: 'localhost',
      })
      let answer = ''
      socket.on('secureConnect', () =>
        socket.write(
          'GET /not-sync HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        ),
      )
      socket.on('data', (data: Buffer) => {
        answer += data.toString()
      })
      socket.on('end', () => resolve(answer))
      socket.on('error', reject)
    })
    expect(upgrade).toMatch(/^HTTP\/1\.1 404/)
    expect(upgrade).toContain('Strict-Transport-Security: max-age=15552000')
    await relay.close()
    relay = await startRelay({ dataDir, port: 0, tls: { certFile, keyFile } })
    expect(await hstsHeader(`${relay.httpUrl}/healthz`, [CERT_A])).toBeNull()
    await relay.close()
    relay = null
    // HSTS over plain HTTP means nothing to browsers: refused, as a bad age is.
    await expect(startRelay({ dataDir, port: 0, hstsMaxAgeSeconds: 60 })).rejects.toMatchObject({
      code: 'invalid-argument',
    })
    await expect(
      startRelay({ dataDir, port: 0, tls: { certFile, keyFile }, hstsMaxAgeSeconds: 1.5 }),
    ).rejects.toMatchObject({ code: 'invalid-argument' })
  })

  it('refuses to start on a certificate it cannot use, before it takes the data directory', async () => {
    const dataDir = join(temp.dir, 'data')
    const missing = startRelay({ dataDir, port: 0, tls: { certFile: join(temp.dir, 'nope.pem'), keyFile } })
    await expect(missing).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/cannot read the TLS certificate .*nope\.pem/),
    })
    copyFileSync(fixture('key-b.pem'), keyFile)
    await expect(startRelay({ dataDir, port: 0, tls: { certFile, keyFile } })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/do not make a TLS context/),
    })
    // A key of another type than the certificate's (an RSA key beside this EC certificate, a
    // renewal half done): OpenSSL makes a context of them, whose every handshake fails.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }))
    await expect(startRelay({ dataDir, port: 0, tls: { certFile, keyFile } })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: expect.stringMatching(/key is not the certificate's/),
    })
    // Nothing held the data directory: a relay starts on it.
    relay = await startRelay({ dataDir, port: 0 })
    expect(relay.url).toMatch(/^ws:\/\//)
    await expect(relay.reloadTls()).rejects.toMatchObject({ code: 'invalid-argument' })
  })

  it('keeps its certificate when a reload finds a key of another type than the new certificate’s', async () => {
    relay = await startRelay({ dataDir: join(temp.dir, 'data'), port: 0, tls: { certFile, keyFile } })
    copyFileSync(fixture('cert-b.pem'), certFile)
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }))
    await expect(relay.reloadTls()).rejects.toMatchObject({ code: 'invalid-argument' })
    expect(await httpsStatus(`${relay.httpUrl}/healthz`, [CERT_A])).toBe(200)
  })

  it('closes a connection whose TLS handshake never comes, as it does one whose headers never come', async () => {
    relay = await startRelay({ dataDir: join(temp.dir, 'data'), port: 0, tls: { certFile, keyFile } })
    const port = Number(new URL(relay.httpUrl).port)
    const silent = createConnection({ host: '127.0.0.1', port })
    await once(silent, 'connect')
    // Node's default would hold it 120 s, past this test's time limit.
    await once(silent, 'close')
    expect(await httpsStatus(`${relay.httpUrl}/healthz`, [CERT_A])).toBe(200)
  }, 30_000)

  it('chorus-relay --tls-cert --tls-key --hsts: prints its wss:// URL, sends HSTS, and on SIGHUP serves the renewed certificate', async () => {
    const cli = runCliProcess([
      '--port',
      '0',
      '--data',
      join(temp.dir, 'data'),
      '--tls-cert',
      certFile,
      '--tls-key',
      keyFile,
      '--hsts',
      '180d',
    ])
    try {
      const [, port] = await cli.line(/listening on wss:\/\/127\.0\.0\.1:(\d+)\/sync/)
      await lineIn(cli.stderr, /health: https:\/\/127\.0\.0\.1:\d+\/healthz/)
      expect(await servedSubject(Number(port), [CERT_A, CERT_B])).toBe('chorus-test-a')
      expect(await hstsHeader(`https://127.0.0.1:${port}/healthz`, [CERT_A])).toBe('max-age=15552000')
      copyFileSync(fixture('cert-b.pem'), certFile)
      copyFileSync(fixture('key-b.pem'), keyFile)
      cli.child.kill('SIGHUP')
      await lineIn(cli.stderr, /reloaded the TLS certificate/)
      expect(await servedSubject(Number(port), [CERT_A, CERT_B])).toBe('chorus-test-b')
      // A bad renewal is reported and changes nothing.
      writeFileSync(keyFile, 'garbage')
      cli.child.kill('SIGHUP')
      await lineIn(cli.stderr, /still serving the certificate loaded before/)
      expect(await servedSubject(Number(port), [CERT_A, CERT_B])).toBe('chorus-test-b')
    } finally {
      cli.child.kill('SIGTERM')
    }
    expect(await within(cli.exited, 20_000, 'the relay to exit')).toEqual({ code: 0, signal: null })
  }, 30_000)
})
