import type { NodeId } from '../node-id.js'
import type { QuorumRequest } from './messages.js'
import { answer } from './put.js'
import {
  believedUp,
  bumpStat,
  localVersions,
  type PendingOp,
  type QuorumOut,
  type QuorumState,
  quorumSize,
  storeVersions,
  takeOpId,
  targetsFor,
  withoutPending,
  withPending,
} from './state.js'
import { contextOf, digestOf, mergeVersions, pickValue, type Version } from './versions.js'

type Get = Extract<QuorumRequest, { type: 'get' }>
type PendingGet = Extract<PendingOp, { kind: 'get' }>

/**
 * The read coordinator: whichever node a client asked runs a get against the key's replicas.
 *
 * It asks the targets, merges the first R answers (siblings, or the last-write-wins pick),
 * optionally repairs stale replicas, and answers; it gives up after `requestTimeoutMs`. Puts
 * are coordinated by a home replica of the key (`put.ts`).
 */
/** Starts a get: ask every target, answer once R replied (and repair allows). */
export function handleGet(
  state: QuorumState,
  out: QuorumOut,
  client: string,
  request: Get,
  now: number,
): QuorumState {
  const need = quorumSize(state, request.r, 'r')
  const targets = targetsFor(state, request.key, state.config.sloppy, now)
  if (targets.filter((target) => believedUp(state, target.node, now)).length < need) {
    out.push({
      type: 'reply',
      client,
      reply: { type: 'rejected', id: request.id, reason: 'unavailable', maybeApplied: false },
    })
    return bumpStat(state, 'unavailable')
  }
  const taken = takeOpId(state)
  const op = taken.op
  let next = bumpStat(taken.state, 'getsCoordinated')
  const replies: (readonly [NodeId, readonly Version[]])[] = []
  for (const target of targets) {
    if (target.node === next.id) replies.push([next.id, localVersions(next, request.key)])
    else out.push({ type: 'send', to: target.node, message: { type: 'fetch', op, key: request.key } })
  }
  const pending: PendingGet = {
    kind: 'get',
    client,
    requestId: request.id,
    key: request.key,
    targets,
    replies,
    need,
    repair: request.repair ?? next.config.readRepair,
    phase: 'collect',
    merged: [],
    holders: [],
    deadline: now + next.config.requestTimeoutMs,
  }
  next = withPending(next, op, pending)
  return progressGet(next, out, op, pending, now)
}

/** A replica answered a get. */
export function handleFetched(
  state: QuorumState,
  out: QuorumOut,
  from: NodeId,
  op: string,
  versions: readonly Version[],
  now: number,
): QuorumState {
  const pending = state.pending.get(op)
  if (pending?.kind !== 'get' || !pending.targets.some((target) => target.node === from)) return state
  if (pending.replies.some(([node]) => node === from)) return state
  const updated: PendingGet = { ...pending, replies: [...pending.replies, [from, versions]] }
  return progressGet(withPending(state, op, updated), out, op, updated, now)
}

/** A replica applied a blocking read repair: it now holds the merged versions. */
export function handleRepaired(state: QuorumState, out: QuorumOut, from: NodeId, op: string): QuorumState {
  const pending = state.pending.get(op)
  if (pending?.kind !== 'get' || pending.phase !== 'repair' || pending.holders.includes(from)) return state
  const updated: PendingGet = { ...pending, holders: [...pending.holders, from] }
  return finishBlockingRepair(withPending(state, op, updated), out, op, updated)
}

function progressGet(
  state: QuorumState,
  out: QuorumOut,
  op: string,
  pending: PendingGet,
  now: number,
): QuorumState {
  const mode = state.config.conflicts
  if (pending.phase === 'repair') {
    const [from, versions] = pending.replies.at(-1) as readonly [NodeId, readonly Version[]]
    if (pending.holders.includes(from) || !isHomeTarget(pending, from)) return state
    // A home replica that answers late with less is repaired too; its ack counts.
    if (digestOf(versions) !== digestOf(pending.merged))
      return sendRepair(state, out, from, op, pending.key, pending.merged, now)
    const updated: PendingGet = { ...pending, holders: [...pending.holders, from] }
    return finishBlockingRepair(withPending(state, op, updated), out, op, updated)
  }
  if (pending.phase === 'answered') {
    const [from, versions] = pending.replies.at(-1) as readonly [NodeId, readonly Version[]]
    const merged = mergeVersions(pending.merged, versions, mode).versions
    let next = state
    // Home replicas only: a copy on a stand-in would outlive the outage, with nothing to update
    // it (hinted handoff and anti-entropy reach home replicas), and later reads would find it.
    if (digestOf(versions) !== digestOf(merged) && isHomeTarget(pending, from))
      next = sendRepair(next, out, from, null, pending.key, merged, now)
    if (pending.replies.length >= pending.targets.length) return withoutPending(next, op)
    return withPending(next, op, { ...pending, merged })
  }
  if (pending.replies.length < pending.need) return state
  let merged: readonly Version[] = []
  for (const [, versions] of pending.replies) merged = mergeVersions(merged, versions, mode).versions
  const digest = digestOf(merged)
  const holders = pending.replies
    .filter(([, versions]) => digestOf(versions) === digest)
    .map(([node]) => node)
  const stale = pending.replies.filter(([, versions]) => digestOf(versions) !== digest).map(([node]) => node)
  if (pending.repair === 'off') return answerGet(withoutPending(state, op), out, pending, merged)
  if (pending.repair === 'async') {
    let next = answerGet(state, out, pending, merged)
    for (const node of stale) {
      if (isHomeTarget(pending, node)) next = sendRepair(next, out, node, null, pending.key, merged, now)
    }
    if (pending.replies.length >= pending.targets.length) return withoutPending(next, op)
    return withPending(next, op, { ...pending, phase: 'answered', merged, holders })
  }
  let next = state
  const homeHolders = holders.filter((node) => isHomeTarget(pending, node))
  // Short of W home holders, every home target that does not hold the merged versions is
  // repaired; with W already, those that answered with less are, so that a read with R = N
  // leaves every home replica it reached holding what it read.
  const short = homeHolders.length < repairTarget(state, pending)
  for (const target of pending.targets) {
    if (target.hintFor !== null || homeHolders.includes(target.node)) continue
    if (!short && !stale.includes(target.node)) continue
    next = sendRepair(next, out, target.node, op, pending.key, merged, now)
    if (target.node === next.id) homeHolders.push(next.id)
  }
  const repairing: PendingGet = { ...pending, phase: 'repair', merged, holders: homeHolders }
  return finishBlockingRepair(withPending(next, op, repairing), out, op, repairing)
}

/** How many home replicas a blocking repair must reach: W, or every home target if fewer. */
function repairTarget(state: QuorumState, pending: PendingGet): number {
  return Math.min(
    state.config.writeQuorum,
    pending.targets.filter((target) => target.hintFor === null).length,
  )
}

function finishBlockingRepair(
  state: QuorumState,
  out: QuorumOut,
  op: string,
  pending: PendingGet,
): QuorumState {
  if (pending.holders.length < repairTarget(state, pending)) return state
  const answered = answerGet(state, out, pending, pending.merged)
  // Answered; replies still to come are repaired as an asynchronous read repair's are.
  if (pending.replies.length >= pending.targets.length) return withoutPending(answered, op)
  return withPending(answered, op, { ...pending, phase: 'answered' })
}

function isHomeTarget(pending: PendingGet, node: NodeId): boolean {
  return pending.targets.some((target) => target.node === node && target.hintFor === null)
}

/** Sends (or, to itself, applies) a read repair. */
function sendRepair(
  state: QuorumState,
  out: QuorumOut,
  node: NodeId,
  op: string | null,
  key: string,
  versions: readonly Version[],
  now: number,
): QuorumState {
  if (node === state.id) return bumpStat(storeVersions(state, out, key, versions, now).state, 'readRepairs')
  out.push({ type: 'send', to: node, message: { type: 'repair', op, key, versions } })
  return bumpStat(state, 'readRepairs')
}

function answerGet(
  state: QuorumState,
  out: QuorumOut,
  pending: PendingGet,
  merged: readonly Version[],
): QuorumState {
  out.push({
    type: 'reply',
    client: pending.client,
    reply: {
      type: 'get-ok',
      id: pending.requestId,
      values: merged.map((version) => version.value),
      value: pickValue(merged),
      context: contextOf(merged),
      dots: merged.map((version) => version.dot),
    },
  })
  return state
}

/** Gives up on requests past their deadline. */
export function expireRequests(state: QuorumState, out: QuorumOut, now: number): QuorumState {
  let next = state
  for (const [op, pending] of state.pending) {
    if (now < pending.deadline) continue
    next = withoutPending(next, op)
    if (pending.kind === 'get' && pending.phase === 'answered') continue
    const reply = {
      type: 'rejected',
      id: pending.requestId,
      reason: 'timeout',
      maybeApplied: pending.kind !== 'get',
    } as const
    if (pending.kind === 'put') answer(out, pending.client, pending.origin, reply)
    else out.push({ type: 'reply', client: pending.client, reply })
    next = bumpStat(next, 'timeouts')
  }
  return next
}
