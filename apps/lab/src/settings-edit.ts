import type { Design, LabSettings, QuorumSettings } from './model/index.js'

/** The cluster sizes each design runs: a quorum needs three nodes, a relay's star stays small. */
export function nodeRange(design: Design): { readonly min: number; readonly max: number } {
  if (design === 'multi-leader') return { min: 2, max: 5 }
  if (design === 'quorum') return { min: 3, max: 7 }
  return { min: 2, max: 7 }
}

/** Keeps 1 ≤ W, R ≤ N ≤ nodes, whatever slider moved last. */
export function clampQuorum(quorum: QuorumSettings, nodes: number): QuorumSettings {
  const n = Math.max(1, Math.min(quorum.n, nodes))
  return { ...quorum, n, w: Math.max(1, Math.min(quorum.w, n)), r: Math.max(1, Math.min(quorum.r, n)) }
}

/** `settings` with `nodes` changed, the quorum sizes kept within it. */
export function withNodes(settings: LabSettings, nodes: number): LabSettings {
  const range = nodeRange(settings.design)
  const count = Math.max(range.min, Math.min(range.max, Math.round(nodes)))
  return { ...settings, nodes: count, quorum: clampQuorum(settings.quorum, count) }
}

/** `settings` with some quorum sizes or switches changed, kept consistent. */
export function withQuorum(settings: LabSettings, patch: Partial<QuorumSettings>): LabSettings {
  return { ...settings, quorum: clampQuorum({ ...settings.quorum, ...patch }, settings.nodes) }
}

/**
 * Whether a preset's script still fits after its settings changed: it names nodes and actions
 * of one design and one cluster size, so it is kept only when both stay (switching fencing on,
 * or sync replication, replays the same story under the new rule).
 */
export function keepsScript(before: LabSettings, after: LabSettings): boolean {
  return before.design === after.design && before.nodes === after.nodes
}

/** Whether W + R > N, the overlap that makes every read see the latest acknowledged write. */
export function quorumsOverlap(quorum: QuorumSettings): boolean {
  return quorum.w + quorum.r > quorum.n
}
