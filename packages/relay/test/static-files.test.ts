import { mkdirSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { ErrorCode } from '@chorus/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { makeTempDir } from './support/fixtures.js'
import { get, startTestRelay, type TestRelay } from './support/harness.js'

/** A raw GET, so paths reach the server exactly as written (fetch would normalise `..`). */
function rawGet(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('a relay serving a built web app', () => {
  const app = makeTempDir()
  const outside = makeTempDir()
  let relay: TestRelay

  beforeAll(async () => {
    mkdirSync(join(app.dir, 'assets'))
    writeFileSync(join(app.dir, 'index.html'), '<!doctype html><title>Notes</title>')
    writeFileSync(join(app.dir, 'assets', 'index-abc123.js'), 'console.log("app")')
    writeFileSync(join(outside.dir, 'secret.txt'), 'not for the web')
    relay = await startTestRelay({ staticDir: app.dir })
  })

  afterAll(async () => {
    await relay.stop()
    app.remove()
    outside.remove()
  })

  it('serves index.html at / and for client-side routes, with revalidation', async () => {
    for (const path of ['/', '/notebook/abc']) {
      const response = await rawGet(relay.port, path)
      expect(response.status).toBe(200)
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
      expect(response.headers['cache-control']).toBe('no-cache')
      expect(response.body).toContain('<title>Notes</title>')
    }
  })

  it('serves hashed assets with their type, cached for good; HEAD sends no body', async () => {
    const response = await rawGet(relay.port, '/assets/index-abc123.js')
    expect(response.status).toBe(200)
    expect(response.headers['content-type']).toBe('text/javascript; charset=utf-8')
    expect(response.headers['cache-control']).toContain('immutable')
    expect(response.body).toBe('console.log("app")')
    const head = await rawGet(relay.port, '/assets/index-abc123.js', 'HEAD')
    expect(head.status).toBe(200)
    expect(head.headers['content-length']).toBe(String('console.log("app")'.length))
    expect(head.body).toBe('')
  })

  it('never serves a file outside its directory, and 404s what is missing', async () => {
    const relative = join('..', outside.dir.split('/').pop() as string, 'secret.txt')
    for (const path of [
      `/${relative}`,
      `/%2e%2e/${relative}`,
      `/assets/..%2f..%2f${relative}`,
      '/assets/missing.js',
      '/%00.js',
    ]) {
      const response = await rawGet(relay.port, path)
      expect(response.status, path).toBe(404)
      expect(response.body).not.toContain('not for the web')
    }
    expect((await rawGet(relay.port, '/index.html', 'POST')).status).toBe(404)
  })

  it('keeps /healthz, /metrics and the sync socket beside the app', async () => {
    expect((await get(relay, '/healthz')).status).toBe(200)
    expect((await get(relay, '/metrics')).status).toBe(200)
    const socket = new WebSocket(relay.url)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    socket.close()
  })

  it('refuses to start with a directory that holds no index.html', async () => {
    const empty = makeTempDir()
    try {
      await expect(startTestRelay({ staticDir: empty.dir })).rejects.toMatchObject({
        code: ErrorCode.InvalidArgument,
        message: expect.stringMatching(/build the app/),
      })
    } finally {
      empty.remove()
    }
  })
})
