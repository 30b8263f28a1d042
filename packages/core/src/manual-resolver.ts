import { resolveToVersion } from './lww-resolver.js'
import { latestValue, latestVersion, type Resolver, ResolverKind, toConflictVersions } from './resolver.js'

/**
 * Record-for-user: the application shows the conflict and the user decides.
 *
 * Until then it reads a provisional value (the last-write-wins pick, so every replica shows
 * the same one) and `conflict` lists every version. The user's choice is an ordinary write
 * — its context covers all the versions — so it settles the conflict on every replica.
 */
export function createManualResolver(): Resolver {
  return {
    kind: ResolverKind.Manual,
    resolve(versions) {
      const provisional = resolveToVersion(latestVersion(versions))
      if (versions.length === 1) return provisional
      return { ...provisional, conflict: toConflictVersions(versions) }
    },
    resolveValue: latestValue,
  }
}
