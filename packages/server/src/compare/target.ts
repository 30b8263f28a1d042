import type { JsonValue } from '@chorus/core'
import type { Scheduler } from '@chorus/testkit'
import type { CompareClock } from './clock.js'

/**
 * How one client operation ended, as the client saw it. `siblings`: how many versions a read
 * returned; `versions`, when there are two or more, names them (each one's value, unique per
 * write), so reads that show one conflict count it once. `superseded`: how many concurrent
 * versions (siblings) a write replaced — 2 or more means the write settled a conflict its writer
 * had been shown.
 */
export type OperationOutcome =
  | {
      readonly ok: true
      readonly value?: JsonValue | null
      readonly siblings?: number
      readonly versions?: readonly string[]
      readonly superseded?: number
    }
  | { readonly ok: false; readonly maybeApplied: boolean }

/**
 * Where a read goes. `primary`: the design's authoritative copy — the leader (a linearizable
 * leader read) for single-leader. `nearest`: the copy a client would read for speed — a
 * follower of its own, without a token, for single-leader. For quorum (R replies from the
 * client's coordinator) and multi-leader (the client's local replica) both are the same read.
 */
export type ReadRoute = 'primary' | 'nearest'

/**
 * One replication design under test, in simulation or as real processes: the comparison
 * drives every design through this interface, so the workload, the fault script and the
 * measurements are the same code for all of them.
 *
 * Clients are named `c1`…; `c1` is the one the fault scripts put on the minority side. Writes
 * carry values unique across the run, so the stale-read check can tell writes apart.
 *
 * A fault method may return a promise (a real target signals processes and calls their
 * control APIs); the harness runs the fault script's steps one after another, each once the
 * one before it has taken effect.
 */
export interface CompareTarget {
  /** The time the target runs on: its simulation's virtual time, or the wall clock. */
  readonly clock: CompareClock
  /** Starts the nodes and runs until the design is ready to serve (a leader elected, peers known). */
  start(): Promise<void>
  write(client: string, key: string, value: string): Promise<OperationOutcome>
  /** A read; `value` is what the design gives an application (a register view), `siblings` how many versions it returned. */
  read(client: string, key: string, route: ReadRoute): Promise<OperationOutcome>
  /** Splits the servers so that `c1` and the nodes it is bound to are cut off from the rest. */
  partition(): void | Promise<void>
  /** Ends a partition and every link fault. */
  heal(): void | Promise<void>
  /** The central node (the leader, node n1, the relay) stops sending to its peers. */
  stall(): void | Promise<void>
  /** That node crashes (its disk survives). */
  crash(): void | Promise<void>
  /** That node restarts from its disk. */
  restart(): Promise<void>
  /**
   * Adds `extraMs` of latency, both ways, to one link: between the central node (the leader,
   * node n1, the relay) and the copy `c1` reads from (its follower, node n2, its replica).
   * {@link heal} removes it.
   */
  slowLink(extraMs: number): void | Promise<void>
  /** Drops each message on every link with probability `rate`. */
  setLoss(rate: number): void | Promise<void>
  /** True when every replica holds the same data and nothing is left to hand off. */
  converged(): Promise<boolean>
  /**
   * Called once, when the workload is over and the replicas converged (or the wait for them
   * ended), before {@link lostAcknowledged}: a real target gathers its counters and stops its
   * processes here. The harness also calls it when a run fails, so it must be safe to call
   * on a target that did not start or stopped already.
   */
  finish?(): Promise<void>
  /** Acknowledged writes no replica reflects any more (call once converged, or at the end). */
  lostAcknowledged(): Promise<number>
  /** Bytes of every frame sent since the target started counting ({@link countBytesFromNow}). */
  bytesOnWire(): number
  countBytesFromNow(): void
  /** Writes acknowledged on the leader alone after a semi-sync timeout (designs that can fall back). */
  fallbacks?(): number
  /** For designs whose acknowledgement is local: when each write reached a server durably (ms after it was made). */
  serverAckLatencies?(): number[]
}

/** The length of `text` in UTF-8 bytes (what a frame of it costs on the wire). */
export { utf8Length } from '@chorus/core'

/** The client names, `c1`…`cN`. */
export function clientNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `c${i + 1}`)
}

/** Resolves after `ms` of virtual time on `scheduler`. */
export function sleep(scheduler: Scheduler, ms: number): Promise<void> {
  return new Promise((resolve) => {
    scheduler.after(ms, () => resolve())
  })
}
