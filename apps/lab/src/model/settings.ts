import { invalid } from './lab.js'
import type { Design, LabSettings } from './types.js'

/**
 * Timings a person can follow at a tenth of real speed: a message takes 40 ms (0.4 s on screen),
 * a leader heartbeats every 150 ms, a follower stands for election after 800 ms of silence.
 * The lease (500 ms) stays shorter than the election timeout, as the single-leader config
 * requires: a deposed leader stops serving before anyone else can be elected.
 */
export const labTimings = Object.freeze({
  latencyMs: 40,
  tickMs: 10,
  clientTimeoutMs: 2_000,
  /** How long a read with a token (read-your-writes, monotonic) waits at a node that is behind. */
  readWaitMs: 1_000,
  heartbeatMs: 150,
  electionTimeoutMs: 800,
  leaseMs: 500,
  resendMs: 300,
  semiSyncTimeoutMs: 400,
  /** Quorum: coordinator timeout, failure detector ping and its timeout, hint handoff. */
  quorumRequestTimeoutMs: 1_000,
  pingMs: 200,
  failureTimeoutMs: 800,
  handoffMs: 500,
  /** Multi-leader: engine ticks and retransmission after a silent link. */
  replicaTickMs: 100,
  retransmitMs: 1_000,
})

/** The settings a design starts with: three nodes (five for quorum), the safe choices on. */
export function defaultSettings(design: Design): LabSettings {
  if (design !== 'single-leader' && design !== 'quorum' && design !== 'multi-leader') {
    invalid(`unknown design ${JSON.stringify(design)}; use single-leader, quorum or multi-leader`)
  }
  return {
    design,
    seed: 1,
    nodes: design === 'quorum' ? 5 : 3,
    singleLeader: { replication: 'async', chain: false, fencing: true, autoFailover: true },
    quorum: { n: 3, w: 2, r: 2, sloppy: false, readRepair: 'blocking' },
    multiLeader: { resolver: 'lww' },
  }
}

/** Throws `invalid-argument` for settings the lab cannot run, saying what to change. */
export function checkSettings(settings: LabSettings): void {
  const { design, seed, nodes } = settings
  if (design !== 'single-leader' && design !== 'quorum' && design !== 'multi-leader') {
    invalid(`unknown design ${JSON.stringify(design)}; use single-leader, quorum or multi-leader`)
  }
  if (!Number.isSafeInteger(seed)) invalid(`the seed is a whole number, got ${seed}`)
  const jitter = settings.jitterMs ?? 0
  if (!Number.isSafeInteger(jitter) || jitter < 0 || jitter > 1_000) {
    invalid(`jitter is a whole number of ms from 0 to 1000, got ${jitter}`)
  }
  const [min, max] = design === 'multi-leader' ? [2, 5] : design === 'quorum' ? [3, 7] : [2, 7]
  if (!Number.isSafeInteger(nodes) || nodes < min || nodes > max) {
    invalid(`${design} runs ${min} to ${max} nodes, got ${nodes}`)
  }
  if (design === 'single-leader') {
    const { replication } = settings.singleLeader
    if (!['async', 'semi-sync', 'sync'].includes(replication)) {
      invalid(`replication ${JSON.stringify(replication)} is unknown; use async, semi-sync or sync`)
    }
  }
  if (design === 'quorum') {
    const { n, w, r, readRepair } = settings.quorum
    if (!Number.isSafeInteger(n) || n < 1 || n > nodes)
      invalid(`N is between 1 and the node count (${nodes}), got ${n}`)
    if (!Number.isSafeInteger(w) || w < 1 || w > n) invalid(`W is between 1 and N (${n}), got ${w}`)
    if (!Number.isSafeInteger(r) || r < 1 || r > n) invalid(`R is between 1 and N (${n}), got ${r}`)
    if (!['off', 'async', 'blocking'].includes(readRepair)) {
      invalid(`read repair ${JSON.stringify(readRepair)} is unknown; use off, async or blocking`)
    }
  }
  if (design === 'multi-leader' && !['lww', 'merge', 'manual'].includes(settings.multiLeader.resolver)) {
    invalid(`resolver ${JSON.stringify(settings.multiLeader.resolver)} is unknown; use lww, merge or manual`)
  }
}

/** The network's faults at the start: the lab's latency, and the settings' jitter. */
export function startFaults(settings: LabSettings): { latencyMs: number; jitterMs: number } {
  return { latencyMs: labTimings.latencyMs, jitterMs: settings.jitterMs ?? 0 }
}

/** Node names of a design: n1…nN, or r1…rN for multi-leader replicas. */
export function nodeNames(settings: LabSettings): string[] {
  const prefix = settings.design === 'multi-leader' ? 'r' : 'n'
  return Array.from({ length: settings.nodes }, (_, i) => `${prefix}${i + 1}`)
}
