import { isChorusError } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { asNodeId } from '../src/node-id.js'
import type { SingleLeaderSim } from '../src/sim/single-leader-sim.js'
import { createSingleLeaderConfig } from '../src/single-leader/config.js'
import type { SingleLeaderMessage } from '../src/single-leader/messages.js'
import { createSingleLeaderMachine } from '../src/single-leader/node.js'
import type { SingleLeaderEffect } from '../src/single-leader/state.js'
import { electedSim, state } from './support/single-leader-sim.js'

function cluster(seed: number, preVote: boolean): Promise<SingleLeaderSim> {
  return electedSim({ seed, config: { replication: { mode: 'sync' }, preVote }, clientTimeoutMs: 3_000 })
}

/** Cuts `node` off from every other node, both ways, runs for `ms`, and heals. */
async function isolate(sim: SingleLeaderSim, node: string, ms: number): Promise<void> {
  const others = sim.config.nodes.filter((other) => other !== node)
  for (const other of others) {
    sim.network.cut(node, other)
    sim.network.cut(other, node)
  }
  await sim.run(ms)
  sim.network.heal()
}

function sent(effects: readonly SingleLeaderEffect[]): SingleLeaderMessage[] {
  return effects.flatMap((effect) => (effect.type === 'send' ? [effect.message] : []))
}

describe('single-leader pre-vote', () => {
  it.each([1, 2, 3])(
    'a follower cut off for many election timeouts keeps its epoch and, back, deposes no one (seed %i)',
    async (seed) => {
      const sim = await cluster(seed, true)
      const leader = sim.leader() as string
      const epoch = state(sim, leader).epoch
      const [follower = ''] = sim.config.nodes.filter((node) => node !== leader)
      await isolate(sim, follower, 10 * sim.config.electionTimeoutMs)
      expect(state(sim, follower).epoch).toBe(epoch)
      expect(state(sim, follower).stats.preVoteRounds).toBeGreaterThan(1)
      expect(state(sim, follower).stats.electionsStarted).toBe(0)
      await sim.run(5 * sim.config.electionTimeoutMs)
      expect(sim.leader()).toBe(leader)
      for (const node of sim.config.nodes) {
        expect(state(sim, node).epoch).toBe(epoch)
        expect(state(sim, node).leader).toBe(leader)
      }
      const written = await sim.until(sim.client('c1').write('after', 1))
      expect(written.ok).toBe(true)
    },
  )

  it('without pre-vote the same follower comes back with a higher epoch and forces an election', async () => {
    const sim = await cluster(1, false)
    const leader = sim.leader() as string
    const epoch = state(sim, leader).epoch
    const [follower = ''] = sim.config.nodes.filter((node) => node !== leader)
    await isolate(sim, follower, 10 * sim.config.electionTimeoutMs)
    expect(state(sim, follower).epoch).toBeGreaterThan(epoch + 1)
    await sim.run(5 * sim.config.electionTimeoutMs)
    expect(state(sim, sim.leader() as string).epoch).toBeGreaterThan(epoch)
  })

  it('still fails over when the leader dies', async () => {
    const sim = await cluster(2, true)
    const old = sim.leader() as string
    const epoch = state(sim, old).epoch
    sim.crash(old)
    await sim.run(5 * sim.config.electionTimeoutMs)
    const next = sim.leader()
    expect(next).not.toBeUndefined()
    expect(next).not.toBe(old)
    expect(state(sim, next as string).epoch).toBe(epoch + 1)
  })

  it('answers a pre-vote without changing anything, and refuses while it hears a leader', () => {
    const config = createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], replication: { mode: 'sync' } })
    const machine = createSingleLeaderMachine('n2', config)
    const n1 = asNodeId('n1')
    const n3 = asNodeId('n3')
    const quiet = machine.recover([], 0)
    const request = { type: 'pre-vote-request', epoch: 1, lastLsn: 0, lastEpoch: 0 }
    const late = config.electionTimeoutMs * 10
    const asked = machine.step(quiet, machine.messageInput(late, n3, request))
    expect(asked.state).toBe(quiet)
    expect(sent(asked.effects)).toEqual([{ type: 'pre-vote', epoch: 1, granted: true, current: 0 }])
    expect(asked.effects.some((effect) => effect.type === 'persist')).toBe(false)

    // n2 hears n1 lead epoch 1: it refuses n3's pre-vote for epoch 2 and stays as it is.
    const heartbeat = {
      type: 'heartbeat',
      epoch: 1,
      leader: 'n1',
      commitLsn: 0,
      lastLsn: 0,
      lastEpoch: 0,
      sentAt: 5,
    }
    const following = machine.step(quiet, machine.messageInput(10, n1, heartbeat)).state
    const refused = machine.step(following, machine.messageInput(20, n3, { ...request, epoch: 2 }))
    expect(refused.state).toBe(following)
    expect(sent(refused.effects)).toEqual([{ type: 'pre-vote', epoch: 2, granted: false, current: 1 }])

    // A log behind n2's is refused too, even with no leader heard.
    const ahead = machine.recover(
      [{ type: 'entries', entries: [{ lsn: 1, epoch: 1, write: { key: 'k', value: 1, id: 'c/1' } }] }],
      0,
    )
    const behind = machine.step(ahead, machine.messageInput(late, n3, { ...request, epoch: 2 }))
    expect(sent(behind.effects)).toEqual([{ type: 'pre-vote', epoch: 2, granted: false, current: 0 }])
  })

  it('stands for election only with the quorum of pre-votes, and catches up from a newer answer', () => {
    const config = createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], replication: { mode: 'sync' } })
    const machine = createSingleLeaderMachine('n1', config)
    const n2 = asNodeId('n2')
    const n3 = asNodeId('n3')
    const late = config.electionTimeoutMs * 10
    const timedOut = machine.step(machine.recover([], 0), machine.tickInput(late))
    expect(timedOut.state.epoch).toBe(0)
    expect(timedOut.state.preVotes).toEqual(['n1'])
    expect(sent(timedOut.effects).map((message) => message.type)).toEqual([
      'pre-vote-request',
      'pre-vote-request',
    ])
    const refusedOnce = machine.step(
      timedOut.state,
      machine.messageInput(late, n2, { type: 'pre-vote', epoch: 1, granted: false, current: 0 }),
    )
    expect(refusedOnce.state.epoch).toBe(0)
    const granted = machine.step(
      refusedOnce.state,
      machine.messageInput(late, n3, { type: 'pre-vote', epoch: 1, granted: true, current: 0 }),
    )
    expect(granted.state.role).toBe('candidate')
    expect(granted.state.epoch).toBe(1)
    expect(sent(granted.effects).filter((message) => message.type === 'vote-request')).toHaveLength(2)

    const behind = machine.step(
      timedOut.state,
      machine.messageInput(late, n2, { type: 'pre-vote', epoch: 1, granted: false, current: 4 }),
    )
    expect(behind.state.epoch).toBe(4)
    expect(behind.state.preVotes).toBeNull()
  })

  it('refuses malformed pre-vote messages and a non-boolean preVote setting', () => {
    const config = createSingleLeaderConfig({ nodes: ['n1', 'n2', 'n3'], replication: { mode: 'sync' } })
    const machine = createSingleLeaderMachine('n2', config)
    const base = machine.recover([], 0)
    for (const bad of [
      { type: 'pre-vote-request', epoch: -1, lastLsn: 0, lastEpoch: 0 },
      { type: 'pre-vote-request', epoch: 1, lastLsn: 0 },
      { type: 'pre-vote', epoch: 1, granted: 'yes', current: 0 },
      { type: 'pre-vote', epoch: 1, granted: true },
    ]) {
      let error: unknown
      try {
        machine.step(base, machine.messageInput(1, asNodeId('n1'), bad))
      } catch (caught) {
        error = caught
      }
      expect(isChorusError(error) && error.code, JSON.stringify(bad)).toBe('invalid-message')
    }
    expect(() => createSingleLeaderConfig({ nodes: ['n1'], preVote: 'yes' as unknown as boolean })).toThrow(
      /preVote must be true or false/,
    )
  })
})
