import type { JsonValue } from '@chorus/core'
import { jsonCharsBound, MAX_BATCH_CHARS } from '../message-budget.js'
import type { NodeId } from '../node-id.js'
import type { QuorumMessage, QuorumRecord, StoreItem } from './messages.js'
import {
  believedUp,
  bumpStat,
  localVersions,
  type QuorumOut,
  type QuorumState,
  storeVersions,
} from './state.js'
import type { Version } from './versions.js'

/**
 * The replica side: storing versions, answering reads, applying repairs, and hinted handoff.
 *
 * A `store` carries the coordinator's whole sibling set of the key, merged as a read repair
 * would be, so a replica never holds a coordinator's later version without its earlier ones
 * (or what superseded them) — see `Version` on why contexts depend on it.
 * A replica acknowledges only after the versions it took are persisted (the `persist` effect
 * precedes the reply). A stand-in keeps a hinted write durably apart from its own data and
 * offers it to the home node every `handoffMs` while it believes that node up; it forgets a
 * hint only when the home node acknowledged storing it, so a hint survives the stand-in's
 * crashes and the home node's repeated failures, and is delivered exactly when it returns.
 */
export function handleStore(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'store' }>,
  now: number,
): QuorumState {
  const next = storeItem(state, out, message, now)
  out.push({ type: 'send', to: from, message: { type: 'stored', op: message.op } })
  return next
}

/**
 * A coordinator's stores of one batch: each item is stored as a `store` would be, their records
 * go to the disk as one `persist`, and one `stored-batch` acknowledges them all after it.
 */
export function handleStoreBatch(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'store-batch' }>,
  now: number,
): QuorumState {
  const effects: QuorumOut = []
  let next = state
  for (const item of message.items) next = storeItem(next, effects, item, now)
  const records: QuorumRecord[] = []
  for (const effect of effects) if (effect.type === 'persist') records.push(...effect.records)
  if (records.length > 0) out.push({ type: 'persist', records, epoch: null })
  out.push({
    type: 'send',
    to: from,
    message: { type: 'stored-batch', ops: message.items.map((item) => item.op) },
  })
  return next
}

/** Stores one put's sibling set, or keeps it as a hint for its `hintFor` home node. */
function storeItem(state: QuorumState, out: QuorumOut, item: StoreItem, now: number): QuorumState {
  return item.hintFor === null || item.hintFor === state.id
    ? storeVersions(state, out, item.key, item.versions, now).state
    : storeHint(state, out, `${item.op}:${item.hintFor}`, item.hintFor, item.key, item.versions)
}

/** Keeps a put's sibling set as a hint for `home` (idempotent by hint id). */
export function storeHint(
  state: QuorumState,
  out: QuorumOut,
  id: string,
  home: NodeId,
  key: string,
  versions: readonly Version[],
): QuorumState {
  if (state.hints.has(id)) return state
  out.push({ type: 'persist', records: [{ type: 'hint', id, home, key, versions }], epoch: null })
  const hints = new Map(state.hints)
  hints.set(id, { id, home, key, versions })
  return bumpStat({ ...state, hints }, 'hintsStored')
}

/** A coordinator asks for this replica's versions of a key (hinted ones included). */
export function handleFetch(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'fetch' }>,
): QuorumState {
  out.push({
    type: 'send',
    to: from,
    message: {
      type: 'fetched',
      op: message.op,
      key: message.key,
      versions: localVersions(state, message.key),
    },
  })
  return state
}

/** A read coordinator found this replica stale: merge, and acknowledge a blocking repair. */
export function handleRepair(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'repair' }>,
  now: number,
): QuorumState {
  const next = storeVersions(state, out, message.key, message.versions, now).state
  if (message.op !== null) out.push({ type: 'send', to: from, message: { type: 'repaired', op: message.op } })
  return next
}

/** A stand-in hands back versions it kept for this node. */
export function handleHandoff(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'handoff' }>,
  now: number,
): QuorumState {
  let next = state
  const byKey = new Map<string, Version[]>()
  for (const item of message.items) {
    const list = byKey.get(item.key)
    if (list === undefined) byKey.set(item.key, [...item.versions])
    else list.push(...item.versions)
  }
  for (const [key, versions] of byKey) next = storeVersions(next, out, key, versions, now).state
  out.push({
    type: 'send',
    to: from,
    message: { type: 'handoff-ack', hints: message.items.map((item) => item.hint) },
  })
  return next
}

/** The home node stored these hints: forget them. */
export function handleHandoffAck(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'handoff-ack' }>,
): QuorumState {
  const done = message.hints.filter((id) => state.hints.get(id)?.home === from)
  if (done.length === 0) return state
  out.push({ type: 'persist', records: [{ type: 'hint-done', ids: done }], epoch: null })
  const hints = new Map(state.hints)
  for (const id of done) hints.delete(id)
  return bumpStat({ ...state, hints }, 'hintsDelivered', done.length)
}

/** Offers hints to every home node believed up, a batch per node. */
export function offerHints(state: QuorumState, out: QuorumOut, now: number): QuorumState {
  if (state.hints.size === 0 || now - state.lastHandoffAt < state.config.handoffMs) return state
  const byHome = new Map<NodeId, { hint: string; key: string; versions: readonly Version[] }[]>()
  // Per home, the JSON length of the versions batched so far (see `MAX_BATCH_CHARS`): the
  // rest wait for the next handoff, as those beyond `maxBatch` do.
  const chars = new Map<NodeId, number>()
  for (const hint of state.hints.values()) {
    if (!believedUp(state, hint.home, now)) continue
    const batch = byHome.get(hint.home) ?? []
    const total =
      (chars.get(hint.home) ?? 0) + jsonCharsBound(hint.versions as unknown as JsonValue) + hint.key.length
    if (batch.length < state.config.maxBatch && (batch.length === 0 || total <= MAX_BATCH_CHARS)) {
      batch.push({ hint: hint.id, key: hint.key, versions: hint.versions })
      chars.set(hint.home, total)
    }
    byHome.set(hint.home, batch)
  }
  for (const [home, items] of byHome)
    out.push({ type: 'send', to: home, message: { type: 'handoff', items } })
  return { ...state, lastHandoffAt: now }
}
