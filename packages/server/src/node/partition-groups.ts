import { ChorusError, ErrorCode } from '@chorus/core'

/**
 * Checks a partition's groups against the cluster's members: at least two groups, none empty,
 * every member in exactly one. Throws `invalid-argument` naming the first problem.
 *
 * Shared by the cluster's control API and each node's own, so that a node told directly cannot
 * be given groups the cluster would refuse: a node left out of every group, or groups that are
 * empty, would cut it off from every peer without anyone having asked for that.
 */
export function checkPartitionGroups(groups: unknown, nodes: readonly string[]): string[][] {
  if (
    !Array.isArray(groups) ||
    groups.length < 2 ||
    !groups.every((group) => Array.isArray(group) && group.length > 0)
  ) {
    invalid('groups must be an array of at least two non-empty arrays of node ids')
  }
  const seen = new Set<string>()
  const checked = (groups as unknown[][]).map((group) =>
    group.map((node) => {
      if (typeof node !== 'string' || !nodes.includes(node)) {
        invalid(`every node in groups must name a node of the cluster (${nodes.join(', ')})`)
      }
      if (seen.has(node as string)) invalid(`${node as string} is named in more than one group`)
      seen.add(node as string)
      return node as string
    }),
  )
  const missing = nodes.filter((id) => !seen.has(id))
  if (missing.length > 0) invalid(`every node must be in a group; missing: ${missing.join(', ')}`)
  return checked
}

function invalid(message: string): never {
  throw new ChorusError(ErrorCode.InvalidArgument, message)
}
