import type { JsonValue } from '@chorus/core'
import { jsonCharsBound, MAX_BATCH_CHARS } from '../message-budget.js'
import type { QuorumInput, QuorumMessage, StoreItem } from './messages.js'

/**
 * Joins the messages a node sends one peer after a batch of its inputs: every `store` into one
 * `store-batch` and every `stored` into one `stored-batch`, each at the place of the first it
 * replaces; other messages stay as they are. A single `store` or `stored` is left alone.
 *
 * Nothing is sent earlier than it would have been (a runtime calls this with messages it is
 * about to send), and the receiver handles a batch's items exactly as the separate messages, so
 * every put is still acknowledged to its client only after W replicas stored it. A batch holds
 * at most {@link MAX_MESSAGE_BATCH} items, and no more versions than `MAX_BATCH_CHARS` of JSON
 * (an item longer than that goes alone); more start another. Quorum
 * messages may be lost, duplicated and reordered, so a batch lost as a whole is no new case.
 */
/** Most items of one `store-batch` or ops of one `stored-batch` (what a receiver accepts). */
export const MAX_MESSAGE_BATCH = 4096

export function batchQuorumMessages(messages: readonly QuorumMessage[]): QuorumMessage[] {
  let stores = 0
  let acks = 0
  for (const message of messages) {
    if (message.type === 'store') stores++
    else if (message.type === 'stored') acks++
  }
  if (stores < 2 && acks < 2) return [...messages]
  let items: StoreItem[] = []
  let chars = 0
  let ops: string[] = []
  const batched: QuorumMessage[] = []
  for (const message of messages) {
    if (message.type === 'store' && stores > 1) {
      const adding = jsonCharsBound(message.versions as unknown as JsonValue) + message.key.length
      if (items.length === 0 || items.length === MAX_MESSAGE_BATCH || chars + adding > MAX_BATCH_CHARS) {
        items = []
        chars = 0
        batched.push({ type: 'store-batch', items })
      }
      chars += adding
      items.push({ op: message.op, key: message.key, versions: message.versions, hintFor: message.hintFor })
    } else if (message.type === 'stored' && acks > 1) {
      if (ops.length === 0 || ops.length === MAX_MESSAGE_BATCH) {
        ops = []
        batched.push({ type: 'stored-batch', ops })
      }
      ops.push(message.op)
    } else batched.push(message)
  }
  return batched
}

/**
 * True for an acknowledgement a coordinator is waiting for (`stored`, `stored-batch`,
 * `coordinated`): what a runtime may step ahead of the other inputs of a batch (`stepFirst`).
 *
 * Handling one persists nothing and may complete puts, so stepped first its replies leave
 * before the batch's commit instead of after the fsync of puts and stores that arrived with it.
 * The machine takes its messages in any order (the network may reorder them), and the inputs
 * of one batch are concurrent, so stepping these first is an order the network could have
 * given. The input is not validated yet: a malformed one is merely stepped first, and refused.
 */
export function isQuorumAcknowledgement(input: QuorumInput): boolean {
  if (input.type !== 'message') return false
  const message: unknown = input.message
  if (typeof message !== 'object' || message === null) return false
  const type = (message as { readonly type?: unknown }).type
  return type === 'stored-batch' || type === 'stored' || type === 'coordinated'
}
