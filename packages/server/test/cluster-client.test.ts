import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isChorusError } from '@chorus/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clusterNodes } from '../src/client/node-caller.js'
import { QuorumHttpClient } from '../src/client/quorum-client.js'
import { SingleLeaderHttpClient } from '../src/client/single-leader-client.js'
import { LoopbackCluster } from '../src/node/loopback-cluster.js'
import type { SingleLeaderStatus } from '../src/single-leader/messages.js'
import { until } from './support/poll.js'

const nodes = ['n1', 'n2', 'n3']

/**
 * Three node processes of `design` in a scratch directory, started before the tests of the
 * calling `describe` block and stopped after them; `cluster` is set once they run.
 */
function clusterOfThisBlock(
  design: 'single-leader' | 'quorum',
  settings: Record<string, unknown>,
): { cluster: LoopbackCluster } {
  const scratch = mkdtempSync(join(tmpdir(), `chorus-cluster-client-${design}-`))
  const live = { cluster: undefined as unknown as LoopbackCluster }
  beforeAll(async () => {
    live.cluster = await LoopbackCluster.start({ design, nodes, settings, dataDir: scratch })
  }, 30_000)
  afterAll(async () => {
    await live.cluster?.stop()
    rmSync(scratch, { recursive: true, force: true })
  })
  return live
}

describe('SingleLeaderHttpClient against node processes', () => {
  const live = clusterOfThisBlock('single-leader', {
    replication: { mode: 'sync' },
    heartbeatMs: 40,
    electionTimeoutMs: 400,
    leaseMs: 250,
  })

  /** A client of the running nodes, `first` listed first (so it starts out believing `first` leads). */
  function client(first: string, options: { deadlineMs?: number; requestTimeoutMs?: number } = {}) {
    const urls = live.cluster.urls()
    const ordered: Record<string, string> = { [first]: urls[first] as string, ...urls }
    return new SingleLeaderHttpClient({
      nodes: ordered,
      refreshNodes: async () => live.cluster.urls(),
      ...options,
    })
  }

  /** Waits until every running node follows one leader of an epoch above `above`. */
  function stableLeader(above = 0): Promise<SingleLeaderStatus> {
    const observer = client(nodes[0] as string)
    return until('one leader every running node follows', async () => {
      const all = Object.values(await observer.statuses()).filter((status) => status !== null)
      const leader = all.find((status) => status.role === 'leader' && status.epoch > above)
      if (leader === undefined || all.length !== live.cluster.running().length) return undefined
      return all.every((status) => status.leader === leader.node && status.epoch === leader.epoch)
        ? leader
        : undefined
    })
  }

  it('finds the leader from a follower, follows it through a kill -9, and finds a restarted node on its new port', async () => {
    const leader = await stableLeader()
    const follower = nodes.find((id) => id !== leader.node) as string
    const writer = client(follower)
    expect(writer.leader).toBe(follower)

    const first = await writer.write('a', 1)
    expect(first).toMatchObject({
      ok: true,
      node: leader.node,
      epoch: leader.epoch,
      durability: 'replicated',
    })
    expect(writer.leader).toBe(leader.node)
    expect(writer.token).toBe(first.ok ? first.lsn : -1)

    await live.cluster.kill(leader.node, 'SIGKILL')
    // The client is not told: its next write finds the node dead, tries the others until one
    // is elected, and lands there.
    const second = await writer.write('a', 2)
    expect(second).toMatchObject({ ok: true })
    if (!second.ok) return
    expect(second.node).not.toBe(leader.node)
    expect(second.epoch).toBeGreaterThan(leader.epoch)
    expect(await writer.read('a')).toMatchObject({ ok: true, value: 2, node: second.node, role: 'leader' })

    const oldUrl = writer.nodes[leader.node]
    await live.cluster.restart(leader.node)
    const newUrl = live.cluster.urls()[leader.node]
    expect(newUrl).not.toBe(oldUrl)
    // A replica read that starts at the restarted node: its old port refuses the connection,
    // the client passes it over, and asks for the nodes' URLs again.
    const read = await writer.read('a', { consistency: 'replica', node: leader.node })
    expect(read).toMatchObject({ ok: true, value: 2 })
    expect(writer.nodes[leader.node]).toBe(newUrl)
    // Now the restarted node answers at its new URL, once it has caught up with the token.
    const back = await until('the restarted node to serve the client token', async () => {
      const again = await writer.read('a', { consistency: 'replica', node: leader.node, waitMs: 200 })
      return again.ok && again.node === leader.node ? again : undefined
    })
    expect(back).toMatchObject({ value: 2, role: 'follower' })
  }, 60_000)

  it('carries its token to followers: a follower behind it is passed over, never read', async () => {
    const leader = await stableLeader()
    const behind = nodes.find((id) => id !== leader.node) as string
    const other = nodes.find((id) => id !== leader.node && id !== behind) as string
    const writer = client(leader.node)
    expect(await writer.write('token', 'before')).toMatchObject({ ok: true })
    await until('every node to hold the first value', async () => {
      const reads = await Promise.all(
        nodes.map((node) => writer.read('token', { consistency: 'replica', node, minLsn: 0 })),
      )
      return reads.every((read) => read.ok && read.value === 'before') ? true : undefined
    })
    // `behind` is cut off; a majority (leader and `other`) still commits in sync mode.
    await live.cluster.partition([[behind], [leader.node, other]])
    try {
      const after = await writer.write('token', 'after')
      expect(after).toMatchObject({ ok: true })
      // Without a token, `behind` answers with what it has: the old value.
      expect(await writer.read('token', { consistency: 'replica', node: behind, minLsn: 0 })).toMatchObject({
        ok: true,
        value: 'before',
        node: behind,
      })
      // With the client's token it refuses (not-yet), and the client reads elsewhere.
      const read = await writer.read('token', { consistency: 'replica', node: behind })
      expect(read).toMatchObject({ ok: true, value: 'after' })
      expect(read.ok && read.node).not.toBe(behind)
    } finally {
      await live.cluster.heal()
    }
  }, 60_000)

  it('returns a write whose fate is open as maybeApplied, and sends it nowhere else', async () => {
    const leader = await stableLeader()
    const writer = client(leader.node, { requestTimeoutMs: 500 })
    const child = live.cluster.node(leader.node).child
    child.kill('SIGSTOP')
    try {
      const frozen = await writer.write('frozen', 1)
      expect(frozen).toMatchObject({ ok: false, reason: 'timeout', maybeApplied: true, node: leader.node })
    } finally {
      child.kill('SIGCONT')
    }
    // The write was sent once: whatever became of it, no other node took a second copy.
    const successor = await stableLeader()
    const reader = client(successor.node)
    const read = await until('a leader read after the pause', async () => {
      const answer = await reader.read('frozen')
      return answer.ok ? answer : undefined
    })
    expect([null, 1]).toContain(read.value)
  }, 60_000)

  it('gives up with unavailable when no majority is left, and refuses malformed requests without retrying', async () => {
    const leader = await stableLeader()
    const writer = client(leader.node, { deadlineMs: 1_500, requestTimeoutMs: 500 })
    // A key over 256 characters: the node refuses it, and the client says why at once.
    const tooLong = await writer.write('k'.repeat(300), 1)
    expect(tooLong).toMatchObject({ ok: false, maybeApplied: false, reason: 'invalid-argument' })
    expect(tooLong.ok ? '' : tooLong.message).toMatch(/key/)

    const survivor = nodes.find((id) => id !== leader.node) as string
    for (const id of nodes) if (id !== survivor) await live.cluster.kill(id, 'SIGKILL')
    try {
      const lonely = client(survivor, { deadlineMs: 1_500, requestTimeoutMs: 500 })
      const refused = await lonely.write('alone', 1)
      expect(refused).toMatchObject({ ok: false, reason: 'unavailable', maybeApplied: false, node: null })
      expect(refused.ok ? '' : refused.message).toMatch(/no leader took the write within 1500 ms/)
      expect(await lonely.read('alone')).toMatchObject({ ok: false, reason: 'unavailable' })
    } finally {
      for (const id of nodes) if (id !== survivor) await live.cluster.restart(id)
    }
    await stableLeader()
  }, 60_000)

  it('refuses bad options with invalid-argument', () => {
    const bad = [
      () => new SingleLeaderHttpClient({ nodes: {} }),
      () => new SingleLeaderHttpClient({ nodes: { n1: 'ftp://x' } }),
      () => new SingleLeaderHttpClient({ nodes: { n1: 'http://127.0.0.1:1' }, deadlineMs: 0 }),
      () => new SingleLeaderHttpClient({ nodes: { n1: 'http://127.0.0.1:1' }, name: '' }),
    ]
    for (const make of bad) expect(make).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
    const one = new SingleLeaderHttpClient({ nodes: { n1: 'http://127.0.0.1:1' } })
    return one.write('k', 1, { node: 'n9' }).then(
      () => expect.unreachable('a write to an unknown node was sent'),
      (error: unknown) => expect(isChorusError(error, 'invalid-argument')).toBe(true),
    )
  })
})

/** HTTP servers standing in for nodes, closed (with any request they left hanging) after the file. */
const standIns: Server[] = []
afterAll(() => {
  for (const server of standIns) {
    server.closeAllConnections()
    server.close()
  }
})

/**
 * An HTTP server on 127.0.0.1 answering every `POST /request` with `answer(body)`, or never
 * answering it when that is null (as a frozen node does); counts the requests.
 */
async function standIn(
  answer: (request: { id: string }) => object | null,
): Promise<{ url: string; asked: () => number }> {
  let asked = 0
  const server = createServer((request, response) => {
    let text = ''
    request.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
    })
    request.on('end', () => {
      asked++
      const body = answer(JSON.parse(text) as { id: string })
      if (body === null) return
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify(body))
    })
  })
  standIns.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked: () => asked }
}

const silent = () => null

/** A node's answer to a write it could not store after it may have sent it on. */
const storageFailed = (request: { id: string }) => ({
  type: 'error',
  id: request.id,
  code: 'storage-failed',
  message: 'n1 could not store it (the disk is full); it may still take effect where other nodes took it',
  maybeApplied: true,
})

describe('SingleLeaderHttpClient routing, against stand-in nodes over HTTP', () => {
  it('asks every node once a round: two nodes that name each other as the leader do not keep a write between them', async () => {
    const stale = (leader: string) => (request: { id: string }) => ({
      type: 'rejected',
      id: request.id,
      reason: 'not-leader',
      leader,
      maybeApplied: false,
      lsn: 0,
    })
    const n1 = await standIn(stale('n2'))
    const n2 = await standIn(stale('n1'))
    const n3 = await standIn((request) => ({
      type: 'write-ok',
      id: request.id,
      lsn: 7,
      epoch: 2,
      durability: 'replicated',
    }))
    const client = new SingleLeaderHttpClient({
      nodes: { n1: n1.url, n2: n2.url, n3: n3.url },
      deadlineMs: 2_000,
    })
    expect(await client.write('k', 1)).toMatchObject({ ok: true, node: 'n3', lsn: 7 })
    expect([n1.asked(), n2.asked(), n3.asked()]).toEqual([1, 1, 1])
    expect(client.leader).toBe('n3')
  })

  it('does not send a write again after a silent leader, but asks elsewhere first for the next one', async () => {
    const n1 = await standIn(silent)
    const n2 = await standIn((request) => ({
      type: 'write-ok',
      id: request.id,
      lsn: 3,
      epoch: 2,
      durability: 'replicated',
    }))
    const client = new SingleLeaderHttpClient({
      nodes: { n1: n1.url, n2: n2.url },
      requestTimeoutMs: 200,
      deadlineMs: 2_000,
    })
    expect(await client.write('a', 1)).toMatchObject({
      ok: false,
      reason: 'timeout',
      maybeApplied: true,
      node: 'n1',
    })
    expect([n1.asked(), n2.asked()]).toEqual([1, 0])
    expect(await client.write('b', 2)).toMatchObject({ ok: true, node: 'n2' })
    expect([n1.asked(), n2.asked()]).toEqual([1, 1])
  })

  it('keeps a write whose node failed to store it but may have sent it on as maybeApplied', async () => {
    const n1 = await standIn(storageFailed)
    const client = new SingleLeaderHttpClient({ nodes: { n1: n1.url }, deadlineMs: 2_000 })
    // Before, every error answer was taken as a write that did not happen.
    expect(await client.write('a', 1)).toMatchObject({
      ok: false,
      reason: 'storage-failed',
      maybeApplied: true,
      node: 'n1',
    })
  })
})

describe('SingleLeaderHttpClient replica reads that may wait', () => {
  it('gives a node that may wait (waitMs) that much longer to answer, and asks it once', async () => {
    // A follower that holds every read until the test releases them.
    const held: { id: string; respond: (body: object) => void }[] = []
    const asked: string[] = []
    const server = createServer((request, response) => {
      let text = ''
      request.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8')
      })
      request.on('end', () => {
        const { id } = JSON.parse(text) as { id: string }
        asked.push(id)
        held.push({
          id,
          respond: (body) => {
            response.writeHead(200, { 'content-type': 'application/json' })
            response.end(JSON.stringify(body))
          },
        })
      })
    })
    standIns.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const nodes = { n1: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
    const patient = new SingleLeaderHttpClient({
      nodes,
      name: 'patient',
      requestTimeoutMs: 100,
      deadlineMs: 2_000,
    })
    const reading = patient.read('k', { consistency: 'replica', node: 'n1', minLsn: 5, waitMs: 30_000 })
    await until('the read to reach the node', async () => (held.length === 1 ? true : undefined))
    // Another client's read without waitMs, sent after it, gives up on the node first.
    const hasty = new SingleLeaderHttpClient({ nodes, name: 'hasty', requestTimeoutMs: 100, deadlineMs: 50 })
    expect(await hasty.read('k', { consistency: 'replica', node: 'n1' })).toMatchObject({ ok: false })
    for (const { id, respond } of held.splice(0))
      respond({ type: 'read-ok', id, value: 'v', lsn: 5, epoch: 1, role: 'follower' })
    expect(await reading).toMatchObject({ ok: true, value: 'v', lsn: 5 })
    expect(asked.filter((id) => id.startsWith('patient-'))).toEqual(['patient-1'])
  })
})

describe('QuorumHttpClient routing, against stand-in nodes over HTTP', () => {
  /** A coordinator's answer to a put it took. */
  const putOk = (request: { id: string }) => ({
    type: 'put-ok',
    id: request.id,
    dot: ['n2', 1],
    context: { n2: 1 },
    values: ['v'],
  })

  it('keeps a put whose coordinator failed to store it but may have sent it on as maybeApplied', async () => {
    const n1 = await standIn(storageFailed)
    const client = new QuorumHttpClient({ nodes: { n1: n1.url }, deadlineMs: 2_000 })
    expect(await client.put('a', 1)).toMatchObject({
      ok: false,
      reason: 'storage-failed',
      maybeApplied: true,
      node: 'n1',
    })
  })

  it('does not send a put again after a silent coordinator, but starts the next one at another node', async () => {
    const n1 = await standIn(silent)
    const n2 = await standIn(putOk)
    const client = new QuorumHttpClient({
      nodes: { n1: n1.url, n2: n2.url },
      requestTimeoutMs: 200,
      deadlineMs: 2_000,
    })
    expect(await client.put('a', 'v')).toMatchObject({
      ok: false,
      reason: 'timeout',
      maybeApplied: true,
      node: 'n1',
    })
    expect([n1.asked(), n2.asked()]).toEqual([1, 0])
    expect(await client.put('b', 'v')).toMatchObject({ ok: true, node: 'n2' })
    expect([n1.asked(), n2.asked()]).toEqual([1, 1])
  })

  it('starts the next put elsewhere after a coordinator that did not hear W replicas in time', async () => {
    const n1 = await standIn((request) => ({
      type: 'rejected',
      id: request.id,
      reason: 'timeout',
      maybeApplied: true,
    }))
    const n2 = await standIn(putOk)
    const client = new QuorumHttpClient({ nodes: { n1: n1.url, n2: n2.url }, deadlineMs: 2_000 })
    expect(await client.put('a', 'v')).toMatchObject({
      ok: false,
      reason: 'timeout',
      maybeApplied: true,
      node: 'n1',
    })
    expect(await client.put('b', 'v')).toMatchObject({ ok: true, node: 'n2' })
    expect([n1.asked(), n2.asked()]).toEqual([1, 1])
  })
})

describe('the cluster clients refuse what is not theirs to send', () => {
  it('throws invalid-argument for a value that is not JSON, and sends nothing', async () => {
    const node = await standIn(silent)
    const leader = new SingleLeaderHttpClient({ nodes: { n1: node.url }, requestTimeoutMs: 200 })
    const quorum = new QuorumHttpClient({ nodes: { n1: node.url }, requestTimeoutMs: 200 })
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    const values: unknown[] = [10n, cycle, Number.NaN, new Date(0), { list: [1, undefined] }, () => 1]
    for (const value of values) {
      for (const send of [() => leader.write('k', value as never), () => quorum.put('k', value as never)]) {
        await send().then(
          (result) => expect.unreachable(`sent, with ${JSON.stringify(result)}`),
          (error: unknown) => {
            expect(isChorusError(error, 'invalid-argument')).toBe(true)
            expect((error as Error).message).toMatch(/^not JSON: value/)
          },
        )
      }
    }
    expect(node.asked()).toBe(0)
  })

  it('refuses a maxContexts that is not a whole number', () => {
    for (const maxContexts of [Number.NaN, -1, 1.5, 'abc']) {
      expect(
        () =>
          new QuorumHttpClient({ nodes: { n1: 'http://127.0.0.1:1' }, maxContexts: maxContexts as number }),
      ).toThrow(expect.objectContaining({ code: 'invalid-argument' }))
    }
  })

  it('clusterNodes says, with a ChorusError, that a control URL is malformed or answers nothing', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    for (const url of ['not a url', `http://127.0.0.1:${port}`]) {
      await clusterNodes(url).then(
        () => expect.unreachable(`${url} gave nodes`),
        (error: unknown) => expect(isChorusError(error, 'invalid-argument')).toBe(true),
      )
    }
  })
})

describe('QuorumHttpClient against node processes', () => {
  const live = clusterOfThisBlock('quorum', {
    replicas: 3,
    writeQuorum: 2,
    readQuorum: 2,
    readRepair: 'blocking',
    requestTimeoutMs: 500,
  })

  /** Waits until every node believes every other up (a node just started believes none up). */
  function allUp(client: QuorumHttpClient): Promise<true> {
    return until('every node to believe the others up', async () => {
      const all = await Promise.all(nodes.map((node) => client.status(node)))
      return all.every((status) => status !== null && status.up.length === nodes.length - 1)
        ? true
        : undefined
    })
  }

  it('moves to another coordinator when its node is killed, and its context makes its next put supersede the last', async () => {
    const client = new QuorumHttpClient({
      nodes: live.cluster.urls(),
      refreshNodes: async () => live.cluster.urls(),
    })
    await allUp(client)
    const first = await client.put('doc', 'v1')
    expect(first).toMatchObject({ ok: true, values: ['v1'], node: 'n1' })
    expect(client.context('doc')).toEqual(first.ok ? first.context : null)

    await live.cluster.kill('n1', 'SIGKILL')
    try {
      const second = await client.put('doc', 'v2')
      expect(second).toMatchObject({ ok: true, values: ['v2'] })
      expect(second.ok && second.node).not.toBe('n1')
      expect(await client.get('doc')).toMatchObject({ ok: true, values: ['v2'], value: 'v2' })
    } finally {
      await live.cluster.restart('n1')
    }
    await allUp(new QuorumHttpClient({ nodes: live.cluster.urls() }))
  }, 60_000)

  it('keeps concurrent puts of two clients as siblings, which a put over both contexts settles', async () => {
    const urls = live.cluster.urls()
    const alice = new QuorumHttpClient({ nodes: urls, name: 'alice' })
    const bob = new QuorumHttpClient({ nodes: urls, name: 'bob' })
    await allUp(alice)
    expect(await alice.put('shared', 'a', { node: 'n2' })).toMatchObject({ ok: true })
    // Bob has read nothing: his put is concurrent with Alice's.
    const both = await bob.put('shared', 'b', { node: 'n3' })
    expect(both).toMatchObject({ ok: true })
    const read = await alice.get('shared')
    expect(read).toMatchObject({ ok: true })
    expect(read.ok ? [...read.values].sort() : []).toEqual(['a', 'b'])
    // Alice's context now covers both: her put replaces them.
    expect(await alice.put('shared', 'ab')).toMatchObject({ ok: true, values: ['ab'] })
    expect(await bob.get('shared')).toMatchObject({ ok: true, values: ['ab'] })
  }, 60_000)

  it('says unavailable, with nothing stored, when too few replicas are up', async () => {
    const client = new QuorumHttpClient({
      nodes: live.cluster.urls(),
      deadlineMs: 1_500,
      requestTimeoutMs: 1_000,
    })
    await live.cluster.kill('n2', 'SIGKILL')
    await live.cluster.kill('n3', 'SIGKILL')
    try {
      // Until n1 notices, a put it coordinates is stored on its own disk and times out waiting
      // for W: its fate is open. Once it believes both down it refuses at once.
      await until('n1 to believe n2 and n3 down', async () => {
        const status = await client.status('n1')
        return status !== null && status.up.length === 0 ? true : undefined
      })
      const put = await client.put('lonely', 1)
      expect(put).toMatchObject({ ok: false, maybeApplied: false, node: null, reason: 'unavailable' })
      expect(await client.get('lonely')).toMatchObject({ ok: false, reason: 'unavailable' })
    } finally {
      await live.cluster.restart('n2')
      await live.cluster.restart('n3')
    }
  }, 60_000)
})
