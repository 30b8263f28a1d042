import type { Timers } from '../timers.js'

/** The part of `navigator.locks` (the Web Locks API) tabs coordinate with. */
export interface LockManagerLike {
  request<TResult>(
    name: string,
    options: { readonly mode?: 'exclusive'; readonly steal?: boolean; readonly signal?: AbortSignal },
    callback: (lock: unknown) => Promise<TResult> | TResult,
  ): Promise<TResult>
}

/** The part of a `BroadcastChannel` tabs talk over. */
export interface ChannelLike {
  postMessage(message: unknown): void
  onmessage: ((event: { readonly data: unknown }) => void) | null
  close(): void
}

/** Makes a channel by name (`name => new BroadcastChannel(name)` in browsers). */
export type OpenChannel = (name: string) => ChannelLike

/** Options for {@link TabGroup}. */
export interface TabGroupOptions {
  /** Names the locks and the channel: one group per database. */
  readonly name: string
  readonly locks: LockManagerLike
  readonly openChannel: OpenChannel
  readonly timers: Timers
  readonly now: () => number
  readonly random: () => number
  /** How often the leading tab says it is alive. */
  readonly heartbeatMs: number
  /**
   * How long the others wait without hearing from the leading tab before one takes over
   * (stealing its lock): a tab the browser froze keeps its lock but says nothing.
   */
  readonly takeoverMs: number
  /** This tab now leads: claim the connection. A failure makes it step down again. */
  readonly onLead: () => Promise<void>
  /** This tab no longer leads (it stepped down, or another tab took over). */
  readonly onFollow: () => void
  /** A message from another tab of the group. */
  readonly onMessage: (message: unknown) => void
  readonly onError: (error: unknown) => void
}

/**
 * The pause before a tab whose claim of the connection failed queues for the lock again:
 * doubled with each failure in a row, up to {@link CLAIM_RETRY_MAX_MS}, less up to half of it
 * at random.
 */
export const CLAIM_RETRY_MS = 250
export const CLAIM_RETRY_MAX_MS = 30_000

/** The channel the tabs sharing database `name` talk over. */
export function tabChannelName(name: string): string {
  return `chorus:${name}`
}

/** Runs `work` while no tab sharing database `name` writes to it (see {@link TabGroup.exclusive}). */
export function exclusiveWrite<TResult>(
  locks: LockManagerLike,
  name: string,
  work: () => Promise<TResult>,
): Promise<TResult> {
  return locks.request(`chorus:${name}:write`, { mode: 'exclusive' }, work)
}

/**
 * The tabs of one origin that share one replica database: at most one of them leads — holds
 * the relay connection — chosen with a Web Lock, and all of them talk over a BroadcastChannel.
 *
 * A tab that closes releases the lock and the next waiting tab leads. A tab that freezes
 * keeps its lock; the leader's heartbeat stops, and after `takeoverMs` (plus jitter, so the
 * followers do not all jump at once) one follower steals the lock. The thief claims a new
 * epoch in the database (see `IdbReplicaStore.claimLeadership`), which is what actually
 * fences the frozen tab: when it wakes, every upload or apply it tries is refused, and it
 * steps down.
 */
export class TabGroup {
  readonly #options: TabGroupOptions
  readonly #channel: ChannelLike
  #leading = false
  #closed = false
  /** Ends the hold on the leader lock. */
  #release: (() => void) | null = null
  /** Cancels the queued (not yet granted) request for the leader lock. */
  #cancelQueued: AbortController | null = null
  #lastHeartbeat: number
  #watchdog: unknown = null
  #heartbeat: unknown = null
  #heartbeatMessage: () => unknown = () => null
  /** Claims that failed in a row (see {@link CLAIM_RETRY_MS}); 0 once one succeeds. */
  #claimFailures = 0
  /** The timer of the next claim after a failed one. */
  #retry: unknown = null

  constructor(options: TabGroupOptions) {
    this.#options = options
    this.#channel = options.openChannel(tabChannelName(options.name))
    this.#channel.onmessage = (event) => this.#receive(event.data)
    this.#lastHeartbeat = options.now()
  }

  get leading(): boolean {
    return this.#leading
  }

  /** Joins the group: waits for the leader lock, and watches the leader's heartbeat. */
  start(heartbeat: () => unknown): void {
    this.#heartbeatMessage = heartbeat
    this.#queue(false)
    const { timers } = this.#options
    this.#watchdog = timers.setInterval(() => this.#watch(), this.#options.heartbeatMs)
  }

  /** Runs `work` while no other tab of the group writes to the database. */
  exclusive<TResult>(work: () => Promise<TResult>): Promise<TResult> {
    return exclusiveWrite(this.#options.locks, this.#options.name, work)
  }

  /** Tells every other tab of the group. */
  post(message: unknown): void {
    if (this.#closed) return
    try {
      this.#channel.postMessage(message)
    } catch (error) {
      this.#options.onError(error)
    }
  }

  /** Says at once that the leader is alive (after a status change, say). */
  beat(): void {
    if (this.#leading) this.post(this.#heartbeatMessage())
  }

  /** Gives up leading (another tab took over, or claiming failed) and queues up again. */
  stepDown(): void {
    if (!this.#leading) return
    this.#lost()
    this.#queue(false)
  }

  /** Leaves the group: releases the lock (the next tab leads) and closes the channel. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const { timers } = this.#options
    if (this.#watchdog !== null) timers.clearInterval(this.#watchdog)
    if (this.#retry !== null) timers.clearTimeout(this.#retry)
    this.#stopHeartbeat()
    this.#cancelQueued?.abort()
    this.#cancelQueued = null
    if (this.#leading) this.#lost()
    this.#channel.onmessage = null
    this.#channel.close()
  }

  #queue(steal: boolean): void {
    if (this.#closed) return
    this.#cancelQueued?.abort()
    const controller = steal ? null : new AbortController()
    this.#cancelQueued = controller
    const name = `chorus:${this.#options.name}:leader`
    const options =
      controller === null
        ? ({ mode: 'exclusive', steal: true } as const)
        : ({ mode: 'exclusive', signal: controller.signal } as const)
    let granted = false
    this.#options.locks
      .request(name, options, async () => {
        granted = true
        if (this.#cancelQueued === controller) this.#cancelQueued = null
        if (this.#closed) return
        const held = new Promise<void>((resolve) => {
          this.#release = resolve
        })
        this.#leading = true
        this.#lastHeartbeat = this.#options.now()
        this.#startHeartbeat()
        try {
          await this.#options.onLead()
          this.#claimFailures = 0
        } catch (error) {
          this.#options.onError(error)
          if (this.#leading) {
            this.#lost()
            // Let another tab try; this one queues up behind it after a pause that grows with
            // each failure in a row (a full disk fails every claim: retrying at once would spin).
            this.#claimFailures++
            this.#retryLater()
          }
        }
        await held
      })
      .catch((error: unknown) => {
        if (!granted) return // the queued request was cancelled
        // The lock was stolen while held: another tab leads now.
        if (this.#leading) {
          this.#lost()
          this.#queue(false)
        } else if (!isAbort(error)) {
          this.#options.onError(error)
        }
      })
  }

  /** Queues for the lock again after a failed claim, once its pause is over. */
  #retryLater(): void {
    const { timers } = this.#options
    if (this.#closed) return
    if (this.#retry !== null) timers.clearTimeout(this.#retry)
    const base = Math.min(CLAIM_RETRY_MAX_MS, CLAIM_RETRY_MS * 2 ** Math.min(this.#claimFailures - 1, 16))
    const wait = base * (0.5 + this.#options.random() / 2)
    this.#retry = timers.setTimeout(() => {
      this.#retry = null
      // The watchdog counts silence from here: the claim this queues is under way.
      this.#lastHeartbeat = this.#options.now()
      this.#queue(false)
    }, wait)
  }

  /** This tab stops leading: heartbeat off, lock released, the runtime told. */
  #lost(): void {
    this.#leading = false
    this.#stopHeartbeat()
    const release = this.#release
    this.#release = null
    release?.()
    this.#options.onFollow()
  }

  #startHeartbeat(): void {
    this.#stopHeartbeat()
    this.beat()
    this.#heartbeat = this.#options.timers.setInterval(() => this.beat(), this.#options.heartbeatMs)
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat !== null) this.#options.timers.clearInterval(this.#heartbeat)
    this.#heartbeat = null
  }

  /** A follower that has not heard from a leader for too long takes over. */
  #watch(): void {
    // After a failed claim this tab waits its pause (see `#retryLater`) before claiming again.
    if (this.#closed || this.#leading || this.#retry !== null) return
    const silent = this.#options.now() - this.#lastHeartbeat
    const patience = this.#options.takeoverMs * (1 + this.#options.random())
    if (silent < patience) return
    this.#lastHeartbeat = this.#options.now()
    this.#queue(true)
  }

  #receive(message: unknown): void {
    if (this.#closed) return
    if (isHeartbeat(message)) this.#lastHeartbeat = this.#options.now()
    this.#options.onMessage(message)
  }
}

function isAbort(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError'
}

function isHeartbeat(message: unknown): boolean {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'leader'
}
