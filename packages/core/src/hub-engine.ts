import { ChorusError, ErrorCode, isChorusError } from './errors.js'
import type { ReplicaId, SpaceId } from './ids.js'
import { decodeMessage, encodeMessage } from './protocol/codec.js'
import {
  type AuthResult,
  DEFAULT_HUB_SESSION,
  type HubFacts,
  type HubSessionConfig,
  type HubSessionEffect,
  type HubSessionInput,
  type HubSessionState,
  initialHubSession,
  stepHubSession,
} from './protocol/hub-session.js'
import { DEFAULT_LIMITS, type ProtocolLimits } from './protocol/messages.js'
import { SerialQueue } from './serial-queue.js'
import type { HubStore } from './storage.js'

/** A peer connection as the hub sees it: a way to send frames and to hang up. */
export interface HubPeer {
  send(frame: string): void
  /** Hangs up; when the hub refused the peer, `code` and `message` say why (already sent as an error frame). */
  close(code?: ErrorCode, message?: string): void
}

/** Decides who may connect and what they may do; the default lets everyone write. */
export type Authenticate = (
  token: string | undefined,
  replicaId: ReplicaId,
) => AuthResult | Promise<AuthResult>

/** Options for {@link createHubEngine}. */
export interface HubEngineOptions {
  readonly store: HubStore
  /** Wall-clock milliseconds (injected). */
  readonly now: () => number
  readonly authenticate?: Authenticate
  readonly limits?: ProtocolLimits
  readonly session?: Partial<HubSessionConfig>
  /** Called when an append commits: the space, the replica, how many changes were new. */
  readonly onStored?: (space: SpaceId, replica: ReplicaId, appended: number) => void
  /** Called when a replica acknowledges the space's log up to `position` (for compaction). */
  readonly onAcked?: (space: SpaceId, replica: ReplicaId, position: number) => void
  /** Called with failures that have no caller to reject (a failed append, a failed read). */
  readonly onError?: (error: ChorusError) => void
}

/** One connection's view, for metrics: who it is and how far each stream has got. */
export interface HubSessionInfo {
  readonly replicaId: ReplicaId | null
  readonly phase: HubSessionState['phase']
  readonly spaces: readonly {
    readonly space: SpaceId
    readonly head: number
    /** Log positions the replica has acknowledged applying. */
    readonly acked: number
    /** The replica's changes stored here. */
    readonly received: number
  }[]
}

/** One accepted connection. */
export interface HubConnection {
  receive(frame: string): Promise<void>
  /** The transport closed. */
  closed(): Promise<void>
  session(): HubSessionState
}

/**
 * The hub side of sync over a {@link HubStore}: what a relay runs.
 *
 * Each connection's inputs run one at a time; appends to one space run one at a time, and
 * a replica's changes are acknowledged only after their append committed. When an append
 * lands, every connection on that space is told so it can stream the new entries.
 */
export interface HubEngine {
  accept(peer: HubPeer): HubConnection
  tick(): Promise<void>
  /** How many connections are open. */
  connections(): number
  /** How many spaces have their facts cached (those in use). */
  cachedSpaces(): number
  /** Every open connection's session, for metrics and lag. */
  sessions(): HubSessionInfo[]
  idle(): Promise<void>
}

const allowAll: Authenticate = () => ({ ok: true, access: () => 'write' })

interface SpaceCache {
  head: number
  floor: number
  received: Map<string, number>
}

/** Creates a hub over a store. */
export function createHubEngine(options: HubEngineOptions): HubEngine {
  const { store, now } = options
  const authenticate = options.authenticate ?? allowAll
  const limits = options.limits ?? DEFAULT_LIMITS
  const config: HubSessionConfig = { ...DEFAULT_HUB_SESSION, ...options.session }
  const spaces = new Map<string, SpaceCache>()
  const loading = new Map<string, Promise<SpaceCache>>()
  const appendQueues = new Map<string, SerialQueue>()
  const pendingAppends = new Map<string, number>()
  const connections = new Set<Connection>()
  const pendingWork = new Set<Promise<unknown>>()

  const facts: HubFacts = {
    head: (space) => spaces.get(space)?.head ?? 0,
    floor: (space) => spaces.get(space)?.floor ?? 0,
    received: (space, replica) => spaces.get(space)?.received.get(replica) ?? 0,
  }

  function report(error: unknown, what: string): void {
    const wrapped = isChorusError(error)
      ? error
      : new ChorusError(ErrorCode.StorageFailed, what, { cause: error })
    options.onError?.(wrapped)
  }

  function loadSpace(space: SpaceId): Promise<SpaceCache> {
    const cached = spaces.get(space)
    if (cached !== undefined) return Promise.resolve(cached)
    let pending = loading.get(space)
    if (pending === undefined) {
      pending = store.loadSpace(space).then((meta) => {
        const cache: SpaceCache = {
          head: meta.head,
          floor: meta.floor,
          received: new Map(Object.entries(meta.received)),
        }
        spaces.set(space, cache)
        loading.delete(space)
        return cache
      })
      pending.catch(() => loading.delete(space))
      loading.set(space, pending)
    }
    return pending
  }

  /**
   * Forgets a space's cached facts once no connection streams it and no append is pending:
   * the cache is rebuilt from the store when the space is next used.
   */
  function release(space: SpaceId): void {
    if ((pendingAppends.get(space) ?? 0) > 0) return
    for (const connection of connections) if (connection.uses(space)) return
    spaces.delete(space)
    appendQueues.delete(space)
  }

  function appendQueue(space: SpaceId): SerialQueue {
    let queue = appendQueues.get(space)
    if (queue === undefined) {
      queue = new SerialQueue()
      appendQueues.set(space, queue)
    }
    return queue
  }

  function track(work: Promise<unknown>): void {
    pendingWork.add(work)
    void work.finally(() => pendingWork.delete(work))
  }

  class Connection implements HubConnection {
    readonly #peer: HubPeer
    readonly #queue = new SerialQueue()
    #state: HubSessionState = initialHubSession(config)

    constructor(peer: HubPeer) {
      this.#peer = peer
    }

    session(): HubSessionState {
      return this.#state
    }

    receive(frame: string): Promise<void> {
      const decoded = decodeMessage(frame, limits)
      if (!decoded.ok) {
        this.#send(encodeMessage({ type: 'error', ...decoded.error }))
        // A peer on another protocol version cannot be talked to; anything else may be a one-off.
        if (decoded.error.code === ErrorCode.UnsupportedProtocol) {
          const { code, message } = decoded.error
          return this.input({ type: 'closed' }).then(() => this.#hangUp(code, message))
        }
        return Promise.resolve()
      }
      const message = decoded.message
      return this.#queue.run(() => this.#handle({ type: 'message', now: now(), message }))
    }

    closed(): Promise<void> {
      connections.delete(this)
      const spacesUsed = Object.keys(this.#state.streams)
      return this.input({ type: 'closed' }).then(() => {
        for (const space of spacesUsed) release(space as SpaceId)
      })
    }

    /** True when this connection streams `space`. */
    uses(space: string): boolean {
      return Object.hasOwn(this.#state.streams, space)
    }

    input(input: HubSessionInput): Promise<void> {
      return this.#queue.run(() => this.#handle(input))
    }

    async #handle(input: HubSessionInput): Promise<void> {
      const before = this.#state
      const step = stepHubSession(before, input, facts)
      this.#state = step.state
      const replica = step.state.replicaId
      if (options.onAcked !== undefined && replica !== null && step.state.streams !== before.streams) {
        for (const [space, stream] of Object.entries(step.state.streams)) {
          const previous = Object.hasOwn(before.streams, space) ? before.streams[space]?.acked : undefined
          if (stream.acked !== previous && stream.acked > 0)
            options.onAcked(space as SpaceId, replica, stream.acked)
        }
      }
      for (const effect of step.effects) await this.#perform(effect)
    }

    info(): HubSessionInfo {
      const state = this.#state
      const replica = state.replicaId
      return {
        replicaId: replica,
        phase: state.phase,
        spaces: Object.entries(state.streams).map(([space, stream]) => ({
          space: space as SpaceId,
          head: facts.head(space as SpaceId),
          acked: stream.acked,
          received: replica === null ? 0 : facts.received(space as SpaceId, replica),
        })),
      }
    }

    #send(frame: string): void {
      if (this.#state.phase !== 'closed') this.#peer.send(frame)
    }

    idle(): Promise<void> {
      return this.#queue.idle()
    }

    #hangUp(code: ErrorCode, message: string): void {
      this.#peer.close(code, message)
      connections.delete(this)
      for (const space of Object.keys(this.#state.streams)) release(space as SpaceId)
    }

    async #perform(effect: HubSessionEffect): Promise<void> {
      switch (effect.type) {
        case 'send':
          this.#send(encodeMessage(effect.message))
          return
        case 'close':
          this.#peer.send(encodeMessage({ type: 'error', code: effect.code, message: effect.message }))
          this.#hangUp(effect.code, effect.message)
          return
        case 'authenticate': {
          let result: AuthResult
          try {
            result = await authenticate(effect.token, effect.replicaId)
          } catch (error) {
            report(error, 'the authenticate hook threw')
            result = { ok: false, code: ErrorCode.Unauthenticated, message: 'authentication failed' }
          }
          // Only now, and only for spaces the peer may use, is anything loaded into memory:
          // a refused hello costs the hub nothing, however many spaces it names.
          if (result.ok) {
            const { access } = result
            // A hello naming any space it may not use is refused whole, so it loads nothing.
            const allowed = effect.spaces.every((space) => access(space) !== null)
            try {
              if (allowed) await Promise.all(effect.spaces.map(loadSpace))
            } catch (error) {
              report(error, 'loading a space failed')
              result = {
                ok: false,
                code: ErrorCode.StorageFailed,
                message: 'the hub could not load the space; try again',
              }
            }
          }
          await this.#handle({ type: 'authenticated', now: now(), result })
          return
        }
        case 'store': {
          // Appends run on the space's queue, outside this connection's queue, so one slow
          // disk does not hold other sessions' inputs; the outcome comes back as an input.
          const { space, replicaId, changes } = effect
          pendingAppends.set(space, (pendingAppends.get(space) ?? 0) + 1)
          const work = appendQueue(space).run(async () => {
            let ok = true
            try {
              const result = await store.append(space, replicaId, changes)
              const cache = await loadSpace(space)
              cache.head = result.head
              cache.received.set(replicaId, result.received)
              if (result.appended > 0) options.onStored?.(space, replicaId, result.appended)
            } catch (error) {
              ok = false
              report(error, 'appending changes failed; nothing was acknowledged')
            }
            pendingAppends.set(space, (pendingAppends.get(space) ?? 1) - 1)
            await this.input({ type: 'stored', now: now(), space, ok })
            if (ok) {
              for (const other of connections) {
                if (other !== this) track(other.input({ type: 'head-advanced', now: now(), space }))
              }
            }
          })
          track(work)
          return
        }
        case 'read-log': {
          try {
            const entries = await store.readLog(effect.space, effect.after, effect.limit)
            await this.#handle({
              type: 'log-read',
              now: now(),
              space: effect.space,
              after: effect.after,
              entries,
            })
          } catch (error) {
            if (isChorusError(error, ErrorCode.ResyncRequired)) {
              await this.#handle({ type: 'log-compacted', now: now(), space: effect.space })
              return
            }
            report(error, 'reading the log failed')
            await this.#handle({ type: 'read-failed', now: now(), space: effect.space })
          }
          return
        }
        case 'read-snapshot': {
          try {
            const page = await store.readSnapshot(effect.space, effect.afterKey, effect.limit)
            await this.#handle({
              type: 'snapshot-read',
              now: now(),
              space: effect.space,
              page: effect.page,
              ...page,
            })
          } catch (error) {
            report(error, 'reading a snapshot failed')
            await this.#handle({ type: 'read-failed', now: now(), space: effect.space })
          }
          return
        }
      }
    }
  }

  return {
    accept(peer) {
      const connection = new Connection(peer)
      connections.add(connection)
      return connection
    },
    async tick() {
      const time = now()
      await Promise.all([...connections].map((connection) => connection.input({ type: 'tick', now: time })))
    },
    connections: () => connections.size,
    cachedSpaces: () => spaces.size,
    sessions: () => [...connections].map((connection) => connection.info()),
    async idle() {
      while (pendingWork.size > 0) await Promise.all([...pendingWork])
      await Promise.all([...connections].map((connection) => connection.idle()))
    },
  }
}
