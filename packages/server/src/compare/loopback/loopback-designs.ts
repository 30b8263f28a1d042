import { COMPARE_NODES, type CompareDesign } from '../designs.js'
import { LoopbackQuorumTarget } from './loopback-quorum-target.js'
import { LoopbackSingleLeaderTarget } from './loopback-single-leader-target.js'

/** A request without an answer after this long has timed out, as in simulation (ms). */
const CLIENT_TIMEOUT_MS = 1_000

function singleLeader(mode: 'async' | 'semi-sync' | 'sync', settings: string): CompareDesign {
  const replication =
    mode === 'semi-sync' ? ({ mode, acks: 1, timeoutMs: 100 } as const) : ({ mode } as const)
  return {
    name: `single-leader-${mode}`,
    mode: `single-leader-${mode}`,
    settings,
    create: (seed, clients) =>
      new LoopbackSingleLeaderTarget({
        seed,
        nodes: COMPARE_NODES,
        clients,
        replication,
        clientTimeoutMs: CLIENT_TIMEOUT_MS,
      }),
  }
}

function quorum(sloppy: boolean): CompareDesign {
  return {
    name: sloppy ? 'quorum-sloppy-n3w2r2' : 'quorum-n3w2r2',
    mode: sloppy ? 'quorum-sloppy' : 'quorum',
    settings: `N3 W2 R2${sloppy ? ', sloppy, hinted handoff' : ''}`,
    create: (seed, clients) =>
      new LoopbackQuorumTarget({
        seed,
        nodes: COMPARE_NODES,
        clients,
        replicas: 3,
        writeQuorum: 2,
        readQuorum: 2,
        sloppy,
        clientTimeoutMs: CLIENT_TIMEOUT_MS,
        antiEntropyMs: 200,
      }),
  }
}

/**
 * The server's designs as real node processes on loopback, one per mode, with the settings of
 * their simulated namesakes (5 nodes; the multi-leader design — a relay and client replicas —
 * lives outside this package, which never imports the client or the relay).
 */
export const loopbackDesigns: readonly CompareDesign[] = [
  singleLeader('async', '5 processes, ack on the leader’s disk'),
  singleLeader('semi-sync', '5 processes, 1 follower ack, 100 ms timeout'),
  singleLeader('sync', '5 processes, majority ack'),
  quorum(false),
  quorum(true),
]
