import type { NodeId } from '../node-id.js'
import { lastLsn } from './log.js'
import type { ChainView, SingleLeaderMessage } from './messages.js'
import { bump, majority, type Out, type SingleLeaderState } from './state.js'

/**
 * Chain replication whose chain heals.
 *
 * The leader heads the chain; each node appends, then forwards to the next, and a write is
 * committed once the tail holds it. The leader keeps the chain (`ChainView`) and sends it in
 * its heartbeats until each member says it holds it. A member that has not answered the leader
 * for an election timeout leaves it, as long as the members answering are a majority. At least
 * a majority are always counted, so a committed entry is on a majority, which every election
 * meets, and failover keeps it (the argument `sync` rests on). A member that answers again joins
 * at the end, behind the tail, fed by the tail; it is counted again once it holds what is
 * committed, or at once when the members counted would otherwise be fewer than a majority. So a
 * failed member stalls writes for one election timeout, not until it returns. So does a member
 * alive but cut off from its predecessor: it says it is unfed, and leaves too.
 *
 * What a tail reports must mean that every counted node holds it. A node's log alone cannot
 * say so once the chain has changed: a member that leaves and joins again may hold entries it
 * had from its old predecessor that its new one lacks. So each node keeps `chainLsn`, how far
 * it and every node before it in the current view hold the leader's log: the leader's is its
 * log, and a follower's is the least of its predecessor's (carried by each append, tagged with
 * the view) and how far its own log was verified to match that append. It starts at 0 in a
 * view that gives the node another predecessor. The tail, and each member catching up behind
 * it, report theirs (`chain-ack`); any of them covers every counted node, so the leader commits
 * up to the highest of those reports in its current view.
 */

/** True when this cluster replicates along a chain. */
export function isChainMode(state: SingleLeaderState): boolean {
  return state.config.replication.mode === 'chain'
}

/** A new leader's chain: itself, then the other members in `nodes` order, every one counted. */
export function initialChain(state: SingleLeaderState): ChainView | null {
  if (!isChainMode(state)) return null
  const nodes = [state.id, ...state.config.nodes.filter((node) => node !== state.id)]
  return { view: 1, nodes, counted: nodes.length }
}

/** The node before `node` in `chain`, if it is in it and not its head. */
function predecessorIn(chain: ChainView | null, node: NodeId): NodeId | undefined {
  if (chain === null) return undefined
  const index = chain.nodes.indexOf(node)
  return index > 0 ? chain.nodes[index - 1] : undefined
}

/** This node's successor in its chain, if chain replication is on and it has one. */
export function chainSuccessor(state: SingleLeaderState): NodeId | undefined {
  if (!isChainMode(state) || state.leader === null || !state.member) return undefined
  return successorIn(state.chain, state.id)
}

/** How far this node, and every node before it in its chain, hold the leader's log. */
export function chainLsnOf(state: SingleLeaderState): number {
  return state.role === 'leader' ? lastLsn(state.log) : state.chainLsn
}

/** The chain fields of an append this node streams in chain mode (none otherwise). */
export function chainFields(state: SingleLeaderState): { view?: number; chainLsn?: number } {
  if (!isChainMode(state) || state.chain === null) return {}
  return { view: state.chain.view, chainLsn: chainLsnOf(state) }
}

/** The `chainLsn` a follower's acknowledgement carries in chain mode (none otherwise). */
export function chainAnswer(state: SingleLeaderState): { chainLsn?: number } {
  return isChainMode(state) && state.role !== 'leader' ? { chainLsn: state.chainLsn } : {}
}

/**
 * A follower's `chainLsn` after an append from `from` that its log matches through `matched`:
 * raised when the append comes from its predecessor in the view it follows.
 */
export function chainLsnAfterAppend(
  state: SingleLeaderState,
  from: NodeId,
  message: { readonly view?: number; readonly chainLsn?: number },
  matched: number,
): number {
  const chain = state.chain
  if (chain === null || message.view !== chain.view || message.chainLsn === undefined) return state.chainLsn
  if (predecessorIn(chain, state.id) !== from) return state.chainLsn
  return Math.max(state.chainLsn, Math.min(message.chainLsn, matched))
}

/**
 * A follower takes the chain its leader's heartbeat carries, unless it holds a later one (a
 * heartbeat can come late). In a view that gives it another predecessor (or none), what it
 * knew of the nodes before it no longer holds: `chainLsn` starts over at 0, and the next
 * append from the new predecessor sets it. A new successor is streamed to from a probe, as
 * one it never had: whatever this node knew of it is from another view.
 */
export function adoptChain(state: SingleLeaderState, chain: ChainView | undefined): SingleLeaderState {
  if (!isChainMode(state) || chain === undefined) return state
  const current = state.chain
  if (current !== null && current.view > chain.view) return state
  if (current !== null && current.view === chain.view) {
    return chain.counted > current.counted ? { ...state, chain } : state
  }
  const samePredecessor =
    current !== null && predecessorIn(current, state.id) === predecessorIn(chain, state.id)
  const successor = successorIn(chain, state.id)
  let progress = state.progress
  if (successor !== undefined && successor !== successorIn(current, state.id)) {
    const fresh = new Map(progress)
    fresh.delete(successor)
    progress = fresh
  }
  return { ...state, chain, progress, chainLsn: samePredecessor ? state.chainLsn : 0 }
}

/**
 * A follower's check, at each heartbeat, that its predecessor feeds it. It is unfed when, in its
 * chain's current view, its `chainLsn` has stood still for an election timeout while the
 * leader's log (`leaderLastLsn`, as the heartbeat says) holds more: the link from its
 * predecessor is cut, or the predecessor is unfed itself. It says so in its heartbeat
 * acknowledgement, and the leader takes the first such member out of the chain (see
 * {@link reviseChain}). Returns the state, with `chainFed` brought up to date, and the verdict.
 */
export function checkFed(
  state: SingleLeaderState,
  leaderLastLsn: number,
  now: number,
): { readonly state: SingleLeaderState; readonly unfed: boolean } {
  const chain = state.chain
  if (!isChainMode(state) || chain === null || predecessorIn(chain, state.id) === undefined) {
    return { state: state.chainFed === null ? state : { ...state, chainFed: null }, unfed: false }
  }
  const fed = state.chainFed
  if (
    state.chainLsn >= leaderLastLsn ||
    fed === null ||
    fed.view !== chain.view ||
    fed.lsn !== state.chainLsn
  ) {
    return {
      state: { ...state, chainFed: { view: chain.view, lsn: state.chainLsn, since: now } },
      unfed: false,
    }
  }
  return { state, unfed: now - fed.since > state.config.electionTimeoutMs }
}

/**
 * The first counted member after the head that said, in the current view, that its
 * predecessor does not feed it. Every member behind it starves too; the cut is just before it.
 */
function firstUnfed(state: SingleLeaderState, chain: ChainView): NodeId | undefined {
  return chain.nodes.slice(1, chain.counted).find((node) => {
    const progress = state.progress.get(node)
    return progress?.unfed === true && progress.chainView === chain.view
  })
}

/** The node after `node` in `chain`, if any. */
function successorIn(chain: ChainView | null, node: NodeId): NodeId | undefined {
  if (chain === null) return undefined
  const index = chain.nodes.indexOf(node)
  return index < 0 ? undefined : chain.nodes[index + 1]
}

/** Sends the leader this follower's `chainLsn` if it is the chain's tail, or catching up behind it. */
export function reportChain(state: SingleLeaderState, out: Out): void {
  if (!isChainMode(state) || state.role === 'leader' || state.chain === null || state.leader === null) return
  const index = state.chain.nodes.indexOf(state.id)
  if (index <= 0 || index < state.chain.counted - 1) return
  const message: SingleLeaderMessage = {
    type: 'chain-ack',
    epoch: state.epoch,
    view: state.chain.view,
    lsn: state.chainLsn,
  }
  out.push({ type: 'send', to: state.leader, message })
}

/**
 * The leader's commit bound in chain mode: the highest LSN a node at or behind the tail of its
 * current view reported (each report covers every node before the reporter).
 */
export function chainCommitBound(state: SingleLeaderState): number {
  const chain = state.chain
  if (chain === null) return 0
  if (chain.nodes.length === 1) return lastLsn(state.log)
  let bound = 0
  chain.nodes.forEach((node, index) => {
    if (index >= chain.counted - 1) bound = Math.max(bound, state.chainAcks.get(node) ?? 0)
  })
  return bound
}

/** The leader takes a report of `from` in its current view (see {@link chainCommitBound}). */
export function recordChainAck(
  state: SingleLeaderState,
  from: NodeId,
  message: Extract<SingleLeaderMessage, { type: 'chain-ack' }>,
): SingleLeaderState {
  const chain = state.chain
  if (chain === null || message.view !== chain.view) return state
  const index = chain.nodes.indexOf(from)
  if (index <= 0 || index < chain.counted - 1) return state
  const held = state.chainAcks.get(from) ?? 0
  if (message.lsn <= held) return state
  const chainAcks = new Map(state.chainAcks)
  chainAcks.set(from, message.lsn)
  return { ...state, chainAcks }
}

/**
 * Counts the member right behind the tail once it holds everything committed: it becomes the
 * tail. Its reports already covered the tail and every node before it, so the commit point
 * does not move back. The view stays (the order did not change), and the next heartbeat
 * carries the chain to every member again.
 */
export function countCaughtUp(state: SingleLeaderState): SingleLeaderState {
  let next = state
  for (;;) {
    const chain = next.chain
    if (chain === null || chain.counted >= chain.nodes.length) return next
    const behind = chain.nodes[chain.counted] as NodeId
    if ((next.chainAcks.get(behind) ?? 0) < next.commitLsn) return next
    const progress = new Map(next.progress)
    for (const [node, known] of progress) progress.set(node, { ...known, chainView: 0 })
    next = bump(
      { ...next, progress, chain: { ...chain, counted: chain.counted + 1 } },
      'chainMembersRestored',
    )
  }
}

/**
 * The leader's chain after a tick. Members that have not answered for an election timeout
 * leave it, as does the first counted member that says its predecessor has not fed it for one
 * (see {@link checkFed}), and members of the cluster outside it that answered within one join at its end —
 * as long as the members answering are a majority; otherwise only silent members behind the
 * counted ones leave (writes wait, and the leader, which no majority answers, soon steps
 * down). The first members left stay counted; when fewer than a majority are, the next ones
 * are counted too, at once, caught up or not: writes then wait until the new tail holds them,
 * rather than for a member that may never return. Returns the state and whether the chain
 * changed (a new view, which the followers must hear at once).
 */
export function reviseChain(
  state: SingleLeaderState,
  now: number,
): { state: SingleLeaderState; changed: boolean } {
  const chain = state.chain
  if (state.role !== 'leader' || chain === null || !isChainMode(state)) return { state, changed: false }
  const config = state.config
  const heardAt = (node: NodeId) => state.progress.get(node)?.ackedSentAt ?? Number.NEGATIVE_INFINITY
  // Members answer the leader's heartbeats; one whose latest answer is to a heartbeat sent
  // more than an election timeout ago is silent (the leader itself never is).
  const silentBefore = now - config.electionTimeoutMs
  // A counted member its predecessor has not fed for an election timeout, although both answer
  // the leader (a link cut between them), leaves as a silent one does: it joins again at the
  // end, fed by another node, and while it is cut off there it is not counted.
  const unfed = firstUnfed(state, chain)
  const answers = (node: NodeId) => node === state.id || (node !== unfed && heardAt(node) >= silentBefore)
  const outside = config.nodes.filter((node) => !chain.nodes.includes(node) && answers(node))
  const all = [...chain.nodes, ...outside]
  let nodes = all
  let counted = chain.counted
  if (now - state.becameLeaderAt > config.electionTimeoutMs) {
    const answering = all.filter(answers)
    if (answering.length >= majority(state)) {
      nodes = answering
      const stillCounted = chain.nodes.slice(0, chain.counted).filter(answers).length
      counted = Math.max(stillCounted, majority(state))
    } else {
      nodes = all.filter((node) => answers(node) || chain.nodes.indexOf(node) < chain.counted)
    }
  }
  const removed = chain.nodes.filter((node) => !nodes.includes(node)).length
  if (
    counted === chain.counted &&
    nodes.length === chain.nodes.length &&
    nodes.every((node, i) => node === chain.nodes[i])
  )
    return { state, changed: false }
  let next: SingleLeaderState = {
    ...state,
    chain: { view: chain.view + 1, nodes, counted },
    chainAcks: new Map(),
  }
  // A new successor: probe it at once, and learn its `chainLsn` afresh.
  const successor = nodes[1]
  const progress = successor === undefined ? undefined : next.progress.get(successor)
  if (successor !== undefined && successor !== chain.nodes[1] && progress !== undefined) {
    const map = new Map(next.progress)
    map.set(successor, { ...progress, chainLsn: 0, lastSentAt: Number.NEGATIVE_INFINITY, inFlight: 0 })
    next = { ...next, progress: map }
  }
  return { state: bump(next, 'chainMembersRemoved', removed), changed: true }
}
