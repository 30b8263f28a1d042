import { defaultSettings } from './settings.js'
import type { LabAction, LabSettings, Preset, TimedAction } from './types.js'

function at(time: number, action: LabAction): TimedAction {
  return { at: time, action }
}

function singleLeader(overrides: Partial<LabSettings['singleLeader']>): LabSettings {
  const base = defaultSettings('single-leader')
  return { ...base, singleLeader: { ...base.singleLeader, ...overrides } }
}

function quorum(overrides: Partial<LabSettings['quorum']>): LabSettings {
  const base = defaultSettings('quorum')
  return { ...base, nodes: 3, quorum: { ...base.quorum, ...overrides } }
}

/**
 * The leader's links fail, a client writes `x = 5` to it anyway, and it dies before it can
 * replicate (the compare harness's "stall, then crash": a crash alone loses nothing, since a
 * message already sent still arrives).
 */
const leaderCrashScript: readonly TimedAction[] = [
  at(200, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '4' }),
  at(1000, { type: 'cut', a: 'n1', b: 'n2' }),
  at(1000, { type: 'cut', a: 'n1', b: 'n3' }),
  at(1100, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '5' }),
  at(1400, { type: 'kill', node: 'n1' }),
  at(1450, { type: 'heal' }),
  at(3500, { type: 'read', client: 'c2', node: 'n2', key: 'x', mode: 'any' }),
  at(4000, { type: 'restart', node: 'n1' }),
]

/** The 43-second partition scaled to 4.3 s: the leader's region is cut off, then healed. */
const partitionScript: readonly TimedAction[] = [
  at(200, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' }),
  at(1000, { type: 'partition', groups: [['n1'], ['n2', 'n3']] }),
  at(2600, { type: 'write', client: 'c2', node: 'n3', key: 'x', value: '2' }),
  at(2800, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '3' }),
  at(5300, { type: 'heal' }),
  at(6500, { type: 'read', client: 'c1', node: 'n1', key: 'x', mode: 'any' }),
  at(6500, { type: 'read', client: 'c2', node: 'n3', key: 'x', mode: 'any' }),
]

/**
 * A slow link to n2, then rounds of "c1 writes x at n1, c2 reads x at n2 right after the
 * write is acknowledged": the read meets the write only if the read quorum overlaps the write
 * quorum.
 */
const quorumScript: readonly TimedAction[] = [
  at(300, { type: 'latency', a: 'n1', b: 'n2', ms: 1000 }),
  ...[1, 2, 3, 4].flatMap((round) => [
    at(500 + round * 600, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: `${round}` }),
    at(750 + round * 600, { type: 'read', client: 'c2', node: 'n2', key: 'x', mode: 'any' }),
  ]),
]

/** Every scripted story, in the order the page lists them. */
export const presets: readonly Preset[] = [
  {
    id: 'async-leader-crash',
    title: 'Asynchronous leader crash: an acknowledged write is lost',
    story:
      'n1 leads with asynchronous replication. Its links to the followers fail; c1 writes x = 5 and n1 acknowledges at once, then dies before replicating it. n2 or n3 takes over without x = 5: the scoreboard counts one lost acknowledged write, and c2 reads the old x = 4.',
    settings: singleLeader({ replication: 'async' }),
    script: leaderCrashScript,
    durationMs: 2500,
  },
  {
    id: 'sync-leader-crash',
    title: 'The same crash with synchronous replication: nothing lost',
    story:
      'The same failure, but n1 acknowledges a write only once a majority holds it. Cut off, it cannot: c1 never hears "ok" for x = 5 (the write times out), so when n1 dies no acknowledged write is lost.',
    settings: singleLeader({ replication: 'sync' }),
    script: leaderCrashScript,
    durationMs: 2500,
  },
  {
    id: 'lagging-follower-read',
    title: 'Read-after-write from a lagging follower',
    story:
      'The link to n3 becomes slow (500 ms each way). c1 writes x = 2 at the leader and at once reads x at n3, which still has x = 1: a stale read. Asked again with read-your-writes, n3 waits until it has c1’s write and returns x = 2.',
    settings: singleLeader({ replication: 'async' }),
    script: [
      at(200, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' }),
      at(800, { type: 'latency', a: 'n1', b: 'n3', ms: 500 }),
      at(1000, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '2' }),
      at(1200, { type: 'read', client: 'c1', node: 'n3', key: 'x', mode: 'any' }),
      at(1300, { type: 'read', client: 'c1', node: 'n3', key: 'x', mode: 'read-your-writes' }),
    ],
    durationMs: 2000,
  },
  {
    id: 'partition-split-brain',
    title: 'The 43-second partition, without fencing: two leaders',
    story:
      'The leader’s region (n1) loses the others for 43 seconds, scaled here to 4.3 s. n2 and n3 elect n3; with fencing off n1 never learns it was replaced and keeps taking writes. Two leaders accept x at once: c2’s x = 2 at n3, then c1’s x = 3 at n1. After the partition heals the replicas disagree. The scoreboard counts x = 3 lost, since the history n3 leads never had it, and c2’s read of 2 at n3 stale, since x = 3 was acknowledged before that read began.',
    settings: singleLeader({ replication: 'async', fencing: false }),
    script: partitionScript,
    durationMs: 2000,
  },
  {
    id: 'partition-fenced',
    title: 'The same partition with epoch fencing: the old leader is refused',
    story:
      'The same 4.3 s partition with fencing on. n1’s lease runs out soon after the cut, and from then on it commits nothing (a write it gets waits); n2 and n3 elect n3 under a newer epoch, and n1 steps down a moment later: for that moment the scoreboard counts two leaders, but only n3 can commit. c1’s write at n1 comes after that and is rejected; when the partition heals n1 catches up from n3. Nothing diverges.',
    settings: singleLeader({ replication: 'async', fencing: true }),
    script: partitionScript,
    durationMs: 2000,
  },
  {
    id: 'manual-promote-split-brain',
    title: 'Manual promotion without fencing: split brain',
    story:
      'An operator promotes n2 while n1 is still alive and leading. Without fencing nothing tells n1 to stop: both accept writes to x, and the replicas end up with different values.',
    settings: singleLeader({ replication: 'async', fencing: false, autoFailover: false }),
    script: [
      at(200, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '1' }),
      at(1000, { type: 'promote', node: 'n2' }),
      at(1500, { type: 'write', client: 'c2', node: 'n2', key: 'x', value: '2' }),
      at(1600, { type: 'write', client: 'c1', node: 'n1', key: 'x', value: '3' }),
    ],
    durationMs: 2000,
  },
  {
    id: 'quorum-strict',
    title: 'Quorum W + R > N (N=3, W=2, R=2): no stale reads',
    story:
      'The link n1–n2 is slow. Each round c1 writes x through n1 and c2 reads x through n2 as soon as the write is acknowledged. Two of three replicas took each write and a read asks two, so every read meets the latest write (blocking read repair then fixes n2).',
    settings: quorum({ n: 3, w: 2, r: 2, readRepair: 'blocking' }),
    script: quorumScript,
    durationMs: 2000,
  },
  {
    id: 'quorum-weak',
    title: 'Quorum W + R ≤ N (N=3, W=1, R=1): stale reads',
    story:
      'The same rounds with W=1 and R=1: a write is acknowledged by n1 alone and a read asks n2 alone, which has not received it over the slow link. Every read misses the write just acknowledged: the first ones find no value at all, the later ones a value from rounds before.',
    settings: quorum({ n: 3, w: 1, r: 1, readRepair: 'blocking' }),
    script: quorumScript,
    durationMs: 2000,
  },
  {
    id: 'multi-leader-conflict',
    title: 'Multi-leader: concurrent writes while cut off, settled by the resolver',
    story:
      'r1 and r2 lose the relay. Both keep accepting writes: x = blue at r1, x = green at r2. When the links heal, every replica receives both versions: a conflict. Last-write-wins reads the same winner everywhere; with the manual resolver the conflict stays open until someone resolves it.',
    settings: { ...defaultSettings('multi-leader'), multiLeader: { resolver: 'lww' } },
    script: [
      at(200, { type: 'write', client: 'c3', node: 'r3', key: 'x', value: 'red' }),
      at(1000, { type: 'cut', a: 'r1', b: 'relay' }),
      at(1000, { type: 'cut', a: 'r2', b: 'relay' }),
      at(1200, { type: 'write', client: 'c1', node: 'r1', key: 'x', value: 'blue' }),
      at(1400, { type: 'write', client: 'c2', node: 'r2', key: 'x', value: 'green' }),
      at(2500, { type: 'heal' }),
    ],
    durationMs: 3000,
  },
]

/** The virtual time a preset's story ends: its last action plus `durationMs`. */
export function presetEndMs(preset: Preset): number {
  return Math.max(0, ...preset.script.map((step) => step.at)) + preset.durationMs
}
