import { describe, expect, it } from 'vitest'
import { createLab, presetEndMs, presets, replayLab, runPreset } from '../../src/model/index.js'
import type { Lab, LabView, Preset, Scoreboard } from '../../src/model/types.js'

function preset(id: string): Preset {
  const found = presets.find((candidate) => candidate.id === id)
  if (found === undefined) throw new Error(`no preset ${id}`)
  return found
}

function operations(view: LabView, kind: 'write' | 'read') {
  return view.operations.filter((op) => op.kind === kind)
}

const zero: Scoreboard = {
  acknowledgedWrites: 0,
  lostAcknowledgedWrites: 0,
  staleReads: 0,
  conflicts: 0,
  divergentReplicas: 0,
  rejectedWrites: 0,
  leaders: 0,
}

/** Single-leader scoreboards also name the lost writes: none unless a test says which. */
const zeroSingle: Scoreboard = { ...zero, lostWrites: [] }

describe('presets', () => {
  it('lists every id the page uses, each with a story and a script inside its duration', () => {
    expect(presets.map((p) => p.id)).toEqual([
      'async-leader-crash',
      'sync-leader-crash',
      'lagging-follower-read',
      'partition-split-brain',
      'partition-fenced',
      'manual-promote-split-brain',
      'quorum-strict',
      'quorum-weak',
      'multi-leader-conflict',
    ])
    for (const p of presets) {
      expect(p.story.length).toBeGreaterThan(40)
      expect(p.title.length).toBeGreaterThan(0)
      expect(presetEndMs(p)).toBeGreaterThan(Math.max(...p.script.map((step) => step.at)))
    }
  })

  it('async-leader-crash: x = 5 is acknowledged, then lost with the leader', async () => {
    const view = (await runPreset(preset('async-leader-crash'))).view()
    expect(view.scoreboard).toEqual({
      ...zero,
      acknowledgedWrites: 2,
      lostAcknowledgedWrites: 1,
      lostWrites: ['x = 5 (c1, epoch 1, LSN 3)'],
      staleReads: 1,
      leaders: 1,
    })
    const five = operations(view, 'write').find((op) => op.value === '5')
    expect(five?.outcome).toBe('ok')
    expect(five?.detail).toContain('on the leader only')
    expect(operations(view, 'read')[0]).toMatchObject({ value: '4', outcome: 'stale' })
    for (const node of view.nodes) expect(node.values).toEqual([{ key: 'x', values: ['4'] }])
    expect(view.nodes.find((node) => node.id === 'n1')).toMatchObject({ up: true, role: 'follower' })
  })

  it('async-leader-crash: the lost write stays counted while no node leads, and with every node down', async () => {
    const lab = await runPreset(preset('async-leader-crash'))
    const leader = lab.view().nodes.find((node) => node.role === 'leader')?.id as string
    await lab.apply({ type: 'kill', node: leader })
    expect(lab.view().scoreboard).toMatchObject({
      leaders: 0,
      lostAcknowledgedWrites: 1,
      lostWrites: ['x = 5 (c1, epoch 1, LSN 3)'],
    })
    for (const node of lab.view().nodes) if (node.up) await lab.apply({ type: 'kill', node: node.id })
    expect(lab.view().scoreboard).toMatchObject({
      lostAcknowledgedWrites: 1,
      lostWrites: ['x = 5 (c1, epoch 1, LSN 3)'],
    })
  })

  it('sync-leader-crash: x = 5 is never acknowledged, so nothing is lost', async () => {
    const view = (await runPreset(preset('sync-leader-crash'))).view()
    expect(view.scoreboard).toEqual({ ...zeroSingle, acknowledgedWrites: 1, leaders: 1 })
    expect(operations(view, 'write').find((op) => op.value === '5')?.outcome).toBe('timeout')
    expect(operations(view, 'read')[0]).toMatchObject({ value: '4', outcome: 'ok' })
  })

  it('lagging-follower-read: a read at the slow follower is stale; read-your-writes waits', async () => {
    const view = (await runPreset(preset('lagging-follower-read'))).view()
    expect(view.scoreboard).toEqual({ ...zeroSingle, acknowledgedWrites: 2, staleReads: 1, leaders: 1 })
    const [any, own] = operations(view, 'read')
    expect(any).toMatchObject({ mode: 'any', value: '1', outcome: 'stale' })
    expect(own).toMatchObject({ mode: 'read-your-writes', value: '2', outcome: 'ok' })
    expect((own?.endedAt ?? 0) - (own?.startedAt ?? 0)).toBeGreaterThan(200)
  })

  it('partition-split-brain: two leaders accept writes at once, and the replicas diverge', async () => {
    const lab = await createLab(preset('partition-split-brain').settings)
    const p = preset('partition-split-brain')
    let mostLeaders = 0
    for (const { at, action } of p.script) {
      while (lab.now() < at) {
        await lab.advance(Math.min(100, at - lab.now()))
        mostLeaders = Math.max(mostLeaders, lab.view().scoreboard.leaders)
      }
      await lab.apply(action)
    }
    await lab.advance(p.durationMs)
    const view = lab.view()
    expect(mostLeaders).toBe(2)
    expect(view.scoreboard).toEqual({
      ...zero,
      acknowledgedWrites: 3,
      lostAcknowledgedWrites: 1,
      lostWrites: ['x = 3 (c1, epoch 1, LSN 3)'],
      staleReads: 1,
      divergentReplicas: 1,
      leaders: 2,
    })
    expect(operations(view, 'write').map((op) => op.outcome)).toEqual(['ok', 'ok', 'ok'])
    const values = Object.fromEntries(view.nodes.map((node) => [node.id, node.values[0]?.values[0]]))
    expect(values).toEqual({ n1: '3', n2: '2', n3: '2' })
  })

  it('partition-fenced: the old leader’s write is rejected and nothing diverges', async () => {
    const view = (await runPreset(preset('partition-fenced'))).view()
    expect(view.scoreboard).toEqual({ ...zeroSingle, acknowledgedWrites: 2, rejectedWrites: 1, leaders: 1 })
    const old = operations(view, 'write').find((op) => op.node === 'n1' && op.value === '3')
    expect(old).toMatchObject({ outcome: 'rejected' })
    expect(old?.detail).toContain('not-leader')
    for (const node of view.nodes) expect(node.values).toEqual([{ key: 'x', values: ['2'] }])
  })

  it('manual-promote-split-brain: n1 and n2 both lead and both accept x', async () => {
    const view = (await runPreset(preset('manual-promote-split-brain'))).view()
    expect(view.scoreboard).toEqual({
      ...zero,
      acknowledgedWrites: 3,
      lostAcknowledgedWrites: 1,
      lostWrites: ['x = 3 (c1, epoch 1, LSN 3)'],
      divergentReplicas: 1,
      leaders: 2,
    })
    const leaders = view.nodes.filter((node) => node.role === 'leader')
    expect(leaders.map((node) => [node.id, node.epoch])).toEqual([
      ['n1', 1],
      ['n2', 2],
    ])
  })

  it('quorum-strict: W + R > N with blocking read repair gives no stale read', async () => {
    const view = (await runPreset(preset('quorum-strict'))).view()
    expect(view.scoreboard).toEqual({ ...zero, acknowledgedWrites: 4 })
    expect(operations(view, 'read').map((op) => op.value)).toEqual(['1', '2', '3', '4'])
  })

  it('quorum-weak: W + R ≤ N on the same workload reads stale values', async () => {
    const view = (await runPreset(preset('quorum-weak'))).view()
    expect(view.scoreboard).toEqual({ ...zero, acknowledgedWrites: 4, staleReads: 4 })
    expect(operations(view, 'read').every((op) => op.outcome === 'stale')).toBe(true)
  })

  it('multi-leader-conflict: the conflict appears on every replica and lww settles it', async () => {
    const view = (await runPreset(preset('multi-leader-conflict'))).view()
    expect(view.scoreboard).toEqual({
      ...zero,
      acknowledgedWrites: 3,
      conflicts: 1,
      leaders: 3,
      openConflicts: 0,
    })
    const replicas = view.nodes.filter((node) => node.role === 'replica')
    for (const node of replicas) {
      expect(node.values).toEqual([{ key: 'x', values: ['blue', 'green'], resolved: 'green' }])
    }
    expect(view.timeline.filter((event) => event.kind === 'conflict')).toHaveLength(3)
  })

  it('multi-leader-conflict with the manual resolver: open until a person resolves it', async () => {
    const p = preset('multi-leader-conflict')
    const lab: Lab = await replayLab(
      { ...p.settings, multiLeader: { resolver: 'manual' } },
      p.script,
      presetEndMs(p),
    )
    let view = lab.view()
    expect(view.scoreboard).toMatchObject({ conflicts: 1, openConflicts: 1, divergentReplicas: 0 })
    expect(view.nodes[0]?.values[0]).toMatchObject({ key: 'x', conflict: true })
    await lab.apply({ type: 'resolve', node: 'r1', key: 'x', value: 'teal' })
    await lab.advance(3000)
    view = lab.view()
    expect(view.scoreboard).toMatchObject({
      conflicts: 1,
      openConflicts: 0,
      divergentReplicas: 0,
      lostAcknowledgedWrites: 0,
    })
    for (const node of view.nodes.filter((n) => n.role === 'replica')) {
      expect(node.values).toEqual([{ key: 'x', values: ['teal'] }])
    }
    expect(view.timeline.filter((event) => event.text.includes('settled'))).toHaveLength(3)
  })
})
