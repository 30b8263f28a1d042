import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { CliIo } from '../src/cli/cli-io.js'
import { parseClusterArgs, runClusterCli } from '../src/cli/cluster-cli.js'
import type { ControlView } from '../src/cli/cluster-control.js'
import { type CliProcess, isAlive, poll, runCliProcess } from './support/cli-process.js'

const scratch = mkdtempSync(join(tmpdir(), 'chorus-cluster-cli-'))
const running: CliProcess[] = []

afterAll(async () => {
  for (const cli of running) {
    if (cli.child.exitCode === null && cli.child.signalCode === null) {
      cli.child.kill('SIGTERM')
      const timer = setTimeout(() => cli.child.kill('SIGKILL'), 5_000)
      await cli.exited
      clearTimeout(timer)
    }
  }
  rmSync(scratch, { recursive: true, force: true })
})

function captureIo(): CliIo & { readonly lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    out: (line) => lines.push(line),
    err: (line) => lines.push(line),
    waitForStop: () => Promise.resolve('test'),
  }
}

describe('chorus-cluster command line', () => {
  it.each([
    [['--mode', 'leaderless']],
    [[]],
    [['--mode', 'quorum', '--n', '3', '--w', '4']],
    [['--mode', 'quorum', '--nodes', '2', '--n', '3']],
    [['--mode', 'single-leader', '--acks', '2']],
    [['--mode', 'single-leader', '--replication', 'sync', '--ack-timeout-ms', '5']],
    [['--mode', 'single-leader', '--replication', 'chain', '--ack-timeout-ms', '0']],
    [['--mode', 'single-leader', '--replication', 'semi-sync', '--acks', '3']],
    [['--mode', 'single-leader', '--replication', 'eventually']],
    [['--mode', 'single-leader', '--sloppy']],
    [['--mode', 'quorum', '--nodes', 'three']],
    [['--mode', 'quorum', '--frobnicate']],
  ])('refuses %j with the usage and exit code 2', async (args) => {
    const io = captureIo()
    expect(await runClusterCli(args, io)).toBe(2)
    expect(io.lines.join('\n')).toMatch(/^chorus-cluster: .+\n\nUsage:/)
  })

  it('reads each design’s options into the settings its nodes get', () => {
    expect(
      parseClusterArgs([
        '--mode',
        'single-leader',
        '--replication',
        'semi-sync',
        '--acks',
        '2',
        '--nodes',
        '5',
      ]),
    ).toMatchObject({
      design: 'single-leader',
      nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
      settings: { replication: { mode: 'semi-sync', acks: 2, timeoutMs: 200 } },
    })
    expect(
      parseClusterArgs(['--mode', 'quorum', '--n', '3', '--w', '1', '--r', '3', '--sloppy']),
    ).toMatchObject({
      design: 'quorum',
      nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
      settings: { replicas: 3, writeQuorum: 1, readQuorum: 3, sloppy: true },
    })
    const bare = parseClusterArgs(['--mode', 'single-leader', '--no-fencing', '--no-pre-vote'])
    expect(bare.settings).toMatchObject({ fencing: false, preVote: false })
    expect(bare.summary).toMatch(/fencing OFF .*, no pre-vote$/)
    expect(() => parseClusterArgs(['--mode', 'quorum', '--no-pre-vote'])).toThrow(
      /--no-pre-vote does not apply/,
    )
  })

  it('prints its usage for --help and exits 0', async () => {
    const io = captureIo()
    expect(await runClusterCli(['--help'], io)).toBe(0)
    expect(io.lines[0]).toMatch(/^Usage:/)
  })

  it('exits 1 when the data directory cannot be made', async () => {
    const file = join(scratch, 'not-a-dir')
    writeFileSync(file, 'x')
    const io = captureIo()
    expect(await runClusterCli(['--mode', 'quorum', '--nodes', '3', '--data', join(file, 'sub')], io)).toBe(1)
    expect(io.lines.at(-1)).toMatch(/^chorus-cluster: /)
  })
})

describe('chorus-cluster as a process', () => {
  it('starts the nodes, takes faults through its control API, and stops every node on SIGTERM', async () => {
    const data = join(scratch, 'single')
    const cli = runCliProcess('packages/server/src/cli/cluster-cli.ts', [
      '--mode',
      'single-leader',
      '--nodes',
      '3',
      '--replication',
      'sync',
      '--data',
      data,
      '--port',
      '0',
    ])
    running.push(cli)
    const control = (await cli.line(/^control (http:\/\/127\.0\.0\.1:\d+)$/))[1] as string
    const urls = new Map<string, string>()
    for (const id of ['n1', 'n2', 'n3']) {
      urls.set(id, (await cli.line(new RegExp(`^${id} (http://127\\.0\\.0\\.1:\\d+)$`)))[1] as string)
    }
    const call = async (path: string, body?: unknown) => {
      const response = await fetch(`${control}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(15_000),
      })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }
    const status = async (url: string) =>
      (
        (await (await fetch(`${url}/status`, { signal: AbortSignal.timeout(2_000) })).json()) as {
          status: { node: string; role: string; epoch: number; leader: string | null }
        }
      ).status
    const leaderAbove = (epoch: number, among: readonly string[]) =>
      poll(`a leader above epoch ${epoch}`, async () => {
        for (const id of among) {
          const seen = await status(urls.get(id) as string)
          if (seen.role === 'leader' && seen.epoch > epoch) return seen
        }
        return undefined
      })

    // The printed URLs are the nodes' own APIs; a write through the leader is acknowledged.
    const first = await leaderAbove(0, ['n1', 'n2', 'n3'])
    const write = await fetch(`${urls.get(first.node)}/request`, {
      method: 'POST',
      body: JSON.stringify({ type: 'write', id: 'w1', key: 'k', value: 1 }),
    })
    expect(await write.json()).toMatchObject({ type: 'write-ok', durability: 'replicated' })

    // A partition that isolates the leader: the other two elect a leader of a newer epoch.
    const others = ['n1', 'n2', 'n3'].filter((id) => id !== first.node)
    const cut = await call('/partition', { groups: [[first.node], others] })
    expect(cut.status).toBe(200)
    expect((cut.body as unknown as ControlView).partition).toEqual([[first.node], others])
    const second = await leaderAbove(first.epoch, others)
    expect((await call('/heal', {})).body).toMatchObject({ partition: null })

    // Bad input changes nothing and says why.
    expect(await call('/partition', { groups: [['n1'], ['n2', 'n9']] })).toMatchObject({
      status: 400,
      body: { code: 'invalid-argument' },
    })
    expect(await call('/loss', { rate: 1.5 })).toMatchObject({
      status: 400,
      body: { code: 'invalid-argument' },
    })
    expect(await call('/pause', { node: 'n1' })).toMatchObject({ status: 400 })
    expect(await call('/explode', {})).toMatchObject({ status: 404 })
    // A request target that is no URL (fetch would not send it): before, it ended the cluster.
    for (const target of ['//x:99999/nodes', '//x:70000/']) {
      const answer = await rawRequest(control, target)
      expect(answer.status).toBe(404)
      expect(JSON.parse(answer.body)).toMatchObject({ code: 'invalid-argument' })
    }
    expect((await call('/nodes')).status).toBe(200)
    // A misspelt field is refused, not ignored (the latency would have gone to every node).
    expect(await call('/latency', { ms: 50, form: 'n1' })).toMatchObject({
      status: 400,
      body: { code: 'invalid-argument', message: expect.stringContaining('"form"') },
    })
    expect(await call('/kill', { node: 'n1', sginal: 'SIGTERM' })).toMatchObject({ status: 400 })
    expect(await call('/promote', { node: 'n9' })).toMatchObject({ status: 400 })
    expect(((await call('/nodes')).body as unknown as ControlView).faults).toEqual({})
    // The body limit counts bytes: 40,000 two-byte characters are over 64 KiB.
    expect(await call('/heal', { note: 'é'.repeat(40_000) })).toMatchObject({
      status: 400,
      body: { code: 'frame-too-large' },
    })
    // A body that is not UTF-8 is refused as such, not decoded into a node id with U+FFFD in it.
    const notUtf8 = await fetch(`${control}/partition`, {
      method: 'POST',
      body: Buffer.concat([
        Buffer.from('{"groups":[["n1"],["n2","n3'),
        Buffer.from([0xff]),
        Buffer.from('"]]}'),
      ]),
      signal: AbortSignal.timeout(15_000),
    })
    expect(notUtf8.status).toBe(400)
    expect(await notUtf8.json()).toMatchObject({
      code: 'malformed-frame',
      message: expect.stringContaining('not UTF-8'),
    })
    const nodeControl = await fetch(`${urls.get('n1')}/control/faults`, {
      method: 'POST',
      body: JSON.stringify({ latncyMs: 50 }),
    })
    expect(nodeControl.status).toBe(400)
    expect(await nodeControl.json()).toMatchObject({ code: 'invalid-argument' })
    const wrongMethod = await fetch(`${control}/partition`, { signal: AbortSignal.timeout(15_000) })
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('POST')
    expect(await call('/nodes', {})).toMatchObject({
      status: 405,
      body: { message: expect.stringContaining('GET') },
    })
    expect((await call('/latency', { ms: 5, from: 'n1' })).body).toMatchObject({
      faults: { n1: { '*': { latencyMs: 5, jitterMs: 0 } } },
    })

    // Kill -9 and restart through the API: the node comes back on its SQLite file, on a new
    // port, printed again, and rejoins as a follower of the current epoch.
    const victim = others.find((id) => id !== second.node) ?? first.node
    const before = (await call('/nodes')).body as unknown as ControlView
    const pid = before.nodes.find((node) => node.id === victim)?.pid as number
    expect(isAlive(pid)).toBe(true)
    expect((await call('/kill', { node: victim })).body).toMatchObject({
      nodes: expect.arrayContaining([{ id: victim, running: false, url: null, peerPort: null, pid: null }]),
    })
    expect(isAlive(pid)).toBe(false)
    expect(await call('/kill', { node: victim })).toMatchObject({ status: 400 })
    const lines = cli.stdout.length
    expect((await call('/restart', { node: victim })).status).toBe(200)
    urls.set(
      victim,
      (await cli.line(new RegExp(`^${victim} (http://127\\.0\\.0\\.1:\\d+)$`), 5_000, lines))[1] as string,
    )
    const rejoined = await poll('the restarted node follows', async () => {
      const seen = await status(urls.get(victim) as string)
      return seen.role === 'follower' && seen.leader !== null ? seen : undefined
    })
    expect(rejoined.epoch).toBeGreaterThanOrEqual(second.epoch)

    // Latency for every node while one is down: it gets it too when restarted.
    expect((await call('/latency', { ms: 3 })).body).toMatchObject({
      faults: { '*': { '*': { latencyMs: 3 } } },
    })

    // A node killed from outside the API: the CLI says so, the API counts it as down, the
    // commands for every node reach the others, and a restart brings it back.
    const outside = (((await call('/nodes')).body as unknown as ControlView).nodes.find(
      (node) => node.id === victim,
    )?.pid ?? 0) as number
    process.kill(outside, 'SIGKILL')
    await poll('the CLI to say the node exited', async () =>
      cli.stderr.join('').includes(`${victim} exited (SIGKILL) without being told to`) ? true : undefined,
    )
    expect(((await call('/nodes')).body as unknown as ControlView).nodes).toContainEqual({
      id: victim,
      running: false,
      url: null,
      peerPort: null,
      pid: null,
    })
    const alive = ['n1', 'n2', 'n3'].filter((id) => id !== victim)
    expect((await call('/partition', { groups: [[victim, alive[0]], [alive[1]]] })).status).toBe(200)
    expect((await call('/heal', {})).status).toBe(200)
    expect(await call('/partition', { groups: [[], ['n1', 'n2', 'n3']] })).toMatchObject({ status: 400 })
    const since = cli.stdout.length
    expect((await call('/restart', { node: victim })).status).toBe(200)
    urls.set(
      victim,
      (await cli.line(new RegExp(`^${victim} (http://127\\.0\\.0\\.1:\\d+)$`), 5_000, since))[1] as string,
    )
    // A node's own control route takes a command with no body.
    const healed = await fetch(`${urls.get(victim)}/control/heal`, { method: 'POST' })
    expect(healed.status).toBe(200)

    // SIGTERM: every node process ends, the CLI exits 0, the SQLite files stay.
    const pids = ((await call('/nodes')).body as unknown as ControlView).nodes.map(
      (node) => node.pid as number,
    )
    cli.child.kill('SIGTERM')
    expect(await cli.exited).toEqual({ code: 0, signal: null })
    for (const node of pids) expect(isAlive(node)).toBe(false)
    for (const id of ['n1', 'n2', 'n3']) expect(existsSync(join(data, `${id}.sqlite`))).toBe(true)
  }, 60_000)
})

/** GET `target` as the request line has it, unnormalised, from the server at `base`. */
function rawRequest(base: string, target: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const sent = httpRequest(
      { host: hostname, port: Number(port), path: target, timeout: 15_000 },
      (response) => {
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          body += chunk
        })
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
      },
    )
    sent.on('error', reject)
    sent.end()
  })
}
