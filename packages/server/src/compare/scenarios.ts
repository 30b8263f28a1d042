import { ChorusError, ErrorCode } from '@chorus/core'
import type { CompareTarget } from './target.js'

/** The name of a fault scenario. */
export type ScenarioName = 'none' | 'partition' | 'leader-crash' | 'lossy-link'

/** When the fault of a scenario is in force, relative to the start of the workload (virtual ms). */
export interface FaultWindow {
  readonly startMs: number
  readonly endMs: number
}

/** A fault script, run against every design alike. */
export interface CompareScenario {
  readonly name: ScenarioName
  readonly description: string
  /** Schedules the faults on the target's clock, from `t0`; the window is null without a fault. */
  schedule(target: CompareTarget, t0: number, window: FaultWindow): void
  readonly faulty: boolean
}

/** How long the central node is stalled before it crashes in `leader-crash`. */
export const STALL_MS = 150

/** Every scenario, in table order. */
export const compareScenarios: readonly CompareScenario[] = [
  {
    name: 'none',
    description: 'no fault',
    faulty: false,
    schedule: () => {},
  },
  {
    name: 'partition',
    description:
      'c1 and two of five servers (the leader among them; the relay stays with the majority) are cut off from the rest, then healed',
    faulty: true,
    schedule: (target, t0, window) => {
      target.scheduler.at(t0 + window.startMs, () => target.partition())
      target.scheduler.at(t0 + window.endMs, () => target.heal())
    },
  },
  {
    name: 'leader-crash',
    description: `the leader (single-leader), node n1 (quorum) or the relay (multi-leader) stops sending to its peers, crashes ${STALL_MS} ms later and restarts from its disk at the end of the window`,
    faulty: true,
    schedule: (target, t0, window) => {
      target.scheduler.at(t0 + window.startMs, () => target.stall())
      target.scheduler.at(t0 + window.startMs + STALL_MS, () => target.crash())
      target.scheduler.at(t0 + window.endMs, () => target.restart())
    },
  },
  {
    name: 'lossy-link',
    description: 'every link (client links included) drops 30% of messages, then recovers',
    faulty: true,
    schedule: (target, t0, window) => {
      target.scheduler.at(t0 + window.startMs, () => target.setLoss(0.3))
      target.scheduler.at(t0 + window.endMs, () => target.heal())
    },
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
