import type { Change, FieldStamps, Op } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import type { HlcStamp } from './hlc.js'
import type { RecordId } from './ids.js'
import { assertJsonObject, type JsonObject, type JsonValue } from './json.js'
import { type RecordState, recordContext } from './record.js'
import type { Resolver } from './resolver.js'
import type { Dot } from './version-vector.js'

/** What an application asks for: the three kinds of write. */
export type WriteIntent =
  | { readonly type: 'put'; readonly value: JsonObject }
  | { readonly type: 'patch'; readonly fields: JsonObject }
  | { readonly type: 'delete' }

/** Everything needed to turn an intent into a change. */
export interface MakeChangeInput {
  readonly collection: string
  readonly id: RecordId
  /** The record as the writer holds it now. */
  readonly record: RecordState | undefined
  /** The collection's resolver: a patch applies on top of what the writer reads. */
  readonly resolver: Resolver
  readonly intent: WriteIntent
  readonly dot: Dot
  readonly hlc: HlcStamp
}

/**
 * Makes the change for a local write.
 *
 * Its context is everything the writer has seen of the record, so it supersedes every
 * version the writer holds — which is how writing after a conflict resolves it. A patch
 * carries the resolved value it was applied to (see {@link PatchOp}). Values are checked to
 * be plain JSON here, before anything is stored.
 */
export function makeChange(input: MakeChangeInput): Change {
  const { collection, id, record, resolver, intent, dot, hlc } = input
  const context = recordContext(record)
  return { collection, id, dot, context, hlc, op: makeOp(intent, record, resolver) }
}

function makeOp(intent: WriteIntent, record: RecordState | undefined, resolver: Resolver): Op {
  switch (intent.type) {
    case 'put':
      return { type: 'put', value: assertJsonObject(intent.value, 'a put value') }
    case 'delete':
      return { type: 'delete' }
    case 'patch': {
      const fields = assertJsonObject(intent.fields, 'patch fields')
      if (record === undefined) return { type: 'patch', fields, base: {}, stamps: {}, floor: null }
      const resolved = resolver.resolve(record.versions)
      const base: Record<string, JsonValue> = {}
      const stamps: Record<string, HlcStamp> = {}
      for (const [field, value] of Object.entries(resolved.value ?? {})) {
        if (Object.hasOwn(fields, field)) continue
        base[field] = value
        if (Object.hasOwn(resolved.stamps, field)) stamps[field] = resolved.stamps[field] as HlcStamp
      }
      return { type: 'patch', fields, base, stamps: stamps as FieldStamps, floor: resolved.floor }
    }
    default:
      throw new ChorusError(ErrorCode.InvalidArgument, 'a write must be a put, a patch or a delete')
  }
}
