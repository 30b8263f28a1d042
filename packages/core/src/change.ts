import type { HlcStamp } from './hlc.js'
import type { RecordId } from './ids.js'
import type { JsonObject } from './json.js'
import type { Dot, VersionVector } from './version-vector.js'

/** Per-field last-write stamps, for field-level merging. */
export type FieldStamps = { readonly [field: string]: HlcStamp }

/** Replace the whole value. Every field, present or absent, is stamped with the change's hlc. */
export interface PutOp {
  readonly type: 'put'
  readonly value: JsonObject
}

/**
 * Set some fields, keeping the others as the writer saw them.
 *
 * The writer's view of the untouched fields travels with the patch (`base`, with their
 * stamps), so a receiver computes the same value whatever else it has or has not received:
 * that is what keeps a replica's state a pure function of the set of changes it holds.
 */
export interface PatchOp {
  readonly type: 'patch'
  /** The fields this change sets; stamped with the change's hlc. */
  readonly fields: JsonObject
  /** The other fields, as the writer's resolved view had them; disjoint from `fields`. */
  readonly base: JsonObject
  /** The last-write stamp of each field in `base`. */
  readonly stamps: FieldStamps
  /** The stamp of fields absent from both; `null` when the record did not exist before. */
  readonly floor: HlcStamp | null
}

/** Delete the record: a tombstone version. */
export interface DeleteOp {
  readonly type: 'delete'
}

/** What a change does to its record. */
export type Op = PutOp | PatchOp | DeleteOp

/**
 * One write to one record: the unit of replication.
 *
 * `dot` names the event; `context` is everything the writer had seen of this record when it
 * wrote (it never contains `dot` itself); `hlc` orders concurrent versions for resolvers.
 * A change is immutable once made and is also a version (sibling) of its record.
 * The space is named once per batch on the wire, not in each change.
 */
export interface Change {
  readonly collection: string
  readonly id: RecordId
  readonly dot: Dot
  readonly context: VersionVector
  readonly hlc: HlcStamp
  readonly op: Op
}

/** The value a version holds: the object, or `null` for a tombstone. */
export function versionValue(change: Change): JsonObject | null {
  switch (change.op.type) {
    case 'put':
      return change.op.value
    case 'patch':
      return Object.freeze({ ...change.op.base, ...change.op.fields })
    case 'delete':
      return null
  }
}

/**
 * When `field` was last written, as this version knows it; `null` for "never".
 *
 * Put and delete write every field (absent ones included) at the change's hlc; a patch
 * writes its own fields and inherits the writer's stamps for the rest.
 */
export function fieldStampOf(change: Change, field: string): HlcStamp | null {
  const op = change.op
  if (op.type !== 'patch' || Object.hasOwn(op.fields, field)) return change.hlc
  return Object.hasOwn(op.stamps, field) ? (op.stamps[field] as HlcStamp) : op.floor
}

/** The stamp this version gives to fields it does not hold. */
export function absentStampOf(change: Change): HlcStamp | null {
  return change.op.type === 'patch' ? change.op.floor : change.hlc
}
