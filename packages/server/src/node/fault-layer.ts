import { ChorusError, ErrorCode } from '@chorus/core'
import { createPrng, type Prng } from '@chorus/testkit'

/** Faults on the link from this node to one peer (or, as defaults, to every peer). */
export interface LinkFaultSettings {
  /** Added one-way delay in ms. */
  readonly latencyMs: number
  /** Extra delay drawn uniformly from 0..jitterMs per frame (frames may then overtake). */
  readonly jitterMs: number
  /** Probability in [0, 1] that a frame is dropped. */
  readonly loss: number
  /** When true every frame is dropped: one side of a partition. */
  readonly blocked: boolean
}

const clean: LinkFaultSettings = Object.freeze({ latencyMs: 0, jitterMs: 0, loss: 0, blocked: false })

/** What to do with one outbound frame. */
export type FaultDecision = { readonly deliver: false } | { readonly deliver: true; readonly delayMs: number }

/** Counters of a {@link FaultLayer}. */
export interface FaultLayerStats {
  readonly passed: number
  readonly delayed: number
  readonly lost: number
  readonly blocked: number
}

/**
 * The fault layer between one node and its peers, changed at run time through the node's
 * control API: latency, jitter, loss and blocking per outbound link. A partition is every
 * node blocking its links to the other side. Random draws come from a seeded PRNG, so a run
 * that sends the same frames draws the same faults.
 */
export class FaultLayer {
  private defaults: LinkFaultSettings = clean
  private readonly links = new Map<string, Partial<LinkFaultSettings>>()
  private readonly prng: Prng
  private readonly counters = { passed: 0, delayed: 0, lost: 0, blocked: 0 }

  constructor(seed: number | string) {
    this.prng = createPrng(seed)
  }

  /** A snapshot of the counters. */
  get stats(): FaultLayerStats {
    return { ...this.counters }
  }

  /** The settings on the link to `peer`. */
  settings(peer: string): LinkFaultSettings {
    return { ...this.defaults, ...this.links.get(peer) }
  }

  /**
   * Sets faults on the link to `peer`, or the defaults of every link when `peer` is null.
   * Fields left out keep their value. Throws `invalid-argument` for an out-of-range value.
   */
  set(peer: string | null, faults: Partial<LinkFaultSettings>): void {
    checkFaults(faults)
    if (peer === null) this.defaults = { ...this.defaults, ...faults }
    else this.links.set(peer, { ...this.links.get(peer), ...faults })
  }

  /** Blocks exactly the links to `peers` (a partition from this node's side), unblocking the others. */
  partition(peers: readonly string[], all: readonly string[]): void {
    for (const peer of all) this.set(peer, { blocked: peers.includes(peer) })
  }

  /** Removes every fault. */
  heal(): void {
    this.defaults = clean
    this.links.clear()
  }

  /** Decides the fate of one frame to `peer`. */
  decide(peer: string): FaultDecision {
    const faults = this.settings(peer)
    if (faults.blocked) {
      this.counters.blocked++
      return { deliver: false }
    }
    if (faults.loss > 0 && this.prng.bool(faults.loss)) {
      this.counters.lost++
      return { deliver: false }
    }
    const delayMs = faults.latencyMs + (faults.jitterMs > 0 ? this.prng.int(0, faults.jitterMs) : 0)
    if (delayMs > 0) this.counters.delayed++
    else this.counters.passed++
    return { deliver: true, delayMs }
  }
}

function checkFaults(faults: Partial<LinkFaultSettings>): void {
  const fail = (message: string): never => {
    throw new ChorusError(ErrorCode.InvalidArgument, message)
  }
  for (const key of ['latencyMs', 'jitterMs'] as const) {
    const value = faults[key]
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0 || value > 600_000)) {
      fail(`${key} must be an integer from 0 to 600000, got ${JSON.stringify(value)}`)
    }
  }
  if (
    faults.loss !== undefined &&
    (typeof faults.loss !== 'number' || !(faults.loss >= 0 && faults.loss <= 1))
  ) {
    fail(`loss must be a probability from 0 to 1, got ${JSON.stringify(faults.loss)}`)
  }
  if (faults.blocked !== undefined && typeof faults.blocked !== 'boolean') {
    fail(`blocked must be a boolean, got ${JSON.stringify(faults.blocked)}`)
  }
}
