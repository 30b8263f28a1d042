import type { Change, FieldStamps, Op } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import type { HlcStamp } from './hlc.js'
import type { RecordId } from './ids.js'
import type { JsonObject, JsonValue } from './json.js'
import { type RecordState, recordContext } from './record.js'
import type { Resolver } from './resolver.js'
import type { Dot } from './version-vector.js'

/**
 * What an application asks for: the three kinds of write. A put intent has the shape of the
 * put op it becomes.
 */
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
 * Makes the change of an intent whose values are already checked plain JSON, copied and
 * frozen (as `copyJsonObject` returns them): the engine checks and copies a write's value
 * when the write is called, so checking it again here would walk it twice. A put intent
 * becomes the change's op as it is. Not exported from the package: `makeChange` is the
 * public form, which checks.
 */
export function makeCheckedChange(input: MakeChangeInput): Change {
  const { collection, id, record, resolver, intent, dot, hlc } = input
  const context = recordContext(record)
  return { collection, id, dot, context, hlc, op: checkedOp(intent, record, resolver) }
}

function checkedOp(intent: WriteIntent, record: RecordState | undefined, resolver: Resolver): Op {
  switch (intent.type) {
    case 'put':
      return intent
    case 'delete':
      return DELETE_OP
    case 'patch': {
      const { fields } = intent
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

/** Every delete's op: it holds nothing, so one frozen object serves them all. */
const DELETE_OP: Op = Object.freeze({ type: 'delete' })
