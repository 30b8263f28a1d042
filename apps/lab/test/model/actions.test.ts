import { isChorusError } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { createLab, defaultSettings } from '../../src/model/index.js'
import type { Design, Lab, LabAction, LabView, NodeView } from '../../src/model/types.js'

function node(view: LabView, id: string): NodeView {
  const found = view.nodes.find((candidate) => candidate.id === id)
  if (found === undefined) throw new Error(`no node ${id}`)
  return found
}

async function rejects(lab: Lab, action: LabAction): Promise<string> {
  try {
    await lab.apply(action)
  } catch (error) {
    expect(isChorusError(error, 'invalid-argument')).toBe(true)
    return (error as Error).message
  }
  throw new Error(`${JSON.stringify(action)} was accepted`)
}

const designs: readonly [Design, string, string][] = [
  ['single-leader', 'n1', 'n2'],
  ['quorum', 'n2', 'n3'],
  ['multi-leader', 'r2', 'relay'],
]

describe.each(designs)('%s actions', (design, a, b) => {
  it('start at lab time 0 with every node up and every link that carries messages listed', async () => {
    const lab = await createLab(defaultSettings(design))
    const view = lab.view()
    expect(view.now).toBe(0)
    expect(view.nodes.every((n) => n.up && !n.paused)).toBe(true)
    const n = view.nodes.length
    // Multi-leader replicas talk only to the relay: one link each. Server nodes: every pair.
    expect(view.links).toHaveLength(design === 'multi-leader' ? n - 1 : (n * (n - 1)) / 2)
    expect(view.links.every((link) => link.latencyMs === 40 && !link.cut)).toBe(true)
  })

  it('latency changes when messages on that link arrive', async () => {
    const lab = await createLab(defaultSettings(design))
    await lab.apply({ type: 'latency', a, b, ms: 700 })
    expect(lab.view().links.find((link) => link.a === a && link.b === b)?.latencyMs).toBe(700)
    const seen = new Map<number, { sentAt: number; arrivesAt: number; from: string; to: string }>()
    for (let i = 0; i < 30; i++) {
      await lab.apply({
        type: 'write',
        client: 'c1',
        node: design === 'multi-leader' ? 'r1' : 'n1',
        key: 'x',
        value: `${i}`,
      })
      await lab.advance(50)
      for (const message of lab.view().messages) seen.set(message.id, message)
    }
    const onLink = [...seen.values()].filter(
      (m) => (m.from === a && m.to === b) || (m.from === b && m.to === a),
    )
    const elsewhere = [...seen.values()].filter((m) => !onLink.includes(m))
    expect(onLink.length).toBeGreaterThan(0)
    for (const m of onLink) expect(m.arrivesAt - m.sentAt).toBe(700)
    for (const m of elsewhere) expect(m.arrivesAt - m.sentAt).toBe(40)
  })

  it('lists a message in flight from its send until its delivery, then drops it', async () => {
    const lab = await createLab(defaultSettings(design))
    await lab.apply({
      type: 'write',
      client: 'c1',
      node: design === 'multi-leader' ? 'r1' : 'n1',
      key: 'x',
      value: '1',
    })
    const first = new Map<number, { sentAt: number; arrivesAt: number }>()
    const lastSeen = new Map<number, number>()
    for (let t = 0; t < 1000; t += 5) {
      await lab.advance(5)
      const now = lab.now()
      for (const m of lab.view().messages) {
        expect(m.arrivesAt).toBeGreaterThanOrEqual(m.sentAt)
        expect(m.sentAt).toBeLessThanOrEqual(now)
        if (m.dropped === undefined) expect(m.arrivesAt).toBeGreaterThan(now)
        if (!first.has(m.id)) first.set(m.id, m)
        lastSeen.set(m.id, now)
      }
    }
    expect(first.size).toBeGreaterThan(3)
    for (const [id, m] of first) {
      if ((lastSeen.get(id) ?? 0) < 995) expect(lastSeen.get(id)).toBeLessThan(m.arrivesAt)
    }
  })

  it('cut blocks the link both ways until heal', async () => {
    const lab = await createLab(defaultSettings(design))
    await lab.apply({ type: 'cut', a, b })
    expect(lab.view().links.find((link) => link.a === a && link.b === b)?.cut).toBe(true)
    const delivered: string[] = []
    for (let i = 0; i < 40; i++) {
      await lab.advance(25)
      for (const m of lab.view().messages) {
        if ((m.from === a && m.to === b) || (m.from === b && m.to === a))
          delivered.push(m.dropped ?? 'in flight')
      }
    }
    expect(delivered.every((fate) => fate === 'cut')).toBe(true)
    await lab.apply({ type: 'heal' })
    expect(lab.view().links.every((link) => !link.cut)).toBe(true)
  })

  it('holds no more of the messages a cut drops as the cut lasts', async () => {
    const lab = await createLab(defaultSettings(design))
    await lab.apply({ type: 'cut', a, b })
    await lab.advance(60_000)
    const held = lab.messagesHeld()
    await lab.advance(180_000)
    // Whatever is in flight at a moment, not every message the cut dropped since it began.
    expect(lab.messagesHeld()).toBeLessThanOrEqual(Math.max(held, 20))
  })

  it('kill takes a node down and restart brings it back with its disk', async () => {
    const lab = await createLab(defaultSettings(design))
    const writer = design === 'multi-leader' ? 'r2' : 'n1'
    await lab.apply({ type: 'write', client: 'c1', node: writer, key: 'k', value: 'kept' })
    await lab.advance(1500)
    const victim = design === 'multi-leader' ? 'r2' : 'n2'
    const before = node(lab.view(), victim).values
    expect(before).toEqual([{ key: 'k', values: ['kept'] }])
    await lab.apply({ type: 'kill', node: victim })
    expect(node(lab.view(), victim).up).toBe(false)
    expect(await rejects(lab, { type: 'kill', node: victim })).toContain('restart')
    await lab.advance(1000)
    await lab.apply({ type: 'restart', node: victim })
    await lab.advance(1500)
    expect(node(lab.view(), victim)).toMatchObject({ up: true, values: before })
    expect(lab.view().timeline.map((event) => event.kind)).toEqual(expect.arrayContaining(['node']))
  })

  it('rejects unknown nodes, actions outside the design and bad values with invalid-argument', async () => {
    const lab = await createLab(defaultSettings(design))
    expect(await rejects(lab, { type: 'kill', node: 'n9' })).toContain('unknown node')
    expect(await rejects(lab, { type: 'latency', a, b, ms: -1 })).toContain('latency')
    expect(await rejects(lab, { type: 'write', client: a, node: a, key: 'x', value: '1' })).toContain(
      'is a node',
    )
    expect(await rejects(lab, { type: 'restart', node: a })).toContain('kill it')
    if (design !== 'single-leader')
      expect(await rejects(lab, { type: 'promote', node: a })).toContain('single-leader')
    if (design !== 'multi-leader') {
      expect(await rejects(lab, { type: 'resolve', node: a, key: 'x', value: '1' })).toContain('multi-leader')
    }
    expect(lab.actions()).toEqual([])
  })
})

describe('single-leader actions', () => {
  it('a follower cut off from the leader shows how far behind it falls, though it hears nothing', async () => {
    const settings = defaultSettings('single-leader')
    const lab = await createLab({
      ...settings,
      singleLeader: { ...settings.singleLeader, replication: 'async' },
    })
    await lab.apply({ type: 'cut', a: 'n1', b: 'n3' })
    for (const value of ['1', '2', '3']) {
      await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value })
      await lab.advance(300)
    }
    const leader = node(lab.view(), 'n1')
    const cut = node(lab.view(), 'n3')
    expect(cut.lsn).toBeLessThan(leader.commitLsn ?? 0)
    expect(cut.lag).toBe((leader.commitLsn ?? 0) - (cut.commitLsn ?? 0))
    expect(cut.lag).toBeGreaterThanOrEqual(3)
    expect(node(lab.view(), 'n2').lag).toBe(0)
    // Behind is not divergent: what it has is what the leader had then.
    expect(lab.view().scoreboard.divergentReplicas).toBe(0)
  })

  it('shows a leader killed as down, leading nothing, with the data it had', async () => {
    const lab = await createLab(defaultSettings('single-leader'))
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' })
    await lab.advance(500)
    expect(node(lab.view(), 'n1').role).toBe('leader')
    await lab.apply({ type: 'kill', node: 'n1' })
    const killed = node(lab.view(), 'n1')
    expect(killed).toMatchObject({ up: false, role: 'down', values: [{ key: 'x', values: ['1'] }] })
    expect(lab.view().nodes.filter((candidate) => candidate.role === 'leader')).toEqual([])
    await lab.advance(3_000)
    const leaders = lab.view().nodes.filter((candidate) => candidate.role === 'leader')
    expect(leaders.map((leader) => leader.id)).toEqual([expect.stringMatching(/^n[23]$/)])
    expect(node(lab.view(), 'n1').role).toBe('down')
  })

  it('shows the chain on the leader: a member cut off from its predecessor moves to the end, catching up', async () => {
    const settings = defaultSettings('single-leader')
    const lab = await createLab({ ...settings, singleLeader: { ...settings.singleLeader, chain: true } })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' })
    await lab.advance(300)
    expect(node(lab.view(), 'n1').chain).toEqual({ nodes: ['n1', 'n2', 'n3'], counted: 3 })
    expect(node(lab.view(), 'n2').chain).toBeUndefined()
    await lab.apply({ type: 'cut', a: 'n2', b: 'n3' })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '2' })
    await lab.advance(3_000)
    expect(node(lab.view(), 'n1').chain).toEqual({ nodes: ['n1', 'n2', 'n3'], counted: 2 })
    expect(node(lab.view(), 'n3').lag).toBeGreaterThan(0)
    await lab.apply({ type: 'heal' })
    await lab.advance(3_000)
    expect(node(lab.view(), 'n1').chain).toEqual({ nodes: ['n1', 'n2', 'n3'], counted: 3 })
    expect(node(lab.view(), 'n3').lag).toBe(0)
  })

  it('pause stops a node, which resumes with the state it had', async () => {
    const lab = await createLab(defaultSettings('single-leader'))
    await lab.apply({ type: 'pause', node: 'n3', ms: 400 })
    expect(node(lab.view(), 'n3')).toMatchObject({ up: true, paused: true })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' })
    await lab.advance(300)
    expect(node(lab.view(), 'n3').values).toEqual([])
    await lab.advance(300)
    expect(node(lab.view(), 'n3')).toMatchObject({ paused: false, values: [{ key: 'x', values: ['1'] }] })
    expect(lab.view().timeline.map((event) => event.text)).toContain('n3 resumes')
  })

  it('tells of a resume only for the pause in force, and refuses to promote a paused node', async () => {
    const lab = await createLab(defaultSettings('single-leader'))
    await lab.apply({ type: 'pause', node: 'n2', ms: 400 })
    expect(await rejects(lab, { type: 'promote', node: 'n2' })).toContain('is paused')
    // Killed and restarted while paused: it runs again, and no resume is told at the pause's end.
    await lab.advance(100)
    await lab.apply({ type: 'kill', node: 'n2' })
    await lab.apply({ type: 'restart', node: 'n2' })
    await lab.advance(500)
    const texts = lab.view().timeline.map((event) => event.text)
    expect(texts).not.toContain('n2 resumes')
    expect(node(lab.view(), 'n2')).toMatchObject({ up: true, paused: false })
  })

  it('promote raises the epoch and makes the follower lead', async () => {
    const lab = await createLab(defaultSettings('single-leader'))
    const epoch = node(lab.view(), 'n2').epoch ?? 0
    await lab.apply({ type: 'promote', node: 'n2' })
    await lab.advance(500)
    const view = lab.view()
    expect(node(view, 'n2')).toMatchObject({ role: 'leader' })
    expect(node(view, 'n2').epoch).toBeGreaterThan(epoch)
    expect(view.scoreboard.leaders).toBe(1)
    expect(node(view, 'n1').role).toBe('follower')
    expect(await rejects(lab, { type: 'promote', node: 'n2' })).toContain('already leads')
  })

  it('starts a client operation at once and settles it as time runs', async () => {
    const lab = await createLab(defaultSettings('single-leader'))
    await lab.apply({ type: 'write', client: 'c1', node: 'n2', key: 'x', value: '1' })
    const [op] = lab.view().operations
    expect(op).toMatchObject({ startedAt: 0, kind: 'write' })
    expect(op?.endedAt).toBeUndefined()
    await lab.advance(200)
    expect(lab.view().operations[0]).toMatchObject({ outcome: 'rejected', endedAt: 80 })
    expect(lab.view().scoreboard.rejectedWrites).toBe(1)
  })

  it('monotonic reads carry the highest LSN the client has read', async () => {
    const lab = await createLab(defaultSettings('single-leader'))
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' })
    await lab.advance(300)
    await lab.apply({ type: 'read', client: 'c2', node: 'n1', key: 'x', mode: 'any' })
    await lab.advance(200)
    await lab.apply({ type: 'latency', a: 'n1', b: 'n3', ms: 400 })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '2' })
    await lab.advance(100)
    await lab.apply({ type: 'read', client: 'c2', node: 'n1', key: 'x', mode: 'any' })
    await lab.advance(100)
    await lab.apply({ type: 'read', client: 'c2', node: 'n3', key: 'x', mode: 'monotonic' })
    await lab.advance(1000)
    const reads = lab.view().operations.filter((op) => op.kind === 'read')
    expect(reads.map((op) => op.value)).toEqual(['1', '2', '2'])
    expect(lab.view().timeline.some((event) => event.text.includes('monotonic, needs LSN 3'))).toBe(true)
  })
})

describe('quorum actions', () => {
  it('a put held by nodes that are only down is not counted lost', async () => {
    const lab = await createLab({ ...defaultSettings('quorum'), nodes: 3 })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' })
    await lab.advance(500)
    expect(lab.view().scoreboard).toMatchObject({ acknowledgedWrites: 1, lostAcknowledgedWrites: 0 })
    for (const id of ['n1', 'n2', 'n3']) await lab.apply({ type: 'kill', node: id })
    expect(lab.view().scoreboard.lostAcknowledgedWrites).toBe(0)
  })

  it('one pair of concurrent versions is one conflict, however often it is read', async () => {
    const settings = defaultSettings('quorum')
    const lab = await createLab({ ...settings, nodes: 3, quorum: { ...settings.quorum, n: 3, w: 1, r: 3 } })
    await lab.apply({ type: 'partition', groups: [['n1'], ['n2', 'n3']] })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: 'a' })
    await lab.apply({ type: 'write', client: 'c2', node: 'n3', key: 'x', value: 'b' })
    await lab.advance(500)
    await lab.apply({ type: 'heal' })
    for (let read = 0; read < 3; read++) {
      await lab.apply({ type: 'read', client: 'c3', node: 'n2', key: 'x', mode: 'any' })
      await lab.advance(500)
    }
    expect(lab.view().operations.filter((op) => op.kind === 'read').length).toBe(3)
    expect(lab.view().scoreboard.conflicts).toBe(1)
  })

  it('sloppy: a stand-in shows the hint it holds for a home node out of reach', async () => {
    const settings = defaultSettings('quorum')
    const lab = await createLab({ ...settings, quorum: { ...settings.quorum, sloppy: true } })
    await lab.apply({ type: 'write', client: 'c1', node: 'n1', key: 'x', value: 'old' })
    await lab.advance(1_000)
    const homes = lab
      .view()
      .nodes.filter((view) => view.values.some((entry) => entry.key === 'x'))
      .map((view) => view.id)
    const others = lab
      .view()
      .nodes.map((view) => view.id)
      .filter((id) => !homes.includes(id))
    expect(homes).toHaveLength(3)
    // Two of x's home nodes are cut off from the rest, one of which coordinates: a sloppy put
    // takes the home in reach and stand-ins for the two out of reach.
    await lab.apply({ type: 'partition', groups: [[...others, homes[0] as string], homes.slice(1)] })
    // Long enough for the coordinator to take the two for down.
    await lab.advance(3_000)
    await lab.apply({ type: 'write', client: 'c1', node: others[0] as string, key: 'x', value: 'new' })
    await lab.advance(1_500)
    const hints = lab
      .view()
      .nodes.flatMap((view) => (view.hints ?? []).map((hint) => ({ at: view.id, ...hint })))
    expect(hints.length).toBeGreaterThan(0)
    expect(hints.every((hint) => hint.key === 'x' && hint.values.includes('new'))).toBe(true)
    expect(hints.every((hint) => hint.at !== hint.home)).toBe(true)
  })
})

describe('multi-leader actions', () => {
  it('three concurrent writes are one conflict, however the replicas come to see them', async () => {
    const settings = defaultSettings('multi-leader')
    const lab = await createLab({ ...settings, multiLeader: { resolver: 'manual' } })
    for (const replica of ['r1', 'r2', 'r3']) await lab.apply({ type: 'cut', a: replica, b: 'relay' })
    for (const [client, replica, value] of [
      ['c1', 'r1', 'a'],
      ['c2', 'r2', 'b'],
      ['c3', 'r3', 'c'],
    ] as const) {
      await lab.apply({ type: 'write', client, node: replica, key: 'x', value })
    }
    await lab.advance(200)
    // r1 and r2 meet first (two versions), r3 later (a third joins).
    await lab.apply({ type: 'heal' })
    await lab.apply({ type: 'cut', a: 'r3', b: 'relay' })
    await lab.advance(2_000)
    expect(lab.view().scoreboard.conflicts).toBe(1)
    await lab.apply({ type: 'heal' })
    await lab.advance(3_000)
    const view = lab.view()
    expect(view.scoreboard).toMatchObject({ conflicts: 1, openConflicts: 1 })
    // The timeline says when r1's conflict grew to three versions.
    expect(view.timeline.map((event) => event.text)).toContainEqual(
      expect.stringMatching(/^r1: conflict on x \(.* \| .* \| .*\)/),
    )
  })

  it('refuses pause and resolve without the manual resolver', async () => {
    const lab = await createLab(defaultSettings('multi-leader'))
    expect(await rejects(lab, { type: 'pause', node: 'r1', ms: 100 })).toContain('kill and restart')
    expect(await rejects(lab, { type: 'resolve', node: 'r1', key: 'x', value: '1' })).toContain('manual')
    const manual = await createLab({
      ...defaultSettings('multi-leader'),
      multiLeader: { resolver: 'manual' },
    })
    expect(await rejects(manual, { type: 'resolve', node: 'r1', key: 'x', value: '1' })).toContain(
      'no open conflict',
    )
  })

  it('refuses latency and cuts between two replicas, which never talk directly', async () => {
    const lab = await createLab(defaultSettings('multi-leader'))
    expect(lab.view().links.every((link) => link.a === 'relay' || link.b === 'relay')).toBe(true)
    expect(await rejects(lab, { type: 'cut', a: 'r1', b: 'r2' })).toContain('no messages travel')
    expect(await rejects(lab, { type: 'latency', a: 'r1', b: 'r2', ms: 100 })).toContain('no messages travel')
    expect(lab.actions()).toEqual([])
  })

  it('kills and restarts the relay; replicas keep writing meanwhile', async () => {
    const lab = await createLab(defaultSettings('multi-leader'))
    await lab.apply({ type: 'kill', node: 'relay' })
    expect(node(lab.view(), 'relay').up).toBe(false)
    await lab.apply({ type: 'write', client: 'c1', node: 'r1', key: 'x', value: 'offline' })
    await lab.advance(1000)
    expect(node(lab.view(), 'r2').values).toEqual([])
    await lab.apply({ type: 'restart', node: 'relay' })
    await lab.advance(3000)
    expect(node(lab.view(), 'r2').values).toEqual([{ key: 'x', values: ['offline'] }])
    expect(lab.view().scoreboard).toMatchObject({ acknowledgedWrites: 1, divergentReplicas: 0 })
  })
})
