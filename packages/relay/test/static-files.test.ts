import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
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
    // Links inside the app that point out of it, and a dotfile.
    symlinkSync(join(outside.dir, 'secret.txt'), join(app.dir, 'leak.txt'))
    symlinkSync(outside.dir, join(app.dir, 'assets', 'outdir'))
    writeFileSync(join(app.dir, '.env.local'), 'not for the web either')
    // A link that stays inside is served.
    symlinkSync(join(app.dir, 'assets', 'index-abc123.js'), join(app.dir, 'assets', 'linked.js'))
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
      // Not to be framed by another site, nor to send its URL on as a referrer.
      expect(response.headers['x-frame-options']).toBe('DENY')
      expect(response.headers['content-security-policy']).toBe("frame-ancestors 'none'")
      expect(response.headers['referrer-policy']).toBe('no-referrer')
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
      '/leak.txt',
      '/assets/outdir/secret.txt',
      '/.env.local',
      '/%2eenv.local',
    ]) {
      const response = await rawGet(relay.port, path)
      expect(response.status, path).toBe(404)
      expect(response.body).not.toContain('not for the web')
    }
    expect((await rawGet(relay.port, '/assets/linked.js')).body).toBe('console.log("app")')
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

describe('a relay serving an app through a symlink', () => {
  it('serves the release the symlink points to now, after a deploy switches it', async () => {
    const deploy = makeTempDir()
    for (const release of ['1', '2']) {
      mkdirSync(join(deploy.dir, release))
      writeFileSync(
        join(deploy.dir, release, 'index.html'),
        `<!doctype html><title>Release ${release}</title>`,
      )
    }
    const current = join(deploy.dir, 'current')
    symlinkSync(join(deploy.dir, '1'), current)
    const relay = await startTestRelay({ staticDir: current })
    try {
      expect((await rawGet(relay.port, '/')).body).toContain('Release 1')
      // The usual switch: a new link renamed over the old one, at once.
      symlinkSync(join(deploy.dir, '2'), join(deploy.dir, 'next'))
      renameSync(join(deploy.dir, 'next'), current)
      const after = await rawGet(relay.port, '/')
      expect(after.status).toBe(200)
      expect(after.body).toContain('Release 2')
    } finally {
      await relay.stop()
      deploy.remove()
    }
  })
})

describe('a relay serving two apps, one at / and one at /lab', () => {
  const notes = makeTempDir()
  const lab = makeTempDir()
  const outside = makeTempDir()
  let relay: TestRelay

  beforeAll(async () => {
    writeFileSync(join(notes.dir, 'index.html'), '<!doctype html><title>Notes</title>')
    writeFileSync(join(notes.dir, 'only-notes.js'), 'console.log("notes")')
    // A file of the app at / whose path falls under /lab: never served, however encoded.
    mkdirSync(join(notes.dir, 'lab'))
    writeFileSync(join(notes.dir, 'lab', 'hidden.js'), 'console.log("notes, under lab")')
    mkdirSync(join(lab.dir, 'assets'))
    writeFileSync(join(lab.dir, 'index.html'), '<!doctype html><title>Lab</title>')
    writeFileSync(join(lab.dir, 'assets', 'index-def456.js'), 'console.log("lab")')
    writeFileSync(join(outside.dir, 'secret.txt'), 'not for the web')
    relay = await startTestRelay({ staticDir: notes.dir, staticMounts: [{ path: '/lab', dir: lab.dir }] })
  })

  afterAll(async () => {
    await relay.stop()
    notes.remove()
    lab.remove()
    outside.remove()
  })

  it('serves each app under its own path, and redirects /lab to /lab/', async () => {
    expect((await rawGet(relay.port, '/')).body).toContain('<title>Notes</title>')
    expect((await rawGet(relay.port, '/labs')).body).toContain('<title>Notes</title>')
    for (const path of ['/lab/', '/lab/presets/x', '/lab/?seed=3']) {
      const response = await rawGet(relay.port, path)
      expect(response.status, path).toBe(200)
      expect(response.body, path).toContain('<title>Lab</title>')
    }
    const asset = await rawGet(relay.port, '/lab/assets/index-def456.js')
    expect(asset.body).toBe('console.log("lab")')
    expect(asset.headers['cache-control']).toContain('immutable')
    const bare = await rawGet(relay.port, '/lab?seed=3')
    expect(bare.status).toBe(301)
    expect(bare.headers.location).toBe('/lab/?seed=3')
    const followed = await fetch(`${relay.httpUrl}/lab`)
    expect(followed.url).toBe(`${relay.httpUrl}/lab/`)
    expect(await followed.text()).toContain('<title>Lab</title>')
  })

  it("keeps a mounted app's missing files and escapes to 404s, never the other app's files", async () => {
    const relative = join('..', '..', outside.dir.split('/').pop() as string, 'secret.txt')
    for (const path of [
      '/lab/only-notes.js',
      '/lab/assets/missing.js',
      `/lab/${relative}`,
      `/lab/%2e%2e/%2e%2e/${relative}`,
      `/lab/..%2f..%2f${relative}`,
      '/lab/%00.js',
      '/lab/hidden.js',
      '/%6cab/hidden.js',
      '/lab%2Fhidden.js',
      '/%6C%61%62/hidden.js',
    ]) {
      const response = await rawGet(relay.port, path)
      expect(response.status, path).toBe(404)
      expect(response.body).not.toContain('not for the web')
      expect(response.body).not.toContain('console.log("notes")')
      expect(response.body).not.toContain('under lab')
    }
    expect((await rawGet(relay.port, '/only-notes.js')).body).toBe('console.log("notes")')
    expect((await rawGet(relay.port, '/lab/', 'POST')).status).toBe(404)
    expect((await get(relay, '/healthz')).status).toBe(200)
  })

  it.each([
    ['lab', /use "\/" or a path like "\/lab"/],
    ['/lab/', /use "\/" or a path like "\/lab"/],
    ['/a/../b', /use "\/" or a path like "\/lab"/],
    ['/lab%2f', /use "\/" or a path like "\/lab"/],
    ['/sync', /the relay answers it/],
    ['/metrics/app', /the relay answers it/],
  ])('refuses to mount an app at %j', async (path, message) => {
    await expect(startTestRelay({ staticMounts: [{ path, dir: lab.dir }] })).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: expect.stringMatching(message),
    })
  })

  it('refuses two apps at one path', async () => {
    await expect(
      startTestRelay({
        staticDir: notes.dir,
        staticMounts: [{ path: '/', dir: lab.dir }],
      }),
    ).rejects.toMatchObject({ code: ErrorCode.InvalidArgument, message: expect.stringMatching(/two apps/) })
  })
})
