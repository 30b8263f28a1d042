import { absentStampOf, type Change, type FieldStamps, fieldStampOf, versionValue } from './change.js'
import type { HlcStamp } from './hlc.js'
import { latestValue, latestVersion, type Resolution, type Resolver, ResolverKind } from './resolver.js'

/** The value and field stamps of one version, as a resolution. */
export function resolveToVersion(version: Change): Resolution {
  const value = versionValue(version)
  if (value === null) return { value: undefined, stamps: {}, floor: version.hlc }
  const stamps: Record<string, HlcStamp> = {}
  for (const field of Object.keys(value)) {
    const stamp = fieldStampOf(version, field)
    if (stamp !== null) stamps[field] = stamp
  }
  return { value, stamps: stamps as FieldStamps, floor: absentStampOf(version) }
}

/**
 * Last write wins: the version with the highest hybrid-clock stamp, ties by replica id.
 *
 * Simple and always converges, but a concurrent write loses silently; use `merge` or
 * `manual` where that matters. Because stamps are hybrid clocks, a replica whose wall clock
 * is ahead wins concurrent writes by that much (bounded by the clock's drift limit).
 */
export function createLwwResolver(): Resolver {
  return {
    kind: ResolverKind.Lww,
    resolve: (versions) => resolveToVersion(latestVersion(versions)),
    resolveValue: latestValue,
  }
}
