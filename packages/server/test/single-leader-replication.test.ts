import { describe, expect, it } from 'vitest'
import type { SingleLeaderSim } from '../src/sim/single-leader-sim.js'
import type { ReplicationMode } from '../src/single-leader/config.js'
import { lastLsn, readAt } from '../src/single-leader/log.js'
import { electedSim, state } from './support/single-leader-sim.js'

function cluster(replication: ReplicationMode, seed = 1, config = {}): Promise<SingleLeaderSim> {
  return electedSim({ seed, config: { replication, ...config }, clientTimeoutMs: 2_000 })
}

/** Writes `x` = `value`, acknowledged, and checks that every node's log holds it. */
async function expectWrittenEverywhere(
  sim: SingleLeaderSim,
  client: ReturnType<SingleLeaderSim['client']>,
  value: number,
): Promise<void> {
  const written = await sim.until(client.write('x', value))
  if (!written.ok) throw new Error(`the write of ${value} failed: ${written.reason}`)
  for (const node of sim.config.nodes)
    expect(lastLsn(state(sim, node).log)).toBeGreaterThanOrEqual(written.lsn)
}

function followers(sim: SingleLeaderSim): string[] {
  return sim.config.nodes.filter((node) => node !== sim.leader())
}

/** Cuts the leader's links to `nodes` in both directions. */
function cutLeaderFrom(sim: SingleLeaderSim, nodes: readonly string[]): void {
  const leader = sim.leader() as string
  for (const node of nodes) {
    sim.network.cut(leader, node)
    sim.network.cut(node, leader)
  }
}

describe('single-leader replication', () => {
  it('elects one leader and writes only there: a follower refuses writes and names the leader', async () => {
    const sim = await cluster({ mode: 'sync' })
    const leader = sim.leader()
    const [follower] = followers(sim)
    const refused = await sim.until(sim.client('c1').write('x', 1, { node: follower as string }))
    expect(refused).toEqual({ ok: false, reason: 'not-leader', maybeApplied: false })
    expect(
      sim
        .states()
        .filter((s) => s.role === 'leader')
        .map((s) => s.id),
    ).toEqual([leader])
    // The refusal taught the client where the leader is.
    const written = await sim.until(sim.client('c1').write('x', 2))
    expect(written.ok).toBe(true)
  })

  it('gives every write the next LSN, and every follower applies the same entries in LSN order', async () => {
    const sim = await cluster({ mode: 'sync' })
    const client = sim.client('c1')
    const lsns: number[] = []
    for (let i = 1; i <= 20; i++) {
      const outcome = await sim.until(client.write(`k${i % 3}`, i))
      if (!outcome.ok) throw new Error(`write ${i} failed: ${outcome.reason}`)
      lsns.push(outcome.lsn)
    }
    expect(lsns).toEqual(lsns.map((_, i) => (lsns[0] as number) + i))
    await sim.run(200)
    const leaderEntries = state(sim, sim.leader() as string).log.entries
    for (const node of followers(sim)) {
      const entries = state(sim, node).log.entries
      expect(entries.map((entry) => entry.lsn)).toEqual(entries.map((_, i) => i + 1))
      expect(entries).toEqual(leaderEntries)
    }
    const read = await sim.until(client.read('k2'))
    expect(read).toMatchObject({ ok: true, value: 20 })
  })

  it('async acknowledges on the leader alone, before any follower has the write', async () => {
    const sim = await cluster({ mode: 'async' })
    const before = followers(sim).map((node) => lastLsn(state(sim, node).log))
    cutLeaderFrom(sim, followers(sim))
    const outcome = await sim.until(sim.client('c1').write('x', 'only-on-leader'))
    expect(outcome).toMatchObject({ ok: true, durability: 'leader' })
    expect(followers(sim).map((node) => lastLsn(state(sim, node).log))).toEqual(before)
  })

  it('sync waits for a majority (leader included), not for every follower', async () => {
    const sim = await cluster({ mode: 'sync' })
    const [slow = '', other = ''] = followers(sim)
    cutLeaderFrom(sim, [slow])
    const withMajority = await sim.until(sim.client('c1').write('x', 1))
    expect(withMajority).toMatchObject({ ok: true, durability: 'replicated' })
    expect(lastLsn(state(sim, other).log)).toBeGreaterThanOrEqual(withMajority.ok ? withMajority.lsn : 0)
    expect(lastLsn(state(sim, slow).log)).toBeLessThan(withMajority.ok ? withMajority.lsn : 0)

    cutLeaderFrom(sim, [other])
    const client = sim.client('c2')
    const pending = client.write('x', 2, { node: sim.leader() as string })
    await sim.run(150)
    // Neither follower has it: no acknowledgement yet, and once the lease lapses the leader
    // steps down and answers that the write's fate is unknown.
    const outcome = await sim.until(pending)
    expect(outcome).toEqual({ ok: false, reason: 'deposed', maybeApplied: true })
  })

  it('semi-sync waits for k acknowledgements, and falls back to the leader alone after its timeout (counted)', async () => {
    const sim = await cluster({ mode: 'semi-sync', acks: 1, timeoutMs: 40 })
    const client = sim.client('c1')
    const replicated = await sim.until(client.write('x', 1))
    expect(replicated).toMatchObject({ ok: true, durability: 'replicated' })
    expect(sim.report().semiSyncFallbacks).toBe(0)

    cutLeaderFrom(sim, followers(sim))
    const start = sim.network.now()
    const fallback = await sim.until(client.write('x', 2))
    expect(fallback).toMatchObject({ ok: true, durability: 'leader' })
    expect(sim.network.now() - start).toBeGreaterThanOrEqual(40)
    expect(sim.report().semiSyncFallbacks).toBe(1)
  })

  it('chain replication acknowledges once the tail has the write, so every node has it', async () => {
    const sim = await cluster({ mode: 'chain' })
    const client = sim.client('c1')
    for (let i = 1; i <= 5; i++) {
      const outcome = await sim.until(client.write('x', i))
      if (!outcome.ok) throw new Error(`write ${i} failed: ${outcome.reason}`)
      for (const node of sim.config.nodes)
        expect(lastLsn(state(sim, node).log)).toBeGreaterThanOrEqual(outcome.lsn)
    }
    // The head streams to its successor only: the tail hears from the middle node.
    const leader = sim.leader() as string
    const [middle = '', tail = ''] = sim.config.nodes.filter((node) => node !== leader)
    expect([...state(sim, leader).progress.keys()]).toContain(middle)
    expect([...state(sim, middle).progress.keys()]).toEqual([tail])
    // The leader reports the tail as holding everything too, though it streams to it through
    // the middle node: before, the tail showed as lacking every entry.
    await sim.run(300)
    const status = await sim.until(client.status(leader))
    expect(status?.followerLag).toEqual({ [middle]: 0, [tail]: 0 })
  })

  it('chain replication goes around a link cut inside the chain, between two members that both answer the leader', async () => {
    const sim = await cluster({ mode: 'chain' })
    const client = sim.client('c1')
    const leader = sim.leader() as string
    const [middle = '', tail = ''] = sim.config.nodes.filter((node) => node !== leader)
    expect((await sim.until(client.write('x', 1))).ok).toBe(true)

    // The tail hears the leader but not its predecessor: unfed for an election timeout, it says
    // so, and the leader takes it out; the middle member is the tail meanwhile.
    sim.network.cut(middle, tail)
    const start = sim.network.now()
    const written = await sim.until(client.write('x', 2))
    expect(written).toMatchObject({ ok: true, durability: 'replicated' })
    expect(sim.network.now() - start).toBeGreaterThanOrEqual(sim.config.electionTimeoutMs)
    expect(state(sim, leader).stats.chainMembersRemoved).toBe(1)
    // It joins again at the end, where it is not counted while it is cut off.
    await sim.run(2 * sim.config.electionTimeoutMs)
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, middle, tail], counted: 2 })
    for (let i = 3; i <= 5; i++) expect((await sim.until(client.write('x', i))).ok).toBe(true)
    expect(state(sim, leader).stats.chainMembersRemoved).toBe(1)

    // Healed, it catches up and is counted again.
    sim.heal()
    await sim.run(2 * sim.config.electionTimeoutMs)
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, middle, tail], counted: 3 })
    await expectWrittenEverywhere(sim, client, 6)
    expect(sim.report().lostAcknowledgedWrites).toBe(0)
  })

  it('chain replication on five nodes: the member behind a cut link moves to the end, fed by the tail, and is counted again', async () => {
    const sim = await electedSim({
      seed: 1,
      nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
      config: { replication: { mode: 'chain' } },
      clientTimeoutMs: 2_000,
    })
    const client = sim.client('c1')
    const leader = sim.leader() as string
    expect((await sim.until(client.write('x', 1))).ok).toBe(true)
    const [, second = '', third = ''] = state(sim, leader).chain?.nodes ?? []
    // Both ways: neither can feed the other, whichever order the chain takes.
    sim.network.cut(second, third)
    sim.network.cut(third, second)
    const written = await sim.until(client.write('x', 2))
    expect(written).toMatchObject({ ok: true, durability: 'replicated' })
    await sim.run(4 * sim.config.electionTimeoutMs)
    // Only the member behind the cut moved, not the ones behind it that starved with it.
    const chain = state(sim, leader).chain
    expect(chain?.nodes.at(-1)).toBe(third)
    expect(chain?.counted).toBe(5)
    expect(state(sim, leader).stats.chainMembersRemoved).toBe(1)
    await expectWrittenEverywhere(sim, client, 3)
    expect(sim.report().lostAcknowledgedWrites).toBe(0)
  })

  it('chain replication leaves a failed member out after an election timeout, and counts it again once it caught up', async () => {
    const sim = await cluster({ mode: 'chain' })
    const client = sim.client('c1')
    const leader = sim.leader() as string
    const [middle = '', tail = ''] = sim.config.nodes.filter((node) => node !== leader)
    expect((await sim.until(client.write('x', 1))).ok).toBe(true)
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, middle, tail], counted: 3 })

    sim.crash(middle)
    const start = sim.network.now()
    const written = await sim.until(client.write('x', 2))
    // Acknowledged once the leader took the silent member out: the chain is leader → tail.
    expect(written).toMatchObject({ ok: true, durability: 'replicated' })
    expect(sim.network.now() - start).toBeGreaterThanOrEqual(sim.config.electionTimeoutMs)
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, tail], counted: 2 })
    expect(state(sim, leader).stats.chainMembersRemoved).toBe(1)
    expect(lastLsn(state(sim, tail).log)).toBeGreaterThanOrEqual(written.ok ? written.lsn : Infinity)
    for (let i = 3; i <= 6; i++) expect((await sim.until(client.write('x', i))).ok).toBe(true)

    // Back, it joins at the end, fed by the tail, and is counted once it holds what is committed.
    await sim.restart(middle)
    await sim.run(2 * sim.config.electionTimeoutMs)
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, tail, middle], counted: 3 })
    expect(state(sim, leader).stats.chainMembersRestored).toBe(1)
    expect([...state(sim, tail).progress.keys()]).toEqual([middle])
    await expectWrittenEverywhere(sim, client, 7)
    expect(state(sim, middle).chain).toMatchObject({ nodes: [leader, tail, middle], counted: 3 })
  })

  it('chain replication: a member back while the counted one ahead of it dies is counted in its place, and writes go on', async () => {
    const sim = await cluster({ mode: 'chain' })
    const client = sim.client('c1')
    const leader = sim.leader() as string
    const [middle = '', tail = ''] = sim.config.nodes.filter((node) => node !== leader)
    sim.crash(tail)
    expect((await sim.until(client.write('x', 1))).ok).toBe(true)
    for (let i = 2; i <= 4; i++) expect((await sim.until(client.write('x', i))).ok).toBe(true)
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, middle], counted: 2 })

    // The middle member dies as the tail comes back, behind it and behind on the log.
    sim.crash(middle)
    await sim.restart(tail)
    const written = await sim.until(client.write('x', 5))
    expect(written).toMatchObject({ ok: true, durability: 'replicated' })
    expect(state(sim, leader).chain).toMatchObject({ nodes: [leader, tail], counted: 2 })
    expect(lastLsn(state(sim, tail).log)).toBeGreaterThanOrEqual(written.ok ? written.lsn : Infinity)
    expect(sim.report().lostAcknowledgedWrites).toBe(0)
  })

  it('chain replication takes back a member whose answers take longer than two heartbeats', async () => {
    const sim = await cluster({ mode: 'chain' })
    const client = sim.client('c1')
    const leader = sim.leader() as string
    const [, tail = ''] = sim.config.nodes.filter((node) => node !== leader)
    // 60 ms each way: a round trip of more than two heartbeats (50 ms), well within an election timeout.
    for (const node of sim.config.nodes) {
      if (node === tail) continue
      sim.network.setFaults({ latencyMs: 60 }, node, tail)
      sim.network.setFaults({ latencyMs: 60 }, tail, node)
    }
    sim.pause(tail, 2 * sim.config.electionTimeoutMs)
    expect((await sim.until(client.write('x', 1))).ok).toBe(true)
    expect(state(sim, leader).chain?.nodes).not.toContain(tail)
    await sim.run(4 * sim.config.electionTimeoutMs)
    expect(state(sim, leader).chain).toMatchObject({ counted: 3 })
    expect(state(sim, leader).chain?.nodes).toContain(tail)
  })

  it('chain replication never takes the chain below a majority: with two of three members silent, writes wait', async () => {
    const sim = await cluster({ mode: 'chain' })
    const leader = sim.leader() as string
    const [middle = '', tail = ''] = sim.config.nodes.filter((node) => node !== leader)
    sim.crash(middle)
    sim.crash(tail)
    const outcome = await sim.until(sim.client('c1').write('x', 'alone'))
    expect(outcome.ok).toBe(false)
    expect(sim.report().lostAcknowledgedWrites).toBe(0)
  })

  it('rejects a write with a key or value it cannot store, with a typed error, and keeps working', async () => {
    const sim = await cluster({ mode: 'sync' })
    const client = sim.client('c1')
    const leader = sim.leader() as string
    const notJson = await sim.until(client.raw(leader, '{"type":"write"', 'r1'))
    expect(notJson).toMatchObject({ type: 'error', code: 'malformed-frame' })
    const unknown = await sim.until(
      client.raw(leader, JSON.stringify({ type: 'drop-table', id: 'r2' }), 'r2'),
    )
    expect(unknown).toMatchObject({ type: 'error', id: 'r2', code: 'unknown-message' })
    const badKey = await sim.until(
      client.raw(leader, JSON.stringify({ type: 'write', id: 'r3', key: '', value: 1 }), 'r3'),
    )
    expect(badKey).toMatchObject({ type: 'error', id: 'r3', code: 'invalid-argument' })
    expect(badKey?.type === 'error' ? badKey.message : '').toContain('key must be a non-empty string')
    const noValue = await sim.until(
      client.raw(leader, JSON.stringify({ type: 'write', id: 'r4', key: 'k' }), 'r4'),
    )
    expect(noValue).toMatchObject({ type: 'error', id: 'r4', code: 'invalid-argument' })
    expect(sim.report().acknowledgedWrites).toBe(0)
    expect(await sim.until(client.write('k', 'fine'))).toMatchObject({ ok: true })
  })
})

describe('single-leader reads', () => {
  it('serves read-your-writes on a lagging follower by its token: not-yet, or waits until caught up', async () => {
    const sim = await cluster({ mode: 'sync' })
    const [lagging = ''] = followers(sim)
    cutLeaderFrom(sim, [lagging])
    const client = sim.client('c1')
    const written = await sim.until(client.write('x', 'mine'))
    if (!written.ok) throw new Error('write failed')
    expect(client.token).toBe(written.lsn)

    const refused = await sim.until(client.read('x', { node: lagging, consistency: 'replica' }))
    expect(refused).toEqual({ ok: false, reason: 'not-yet' })
    const lag = await sim.until(client.status(lagging))
    expect(lag?.role).toBe('follower')

    const waiting = client.read('x', { node: lagging, consistency: 'replica', waitMs: 1_000 })
    await sim.run(50)
    sim.heal()
    expect(await sim.until(waiting)).toMatchObject({ ok: true, value: 'mine', node: lagging })
  })

  it('answers a token from past any log not-yet at every node, and refuses one that is not a safe integer, without stalling anything', async () => {
    const sim = await cluster({ mode: 'sync' })
    const client = sim.client('c1')
    expect(await sim.until(client.write('x', 'before'))).toMatchObject({ ok: true })
    const far = Number.MAX_SAFE_INTEGER
    // A token is only compared with the log, never counted from: a node cannot be moved by it.
    const waiting = sim.config.nodes.map((node) =>
      client.read('x', { node, consistency: 'replica', minLsn: far, minEpoch: far, waitMs: 200 }),
    )
    for (const read of await sim.until(Promise.all(waiting)))
      expect(read).toEqual({ ok: false, reason: 'not-yet' })
    for (const [field, value] of [
      ['minLsn', 2 ** 53],
      ['minEpoch', 2 ** 53],
    ] as const) {
      const id = `far-${field}`
      const frame = JSON.stringify({
        type: 'read',
        id,
        key: 'x',
        consistency: 'replica',
        minLsn: 1,
        [field]: value,
      })
      expect(await sim.until(client.raw(sim.leader() as string, frame, id))).toMatchObject({
        type: 'error',
        code: 'invalid-message',
        message: `request.${field}: expected a non-negative safe integer, got ${2 ** 53}`,
      })
    }
    expect(await sim.until(client.write('x', 'after'))).toMatchObject({ ok: true })
    for (const node of sim.config.nodes)
      expect(await sim.until(client.read('x', { node, consistency: 'replica', waitMs: 500 }))).toMatchObject({
        ok: true,
        value: 'after',
      })
  })

  it('keeps reads monotonic across followers: a read never goes back behind the token', async () => {
    const sim = await cluster({ mode: 'async' })
    const [ahead = '', behind = ''] = followers(sim)
    const writer = sim.client('writer')
    await sim.until(writer.write('x', 'old'))
    await sim.run(100)
    cutLeaderFrom(sim, [behind])
    await sim.until(writer.write('x', 'new'))
    await sim.run(100)

    const reader = sim.client('reader')
    expect(await sim.until(reader.read('x', { node: ahead, consistency: 'replica' }))).toMatchObject({
      ok: true,
      value: 'new',
    })
    // Without the token the lagging follower would answer 'old'.
    const fresh = sim.client('fresh')
    expect(await sim.until(fresh.read('x', { node: behind, consistency: 'replica' }))).toMatchObject({
      ok: true,
      value: 'old',
    })
    expect(await sim.until(reader.read('x', { node: behind, consistency: 'replica' }))).toEqual({
      ok: false,
      reason: 'not-yet',
    })
  })

  it('names the token’s entry by its epoch: a deposed semi-sync leader’s fallbacks at the same LSN do not pass for it', async () => {
    const sim = await cluster({ mode: 'semi-sync', acks: 1, timeoutMs: 40 })
    const old = sim.leader() as string
    const others = followers(sim)
    await sim.until(sim.client('c0').write('x', 'base'))
    await sim.run(100)
    // The leader is cut off and acknowledges writes on its own disk (counted fallbacks).
    cutLeaderFrom(sim, others)
    const zombie = sim.client('zombie')
    for (let n = 1; n <= 4; n++) {
      expect(await sim.until(zombie.write('x', `fallback ${n}`, { node: old }))).toMatchObject({
        ok: true,
        durability: 'leader',
      })
    }
    // The other two elect a leader of a newer epoch and take a write, at an LSN the deposed
    // leader's fallbacks already reach.
    for (let waited = 0; waited < 5_000 && sim.leader() === old; waited += 10) await sim.run(10)
    const fresh = sim.leader() as string
    expect(others).toContain(fresh)
    const writer = sim.client('writer')
    const mine = await sim.until(writer.write('x', 'mine', { node: fresh }))
    if (!mine.ok) throw new Error(`the write at the new leader failed: ${mine.reason}`)
    expect(mine.lsn).toBeLessThanOrEqual(zombie.token)
    expect(mine.epoch).toBeGreaterThan(zombie.tokenEpoch)
    expect([writer.token, writer.tokenEpoch]).toEqual([mine.lsn, mine.epoch])

    // The deposed leader reaches the LSN, but its entry there is of the older epoch: not yet.
    expect(await sim.until(writer.read('x', { node: old, consistency: 'replica' }))).toEqual({
      ok: false,
      reason: 'not-yet',
    })
    // The LSN alone would pass, and read the deposed leader's own history.
    expect(
      await sim.until(writer.read('x', { node: old, consistency: 'replica', minLsn: mine.lsn })),
    ).toMatchObject({ ok: true, value: 'fallback 4', node: old })
    // Healed, the deposed leader takes the new leader's log, and the read waiting there sees the write.
    const waiting = writer.read('x', { node: old, consistency: 'replica', waitMs: 2_000 })
    await sim.run(20)
    sim.heal()
    expect(await sim.until(waiting)).toMatchObject({ ok: true, value: 'mine', node: old })
    // The zombie's token names a lost fallback: a node of the newer history serves it at once
    // (nothing will ever hold that entry), and its token moves to that history.
    const other = others.find((node) => node !== fresh) as string
    expect(await sim.until(zombie.read('x', { node: other, consistency: 'replica' }))).toMatchObject({
      ok: true,
      value: 'mine',
    })
    expect(zombie.tokenEpoch).toBe(mine.epoch)
  })

  it('reports each follower’s lag on the leader and on the follower', async () => {
    const sim = await cluster({ mode: 'async' })
    const [lagging = '', current = ''] = followers(sim)
    const leader = sim.leader() as string
    sim.network.cut(leader, lagging)
    const client = sim.client('c1')
    for (let i = 0; i < 5; i++) await sim.until(client.write('x', i))
    await sim.run(100)
    const status = await sim.until(client.status(leader))
    expect(status?.followerLag[lagging]).toBe(5)
    expect(status?.followerLag[current]).toBe(0)
    expect(status?.leaderHeardMsAgo).toBeNull()
    // The cut-off follower heard of no commit, so its own lag reads 0: it says how long ago it
    // heard from the leader, which the follower in touch says it did moments ago.
    const cutOff = await sim.until(client.status(lagging))
    const inTouch = await sim.until(client.status(current))
    expect(cutOff?.lagLsn).toBe(0)
    expect(cutOff?.leaderHeardMsAgo).toBeGreaterThanOrEqual(100)
    expect(inTouch?.leaderHeardMsAgo).toBeLessThan(cutOff?.leaderHeardMsAgo as number)
    sim.heal()
    await sim.run(300)
    const caughtUp = await sim.until(client.status(leader))
    expect(caughtUp?.followerLag[lagging]).toBe(0)
    const healed = await sim.until(client.status(lagging))
    expect(healed?.lagLsn).toBe(0)
    expect(healed?.leaderHeardMsAgo).toBeLessThan(cutOff?.leaderHeardMsAgo as number)
  })

  it('refuses leader reads on a follower and serves them on the leader', async () => {
    const sim = await cluster({ mode: 'sync' })
    const client = sim.client('c1')
    await sim.until(client.write('x', 1))
    const [follower = ''] = followers(sim)
    expect(await sim.until(client.read('x', { node: follower }))).toEqual({ ok: false, reason: 'not-leader' })
    expect(await sim.until(client.read('x'))).toMatchObject({ ok: true, value: 1 })
  })
})

describe('single-leader catch-up', () => {
  it('a restarted follower catches up from its last LSN', async () => {
    const sim = await cluster({ mode: 'sync' })
    const client = sim.client('c1')
    await sim.until(client.write('x', 1))
    const [follower = ''] = followers(sim)
    await sim.run(100)
    const before = lastLsn(state(sim, follower).log)
    sim.crash(follower)
    for (let i = 2; i <= 6; i++) await sim.until(client.write('x', i))
    await sim.restart(follower)
    expect(lastLsn(state(sim, follower).log)).toBe(before)
    await sim.run(500)
    expect(lastLsn(state(sim, follower).log)).toBe(lastLsn(state(sim, sim.leader() as string).log))
    expect(await sim.until(client.read('x', { node: follower, consistency: 'replica' }))).toMatchObject({
      ok: true,
      value: 6,
    })
  })

  it('a new node bootstraps from a snapshot plus log catch-up', async () => {
    const sim = await cluster({ mode: 'sync' }, 3, { compactEvery: 8 })
    const client = sim.client('c1')
    for (let i = 1; i <= 20; i++) await sim.until(client.write(`k${i % 4}`, i))
    const leader = state(sim, sim.leader() as string)
    expect(leader.log.base.lsn).toBeGreaterThan(0)
    await sim.addLearner('learner')
    await sim.run(1_000)
    for (let i = 21; i <= 24; i++) await sim.until(client.write(`k${i % 4}`, i))
    await sim.run(200)
    const learner = state(sim, 'learner')
    expect(learner.role).toBe('learner')
    expect(learner.stats.snapshotsInstalled).toBeGreaterThanOrEqual(1)
    expect(lastLsn(learner.log)).toBe(lastLsn(state(sim, sim.leader() as string).log))
    const read = await sim.until(client.read('k0', { node: 'learner', consistency: 'replica' }))
    expect(read).toMatchObject({ ok: true, value: 24 })
  })

  it("keeps every node's storage bounded by checkpoints, and a node restarts from one with its whole log", async () => {
    const sim = await cluster({ mode: 'sync' }, 5, { compactEvery: 8 })
    const client = sim.client('c1')
    for (let i = 1; i <= 200; i++) await sim.until(client.write(`k${i % 4}`, i))
    await sim.run(200)
    const [follower] = followers(sim) as [string]
    for (const node of sim.config.nodes) {
      const storage = sim.host(node).storage
      expect(storage.stats.checkpoints).toBeGreaterThan(0)
      // Without checkpoints every write would be a record of its own, 200 and more.
      expect(storage.records().length).toBeLessThan(40)
    }
    const before = state(sim, follower)
    const values = ['k0', 'k1', 'k2', 'k3'].map((key) => readAt(before.log, key, lastLsn(before.log)))
    expect(values).toEqual([200, 197, 198, 199])
    sim.crash(follower)
    await sim.restart(follower)
    const after = state(sim, follower)
    expect(lastLsn(after.log)).toBe(lastLsn(before.log))
    expect(after.log.epochs).toEqual(before.log.epochs)
    expect(['k0', 'k1', 'k2', 'k3'].map((key) => readAt(after.log, key, lastLsn(after.log)))).toEqual(values)
    for (let i = 201; i <= 204; i++) await sim.until(client.write(`k${i % 4}`, i))
    await sim.run(200)
    expect(await sim.until(client.read('k3', { node: follower, consistency: 'replica' }))).toMatchObject({
      ok: true,
      value: 203,
    })
  })

  it('writes a checkpoint only once the entries since the last one are as many as the keys', async () => {
    const sim = await cluster({ mode: 'sync' }, 6, { compactEvery: 8 })
    const client = sim.client('c1')
    for (let i = 1; i <= 400; i++) await sim.until(client.write(`k${i % 100}`, i))
    await sim.run(200)
    const leader = sim.leader() as string
    const checkpoints = sim.host(leader).storage.stats.checkpoints
    // Folding in memory happened every 8 entries; a checkpoint rewrites 100 keys, so at most
    // one per 100 entries.
    expect(state(sim, leader).log.base.lsn).toBeGreaterThan(380)
    expect(checkpoints).toBeGreaterThanOrEqual(2)
    expect(checkpoints).toBeLessThanOrEqual(4)
  })
})
