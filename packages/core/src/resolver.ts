import { type Change, type FieldStamps, versionValue } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import type { HlcStamp } from './hlc.js'
import type { ReplicaId } from './ids.js'
import type { JsonObject } from './json.js'

/** One of the concurrent versions of a record, as an application sees it. */
export interface ConflictVersion {
  /** The version's value; `null` when the version is a deletion. */
  readonly value: JsonObject | null
  readonly replicaId: ReplicaId
  readonly hlc: HlcStamp
}

/**
 * What a resolver makes of a record's versions: the value an application reads.
 *
 * `stamps` and `floor` say when each field of that value was last written; a patch written
 * on top of this value carries them, so field-level merging stays exact.
 */
export interface Resolution {
  /** The value to read; `undefined` when the record is deleted. */
  readonly value: JsonObject | undefined
  readonly stamps: FieldStamps
  /** The stamp of fields absent from `value`; `null` when never written. */
  readonly floor: HlcStamp | null
  /** Set by resolvers that leave the decision to the user: the versions to choose between. */
  readonly conflict?: readonly ConflictVersion[]
}

/**
 * Turns a record's versions into the value an application reads.
 *
 * `versions` is never empty and always in canonical order. An implementation must be a
 * deterministic function of that array (no clock, no randomness, no state), so every replica
 * holding the same versions reads the same value: the convergence invariant depends on it.
 */
export interface Resolver {
  readonly kind: string
  resolve(versions: readonly Change[]): Resolution
  /**
   * Optional: `resolve(versions).value` alone, for reads that need no stamps (`get`, `list`).
   * It must return exactly that value; it exists so a read of many records does not build
   * field stamps it drops.
   */
  resolveValue?(versions: readonly Change[]): JsonObject | undefined
}

/** The value a resolver reads from `versions`: `resolveValue` where it has one. */
export function resolveValueWith(resolver: Resolver, versions: readonly Change[]): JsonObject | undefined {
  return resolver.resolveValue !== undefined
    ? resolver.resolveValue(versions)
    : resolver.resolve(versions).value
}

/** The value of the latest version (versions are in canonical order): last write wins. */
export function latestValue(versions: readonly Change[]): JsonObject | undefined {
  return versionValue(latestVersion(versions)) ?? undefined
}

/** The built-in resolver names, for configuration by string. */
export const ResolverKind = {
  Lww: 'lww',
  Merge: 'merge',
  Manual: 'manual',
} as const

/** A built-in resolver name. */
export type ResolverKind = (typeof ResolverKind)[keyof typeof ResolverKind]

/** Describes the versions of a record as conflict entries. */
export function toConflictVersions(versions: readonly Change[]): ConflictVersion[] {
  return versions.map((version) => ({
    value: versionValue(version),
    replicaId: version.dot[0],
    hlc: version.hlc,
  }))
}

/** The version with the highest stamp (versions are in canonical order, so the last). */
export function latestVersion(versions: readonly Change[]): Change {
  const last = versions[versions.length - 1]
  if (last === undefined) throw new ChorusError(ErrorCode.Internal, 'a record must hold at least one version')
  return last
}
