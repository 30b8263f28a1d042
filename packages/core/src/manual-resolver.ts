import type { Change } from './change.js'
import { versionValue } from './change.js'
import { jsonEqual } from './json.js'
import { resolveToVersion } from './lww-resolver.js'
import { latestValue, latestVersion, type Resolver, ResolverKind, toConflictVersions } from './resolver.js'

/**
 * Record-for-user: the application shows the conflict and the user decides.
 *
 * Until then it reads a provisional value (the last-write-wins pick, so every replica shows
 * the same one) and `conflict` lists every version. The user's choice is an ordinary write
 * — its context covers all the versions — so it settles the conflict on every replica.
 *
 * Concurrent versions that all hold the same value (two devices that settled a conflict the
 * same way, or deleted a record, while apart) are no conflict: there is nothing to choose.
 * They stay siblings until the next write covers them.
 */
export function createManualResolver(): Resolver {
  return {
    kind: ResolverKind.Manual,
    resolve(versions) {
      const provisional = resolveToVersion(latestVersion(versions))
      if (versions.length === 1 || allSame(versions)) return provisional
      return { ...provisional, conflict: toConflictVersions(versions) }
    },
    resolveValue: latestValue,
  }
}

/** True when every version holds the same value (deletions: none). */
function allSame(versions: readonly Change[]): boolean {
  const [first, ...rest] = versions
  if (first === undefined) return true
  const value = versionValue(first)
  return rest.every((version) => {
    const other = versionValue(version)
    return value === null || other === null ? value === other : jsonEqual(value, other)
  })
}
