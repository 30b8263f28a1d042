import { absentStampOf, type Change, type FieldStamps, fieldStampOf, versionValue } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import type { HlcStamp } from './hlc.js'
import { assertJsonObject, type JsonObject, type JsonValue } from './json.js'
import { resolveToVersion } from './lww-resolver.js'
import {
  type ConflictVersion,
  latestValue,
  latestVersion,
  type Resolution,
  type Resolver,
  ResolverKind,
  toConflictVersions,
} from './resolver.js'

/**
 * A user merge: the value to read, from the concurrent versions (oldest first).
 *
 * It must be deterministic — the same versions give the same value on every replica — and
 * must not depend on anything else, or replicas diverge. Return `null` to read as deleted.
 */
export type MergeFunction = (versions: readonly ConflictVersion[]) => JsonObject | null

/** Options for {@link createMergeResolver}. */
export interface MergeResolverOptions {
  /** Replaces the built-in per-field merge. */
  readonly merge?: MergeFunction
}

function newer(a: HlcStamp | null, b: HlcStamp | null): boolean {
  return a !== null && (b === null || a > b)
}

/**
 * Field-level merge: each field takes the value of its latest write.
 *
 * Two replicas that edit different fields of one record concurrently both keep their edit.
 * A deletion wins only if it is later than every concurrent edit; otherwise the edits are
 * merged as if it had not happened. Fields removed by a `put` count as written (absent) at
 * that put's stamp. With `merge`, a user function decides instead.
 */
export function createMergeResolver(options: MergeResolverOptions = {}): Resolver {
  const userMerge = options.merge
  const resolver: Resolver = {
    kind: ResolverKind.Merge,
    resolve(versions) {
      if (versions.length === 1) return resolveToVersion(latestVersion(versions))
      if (userMerge !== undefined) return resolveWithUserMerge(versions, userMerge)
      const latest = latestVersion(versions)
      if (latest.op.type === 'delete') return { value: undefined, stamps: {}, floor: latest.hlc }
      const live = versions.filter((version) => version.op.type !== 'delete')
      return mergeFields(live)
    },
    resolveValue: (versions) =>
      versions.length === 1 ? latestValue(versions) : resolver.resolve(versions).value,
  }
  return resolver
}

function mergeFields(versions: readonly Change[]): Resolution {
  const fields = new Set<string>()
  const values = versions.map((version) => {
    const value = versionValue(version) ?? {}
    for (const field of Object.keys(value)) fields.add(field)
    return value
  })
  const out: Record<string, JsonValue> = {}
  const stamps: Record<string, HlcStamp> = {}
  for (const field of [...fields].sort()) {
    let best: HlcStamp | null = null
    let bestIndex = -1
    for (let i = 0; i < versions.length; i++) {
      const stamp = fieldStampOf(versions[i] as Change, field)
      if (bestIndex === -1 || newer(stamp, best)) {
        best = stamp
        bestIndex = i
      }
    }
    const winner = values[bestIndex] as JsonObject
    if (Object.hasOwn(winner, field) && best !== null) {
      out[field] = winner[field] as JsonValue
      stamps[field] = best
    }
  }
  let floor: HlcStamp | null = null
  for (const version of versions) {
    const stamp = absentStampOf(version)
    if (newer(stamp, floor)) floor = stamp
  }
  return { value: Object.freeze(out), stamps: stamps as FieldStamps, floor }
}

function resolveWithUserMerge(versions: readonly Change[], merge: MergeFunction): Resolution {
  const latest = latestVersion(versions)
  let merged: JsonObject | null
  try {
    merged = merge(toConflictVersions(versions))
  } catch (error) {
    throw new ChorusError(ErrorCode.InvalidArgument, 'the merge function threw', { cause: error })
  }
  if (merged === null) return { value: undefined, stamps: {}, floor: latest.hlc }
  const value = assertJsonObject(merged, 'the merge function result')
  const stamps: Record<string, HlcStamp> = {}
  for (const field of Object.keys(value)) stamps[field] = latest.hlc
  return { value, stamps: stamps as FieldStamps, floor: latest.hlc }
}
