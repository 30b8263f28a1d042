/** Why a copy was blocked: which rule stopped it. */
export type BlockReason = 'partition' | 'cut' | 'sender-down' | 'target-down'

/**
 * One observable event of a `SimNetwork`, stamped with virtual time, for debugging and replay checks.
 *
 * Message events share the `id` given at send, so both copies of a duplicate and the fate of
 * every copy can be followed; two runs from the same seed produce equal traces.
 */
export type SimTraceEvent<TMessage = unknown> =
  | {
      readonly type: 'send'
      readonly time: number
      readonly id: number
      readonly from: string
      readonly to: string
      readonly message: TMessage
    }
  /**
   * A copy was put on the wire (after the send passed every check, once per copy of a
   * duplicate): it is due at `deliverAt`, when it is delivered unless a partition, a cut or
   * the target's crash blocks it then.
   */
  | {
      readonly type: 'schedule'
      readonly time: number
      readonly id: number
      readonly from: string
      readonly to: string
      readonly deliverAt: number
    }
  | {
      readonly type: 'deliver'
      readonly time: number
      readonly id: number
      readonly from: string
      readonly to: string
      readonly message: TMessage
    }
  | {
      readonly type: 'lost'
      readonly time: number
      readonly id: number
      readonly from: string
      readonly to: string
    }
  | {
      readonly type: 'duplicate'
      readonly time: number
      readonly id: number
      readonly from: string
      readonly to: string
    }
  | {
      readonly type: 'blocked'
      readonly time: number
      readonly id: number
      readonly from: string
      readonly to: string
      readonly reason: BlockReason
      readonly stage: 'send' | 'delivery'
    }
  | { readonly type: 'crash'; readonly time: number; readonly node: string; readonly cancelledTimers: number }
  | { readonly type: 'restart'; readonly time: number; readonly node: string }
  | { readonly type: 'partition'; readonly time: number; readonly groups: readonly (readonly string[])[] }
  | { readonly type: 'cut'; readonly time: number; readonly from: string; readonly to: string }
  | { readonly type: 'heal'; readonly time: number }
