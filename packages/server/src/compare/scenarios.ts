import { ChorusError, ErrorCode } from '@chorus/core'
import type { CompareTarget } from './target.js'

/** The name of a fault scenario. */
export type ScenarioName = 'none' | 'partition' | 'leader-crash' | 'lossy-link' | 'lag' | 'concurrent-writes'

/**
 * What the clients do.
 *
 * - `mixed`: each client, one operation at a time, writes or reads (primary route) a random key.
 * - `read-after-write`: each client writes a random key, then at once reads it back on the
 *   `nearest` route, then on the `primary` route.
 * - `contended`: in rounds every {@link ROUND_MS}, the two sites `c1` and `c2` each read one
 *   shared key and write it (at the same moment, so their writes are concurrent); the other
 *   clients only read it.
 */
export type Workload = 'mixed' | 'read-after-write' | 'contended'

/** The period of a `contended` round (ms). */
export const ROUND_MS = 100

/** Extra one-way latency of the slow link in `lag` (ms). */
export const SLOW_LINK_MS = 150

/** When the fault of a scenario is in force, relative to the start of the workload (ms). */
export interface FaultWindow {
  readonly startMs: number
  readonly endMs: number
}

/** One step of a fault script: what to do to the target, and when (ms after the workload starts). */
export interface FaultStep {
  readonly atMs: number
  act(target: CompareTarget): void | Promise<void>
}

/** A fault script, run against every design alike. */
export interface CompareScenario {
  readonly name: ScenarioName
  readonly description: string
  /** The fault script for a fault in force during `window`, in time order (none without a fault). */
  steps(window: FaultWindow): readonly FaultStep[]
  readonly faulty: boolean
  readonly workload: Workload
}

/** The share of messages a lossy link drops in `lossy-link`. */
export const LOSS_RATE = 0.3

/** How long the central node is stalled before it crashes in `leader-crash`. */
export const STALL_MS = 150

/** Every scenario, in table order. */
export const compareScenarios: readonly CompareScenario[] = [
  {
    name: 'none',
    description: 'no fault',
    faulty: false,
    workload: 'mixed',
    steps: () => [],
  },
  {
    name: 'partition',
    description:
      'c1 and two of five servers (the leader among them; the relay stays with the majority) are cut off from the rest, then healed',
    faulty: true,
    workload: 'mixed',
    steps: (window) => [
      { atMs: window.startMs, act: (target) => target.partition() },
      { atMs: window.endMs, act: (target) => target.heal() },
    ],
  },
  {
    name: 'leader-crash',
    description: `the leader (single-leader), node n1 (quorum) or the relay (multi-leader) stops sending to its peers, crashes ${STALL_MS} ms later and restarts from its disk at the end of the window`,
    faulty: true,
    workload: 'mixed',
    steps: (window) => [
      { atMs: window.startMs, act: (target) => target.stall() },
      { atMs: window.startMs + STALL_MS, act: (target) => target.crash() },
      { atMs: window.endMs, act: (target) => target.restart() },
    ],
  },
  {
    name: 'lossy-link',
    description: `every link (client links included) drops ${LOSS_RATE * 100}% of messages, then recovers`,
    faulty: true,
    workload: 'mixed',
    steps: (window) => [
      { atMs: window.startMs, act: (target) => target.setLoss(LOSS_RATE) },
      { atMs: window.endMs, act: (target) => target.heal() },
    ],
  },
  {
    name: 'lag',
    description: `read-after-write: every write is read back at once from the nearest copy, then from the primary; the link between the central node and c1’s copy (its follower, n2, its replica) is ${SLOW_LINK_MS} ms slower each way during the fault`,
    faulty: true,
    workload: 'read-after-write',
    steps: (window) => [
      { atMs: window.startMs, act: (target) => target.slowLink(SLOW_LINK_MS) },
      { atMs: window.endMs, act: (target) => target.heal() },
    ],
  },
  {
    name: 'concurrent-writes',
    description: `two sites (c1 and c2, bound to different servers) read one shared key and write it at the same moment, every ${ROUND_MS} ms; the others read it`,
    faulty: false,
    workload: 'contended',
    steps: () => [],
  },
]

/** The scenario named `name`; throws `invalid-argument` for an unknown one. */
export function compareScenario(name: string): CompareScenario {
  const scenario = compareScenarios.find((candidate) => candidate.name === name)
  if (scenario === undefined) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `unknown scenario ${JSON.stringify(name)}; use one of ${compareScenarios.map((s) => s.name).join(', ')}`,
    )
  }
  return scenario
}
