import { SingleLeaderSim, type SingleLeaderSimOptions } from '../../src/sim/single-leader-sim.js'
import type { SingleLeaderState } from '../../src/single-leader/state.js'

/** A simulated single-leader cluster, started, with a leader elected and 100 ms run after. */
export async function electedSim(
  options: SingleLeaderSimOptions & { readonly seed: number },
): Promise<SingleLeaderSim> {
  const sim = new SingleLeaderSim(options)
  await sim.start()
  if ((await sim.awaitLeader()) === undefined) throw new Error(`seed ${options.seed}: no leader elected`)
  await sim.run(100)
  return sim
}

/** A running node's state; throws for a node that is down. */
export function state(sim: SingleLeaderSim, node: string): SingleLeaderState {
  const current = sim.host(node).state
  if (current === null) throw new Error(`${node} is down`)
  return current
}
