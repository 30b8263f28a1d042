import type { NodeView } from './model/index.js'

/** What a node reads for a key, as one comparable string (`—` when it holds nothing). */
function reading(node: NodeView, key: string): string {
  const entry = node.values.find((value) => value.key === key)
  return entry === undefined || entry.values.length === 0 ? '—' : [...entry.values].sort().join(' | ')
}

/**
 * Per key, the nodes whose reading differs from the one most nodes share (the first such
 * reading in node order on a tie); with `holdersOnly`, among the nodes that hold the key.
 * Only running data nodes count: a relay holds no readable copy of its own, and a killed node
 * shows what it had, not what it serves. Keys every such node agrees on are left out, so an
 * empty map means no visible divergence.
 */
export function disagreements(
  nodes: readonly NodeView[],
  options: { readonly holdersOnly?: boolean } = {},
): Map<string, Set<string>> {
  const running = nodes.filter((node) => node.up && node.role !== 'relay')
  const keys = [...new Set(running.flatMap((node) => node.values.map((value) => value.key)))].sort()
  const result = new Map<string, Set<string>>()
  for (const key of keys) {
    // In a quorum cluster a key lives on its N home replicas only: the other nodes holding
    // nothing of it is no disagreement (`holdersOnly`).
    const voters =
      options.holdersOnly === true ? running.filter((node) => reading(node, key) !== '—') : running
    const counts = new Map<string, number>()
    for (const node of voters) {
      const text = reading(node, key)
      counts.set(text, (counts.get(text) ?? 0) + 1)
    }
    if (counts.size < 2) continue
    let common = ''
    let most = 0
    for (const [text, count] of counts) {
      if (count > most) {
        common = text
        most = count
      }
    }
    result.set(key, new Set(voters.filter((node) => reading(node, key) !== common).map((node) => node.id)))
  }
  return result
}
