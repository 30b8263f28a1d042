import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'
import { messageOf } from '../error-message.js'
import type { ErrorReply, NodeEffect, NodeMachine } from '../machine.js'
import type { NodeId } from '../node-id.js'
import type { NodeStorage, PendingAppend } from '../storage.js'
import { MAX_READ_WAIT_MS, onlyCommandFields } from '../wire.js'
import { FaultLayer, type LinkFaultSettings } from './fault-layer.js'
import { parseJsonBody } from './http-body.js'
import { checkPartitionGroups } from './partition-groups.js'
import { type PeerAddress, peerFrameLimit, TcpPeerTransport } from './tcp-peer-transport.js'

/** Largest HTTP request body the node reads. */
const MAX_BODY = 1024 * 1024

/** Options for {@link NodeRuntime}. */
export interface NodeRuntimeOptions<TState, TInput, TMessage, TReply, TRecord> {
  readonly id: NodeId
  /** Every member (a partition names groups of them). */
  readonly nodes: readonly NodeId[]
  readonly machine: NodeMachine<TState, TInput, TMessage, TReply, TRecord>
  readonly storage: NodeStorage<TRecord>
  /** Ms between ticks. */
  readonly tickMs: number
  /** Seed of the fault layer's draws. */
  readonly seed: number | string
  /** An HTTP request without a reply after this long is answered 504 (default 10000). */
  readonly requestTimeoutMs?: number
  /** The clock (default `Date.now`): the only source of time the machine sees. */
  readonly now?: () => number
  /**
   * Joins the messages for one peer that a batch of inputs produced into fewer (the quorum
   * design's `batchQuorumMessages`); called with them in order, just before they are sent.
   * The receiver must handle what it returns as it would the messages given. Without it every
   * message travels as its own frame.
   */
  readonly batchMessages?: (messages: readonly TMessage[]) => readonly TMessage[]
  /**
   * Inputs of a batch to step before the others (each group keeps its arrival order): the
   * quorum design's acknowledgements (`isQuorumAcknowledgement`). The inputs of one batch
   * arrived together and none has been answered, so any order of them is one the network could
   * have delivered; the design must accept every such order, as a design whose messages may be
   * reordered does. Effects that precede a batch's first `persist` leave before its commit, so
   * a reply that an acknowledgement completes then no longer waits for the commit (and fsync)
   * of the unrelated writes that arrived with it. Without it, inputs are stepped in arrival order.
   */
  readonly stepFirst?: (input: TInput) => boolean
  /**
   * Inputs an operator may give the machine by name, each through `POST /control/<name>` with
   * no fields (the single-leader design's `promote`). Without it there are none.
   */
  readonly operatorInputs?: Readonly<Record<string, (now: number) => TInput>>
}

/** Counters of a {@link NodeRuntime}. */
export interface NodeRuntimeStats {
  readonly steps: number
  /** Peer frames that did not parse or validate, dropped. */
  readonly malformedFrames: number
  /** Client requests refused with an `error` reply. */
  readonly refusedRequests: number
  /** Appends the storage refused (fenced or failed), each followed by a rebuild from storage. */
  readonly storageRefusals: number
  /** Appends that storage stored (a group commit counts once). */
  readonly commits: number
  /** Group commits: batches of inputs whose appends went to storage as one commit. */
  readonly groupCommits: number
  /** Inputs whose appends were part of a group commit of more than one input. */
  readonly groupedInputs: number
  /** Batches that storage refused as a whole and that were replayed one input at a time. */
  readonly batchReplays: number
  /** Inputs waiting for their batch now (a gauge, not a counter). */
  readonly queuedInputs: number
  /** Client requests received and not answered yet (a gauge). */
  readonly openRequests: number
  /**
   * Milliseconds spent waiting for storage appends (commits and their fsyncs). With a
   * synchronous storage such as `SqliteNodeStorage` the process does nothing else meanwhile.
   */
  readonly storageMs: number
}

/** The ports a started node listens on (both on 127.0.0.1). */
export interface NodePorts {
  readonly peerPort: number
  readonly httpPort: number
}

/**
 * Runs one node machine as a real server: peers over TCP, clients over HTTP/JSON, a durable
 * storage, a tick timer, and a fault layer controllable at run time.
 *
 * Inputs (peer frames, client requests, ticks) are handled in arrival order, and an effect is
 * never performed before every `persist` emitted ahead of it is durable, as the machine
 * contract requires (save an `early` send, which never waits for a commit) (a design may have some inputs of a batch stepped first: `stepFirst`). **Group commit:** every input that arrived while the previous commit was
 * being written, or in the same turn of the event loop, is stepped in one batch and, when the
 * storage offers `appendAll`, their appends go to it as one commit (one fsync). The effects
 * ahead of the batch's first `persist` are performed at once (sends leave before the commit
 * blocks the process), and so are `early` sends wherever they stand (one input alone: its early
 * sends go first, then its effects in order); the rest follow the commit, in order. If storage refuses the group, the
 * batch is replayed from the state before it one input at a time, so the refusal lands on the
 * step that caused it (the early effects are then performed again, which at-most-once sends
 * and answered clients tolerate). A refused append (fenced, failed)
 * drops the rest of that step and rebuilds the machine from its storage. A pause stops handling inputs (they queue) and ticks,
 * then resumes with the state the node had: a zombie.
 *
 * HTTP API (JSON bodies, 127.0.0.1 only):
 * - `POST /request` — a request of the node's design (e.g. `{ "type": "write", "id": "w1",
 *   "key": "k", "value": 1 }`); answers the machine's reply (200, or 400 for an `error` reply,
 *   504 when none came in time). A body that is not UTF-8 JSON text is refused 400
 *   (`malformed-frame`) on every route, before anything changes.
 * - `GET /status` — the machine's `status` reply.
 * - `POST /control/peers` `{ "peers": { "n2": { "host": "127.0.0.1", "port": 4711 } } }`.
 * - `POST /control/faults` `{ "peer": "n2" | null, "latencyMs"?, "jitterMs"?, "loss"?, "blocked"? }`.
 * - `POST /control/partition` `{ "groups": [["n1"], ["n2", "n3"]] }` — blocks links to nodes
 *   outside this node's group (send it to every node for a symmetric split). The groups are
 *   checked as the cluster's control API checks them: at least two, none empty, every member
 *   in exactly one.
 * - `POST /control/heal`, `POST /control/pause` `{ "ms": 500 }`, `GET /control/stats` (the
 *   counters, the transport's and the fault layer's, and the process's CPU time,
 *   `cpu: { user, system }` in µs).
 */
export class NodeRuntime<TState, TInput, TMessage, TReply, TRecord> {
  readonly id: NodeId
  readonly faults: FaultLayer
  readonly transport: TcpPeerTransport
  private readonly options: NodeRuntimeOptions<TState, TInput, TMessage, TReply, TRecord>
  private readonly http: Server
  private readonly now: () => number
  private state: TState | null = null
  private readonly queue: QueuedInput<TInput>[] = []
  private draining: Promise<void> | null = null
  private tickQueued = false
  private ticker: ReturnType<typeof setInterval> | null = null
  private pause: {
    readonly resumed: Promise<void>
    readonly resume: () => void
    until: number
    timer: NodeJS.Timeout
  } | null = null
  private readonly waiting = new Map<string, (reply: TReply | ErrorReply) => void>()
  private nextClient = 1
  private stopped = false
  private readonly counters = {
    steps: 0,
    malformedFrames: 0,
    refusedRequests: 0,
    storageRefusals: 0,
    commits: 0,
    groupCommits: 0,
    groupedInputs: 0,
    batchReplays: 0,
    storageMs: 0,
  }

  constructor(options: NodeRuntimeOptions<TState, TInput, TMessage, TReply, TRecord>) {
    this.options = options
    this.id = options.id
    this.now = options.now ?? Date.now
    this.faults = new FaultLayer(options.seed)
    this.transport = new TcpPeerTransport(
      options.id,
      (from, frame) => this.fromPeer(from, frame),
      peerFrameLimit(options.nodes.length),
    )
    this.http = createServer((request, response) => {
      this.route(request, response).catch((error: unknown) => {
        respond(response, 500, errorBody(null, ErrorCode.Internal, messageOf(error)))
      })
    })
  }

  /** A snapshot of the counters. */
  get stats(): NodeRuntimeStats {
    return { ...this.counters, queuedInputs: this.queue.length, openRequests: this.waiting.size }
  }

  /** Recovers the machine from storage, starts listening (port 0) and ticking. */
  async start(): Promise<NodePorts> {
    this.state = this.options.machine.recover(await this.options.storage.load(), this.now())
    const peerPort = await this.transport.listen(0)
    const httpPort = await new Promise<number>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(0, '127.0.0.1', () => {
        const address = this.http.address()
        if (address === null || typeof address === 'string') reject(new Error('no HTTP address'))
        else resolve(address.port)
      })
    })
    this.ticker = setInterval(() => this.tick(), this.options.tickMs)
    return { peerPort, httpPort }
  }

  /** Stops ticking, closes every socket, and waits for the step in progress. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.ticker !== null) clearInterval(this.ticker)
    this.pause?.resume()
    this.http.closeAllConnections()
    await Promise.all([
      this.transport.close(),
      new Promise<void>((resolve) => this.http.close(() => resolve())),
    ])
    await this.draining
  }

  private tick(): void {
    if (this.tickQueued || this.pause !== null || this.stopped) return
    this.tickQueued = true
    this.enqueue({
      source: { kind: 'tick' },
      input: (now) => {
        this.tickQueued = false
        return this.options.machine.tickInput(now)
      },
    })
  }

  private fromPeer(from: string, frame: string): void {
    this.enqueue({
      source: { kind: 'node' },
      input: (now) => {
        let parsed: unknown
        try {
          parsed = JSON.parse(frame)
        } catch {
          this.counters.malformedFrames++
          return null
        }
        return this.options.machine.messageInput(now, from as NodeId, parsed)
      },
    })
  }

  private enqueue(item: QueuedInput<TInput>): void {
    this.queue.push(item)
    this.wake()
  }

  /**
   * Starts draining the queue at the end of this turn of the event loop (if it is not draining
   * already), so every input that arrives in the same turn — all the frames and requests read
   * from the sockets in one go — joins the first batch instead of the first of them being
   * committed alone.
   */
  private wake(): void {
    if (this.draining !== null || this.stopped) return
    this.draining = nextTurn()
      .then(() => this.drain())
      .catch((error: unknown) => {
        process.stderr.write(
          `${JSON.stringify({ event: 'step-failed', node: this.id, message: messageOf(error) })}\n`,
        )
      })
      .finally(() => {
        this.draining = null
        if (this.queue.length > 0) this.wake()
      })
  }

  /**
   * Handles queued inputs in batches: everything queued when a batch starts is one batch (up to
   * `MAX_BATCH`, peer messages and ticks first: see `takeBatch`). After each batch the loop
   * yields to the event loop, so the inputs that arrived during its commit form the next one.
   */
  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      while (this.pause !== null) await this.pause.resumed
      if (this.stopped) return
      const batch = this.takeBatch()
      const now = this.now()
      const first: { readonly input: TInput; readonly source: InputSource }[] = []
      const rest: { readonly input: TInput; readonly source: InputSource }[] = []
      const stepFirst = this.options.stepFirst
      for (const item of batch) {
        const input = item.input(now)
        if (input !== null) (stepFirst?.(input) === true ? first : rest).push({ input, source: item.source })
      }
      const inputs = first.length === 0 ? rest : first.concat(rest)
      if (inputs.length === 1 || this.options.storage.appendAll === undefined) {
        for (const { input, source } of inputs) await this.apply(input, source)
      } else if (inputs.length > 1) await this.applyBatch(inputs)
      await nextTurn()
    }
  }

  /**
   * The next batch: at most `MAX_BATCH` inputs, oldest first, except that every queued message
   * from a peer and every tick comes before the clients' requests. Under a burst of requests the
   * cluster's own traffic (a follower's acknowledgement that renews the leader's lease, a vote)
   * is then not kept waiting behind hundreds of requests and their commits, which could let a
   * healthy leader's lease lapse and have it refuse the writes it is busy with. Each source's
   * inputs keep their order.
   */
  private takeBatch(): QueuedInput<TInput>[] {
    if (this.queue.length <= MAX_BATCH) return this.queue.splice(0)
    const cluster: QueuedInput<TInput>[] = []
    const clients: QueuedInput<TInput>[] = []
    for (const item of this.queue) (item.source.kind === 'client' ? clients : cluster).push(item)
    const taken = Math.max(0, MAX_BATCH - cluster.length)
    this.queue.splice(0, this.queue.length, ...clients.slice(taken))
    return cluster.concat(clients.slice(0, taken))
  }

  /**
   * Steps the machine over `inputs` and commits their appends at once (see the class doc). The
   * effects that come before the batch's first `persist` depend on no append of it, and `early`
   * sends wait for no append by the machine's word: both are performed at once, before the
   * commit (the quorum design's stores so overlap the coordinator's fsync with the replicas').
   */
  private async applyBatch(inputs: readonly { readonly input: TInput; readonly source: InputSource }[]) {
    const { machine, storage } = this.options
    const before = this.state
    if (before === null || storage.appendAll === undefined) return
    let state: TState = before
    const appends: PendingAppend<TRecord>[] = []
    const early: Exclude<NodeEffect<TMessage, TReply, TRecord>, { type: 'persist' }>[] = []
    const effects: Exclude<NodeEffect<TMessage, TReply, TRecord>, { type: 'persist' }>[] = []
    const stepped: { readonly input: TInput; readonly source: InputSource }[] = []
    for (const item of inputs) {
      let result: ReturnType<typeof machine.step>
      try {
        result = machine.step(state, item.input)
      } catch (error) {
        this.refuse(error, item.source)
        continue
      }
      stepped.push(item)
      state = result.state
      for (const effect of result.effects) {
        if (effect.type === 'persist')
          appends.push({ records: effect.records, epoch: effect.epoch, replace: effect.replace === true })
        else if (appends.length === 0 || (effect.type === 'send' && effect.early === true)) early.push(effect)
        else effects.push(effect)
      }
    }
    this.performAll(early)
    if (appends.length > 0) {
      this.transport.flush()
      const started = performance.now()
      const outcome = await storage.appendAll(appends)
      this.counters.storageMs += performance.now() - started
      if (!outcome.ok) {
        // Replay one input at a time from the state before the batch: the same steps (inputs
        // carry their own time), with the refusal now falling on the step that caused it.
        this.counters.batchReplays++
        this.state = before
        for (const { input, source } of stepped) await this.apply(input, source)
        return
      }
      this.counters.commits++
      this.counters.groupCommits++
      this.counters.groupedInputs += stepped.length
    }
    this.counters.steps += stepped.length
    this.state = machine.settle === undefined ? state : machine.settle(state)
    this.performAll(effects)
  }

  /**
   * Performs a batch's effects: replies in order, and the messages for each peer in order,
   * joined by `batchMessages` when the design offers it.
   */
  private performAll(
    effects: readonly Exclude<NodeEffect<TMessage, TReply, TRecord>, { type: 'persist' }>[],
  ) {
    const batch = this.options.batchMessages
    if (batch === undefined) {
      for (const effect of effects) this.perform(effect)
      return
    }
    const byPeer = new Map<NodeId, TMessage[]>()
    for (const effect of effects) {
      if (effect.type === 'reply') this.answer(effect.client, effect.reply)
      else {
        const list = byPeer.get(effect.to)
        if (list === undefined) byPeer.set(effect.to, [effect.message])
        else list.push(effect.message)
      }
    }
    for (const [to, messages] of byPeer) {
      const joined = messages.length === 1 ? messages : batch(messages)
      for (const message of joined) this.sendToPeer(to, JSON.stringify(message))
    }
  }

  private perform(effect: Exclude<NodeEffect<TMessage, TReply, TRecord>, { type: 'persist' }>): void {
    if (effect.type === 'send') this.sendToPeer(effect.to, JSON.stringify(effect.message))
    else this.answer(effect.client, effect.reply)
  }

  /**
   * A write to storage failed (the disk is full, the file is gone): said on stderr, and to
   * the client whose request made it at once, rather than after the request's timeout. The
   * request may still take effect — what this node sent before its own write (a leader's
   * entries, a coordinator's replicas) may be kept elsewhere — so the answer says so.
   */
  private storageFailed(message: string, source: InputSource): void {
    process.stderr.write(`${JSON.stringify({ event: 'storage-failed', node: this.id, message })}\n`)
    if (source.kind !== 'client') return
    this.answer(source.client, {
      type: 'error',
      id: source.id,
      code: ErrorCode.StorageFailed,
      message: `${this.id} could not store it (${message}); it may still take effect where other nodes took it`,
      maybeApplied: true,
    })
  }

  private refuse(error: unknown, source: InputSource): void {
    if (!isChorusError(error) || source.kind === 'tick' || source.kind === 'operator') throw error
    if (source.kind === 'node') this.counters.malformedFrames++
    else {
      this.counters.refusedRequests++
      this.answer(source.client, { type: 'error', id: source.id, code: error.code, message: error.message })
    }
  }

  private async apply(input: TInput, source: InputSource): Promise<void> {
    const { machine, storage } = this.options
    const before = this.state
    if (before === null) return
    let result: ReturnType<typeof machine.step>
    try {
      result = machine.step(before, input)
    } catch (error) {
      this.refuse(error, source)
      return
    }
    this.counters.steps++
    this.state = result.state
    for (const effect of result.effects)
      if (effect.type === 'send' && effect.early === true) this.perform(effect)
    for (const effect of result.effects) {
      switch (effect.type) {
        case 'persist': {
          this.transport.flush()
          const started = performance.now()
          const outcome = await storage.append(effect.records, effect.epoch, effect.replace)
          this.counters.storageMs += performance.now() - started
          if (!outcome.ok) {
            this.counters.storageRefusals++
            if (outcome.reason === 'failed') this.storageFailed(outcome.message, source)
            this.state = machine.recover(await storage.load(), this.now())
            return
          }
          this.counters.commits++
          break
        }
        case 'send':
          if (effect.early !== true) this.sendToPeer(effect.to, JSON.stringify(effect.message))
          break
        case 'reply':
          this.answer(effect.client, effect.reply)
          break
      }
    }
    if (machine.settle !== undefined && this.state !== null) this.state = machine.settle(this.state)
  }

  private sendToPeer(to: NodeId, frame: string): void {
    const decision = this.faults.decide(to)
    if (!decision.deliver) return
    if (decision.delayMs === 0) this.transport.send(to, frame)
    else setTimeout(() => this.transport.send(to, frame), decision.delayMs).unref()
  }

  private answer(client: string, reply: TReply | ErrorReply): void {
    const resolve = this.waiting.get(client)
    if (resolve === undefined) return
    this.waiting.delete(client)
    resolve(reply)
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/'
    const query = url.indexOf('?')
    const path = query < 0 ? url : url.slice(0, query)
    const route = `${request.method ?? 'GET'} ${path}`
    if (route === 'GET /status') {
      await this.clientRequest({ type: 'status', id: 'status' }, response)
      return
    }
    if (route === 'GET /control/stats') {
      respond(response, 200, {
        node: this.id,
        runtime: this.stats,
        transport: this.transport.stats,
        faults: this.faults.stats,
        paused: this.pause !== null,
        cpu: process.cpuUsage(),
      })
      return
    }
    const posted = routes.has(path) || this.operatorInput(path) !== undefined
    if (request.method !== 'POST' || !posted) {
      const allowed = posted ? 'POST' : getRoutes.has(path) ? 'GET' : null
      if (allowed !== null) {
        response.setHeader('allow', allowed)
        respond(
          response,
          405,
          errorBody(
            null,
            ErrorCode.InvalidArgument,
            `${path} takes ${allowed}, not ${request.method ?? 'no method'}`,
          ),
        )
        return
      }
      respond(
        response,
        404,
        errorBody(null, ErrorCode.InvalidArgument, `no route ${route}; see the node's API`),
      )
      return
    }
    const body = await readJson(request)
    if (!body.ok) {
      respond(response, body.status, errorBody(null, body.code, body.message))
      return
    }
    if (path === '/request') {
      await this.clientRequest(body.value, response)
      return
    }
    try {
      this.control(path, body.value)
      respond(response, 200, { ok: true })
    } catch (error) {
      if (!isChorusError(error)) throw error
      respond(response, 400, errorBody(null, error.code, error.message))
    }
  }

  private clientRequest(request: unknown, response: ServerResponse): Promise<void> {
    const client = `http-${this.nextClient++}`
    const id =
      typeof request === 'object' && request !== null && typeof (request as { id?: unknown }).id === 'string'
        ? (request as { id: string }).id
        : null
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          this.waiting.delete(client)
          respond(response, 504, {
            type: 'timeout',
            id,
            message: 'the node did not answer in time; the request may still take effect',
          })
          resolve()
        },
        (this.options.requestTimeoutMs ?? 10_000) + askedWait(request),
      )
      this.waiting.set(client, (reply) => {
        clearTimeout(timer)
        respond(response, replyStatus(reply), reply)
        resolve()
      })
      this.enqueue({
        source: { kind: 'client', client, id },
        input: (now) => this.options.machine.requestInput(now, client, request),
      })
    })
  }

  /** The maker of the operator input `POST path` gives, if the design has one of that name. */
  private operatorInput(path: string): ((now: number) => TInput) | undefined {
    const inputs = this.options.operatorInputs
    if (inputs === undefined || !path.startsWith('/control/')) return undefined
    const name = path.slice('/control/'.length)
    return Object.hasOwn(inputs, name) ? inputs[name] : undefined
  }

  private control(path: string, body: unknown): void {
    const fields = asObject(body ?? {})
    const operator = this.operatorInput(path)
    onlyCommandFields(fields, operator === undefined ? (controlFields[path] ?? []) : [], path)
    if (operator !== undefined) {
      // Queued like any input: the machine takes it in its turn, with the clock of its batch.
      this.enqueue({ source: { kind: 'operator' }, input: operator })
      return
    }
    switch (path) {
      case '/control/peers': {
        const peers = asObject(fields.peers, 'peers')
        const map = new Map<string, PeerAddress>()
        for (const [peer, value] of Object.entries(peers)) {
          if (!this.options.nodes.includes(peer as NodeId))
            invalid(`peers names ${JSON.stringify(peer)}, not a member`)
          const address = asObject(value, `peers.${peer}`)
          const { host, port } = address
          if (typeof host !== 'string' || host === '') invalid(`peers.${peer}.host must be a host name`)
          if (typeof port !== 'number' || !Number.isSafeInteger(port) || port < 1 || port > 65_535) {
            invalid(`peers.${peer}.port must be a TCP port`)
          }
          map.set(peer, { host: host as string, port: port as number })
        }
        this.transport.setPeers(map)
        return
      }
      case '/control/faults': {
        const peer = fields.peer ?? null
        if (peer !== null && !this.options.nodes.includes(peer as NodeId))
          invalid('peer must name a member or be null')
        // A node sends nothing to itself: faults on that link would be accepted and do nothing.
        if (peer === this.id) invalid(`peer must name another member than this node (${this.id}), or be null`)
        const faults: Partial<LinkFaultSettings> = {}
        for (const key of ['latencyMs', 'jitterMs', 'loss', 'blocked'] as const) {
          if (fields[key] !== undefined) Object.assign(faults, { [key]: fields[key] })
        }
        this.faults.set(peer as string | null, faults)
        return
      }
      case '/control/partition': {
        const groups = checkPartitionGroups(fields.groups, this.options.nodes)
        const mine = groups.find((group) => group.includes(this.id)) ?? [this.id]
        const others = this.options.nodes.filter((node) => node !== this.id)
        this.faults.partition(
          others.filter((node) => !mine.includes(node)),
          others,
        )
        return
      }
      case '/control/heal':
        this.faults.heal()
        return
      case '/control/pause': {
        const ms = fields.ms
        if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 1 || ms > 600_000) {
          invalid('ms must be an integer from 1 to 600000')
        }
        this.pauseFor(ms as number)
        return
      }
    }
  }

  /**
   * Pauses the node for `ms` from now. Asked again while paused, it ends the pause at the later
   * of the two ends: a longer pause is carried out, a shorter one cuts nothing short.
   */
  private pauseFor(ms: number): void {
    const until = Date.now() + ms
    if (this.pause !== null) {
      if (until > this.pause.until) {
        clearTimeout(this.pause.timer)
        this.pause.until = until
        this.pause.timer = setTimeout(this.pause.resume, ms).unref()
      }
      return
    }
    let resume: () => void = () => {}
    const resumed = new Promise<void>((resolve) => {
      resume = resolve
    })
    const end = () => {
      if (this.pause?.resumed !== resumed) return
      clearTimeout(this.pause.timer)
      this.pause = null
      resume()
    }
    this.pause = { resumed, resume: end, until, timer: setTimeout(end, ms).unref() }
  }
}

/** Resolves in the check phase of the event loop, after the sockets have been read. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Most inputs stepped and committed together. */
const MAX_BATCH = 256

/** An input waiting its turn; it is made (with the clock) when its batch starts. */
interface QueuedInput<TInput> {
  readonly source: InputSource
  /** The machine input, or null for a frame that did not parse (counted, dropped). */
  readonly input: (now: number) => TInput | null
}

/** Where an input came from. */
type InputSource =
  | { readonly kind: 'node' }
  | { readonly kind: 'tick' }
  | { readonly kind: 'operator' }
  | { readonly kind: 'client'; readonly client: string; readonly id: string | null }

/** The paths a node answers with GET; the others (`routes`) take POST. */
const getRoutes = new Set(['/status', '/control/stats'])

const routes = new Set([
  '/request',
  '/control/peers',
  '/control/faults',
  '/control/partition',
  '/control/heal',
  '/control/pause',
])

/** The fields each control route takes; any other is refused, so that a misspelt one is not ignored. */
const controlFields: Record<string, readonly string[]> = {
  '/control/peers': ['peers'],
  '/control/faults': ['peer', 'latencyMs', 'jitterMs', 'loss', 'blocked'],
  '/control/partition': ['groups'],
  '/control/heal': [],
  '/control/pause': ['ms'],
}

function invalid(message: string): never {
  throw new ChorusError(ErrorCode.InvalidArgument, message)
}

function asObject(value: unknown, what = 'the body'): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    invalid(`${what} must be a JSON object`)
  return value as Record<string, unknown>
}

function errorBody(id: string | null, code: ErrorCode, message: string): ErrorReply {
  return { type: 'error', id, code, message }
}

function respond(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return
  const text = JSON.stringify(body)
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  })
  response.end(text)
}

type BodyResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly status: number; readonly code: ErrorCode; readonly message: string }

/** Reads a request's JSON body with plain stream events (an async iterator costs more per request). */
function readJson(request: IncomingMessage): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_BODY) {
        chunks.push(chunk)
        return
      }
      request.off('data', onData)
      request.resume()
      resolve({
        ok: false,
        status: 413,
        code: ErrorCode.FrameTooLarge,
        message: `the body exceeds ${MAX_BODY} bytes`,
      })
    }
    request.on('data', onData)
    request.once('error', reject)
    request.once('end', () => {
      if (size > MAX_BODY) return
      // No body: a command with no fields (`POST /control/heal`).
      if (size === 0) {
        resolve({ ok: true, value: undefined })
        return
      }
      try {
        resolve({ ok: true, value: parseJsonBody(Buffer.concat(chunks)) })
      } catch (error) {
        if (!isChorusError(error)) throw error
        resolve({ ok: false, status: 400, code: error.code, message: error.message })
      }
    })
  })
}

/**
 * How long a request asks its node to wait before answering (a replica read's `waitMs`, at
 * most `MAX_READ_WAIT_MS`): the node's answer is waited for that much longer.
 */
function askedWait(request: unknown): number {
  const waitMs =
    typeof request === 'object' && request !== null ? (request as { waitMs?: unknown }).waitMs : undefined
  return typeof waitMs === 'number' && Number.isFinite(waitMs)
    ? Math.min(Math.max(waitMs, 0), MAX_READ_WAIT_MS)
    : 0
}

/** The HTTP status of a reply: 200, 400 for a refused request, 503 when the node's storage failed. */
function replyStatus(reply: unknown): number {
  const { type, code } = reply as { type?: unknown; code?: unknown }
  if (type !== 'error') return 200
  return code === ErrorCode.StorageFailed ? 503 : 400
}
