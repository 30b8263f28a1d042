import { ChorusError, counterOf, ErrorCode, formatHlc, type JsonValue, tickHlc } from '@chorus/core'
import { jsonCharsBound, MAX_BATCH_CHARS } from '../message-budget.js'
import type { NodeId } from '../node-id.js'
import { describeValue } from '../wire.js'
import { afterAcknowledgement } from './incarnation.js'
import type { PutReply, QuorumMessage, QuorumRecord, QuorumRequest } from './messages.js'
import { storeHint } from './replica.js'
import {
  believedUp,
  bumpStat,
  HAND_OVERS_KEPT,
  homeReplicas,
  type PendingOp,
  type PutOrigin,
  type QuorumOut,
  type QuorumState,
  quorumSize,
  storeVersions,
  takeOpId,
  targetsFor,
  withoutPending,
  withPending,
} from './state.js'
import { contextOf, nextDot, type Version } from './versions.js'

type Put = Extract<QuorumRequest, { type: 'put' }>
type PendingPut = Extract<PendingOp, { kind: 'put' }>

/**
 * A client's put, at whichever node it asked.
 *
 * Only a home replica of the key makes the version (see `Version` for why): a home replica
 * coordinates the put itself; any other node hands it to the first home replica it believes
 * up and relays the answer, and refuses it as `unavailable` when it believes none up. W is
 * checked here, so a bad request is refused before it travels.
 */
export function handlePut(
  state: QuorumState,
  out: QuorumOut,
  client: string,
  request: Put,
  now: number,
): QuorumState {
  quorumSize(state, request.w, 'w')
  const homes = homeReplicas(state, request.key)
  if (homes.includes(state.id)) return coordinatePut(state, out, client, { kind: 'client' }, request, now)
  const home = homes.find((node) => believedUp(state, node, now))
  if (home === undefined) {
    answer(out, client, { kind: 'client' }, unavailable(request.id))
    return bumpStat(state, 'unavailable')
  }
  const { state: taken, op } = takeOpId(state)
  out.push({ type: 'send', to: home, message: { type: 'coordinate', op, client, request } })
  const pending: PendingOp = {
    kind: 'forward',
    client,
    requestId: request.id,
    to: home,
    deadline: now + state.config.requestTimeoutMs,
  }
  return bumpStat(withPending(taken, op, pending), 'putsForwarded')
}

/**
 * Another node handed this home replica a put to coordinate. A copy of a hand-over it took is
 * ignored: one it refused (say, `unavailable`) must stay refused, as its client was told, and
 * one it coordinated must not make a second version.
 */
export function handleCoordinate(
  received: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'coordinate' }>,
  now: number,
): QuorumState {
  const handOver = `${from} ${message.op}`
  if (received.handOvers.includes(handOver)) return received
  const kept = received.handOvers.length < HAND_OVERS_KEPT ? received.handOvers : received.handOvers.slice(1)
  const state: QuorumState = { ...received, handOvers: [...kept, handOver] }
  const origin: PutOrigin = { kind: 'node', node: from, op: message.op }
  if (!homeReplicas(state, message.request.key).includes(state.id)) {
    answer(out, message.client, origin, unavailable(message.request.id))
    return bumpStat(state, 'unavailable')
  }
  return coordinatePut(state, out, message.client, origin, message.request, now)
}

/** The home replica answered a put this node handed over: relay the answer to the client. */
export function handleCoordinated(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  message: Extract<QuorumMessage, { type: 'coordinated' }>,
): QuorumState {
  const pending = state.pending.get(message.op)
  if (pending?.kind !== 'forward' || pending.to !== from) return state
  out.push({ type: 'reply', client: pending.client, reply: { ...message.reply, id: pending.requestId } })
  return withoutPending(state, message.op)
}

/** A replica stored (or hinted) a put's sibling set. */
export function handleStored(state: QuorumState, out: QuorumOut, from: NodeId, op: string): QuorumState {
  return handleStoredBatch(state, out, from, [op])
}

/**
 * A replica stored the puts of a `stored-batch`: each counts as its own `stored`. The pending
 * requests are copied once for the whole batch, not once per acknowledgement. An
 * acknowledgement may also prove this life's incarnation record durable (see `Incarnation`).
 */
export function handleStoredBatch(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  ops: readonly string[],
): QuorumState {
  let pending: Map<string, PendingOp> | null = null
  let incarnation = state.incarnation
  for (const op of ops) {
    incarnation = afterAcknowledgement(incarnation, state.opPrefix, op)
    const put = (pending ?? state.pending).get(op)
    if (put?.kind !== 'put' || put.acked.includes(from)) continue
    if (!put.targets.some((target) => target.node === from)) continue
    const updated: PendingPut = { ...put, acked: [...put.acked, from] }
    pending ??= new Map(state.pending)
    if (updated.acked.length < updated.need) pending.set(op, updated)
    else {
      answerPut(out, updated)
      pending.delete(op)
    }
  }
  const next = incarnation === state.incarnation ? state : { ...state, incarnation }
  return pending === null ? next : { ...next, pending }
}

/** Answers a put to whoever asked: the client, or the node that handed it over. */
export function answer(out: QuorumOut, client: string, origin: PutOrigin, reply: PutReply): void {
  if (origin.kind === 'client') out.push({ type: 'reply', client, reply })
  else out.push({ type: 'send', to: origin.node, message: { type: 'coordinated', op: origin.op, reply } })
}

/**
 * Makes the put's version at this home replica and replicates it.
 *
 * The dot is this life's next for the key (past what it holds and what the client's context
 * names, so a context from elsewhere can never cover the new dot). The version goes into this
 * node's memory at once, and this node's whole sibling set of the key goes to the other
 * targets. Once this life's incarnation record is known durable, the stores are `early`: they
 * leave before this node's own commit of the version, so the coordinator's fsync and the
 * replicas' overlap (a crash between them is what `Incarnation` makes safe). Before that —
 * the first puts of a life — they leave after the commit, which also carries the record.
 *
 * The put is acknowledged once W targets stored it durably. This node counts itself at once:
 * the answer is a later effect than its `persist`, in this step or a later one, and a runtime
 * performs it only once that persist is durable.
 */
function coordinatePut(
  state: QuorumState,
  out: QuorumOut,
  client: string,
  origin: PutOrigin,
  request: Put,
  now: number,
): QuorumState {
  const need = quorumSize(state, request.w, 'w')
  const key = request.key
  const refusal = unseenOwnCounter(state, request)
  if (refusal !== null) {
    if (origin.kind === 'client') throw new ChorusError(ErrorCode.InvalidMessage, refusal)
    const reply = { type: 'error', id: request.id, code: ErrorCode.InvalidMessage, message: refusal } as const
    out.push({ type: 'send', to: origin.node, message: { type: 'coordinated', op: origin.op, reply } })
    return state
  }
  const targets = targetsFor(state, key, request.sloppy ?? state.config.sloppy, now)
  if (targets.filter((target) => believedUp(state, target.node, now)).length < need) {
    answer(out, client, origin, unavailable(request.id))
    return bumpStat(state, 'unavailable')
  }
  const clock = tickHlc(state.clock, now)
  const incarnation = state.incarnation
  const version: Version = {
    dot: nextDot(state.store.get(key) ?? [], incarnation.actor, request.context),
    context: request.context,
    stamp: formatHlc({ ...clock, replica: state.id }),
    value: request.value,
  }
  const commit: QuorumOut = []
  const taken = takeOpId({ ...state, clock })
  const op = taken.op
  let next = storeVersions(taken.state, commit, key, [version], now).state
  if (incarnation.recordedFrom === null) {
    recordIncarnation(commit, incarnation.number)
    next = { ...next, incarnation: { ...incarnation, recordedFrom: state.nextOp } }
  }
  const siblings = next.store.get(key) ?? [version]
  if (siblings.length > 1 && siblingChars(siblings) > MAX_BATCH_CHARS) {
    // Nothing of this step has left yet: answer, and keep the state before the put.
    answer(out, client, origin, {
      type: 'rejected',
      id: request.id,
      reason: 'too-large',
      maybeApplied: false,
    })
    return state
  }
  const acked: NodeId[] = []
  const sends: QuorumOut = []
  for (const target of targets) {
    if (target.node === next.id) {
      if (target.hintFor !== null)
        next = storeHint(next, commit, `${op}:${target.hintFor}`, target.hintFor, key, siblings)
      acked.push(next.id)
    } else {
      const message: QuorumMessage = { type: 'store', op, key, versions: siblings, hintFor: target.hintFor }
      sends.push(
        incarnation.durable
          ? { type: 'send', to: target.node, message, early: true }
          : { type: 'send', to: target.node, message },
      )
    }
  }
  if (incarnation.durable) out.push(...sends, ...commit)
  else out.push(...commit, ...sends)
  next = bumpStat(next, 'putsCoordinated')
  if (targets.some((target) => target.hintFor !== null)) next = bumpStat(next, 'sloppyPuts')
  const pending: PendingPut = {
    kind: 'put',
    client,
    requestId: request.id,
    origin,
    key,
    version,
    siblings,
    targets,
    acked,
    need,
    deadline: now + next.config.requestTimeoutMs,
  }
  return finishPut(withPending(next, op, pending), out, op, pending)
}

/**
 * The highest counter a last-write-wins coordinator takes from a context for its own current
 * life beyond what it holds of the key (2^48): far above any count of one key's versions in one
 * life, and far enough below 2^53 that the puts it would take to count from there to an
 * unsafe integer (2^53 − 2^48 of them) cannot happen.
 */
export const MAX_UNHELD_COUNTER = 2 ** 48

/**
 * Why the put's context is refused, or null: an entry for this node's current life (its actor)
 * above the counters this life gave the key.
 *
 * The next dot is one past the highest this life's actor has in what this node holds of the
 * key and in the context (`nextDot`), so a context naming a counter near 2^53 made the next
 * dot 2^53, not a safe integer: the put timed out, every later put of the key at this node did
 * too, and the node refused the context it handed out itself. No client has honestly seen a
 * counter this life never gave: under `siblings` what a home replica holds of a key covers
 * every dot it gave the key in this life (its own version goes into its memory at once, and a
 * version that replaces others has seen them), so any such entry is refused. Under `lww` a
 * newer version from another coordinator can replace this life's own without having seen it,
 * so the node may no longer hold a counter it gave: there an entry is refused only above
 * {@link MAX_UNHELD_COUNTER} as well. Entries for other actors are never counted from, only
 * carried, so they need no such check.
 */
function unseenOwnCounter(state: QuorumState, request: Put): string | null {
  const actor = state.incarnation.actor
  const named = counterOf(request.context, actor)
  if (named === 0) return null
  const held = counterOf(contextOf(state.store.get(request.key) ?? []), actor)
  const siblings = state.config.conflicts === 'siblings'
  if (named <= (siblings ? held : Math.max(held, MAX_UNHELD_COUNTER))) return null
  const highest = siblings
    ? `the highest counter this life gave key ${describeValue(request.key)} is ${held}`
    : `the highest this node takes is ${Math.max(held, MAX_UNHELD_COUNTER)}`
  return `request.context.${actor}: ${named} names a version of ${actor}, this node's current life, that it never made (${highest}); a context must come from a read or a write of the key`
}

/** Puts this life's incarnation record first in the put's commit (one append, one fsync). */
function recordIncarnation(commit: QuorumOut, number: number): void {
  const record: QuorumRecord = { type: 'incarnation', number }
  const first = commit[0]
  if (first?.type === 'persist') commit[0] = { ...first, records: [record, ...first.records] }
  else commit.unshift({ type: 'persist', records: [record], epoch: null })
}

function finishPut(state: QuorumState, out: QuorumOut, op: string, pending: PendingPut): QuorumState {
  if (pending.acked.length < pending.need) return state
  answerPut(out, pending)
  return withoutPending(state, op)
}

function answerPut(out: QuorumOut, pending: PendingPut): void {
  answer(out, pending.client, pending.origin, {
    type: 'put-ok',
    id: pending.requestId,
    dot: pending.version.dot,
    context: contextOf(pending.siblings),
    values: pending.siblings.map((version) => version.value),
    dots: pending.siblings.map((version) => version.dot),
    sloppy: pending.targets.some((target) => target.hintFor !== null),
  })
}

/**
 * No less than the JSON length of a key's versions as a `store` carries them. A single version
 * always goes (the node API bounds a value well under a peer frame); several concurrent ones
 * may together outgrow one.
 */
function siblingChars(siblings: readonly Version[]): number {
  let chars = 0
  for (const version of siblings) chars += jsonCharsBound(version as unknown as JsonValue)
  return chars
}

function unavailable(id: string): PutReply {
  return { type: 'rejected', id, reason: 'unavailable', maybeApplied: false }
}
