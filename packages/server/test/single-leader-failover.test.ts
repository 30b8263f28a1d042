import { describe, expect, it } from 'vitest'
import { SingleLeaderSim } from '../src/sim/single-leader-sim.js'
import type { ReplicationMode } from '../src/single-leader/config.js'
import { lastLsn } from '../src/single-leader/log.js'
import { electedSim, state } from './support/single-leader-sim.js'

function cluster(replication: ReplicationMode, seed: number, fencing = true): Promise<SingleLeaderSim> {
  return electedSim({ seed, config: { replication, fencing }, clientTimeoutMs: 3_000 })
}

function leaders(sim: SingleLeaderSim): string[] {
  return sim
    .states()
    .filter((s) => s.role === 'leader')
    .map((s) => s.id)
}

describe('single-leader failover', () => {
  it.each([1, 2, 3, 4, 5])(
    'promotes the most up-to-date follower with a higher epoch when the leader dies (seed %i)',
    async (seed) => {
      const sim = await cluster({ mode: 'sync' }, seed)
      const old = sim.leader() as string
      const oldEpoch = state(sim, old).epoch
      const [ahead = '', behind = ''] = sim.config.nodes.filter((node) => node !== old)
      sim.network.cut(old, behind)
      const client = sim.client('c1')
      const acknowledged: number[] = []
      for (let i = 0; i < 5; i++) {
        const outcome = await sim.until(client.write('x', i))
        if (outcome.ok) acknowledged.push(outcome.lsn)
      }
      expect(acknowledged).toHaveLength(5)
      expect(lastLsn(state(sim, behind).log)).toBeLessThan(lastLsn(state(sim, ahead).log))

      sim.crash(old)
      sim.heal()
      await sim.run(1_500)
      expect(leaders(sim)).toEqual([ahead])
      expect(state(sim, ahead).epoch).toBeGreaterThan(oldEpoch)
      expect(sim.report().lostAcknowledgedWrites).toBe(0)
      expect(await sim.until(client.read('x', { node: ahead }))).toMatchObject({ ok: true, value: 4 })
    },
  )

  it('a leader whose followers answer late holds a write instead of refusing it, and takes it once an answer renews its lease', async () => {
    const sim = await cluster({ mode: 'sync' }, 11)
    const leader = sim.leader() as string
    const epoch = state(sim, leader).epoch
    // The followers hear the leader (so none stands for election) but their answers are lost
    // for longer than the lease: the leader may not serve.
    for (const node of sim.config.nodes) if (node !== leader) sim.network.cut(node, leader)
    await sim.run(state(sim, leader).config.leaseMs + 50)
    const write = sim.client('c1').write('x', 'while the lease lapsed', { node: leader })
    await sim.run(50)
    expect(state(sim, leader).held).toHaveLength(1)
    sim.heal()
    expect(await sim.until(write)).toMatchObject({ ok: true })
    expect(state(sim, leader)).toMatchObject({ role: 'leader', epoch, held: [] })
    expect(state(sim, leader).stats.writesHeld).toBe(1)
    expect(sim.report().lostAcknowledgedWrites).toBe(0)
  })

  it('a leader cut off from its followers holds a write until it steps down, then refuses it as not-leader', async () => {
    const sim = await cluster({ mode: 'sync' }, 12)
    const old = sim.leader() as string
    const others = sim.config.nodes.filter((node) => node !== old)
    // The client is on the old leader's side.
    const client = sim.client('c1')
    sim.network.partition([[old, 'c1'], others])
    await sim.run(state(sim, old).config.leaseMs + 50)
    const held = client.write('x', 'cut off', { node: old })
    const outcome = await sim.until(held)
    sim.heal()
    await sim.run(1_000)
    const successor = sim.leader() as string
    expect(others).toContain(successor)
    expect(outcome).toMatchObject({ ok: false, reason: 'not-leader', maybeApplied: false })
    expect(state(sim, old).held).toEqual([])
    expect(sim.report().lostAcknowledgedWrites).toBe(0)
  })

  it('a paused (zombie) leader cannot acknowledge a write after it resumes, with fencing', async () => {
    const sim = await cluster({ mode: 'async' }, 7)
    const zombie = sim.leader() as string
    const zombieEpoch = state(sim, zombie).epoch
    await sim.until(sim.client('c1').write('x', 'before'))
    sim.pause(zombie, 1_500)
    // A client that still believes in the zombie: its write waits in the paused process.
    const queued = sim.client('stale').write('x', 'to-zombie', { node: zombie })
    await sim.run(1_000)
    const successor = sim.leader() as string
    expect(successor).not.toBe(zombie)
    expect(state(sim, successor).epoch).toBeGreaterThan(zombieEpoch)
    expect(await sim.until(sim.client('c2').write('x', 'after', { node: successor }))).toMatchObject({
      ok: true,
    })

    const outcome = await sim.until(queued)
    expect(outcome).toMatchObject({ ok: false, reason: 'not-leader' })
    await sim.run(1_000)
    expect(leaders(sim)).toEqual([successor])
    expect(state(sim, zombie).epoch).toBe(state(sim, successor).epoch)
    const report = sim.report()
    expect(report.staleEpochWritesAcknowledged).toBe(0)
    expect(report.lostAcknowledgedWrites).toBe(0)
    expect(report.divergentNodes).toBe(0)
    expect(await sim.until(sim.client('c2').read('x', { node: successor }))).toMatchObject({
      ok: true,
      value: 'after',
    })
  })

  it('without fencing the same zombie acknowledges a write that is then lost (the teaching mode)', async () => {
    const sim = await cluster({ mode: 'async' }, 7, false)
    const zombie = sim.leader() as string
    await sim.until(sim.client('c1').write('x', 'before'))
    sim.pause(zombie, 1_500)
    const queued = sim.client('stale').write('x', 'to-zombie', { node: zombie })
    await sim.run(1_000)
    const successor = sim.leader() as string
    expect(successor).not.toBe(zombie)
    expect(await sim.until(sim.client('c2').write('x', 'after', { node: successor }))).toMatchObject({
      ok: true,
    })

    // The resumed zombie takes the queued write without asking whether it still leads, and
    // acknowledges it before the newer epoch reaches it; the write is not in the newer log.
    expect(await sim.until(queued)).toMatchObject({ ok: true })
    await sim.run(1_000)
    const report = sim.report()
    expect(report.staleEpochWritesAcknowledged).toBeGreaterThanOrEqual(1)
    expect(report.lostAcknowledgedWrites).toBeGreaterThanOrEqual(1)
  })
})

describe('single-leader manual promotion', () => {
  it('with fencing, promoting a follower deposes the old leader: one leader, nothing lost', async () => {
    const sim = await cluster({ mode: 'sync' }, 11)
    const old = sim.leader() as string
    const target = sim.config.nodes.find((node) => node !== old) as string
    const client = sim.client('c1')
    await sim.until(client.write('x', 1))
    await sim.promote(target)
    await sim.run(300)
    expect(leaders(sim)).toEqual([target])
    expect(state(sim, target).stats.promotions).toBe(1)
    expect(state(sim, old).epoch).toBe(state(sim, target).epoch)
    expect(await sim.until(client.write('x', 2, { node: old }))).toMatchObject({
      ok: false,
      reason: 'not-leader',
    })
    expect(await sim.until(client.write('x', 3, { node: target }))).toMatchObject({ ok: true })
    await sim.run(300)
    const report = sim.report()
    expect(report.lostAcknowledgedWrites).toBe(0)
    expect(report.divergentNodes).toBe(0)
  })

  it('without fencing, promotion makes two leaders whose acknowledged writes diverge (split brain)', async () => {
    const sim = await cluster({ mode: 'sync' }, 11, false)
    const old = sim.leader() as string
    const target = sim.config.nodes.find((node) => node !== old) as string
    await sim.until(sim.client('c1').write('x', 'common'))
    await sim.promote(target)
    await sim.run(300)
    expect(leaders(sim).sort()).toEqual([old, target].sort())

    const viaOld = sim.client('a')
    const viaNew = sim.client('b')
    for (let i = 1; i <= 3; i++) {
      expect(await sim.until(viaOld.write('x', `old-${i}`, { node: old }))).toMatchObject({ ok: true })
      expect(await sim.until(viaNew.write('x', `new-${i}`, { node: target }))).toMatchObject({ ok: true })
    }
    await sim.run(500)
    const report = sim.report()
    // Even sync replication loses acknowledged writes once two leaders share log positions.
    expect(report.lostAcknowledgedWrites).toBeGreaterThanOrEqual(1)
    expect(report.staleEpochAppendsAccepted + report.divergentNodes).toBeGreaterThanOrEqual(1)
    const readOld = await sim.until(viaOld.read('x', { node: old }))
    const readNew = await sim.until(viaNew.read('x', { node: target }))
    expect(readOld).toMatchObject({ ok: true })
    expect(readNew).toMatchObject({ ok: true })
    expect(readOld.ok && readNew.ok && readOld.value !== readNew.value).toBe(true)
  })
})

describe('ClusterSim.onStep', () => {
  it('sees every role change at the virtual time it happens, on every node', async () => {
    const sim = new SingleLeaderSim({ seed: 7 })
    const changes: string[] = []
    sim.onStep = (node, before, after) => {
      if (before.role !== after.role)
        changes.push(`${sim.network.now()} ${node} ${before.role}->${after.role}`)
    }
    await sim.start()
    const leader = await sim.awaitLeader()
    expect(changes.some((change) => change.endsWith(`${leader} candidate->leader`))).toBe(true)
    const at = sim.network.now()
    sim.crash(leader as string)
    const next = await sim.awaitLeader()
    const elected = changes.filter((change) => change.endsWith(`${next} candidate->leader`)).at(-1)
    expect(Number(elected?.split(' ')[0])).toBeGreaterThan(at)
    expect(Number(elected?.split(' ')[0])).toBeLessThanOrEqual(sim.network.now())
  })
})
