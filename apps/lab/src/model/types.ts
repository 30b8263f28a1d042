/**
 * The contract between the lab's model (a cluster of real Chorus nodes on a simulated network,
 * in virtual time) and its page. The model decides nothing about replication itself: every
 * node runs the state machines of `@chorus/server` or the engines of `@chorus/core`, on
 * `SimNetwork` from `@chorus/testkit`, and every number on the scoreboard comes from the same
 * checkers and reports the tests use.
 *
 * Virtual time only moves when the page calls {@link Lab.advance}; the page decides how fast
 * (human speed while watching, everything at once for "skip to end"). Given the same settings
 * and the same actions at the same virtual times, a lab produces the same timeline.
 */

export type Design = 'multi-leader' | 'single-leader' | 'quorum'

export type Replication = 'async' | 'semi-sync' | 'sync'

export type Resolver = 'lww' | 'merge' | 'manual'

export interface SingleLeaderSettings {
  readonly replication: Replication
  /** Chain replication (head → … → tail); `replication` is then ignored. */
  readonly chain: boolean
  /** Epoch fencing; off only to show split brain. */
  readonly fencing: boolean
  /** Followers elect a new leader when heartbeats stop. */
  readonly autoFailover: boolean
}

export interface QuorumSettings {
  /** Replicas per key (N). */
  readonly n: number
  readonly w: number
  readonly r: number
  readonly sloppy: boolean
  readonly readRepair: 'off' | 'async' | 'blocking'
}

export interface MultiLeaderSettings {
  /** How concurrent writes to one key are settled. */
  readonly resolver: Resolver
}

export interface LabSettings {
  readonly design: Design
  readonly seed: number
  /**
   * Extra one-way delay drawn per message from 0…`jitterMs`, from the seed (default 0, when
   * every seed gives the same run). With jitter, messages on one link may overtake each other.
   */
  readonly jitterMs?: number
  /** Server nodes (single-leader, quorum) or replicas (multi-leader; the relay is extra). */
  readonly nodes: number
  readonly singleLeader: SingleLeaderSettings
  readonly quorum: QuorumSettings
  readonly multiLeader: MultiLeaderSettings
}

/** How a client read picks its node and what it promises. */
export type ReadMode =
  /** Whatever the chosen node has now (may be stale). */
  | 'any'
  /** Waits until the node has this client's own last write (single-leader: LSN token). */
  | 'read-your-writes'
  /** Never older than what this client read before (single-leader: LSN token). */
  | 'monotonic'

/** Everything a person (or a preset) can do; the lab records each with its virtual time. */
export type LabAction =
  | {
      readonly type: 'write'
      readonly client: string
      readonly node: string
      readonly key: string
      readonly value: string
    }
  | {
      readonly type: 'read'
      readonly client: string
      readonly node: string
      readonly key: string
      readonly mode: ReadMode
    }
  /** One-way latency of the link between `a` and `b`, both directions. */
  | { readonly type: 'latency'; readonly a: string; readonly b: string; readonly ms: number }
  /** Cuts the link between `a` and `b`, both directions. */
  | { readonly type: 'cut'; readonly a: string; readonly b: string }
  /** Splits the nodes into groups that cannot reach each other. */
  | { readonly type: 'partition'; readonly groups: readonly (readonly string[])[] }
  /** Ends every cut and partition (latencies stay). */
  | { readonly type: 'heal' }
  | { readonly type: 'kill'; readonly node: string }
  | { readonly type: 'restart'; readonly node: string }
  /** Stops a node for `ms` (a GC pause, SIGSTOP): it resumes with the state it had. */
  | { readonly type: 'pause'; readonly node: string; readonly ms: number }
  /** Single-leader only: an operator promotes this follower. */
  | { readonly type: 'promote'; readonly node: string }
  /** Multi-leader with the manual resolver: settle a conflict on `key` with `value` at `node`. */
  | { readonly type: 'resolve'; readonly node: string; readonly key: string; readonly value: string }

/** An action and the virtual time it was applied at. */
export interface TimedAction {
  readonly at: number
  readonly action: LabAction
}

export interface NodeView {
  readonly id: string
  /**
   * `leader`, `follower`, `candidate`, `learner`, `replica`, `relay` or `node` (quorum);
   * `down` for a single-leader node that is down (it leads or follows nothing then).
   */
  readonly role: string
  readonly up: boolean
  readonly paused: boolean
  /** Single-leader: the node's epoch. */
  readonly epoch?: number
  /** Single-leader: last LSN in its log, and how far it may be read. */
  readonly lsn?: number
  readonly commitLsn?: number
  /**
   * Single-leader follower: committed entries it cannot read yet — behind the current leader's
   * commit, or, with no leader up, behind the commit it last heard of.
   */
  readonly lag?: number
  /**
   * Single-leader leader in chain mode: the chain, head first, and how many of its nodes are
   * counted (the rest catch up at its end).
   */
  readonly chain?: { readonly nodes: readonly string[]; readonly counted: number }
  /** Multi-leader and quorum: a compact version vector, e.g. `r1:3 r2:1`. */
  readonly clock?: string
  /** Every key the node holds and what it reads as; concurrent siblings are all listed. */
  readonly values: readonly KeyValueView[]
  /** Quorum, sloppy: versions this node holds as a stand-in for a home node that was out of reach. */
  readonly hints?: readonly HintView[]
}

export interface HintView {
  readonly key: string
  /** The home node the versions are for: handed to it when it is back. */
  readonly home: string
  readonly values: readonly string[]
}

export interface KeyValueView {
  readonly key: string
  /** One entry, or several when the node holds concurrent versions. */
  readonly values: readonly string[]
  /** What a read returns when `values` has several: the resolver's pick (multi-leader, quorum). */
  readonly resolved?: string
  /** True while the versions wait for a person to choose (multi-leader, `manual` resolver). */
  readonly conflict?: boolean
}

export interface LinkView {
  readonly a: string
  readonly b: string
  readonly latencyMs: number
  readonly cut: boolean
}

/** A message on the wire, for the page to animate between `sentAt` and `arrivesAt`. */
export interface MessageView {
  readonly id: number
  readonly from: string
  readonly to: string
  /** Short, e.g. `append 4`, `ack 4`, `heartbeat`, `put x`, `changes 2`. */
  readonly label: string
  readonly sentAt: number
  readonly arrivesAt: number
  /**
   * Set when the message will never be handled: `lost` (the link dropped it), `cut` or
   * `partition` (no route), `target-down`, `sender-down`. A copy blocked on arrival keeps its
   * `arrivesAt`; one dropped at send has `arrivesAt = sentAt`. Dropped messages stay listed for
   * a short while after they are dropped, so the page can show where they died.
   */
  readonly dropped?: 'lost' | 'cut' | 'partition' | 'target-down' | 'sender-down'
}

/** A client operation, in flight or finished. */
export interface OperationView {
  readonly id: number
  readonly client: string
  readonly node: string
  readonly kind: 'write' | 'read'
  readonly key: string
  /** Written value, or the value read once finished. */
  readonly value?: string
  readonly mode?: ReadMode
  readonly startedAt: number
  readonly endedAt?: number
  /** `ok`, `stale` (a read a checker flags), `rejected`, `timeout`. */
  readonly outcome?: 'ok' | 'stale' | 'rejected' | 'timeout'
  /** Why it was rejected, or where it landed (`epoch 2, LSN 7`). */
  readonly detail?: string
}

export interface TimelineEvent {
  readonly seq: number
  readonly at: number
  /** `action`, `write`, `read`, `role`, `network`, `node`, `conflict`, `check`. */
  readonly kind: string
  readonly text: string
}

/** Counted by the same checkers the tests use. */
export interface Scoreboard {
  readonly acknowledgedWrites: number
  readonly lostAcknowledgedWrites: number
  readonly staleReads: number
  /** Concurrent versions surfaced (multi-leader conflicts, quorum siblings). */
  readonly conflicts: number
  /** Replicas whose readable data differs from the reference (leader, or majority view). */
  readonly divergentReplicas: number
  /** Writes refused (fenced by epoch, no leader, no quorum). */
  readonly rejectedWrites: number
  /** Nodes that currently believe they lead (single-leader). */
  readonly leaders: number
  /** Keys with a conflict still waiting for a `resolve` (multi-leader, `manual` resolver). */
  readonly openConflicts?: number
  /** Which acknowledged writes were lost, e.g. `x = 5 (c1, epoch 1, LSN 3)` (single-leader). */
  readonly lostWrites?: readonly string[]
}

export interface LabView {
  readonly settings: LabSettings
  readonly now: number
  readonly nodes: readonly NodeView[]
  readonly links: readonly LinkView[]
  readonly messages: readonly MessageView[]
  readonly operations: readonly OperationView[]
  readonly timeline: readonly TimelineEvent[]
  readonly scoreboard: Scoreboard
  /** Clients that have made requests (single-leader, quorum: they are network endpoints too, and send and receive messages). */
  readonly clients?: readonly string[]
}

export interface Lab {
  readonly settings: LabSettings
  /** The current virtual time in ms. */
  now(): number
  /**
   * How many messages sent the lab holds the labels of (those in flight): bounded by the
   * traffic in flight, however long links stay cut or nodes down.
   */
  messagesHeld(): number
  /** A fresh snapshot for the page; cheap enough to call every frame. */
  view(): LabView
  /** Runs `ms` of virtual time (and every operation that settles in it). */
  advance(ms: number): Promise<void>
  /** Applies an action now and records it for replay. */
  apply(action: LabAction): Promise<void>
  /** Every action applied so far, with its time. */
  actions(): readonly TimedAction[]
  /** Notified after every advance and action. */
  subscribe(listener: () => void): () => void
}

/** A story from the seeds, scripted: settings, then actions at virtual times. */
export interface Preset {
  readonly id: string
  readonly title: string
  /** Two or three sentences: what happens and what to look at. */
  readonly story: string
  readonly settings: LabSettings
  readonly script: readonly TimedAction[]
  /** Virtual ms the story needs to play out after its last action. */
  readonly durationMs: number
}

/*
 * `./index.ts` exports, besides these types:
 *   createLab(settings: LabSettings): Promise<Lab>
 *   replayLab(settings: LabSettings, actions: readonly TimedAction[], untilMs: number): Promise<Lab>
 *     — a new lab from the same seed, with every action applied at its recorded time, run to `untilMs`.
 *   defaultSettings(design: Design): LabSettings
 *   presets: readonly Preset[]   (ids below are what the page and tests use)
 *     'async-leader-crash'       async single-leader, x = 5 acknowledged then the leader dies: lost
 *     'sync-leader-crash'        the same with sync replication: nothing lost
 *     'lagging-follower-read'    write at the leader, read a slow follower at once: stale
 *     'partition-split-brain'    the 43-second cross-region split, scaled, auto promotion, fencing off
 *     'partition-fenced'         the same with fencing on: the old leader's write is rejected
 *     'manual-promote-split-brain' promote a follower by hand with fencing off
 *     'quorum-strict'            N=3, W=2, R=2, blocking read repair: 0 stale reads
 *     'quorum-weak'              N=3, W=1, R=1: stale reads
 *     'multi-leader-conflict'    two replicas cut off, both write, heal: a conflict, settled by the resolver
 *   runPreset(preset): Promise<Lab> — createLab + the whole script + durationMs, at once.
 */
