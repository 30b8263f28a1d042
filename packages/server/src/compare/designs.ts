import { ChorusError, ErrorCode } from '@chorus/core'
import { MultiLeaderTarget } from './multi-leader-target.js'
import { QuorumTarget } from './quorum-target.js'
import { SingleLeaderTarget } from './single-leader-target.js'
import type { CompareTarget } from './target.js'

/**
 * The `mode` of a comparison row: the design family and, for single-leader, its replication.
 * Variants share a mode and differ in their design name: chain replication is a
 * `single-leader-sync` mode (a write waits for every node), and each quorum setting is
 * `quorum` or `quorum-sloppy`.
 */
export type CompareMode =
  | 'multi-leader'
  | 'single-leader-async'
  | 'single-leader-semi-sync'
  | 'single-leader-sync'
  | 'quorum'
  | 'quorum-sloppy'

/** One design the comparison runs: a mode and its settings. */
export interface CompareDesign {
  /** Unique name, used on the command line (`--design`). */
  readonly name: string
  readonly mode: CompareMode
  /** The settings, for people (`N3 W2 R2`, `acks 1, timeout 100 ms`). */
  readonly settings: string
  create(seed: number, clients: readonly string[]): CompareTarget
}

/** Server nodes of the single-leader and quorum clusters (the multi-leader side has one relay). */
export const COMPARE_NODES: readonly string[] = ['n1', 'n2', 'n3', 'n4', 'n5']
const CLIENT_TIMEOUT_MS = 1_000

function singleLeader(mode: 'async' | 'semi-sync' | 'sync' | 'chain', settings: string): CompareDesign {
  const replication =
    mode === 'semi-sync' ? ({ mode, acks: 1, timeoutMs: 100 } as const) : ({ mode } as const)
  return {
    name: `single-leader-${mode}`,
    mode: mode === 'chain' ? 'single-leader-sync' : `single-leader-${mode}`,
    settings,
    create: (seed, clients) =>
      new SingleLeaderTarget({
        seed,
        nodes: COMPARE_NODES,
        clients,
        replication,
        clientTimeoutMs: CLIENT_TIMEOUT_MS,
      }),
  }
}

function quorum(
  n: number,
  w: number,
  r: number,
  sloppy: boolean,
  conflicts: 'siblings' | 'lww' = 'siblings',
): CompareDesign {
  const label = `n${n}w${w}r${r}`
  const lww = conflicts === 'lww'
  return {
    name: `quorum-${sloppy ? 'sloppy-' : ''}${lww ? 'lww-' : ''}${label}`,
    mode: sloppy ? 'quorum-sloppy' : 'quorum',
    settings: `N${n} W${w} R${r}${sloppy ? ', sloppy, hinted handoff' : ''}${lww ? ', last write wins' : ''}`,
    create: (seed, clients) =>
      new QuorumTarget({
        seed,
        nodes: COMPARE_NODES,
        clients,
        replicas: n,
        writeQuorum: w,
        readQuorum: r,
        sloppy,
        clientTimeoutMs: CLIENT_TIMEOUT_MS,
        antiEntropyMs: 200,
        conflicts,
      }),
  }
}

/** Every design the comparison knows, in the order the table lists them. */
export const compareDesigns: readonly CompareDesign[] = [
  {
    name: 'multi-leader',
    mode: 'multi-leader',
    settings: 'a replica per client + 1 relay, lww',
    create: (seed, clients) => new MultiLeaderTarget({ seed, clients, ackSampleMs: 5 }),
  },
  singleLeader('async', '5 nodes, ack on the leader’s disk'),
  singleLeader('semi-sync', '5 nodes, 1 follower ack, 100 ms timeout, 4 votes elect'),
  singleLeader('sync', '5 nodes, majority ack'),
  singleLeader('chain', '5 nodes, tail ack'),
  quorum(3, 2, 2, false),
  quorum(3, 1, 1, false),
  quorum(3, 3, 1, false),
  // Concurrent puts are settled by timestamp on the replicas: the losers' acknowledged writes are gone.
  quorum(3, 2, 2, false, 'lww'),
  quorum(3, 2, 2, true),
]

/** The design named `name`; throws `invalid-argument` for an unknown one. */
export function compareDesign(name: string): CompareDesign {
  const design = compareDesigns.find((candidate) => candidate.name === name)
  if (design === undefined) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `unknown design ${JSON.stringify(name)}; use one of ${compareDesigns.map((d) => d.name).join(', ')}`,
    )
  }
  return design
}
