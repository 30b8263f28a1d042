import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LoopbackCluster } from '../src/node/loopback-cluster.js'
import { until } from './support/poll.js'

interface Status {
  readonly node: string
  readonly role: string
  readonly epoch: number
  readonly leader: string | null
  readonly commitLsn: number
}

const nodes = ['n1', 'n2', 'n3']
const scratch = mkdtempSync(join(tmpdir(), 'chorus-loopback-'))
let cluster: LoopbackCluster

beforeAll(async () => {
  cluster = await LoopbackCluster.start({
    design: 'single-leader',
    nodes,
    settings: { replication: { mode: 'sync' }, heartbeatMs: 50, electionTimeoutMs: 400, leaseMs: 250 },
    dataDir: scratch,
  })
}, 30_000)

afterAll(async () => {
  await cluster?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

/** Polls the running nodes until one is a leader of an epoch above `above`, for up to `ms`. */
async function awaitLeader(above: number, ms = 10_000): Promise<Status> {
  const deadline = Date.now() + ms
  let seen: string[] = []
  while (Date.now() < deadline) {
    seen = []
    for (const id of cluster.running()) {
      const answer = await cluster.status(id).catch(() => null)
      const status = (answer?.body as { status?: Status } | undefined)?.status
      if (status?.role === 'leader' && status.epoch > above) return status
      seen.push(status === undefined ? `${id}: no answer` : `${id}: ${status.role} of epoch ${status.epoch}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`no leader above epoch ${above} within ${ms} ms; last seen ${seen.join(', ')}`)
}

/** Polls until every running node follows one leader of one epoch above `above`. */
async function awaitStableLeader(above: number, ms = 10_000): Promise<Status> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const statuses: Status[] = []
    for (const id of cluster.running()) {
      const answer = await cluster.status(id).catch(() => null)
      const status = (answer?.body as { status?: Status } | undefined)?.status
      if (status !== undefined) statuses.push(status)
    }
    const leader = statuses.find((status) => status.role === 'leader' && status.epoch > above)
    const agreed = statuses.every(
      (status) => status.leader === leader?.node && status.epoch === leader?.epoch,
    )
    if (leader !== undefined && agreed && statuses.length === cluster.running().length) return leader
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`the cluster did not settle on one leader above epoch ${above} within ${ms} ms`)
}

/** A leader read at `node`, retried while the node is not yet ready to serve it (a fresh leader). */
async function leaderRead(node: string, key: string, ms = 5_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms
  let body: Record<string, unknown> = {}
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const request = {
      type: 'read',
      id: `r-${key}-${attempt}`,
      key,
      consistency: 'leader',
      minLsn: 0,
      waitMs: 0,
    }
    body = (await cluster.request(node, request)).body as Record<string, unknown>
    if (body.type !== 'rejected') return body
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return body
}

/** Writes through `leader`, following not-leader hints; resolves with the reply body. */
async function write(
  leader: string,
  key: string,
  value: number,
  attempts = 20,
): Promise<Record<string, unknown>> {
  let target = leader
  for (let attempt = 0; attempt < attempts; attempt++) {
    const answer = await cluster.request(target, { type: 'write', id: `w-${key}-${attempt}`, key, value })
    const body = answer.body as Record<string, unknown>
    if (body.type !== 'rejected') return body
    if (typeof body.leader === 'string' && cluster.running().includes(body.leader)) target = body.leader
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`write ${key} was never accepted`)
}

describe('a single-leader cluster of real processes on loopback', () => {
  it('fails over to a higher epoch when the leader is killed with SIGKILL, losing no acknowledged sync write', async () => {
    const first = await awaitLeader(0)
    const acknowledged = new Map<string, number>()
    for (let i = 1; i <= 40; i++) {
      const reply = await write(first.node, `k${i % 7}`, i)
      expect(reply).toMatchObject({ type: 'write-ok', durability: 'replicated' })
      acknowledged.set(`k${i % 7}`, i)
    }
    await cluster.kill(first.node, 'SIGKILL')

    const second = await awaitLeader(first.epoch)
    expect(second.node).not.toBe(first.node)
    expect(second.epoch).toBeGreaterThan(first.epoch)
    for (const [key, value] of acknowledged) {
      expect(await leaderRead(second.node, key), key).toMatchObject({ type: 'read-ok', value })
    }
    expect(await write(second.node, 'after', 1)).toMatchObject({ type: 'write-ok', epoch: second.epoch })

    // The killed leader comes back from its SQLite file as a follower of the new epoch.
    await cluster.restart(first.node)
    const deadline = Date.now() + 10_000
    let back: Status | undefined
    while (Date.now() < deadline) {
      back = ((await cluster.status(first.node)).body as { status: Status }).status
      if (back.role === 'follower' && back.epoch >= second.epoch && back.leader === second.node) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(back).toMatchObject({ role: 'follower', leader: second.node })
  }, 60_000)

  it('a leader cut off by a partition, or paused, cannot acknowledge; the majority elects a newer epoch', async () => {
    const old = await awaitStableLeader(0)
    const others = cluster.running().filter((id) => id !== old.node)
    await cluster.partition([[old.node], others])
    const isolated = cluster.request(old.node, { type: 'write', id: 'cut-off', key: 'cut', value: 1 }, 8_000)
    const next = await awaitLeader(old.epoch)
    expect(others).toContain(next.node)
    const answer = await isolated
    expect(answer.body).toMatchObject({ type: 'rejected' })
    await cluster.heal()
    const settled = await awaitStableLeader(old.epoch)
    expect(await write(settled.node, 'cut', 2)).toMatchObject({ type: 'write-ok', epoch: settled.epoch })

    // A pause longer than the election timeout: the paused leader resumes as a zombie.
    await cluster.pause(settled.node, 1_500)
    const zombie = cluster.request(settled.node, { type: 'write', id: 'zombie', key: 'cut', value: 3 }, 8_000)
    const third = await awaitLeader(settled.epoch)
    expect(third.node).not.toBe(settled.node)
    expect((await zombie).body).toMatchObject({ type: 'rejected' })
    expect(await leaderRead(third.node, 'cut')).toMatchObject({ type: 'read-ok', value: 2 })
  }, 60_000)

  it('answers bad input with typed errors and keeps serving', async () => {
    const id = cluster.running()[0] as string
    const notJson = await fetch(`http://127.0.0.1:${cluster.node(id).httpPort}/request`, {
      method: 'POST',
      body: '{nope',
    })
    expect(notJson.status).toBe(400)
    expect(await notJson.json()).toMatchObject({ type: 'error', code: 'malformed-frame' })
    const tooLarge = await fetch(`http://127.0.0.1:${cluster.node(id).httpPort}/request`, {
      method: 'POST',
      body: JSON.stringify({ type: 'write', id: 'big', key: 'k', value: 'x'.repeat(2 * 1024 * 1024) }),
    })
    expect(tooLarge.status).toBe(413)
    expect(await tooLarge.json()).toMatchObject({ type: 'error', code: 'frame-too-large' })
    expect(await cluster.request(id, { type: 'launch', id: 'x' })).toMatchObject({
      status: 400,
      body: { type: 'error', id: 'x', code: 'unknown-message' },
    })
    expect(await cluster.request(id, { type: 'write', id: 'y', key: 'k' })).toMatchObject({
      status: 400,
      body: { type: 'error', code: 'invalid-argument' },
    })
    expect(await cluster.call(id, 'POST', '/control/faults', { peer: null, loss: 2 })).toMatchObject({
      status: 400,
      body: { code: 'invalid-argument' },
    })
    expect(
      await cluster.call(id, 'POST', '/control/peers', { peers: { zz: { host: '127.0.0.1', port: 1 } } }),
    ).toMatchObject({
      status: 400,
    })
    expect(await cluster.call(id, 'GET', '/nowhere')).toMatchObject({ status: 404 })
    // A misspelt option is refused, not dropped (the read would be served from the leader).
    const misspelt = await cluster.request(id, { type: 'read', id: 'z', key: 'k', consistancy: 'replica' })
    expect(misspelt).toMatchObject({ status: 400, body: { type: 'error', id: 'z' } })
    expect(JSON.stringify(misspelt.body)).toContain('consistancy: not a field of this request')
    // A known path asked with the wrong method: 405, saying which method it takes.
    const base = `http://127.0.0.1:${cluster.node(id).httpPort}`
    for (const [method, path, allow] of [
      ['GET', '/request', 'POST'],
      ['POST', '/status', 'GET'],
      ['PUT', '/control/heal', 'POST'],
    ] as const) {
      const wrong = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(5_000) })
      expect(wrong.status, `${method} ${path}`).toBe(405)
      expect(wrong.headers.get('allow')).toBe(allow)
      expect(await wrong.json()).toMatchObject({ code: 'invalid-argument' })
    }
    // A replica read may wait a minute at most: a longer wait would only pile reads up.
    const patient = await cluster.request(id, {
      type: 'read',
      id: 'w',
      key: 'k',
      consistency: 'replica',
      minLsn: 1_000_000,
      waitMs: 99_999_999,
    })
    expect(patient).toMatchObject({ status: 400, body: { type: 'error', id: 'w', code: 'invalid-message' } })
    expect(JSON.stringify(patient.body)).toContain('waitMs')
    // A misspelt control field is refused, not ignored.
    expect(await cluster.call(id, 'POST', '/control/faults', { latncyMs: 50 })).toMatchObject({
      status: 400,
      body: { code: 'invalid-argument' },
    })
    expect((await cluster.status(id)).status).toBe(200)
  })

  it('refuses a body that is not UTF-8, so that keys differing only in invalid bytes are not written as one', async () => {
    const leader = await awaitStableLeader(0)
    const base = `http://127.0.0.1:${cluster.node(leader.node).httpPort}`
    /** A write of `user-<byte>`: bytes 0xFF and 0xFE are not UTF-8 anywhere. */
    const rawWrite = (id: string, byte: number, value: string) =>
      fetch(`${base}/request`, {
        method: 'POST',
        body: Buffer.concat([
          Buffer.from(`{"type":"write","id":"${id}","key":"user-`),
          Buffer.from([byte]),
          Buffer.from(`","value":"${value}"}`),
        ]),
        signal: AbortSignal.timeout(5_000),
      })
    for (const [id, byte, value] of [
      ['alice', 0xff, 'alice'],
      ['bob', 0xfe, 'bob'],
    ] as const) {
      const answer = await rawWrite(id, byte, value)
      expect(answer.status, id).toBe(400)
      expect(await answer.json()).toMatchObject({
        type: 'error',
        code: 'malformed-frame',
        message: expect.stringContaining('not UTF-8'),
      })
    }
    // Both would have been written to `user-\uFFFD`, the second over the first.
    expect(await leaderRead(leader.node, 'user-\uFFFD')).toMatchObject({ type: 'read-ok', value: null })
    // The control routes read their bodies the same way.
    const control = await fetch(`${base}/control/faults`, {
      method: 'POST',
      body: Buffer.concat([Buffer.from('{"peer":"n'), Buffer.from([0xc3]), Buffer.from('"}')]),
      signal: AbortSignal.timeout(5_000),
    })
    expect(control.status).toBe(400)
    expect(await control.json()).toMatchObject({ code: 'malformed-frame' })
    // A character of several bytes is UTF-8, and is taken.
    expect(await write(leader.node, 'user-é€😀', 1)).toMatchObject({ type: 'write-ok' })
    expect(await leaderRead(leader.node, 'user-é€😀')).toMatchObject({ type: 'read-ok', value: 1 })
  })

  it('refuses a partition of its own that the cluster would refuse, and faults on a link to itself, and keeps every link open', async () => {
    const id = cluster.running()[0] as string
    const faults = async () =>
      (
        (await cluster.call(id, 'GET', '/control/stats')).body as {
          faults: { passed: number; blocked: number }
        }
      ).faults
    const before = await faults()
    for (const [groups, said] of [
      [
        [
          ['n1', 'n9'],
          ['n2', 'n3'],
        ],
        'every node in groups must name a node of the cluster (n1, n2, n3)',
      ],
      [
        [
          ['n1', 'n2'],
          ['n1', 'n3'],
        ],
        'n1 is named in more than one group',
      ],
      [[], 'groups must be an array of at least two non-empty arrays of node ids'],
      [[['n1', 'n2', 'n3'], []], 'groups must be an array of at least two non-empty arrays of node ids'],
      [[['n1'], ['n2']], 'every node must be in a group; missing: n3'],
    ] as const) {
      expect(
        await cluster.call(id, 'POST', '/control/partition', { groups }),
        JSON.stringify(groups),
      ).toMatchObject({
        status: 400,
        body: { type: 'error', code: 'invalid-argument', message: said },
      })
    }
    // Faults on its link to itself, which carries nothing, would be taken and do nothing.
    expect(await cluster.call(id, 'POST', '/control/faults', { peer: id, blocked: true })).toMatchObject({
      status: 400,
      body: { type: 'error', code: 'invalid-argument' },
    })
    // Heartbeats and appends go on: once more of them passed its fault layer, none was blocked
    // (a node cut off would have counted them blocked instead).
    await expect
      .poll(async () => (await faults()).passed, { timeout: 10_000 })
      .toBeGreaterThan(before.passed + 10)
    expect((await faults()).blocked).toBe(before.blocked)
    const settled = await awaitStableLeader(0)
    expect(await write(settled.node, 'after-bad-partitions', 1)).toMatchObject({ type: 'write-ok' })
  })

  it('promotes a follower through the control API: it leads a newer epoch, and the old leader is deposed', async () => {
    const old = await awaitStableLeader(0)
    const chosen = cluster.running().find((id) => id !== old.node) as string
    await cluster.promote(chosen)
    const next = await awaitStableLeader(old.epoch)
    expect(next.node).toBe(chosen)
    expect(await write(chosen, 'promoted', 1)).toMatchObject({ type: 'write-ok', epoch: next.epoch })
    const deposed = await cluster.request(old.node, {
      type: 'write',
      id: 'deposed',
      key: 'promoted',
      value: 2,
    })
    expect(deposed.body).toMatchObject({ type: 'rejected', leader: chosen })
    // Only known routes: a promote takes no fields.
    expect(await cluster.call(chosen, 'POST', '/control/promote', { now: 1 })).toMatchObject({ status: 400 })
  })

  it('carries out a longer pause asked for while a node is paused, and then resumes it', async () => {
    const id = cluster.running()[0] as string
    const paused = async () =>
      ((await cluster.call(id, 'GET', '/control/stats')).body as { paused: boolean }).paused
    const start = Date.now()
    await cluster.pause(id, 100)
    await cluster.pause(id, 1_200)
    // Still paused well after the first pause's end…
    await until('400 ms of the longer pause', async () => {
      expect(await paused()).toBe(true)
      return Date.now() - start >= 400 ? true : undefined
    })
    // …and resumed at the end of the longer one; a shorter one asked meanwhile cuts nothing short.
    await cluster.pause(id, 50)
    await until('the node to resume', async () => ((await paused()) ? undefined : true), 10_000)
    expect(Date.now() - start).toBeGreaterThanOrEqual(1_200)
  })
})

describe('a quorum cluster of real processes on loopback', () => {
  it('takes a put at any node and reads it back from another, through a slow, lossy link', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-loopback-quorum-'))
    const quorum = await LoopbackCluster.start({
      design: 'quorum',
      nodes,
      settings: { replicas: 3, writeQuorum: 2, readQuorum: 2, readRepair: 'blocking' },
      dataDir: dir,
    })
    try {
      // Until the nodes have heard from each other they believe their peers down.
      const deadline = Date.now() + 10_000
      const upEverywhere = async () => {
        for (const id of nodes) {
          const body = (await quorum.status(id)).body as { status: { up: string[] } }
          if (body.status.up.length < nodes.length - 1) return false
        }
        return true
      }
      while (!(await upEverywhere()) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50))
      await quorum.faults('n1', 'n2', { latencyMs: 30, loss: 0.2 })
      for (let i = 1; i <= 10; i++) {
        const put = await quorum.request(nodes[i % 3] as string, {
          type: 'put',
          id: `p${i}`,
          key: 'doc',
          value: i,
        })
        expect(put.body).toMatchObject({ type: 'put-ok' })
        const get = await quorum.request(nodes[(i + 1) % 3] as string, {
          type: 'get',
          id: `g${i}`,
          key: 'doc',
        })
        expect(get.body).toMatchObject({ type: 'get-ok', value: i })
      }
      const stats = (await quorum.call('n1', 'GET', '/control/stats')).body as { faults: { delayed: number } }
      expect(stats.faults.delayed).toBeGreaterThan(0)
    } finally {
      await quorum.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
  it('commits on worker threads: concurrent puts, batched to the replicas, are all acknowledged and read back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-loopback-thread-'))
    const quorum = await LoopbackCluster.start({
      design: 'quorum',
      nodes,
      settings: { replicas: 3, writeQuorum: 2, readQuorum: 2 },
      dataDir: dir,
      storageThread: true,
    })
    try {
      // Until the nodes have heard from each other they believe their peers down; each status
      // call is a round trip, so asking again paces itself.
      const upEverywhere = async () => {
        for (const id of nodes) {
          const body = (await quorum.status(id)).body as { status: { up: string[] } }
          if (body.status.up.length < nodes.length - 1) return false
        }
        return true
      }
      let up = false
      for (let attempt = 0; attempt < 2_000 && !up; attempt++) up = await upEverywhere()
      expect(up).toBe(true)
      const puts = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          quorum.request(nodes[i % 3] as string, { type: 'put', id: `p${i}`, key: `k${i}`, value: i }),
        ),
      )
      for (const put of puts) expect(put.body).toMatchObject({ type: 'put-ok' })
      for (let i = 0; i < 60; i++) {
        const get = await quorum.request(nodes[(i + 1) % 3] as string, {
          type: 'get',
          id: `g${i}`,
          key: `k${i}`,
        })
        expect(get.body).toMatchObject({ type: 'get-ok', value: i })
      }
      const stats = await Promise.all(
        nodes.map(
          async (id) =>
            (await quorum.call(id, 'GET', '/control/stats')).body as { runtime: { commits: number } },
        ),
      )
      for (const node of stats) expect(node.runtime.commits).toBeGreaterThan(0)
    } finally {
      await quorum.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe('a single-leader cluster of real processes with fencing off', () => {
  const unfenced = mkdtempSync(join(tmpdir(), 'chorus-loopback-unfenced-'))
  let open: LoopbackCluster
  beforeAll(async () => {
    open = await LoopbackCluster.start({
      design: 'single-leader',
      nodes,
      settings: {
        replication: { mode: 'sync' },
        heartbeatMs: 50,
        electionTimeoutMs: 400,
        leaseMs: 250,
        fencing: false,
      },
      dataDir: unfenced,
    })
  }, 30_000)
  afterAll(async () => {
    await open?.stop()
    rmSync(unfenced, { recursive: true, force: true })
  })

  const statuses = async () =>
    Promise.all(open.running().map(async (id) => ((await open.status(id)).body as { status: Status }).status))

  it('shows split brain when an operator promotes a follower: both leaders acknowledge writes', async () => {
    const old = await until('a leader', async () =>
      (await statuses()).find((status) => status.role === 'leader'),
    )
    const chosen = nodes.find((id) => id !== old.node) as string
    await open.promote(chosen)
    const leaders = await until('two leaders', async () => {
      const now = (await statuses()).filter((status) => status.role === 'leader')
      return now.length === 2 ? now.map((status) => status.node).sort() : undefined
    })
    expect(leaders).toEqual([old.node, chosen].sort())
    for (const [node, value] of [
      [old.node, 'old'],
      [chosen, 'new'],
    ] as const) {
      const answer = await open.request(node, { type: 'write', id: `split-${value}`, key: 'k', value })
      expect(answer.body).toMatchObject({ type: 'write-ok' })
    }
  })
})
