/**
 * The comparison on real processes and the wall clock: the server's designs as node processes
 * on loopback (`loopbackDesigns` of `@chorus/server/node`) and Chorus itself — a relay
 * process and `@chorus/client` replicas — run through the same harness, workload and fault
 * scripts as the simulated comparison. It lives here because `@chorus/server` never imports
 * the client or the relay.
 */
import {
  type CompareDesign,
  type CompareOptions,
  type CompareRow,
  type CompareScenario,
  compareScenarios,
  LOSS_RATE,
  runComparison,
  SLOW_LINK_MS,
  STALL_MS,
} from '@chorus/server'
import { loopbackDesigns, TCP_RETRANSMIT_MS } from '@chorus/server/node'
import { RelayReplicasTarget } from './relay-replicas-target.js'

/** Chorus: a relay process and a replica per client. */
export const relayReplicasDesign: CompareDesign = {
  name: 'multi-leader',
  mode: 'multi-leader',
  settings: 'a replica per client + 1 relay process, lww',
  create: (seed, clients) => new RelayReplicasTarget({ seed, clients }),
}

/** Every design the real comparison runs, one per mode, in table order. */
export const realDesigns: readonly CompareDesign[] = [relayReplicasDesign, ...loopbackDesigns]

/**
 * The real run's timeline (ms of wall time): shorter than the simulated one's, so that every
 * scenario on every design stays within a few minutes on a 2-core machine, and long enough for
 * a failover (election timeout 600 ms) inside the fault window.
 */
export const REAL_TIMELINE = {
  durationMs: 3_000,
  fault: { startMs: 600, endMs: 1_800 },
  convergeWithinMs: 15_000,
} as const

/** What runs where and how each fault is done, said under the real table. */
export const REAL_NOTES: readonly string[] = [
  `Real processes on 127.0.0.1, wall-clock milliseconds of one run (not deterministic; a shared 2-core machine makes timings noisy). Workload: 3 clients, ${REAL_TIMELINE.durationMs / 1000} s, fault from ${REAL_TIMELINE.fault.startMs} to ${REAL_TIMELINE.fault.endMs} ms.`,
  'single-leader and quorum: 5 node processes (`LoopbackCluster`, one SQLite file each, fsync on), clients speaking HTTP/JSON from the harness process. multi-leader: a `chorus-relay` process (SQLite) and one `@chorus/client` replica per client (memory storage) in the harness process, over WebSocket. Every byte between processes crosses a TCP proxy in the harness process, which counts it (“KiB on wire”: TCP payload both ways, peer links and client links; the harness’s control and status calls are not counted).',
  `Faults. partition: the nodes’ fault layer blocks every link between the sides and c1’s requests to the other side get no answer; for multi-leader, c1’s proxy resets its connection to the relay and refuses new ones until healed. leader-crash: the node’s fault layer blocks all it sends to peers, ${STALL_MS} ms later SIGKILL, at the end of the window a new process on its SQLite file; the relay is frozen (SIGSTOP), killed (SIGKILL) and restarted on the same data dir and port. lag: +${SLOW_LINK_MS} ms each way on the link between the leader (n1, the relay) and c1’s copy (fault layer; c1’s proxy for multi-leader). lossy-link: the nodes’ fault layer drops ${LOSS_RATE * 100}% of peer messages; TCP itself loses nothing, so on client connections (all of multi-leader’s) a loss is what TCP makes of it: ${LOSS_RATE * 100}% of the chunks crossing a proxy wait ${TCP_RETRANSMIT_MS} ms, a retransmission timeout, with everything behind them.`,
]

/** Runs the real comparison: every (or the given) scenario on every (or the given) real design. */
export function runRealComparison(
  options: {
    readonly seed: number
    readonly scenarios?: readonly CompareScenario[]
    readonly designs?: readonly CompareDesign[]
  },
  onRow?: (row: CompareRow) => void,
): Promise<CompareRow[]> {
  const compare: CompareOptions = {
    seed: options.seed,
    scenarios: options.scenarios ?? compareScenarios,
    designs: options.designs ?? realDesigns,
    ...REAL_TIMELINE,
  }
  return runComparison(compare, onRow)
}
