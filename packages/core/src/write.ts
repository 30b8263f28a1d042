import type { Change } from './change.js'
import { ChorusError, ErrorCode } from './errors.js'
import { assertJsonObject } from './json.js'
import { type MakeChangeInput, makeCheckedChange, type WriteIntent } from './local-change.js'

export type { MakeChangeInput, WriteIntent } from './local-change.js'

/**
 * Makes the change for a local write.
 *
 * Its context is everything the writer has seen of the record, so it supersedes every
 * version the writer holds — which is how writing after a conflict resolves it. A patch
 * carries the resolved value it was applied to (see {@link PatchOp}). Values are checked to
 * be plain JSON here, before anything is stored.
 */
export function makeChange(input: MakeChangeInput): Change {
  return makeCheckedChange({ ...input, intent: checkedIntent(input.intent) })
}

/** A new intent holding the same values, once they are checked to be plain JSON. */
function checkedIntent(intent: WriteIntent): WriteIntent {
  switch (intent.type) {
    case 'put':
      return { type: 'put', value: assertJsonObject(intent.value, 'a put value') }
    case 'patch':
      return { type: 'patch', fields: assertJsonObject(intent.fields, 'patch fields') }
    case 'delete':
      return intent
    default:
      throw new ChorusError(ErrorCode.InvalidArgument, 'a write must be a put, a patch or a delete')
  }
}
