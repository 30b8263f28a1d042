import { ChorusError, ErrorCode, explainNonJson } from '@chorus/core'
import { messageOf } from '../error-message.js'

/** The nodes of a cluster: each node's id and the base URL of its HTTP API. */
export type ClusterNodes = Readonly<Record<string, string>>

/**
 * A write (single-leader) or put (quorum) that did not succeed: why, whether it may still take
 * effect (`maybeApplied`: the nodes took it and did not say), and the node that last had it,
 * or null when none was reached.
 */
export interface ClusterWriteFailure<TReason extends string> {
  readonly ok: false
  readonly reason: TReason | ErrorCode
  readonly maybeApplied: boolean
  readonly message: string
  readonly node: string | null
}

/** Options every cluster client takes. */
export interface ClusterClientOptions {
  /**
   * The nodes by id, each the base URL of its HTTP API (`http://127.0.0.1:39017`), as
   * `chorus-cluster` prints them. Node ids matter: a single-leader node names the leader by id.
   */
  readonly nodes: ClusterNodes
  /** How long one request to one node may take before it counts as unanswered (default 2000 ms). */
  readonly requestTimeoutMs?: number
  /** How long one operation may go on trying other nodes, with pauses between rounds (default 10000 ms). */
  readonly deadlineMs?: number
  /**
   * Called when a node cannot be reached: the cluster's nodes as they are now (a node restarted
   * by `chorus-cluster` listens on new ports; see {@link clusterNodes}). Its answer replaces the
   * URLs the client holds; a failure leaves them as they were.
   */
  readonly refreshNodes?: () => Promise<ClusterNodes>
  /** The name request ids start with (default `client-` and a random suffix). */
  readonly name?: string
  /** The `fetch` to call nodes with (default the global one). */
  readonly fetch?: typeof fetch
}

/**
 * What became of one request to one node.
 *
 * - `answer`: the node answered (its HTTP status and JSON body; a 504 means its machine did not
 *   reply in time, and the request may still take effect);
 * - `unreached`: the connection was refused, so the node never saw the request;
 * - `silent`: no answer in time, or the connection broke after the request went out: the node
 *   may have taken it.
 */
export type CallResult =
  | { readonly kind: 'answer'; readonly status: number; readonly body: Record<string, unknown> }
  | { readonly kind: 'unreached'; readonly message: string }
  | { readonly kind: 'silent'; readonly message: string }

/** Error codes of a connection that never reached the server (Node's `fetch` names them in `cause`). */
const UNREACHED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])

/** The pause after a round of nodes that all failed, doubled each round up to {@link MAX_PAUSE_MS}. */
const FIRST_PAUSE_MS = 20
const MAX_PAUSE_MS = 500

/**
 * Calls the nodes of a cluster over HTTP for a client: one request at a time to one node, with
 * a timeout, and the bookkeeping of an operation that tries node after node until a deadline.
 */
export class NodeCaller {
  readonly name: string
  readonly requestTimeoutMs: number
  readonly deadlineMs: number
  private urls: Map<string, string>
  private readonly refresh: (() => Promise<ClusterNodes>) | null
  private readonly fetch: typeof fetch
  private nextRequest = 1
  private refreshing: Promise<void> | null = null

  constructor(options: ClusterClientOptions) {
    this.urls = checkNodes(options.nodes)
    this.requestTimeoutMs = positive(options.requestTimeoutMs, 2_000, 'requestTimeoutMs')
    this.deadlineMs = positive(options.deadlineMs, 10_000, 'deadlineMs')
    this.refresh = options.refreshNodes ?? null
    const name = options.name ?? `client-${Math.random().toString(36).slice(2, 10)}`
    if (typeof name !== 'string' || name.length === 0 || name.length > 64) {
      throw new ChorusError(ErrorCode.InvalidArgument, 'name must be a string of 1 to 64 characters')
    }
    this.name = name
    const chosen = options.fetch ?? globalThis.fetch
    if (typeof chosen !== 'function') {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        'no fetch: pass options.fetch on a runtime without one',
      )
    }
    this.fetch = chosen
  }

  /** The nodes' URLs as the client holds them now, by id. */
  urlsById(): Record<string, string> {
    return Object.fromEntries(this.urls)
  }

  /** The node ids, in the order the options gave them. */
  nodes(): string[] {
    return [...this.urls.keys()]
  }

  /** The URL of node `id`'s API; throws `invalid-argument` for a node the client does not know. */
  url(id: string): string {
    const url = this.urls.get(id)
    if (url === undefined)
      throw new ChorusError(ErrorCode.InvalidArgument, `no node ${JSON.stringify(id)} in this cluster`)
    return url
  }

  /** A request id no other request of this client has. */
  requestId(): string {
    return `${this.name}-${this.nextRequest++}`
  }

  /** The node after `node` in the list (the first for one the client does not know). */
  after(node: string): string {
    const ids = this.nodes()
    return ids[(ids.indexOf(node) + 1) % ids.length] as string
  }

  /** `POST /request` of node `id`, answered within `requestTimeoutMs` plus `waitMs` (what the request lets the node wait). */
  request(id: string, body: object, waitMs = 0): Promise<CallResult> {
    return this.call(id, 'POST', '/request', body, waitMs)
  }

  /**
   * `GET /status` of node `id`. A node that cannot be reached is asked again once, when
   * `refreshNodes` gives it a new URL (a restarted node).
   */
  async status(id: string): Promise<CallResult> {
    const url = this.url(id)
    const first = await this.call(id, 'GET', '/status')
    if (first.kind !== 'unreached') return first
    await this.refreshUrls()
    return this.url(id) === url ? first : this.call(id, 'GET', '/status')
  }

  /**
   * Calls one route of node `id`; never throws for what the network or the node does. A body
   * that is not JSON throws `invalid-argument` before anything is sent.
   */
  async call(
    id: string,
    method: 'GET' | 'POST',
    path: string,
    body?: object,
    waitMs = 0,
  ): Promise<CallResult> {
    const url = `${this.url(id).replace(/\/+$/, '')}${path}`
    const text = body === undefined ? undefined : encodeBody(body)
    let response: Response
    try {
      response = await this.fetch(url, {
        method,
        signal: AbortSignal.timeout(this.requestTimeoutMs + waitMs),
        ...(text === undefined ? {} : { body: text, headers: { 'content-type': 'application/json' } }),
      })
    } catch (error) {
      const code = causeCode(error)
      if (code !== null && UNREACHED.has(code)) return { kind: 'unreached', message: `${id}: ${code}` }
      return { kind: 'silent', message: `${id}: ${messageOf(error)}${code === null ? '' : ` (${code})`}` }
    }
    let answer: string
    try {
      answer = await response.text()
    } catch (error) {
      return { kind: 'silent', message: `${id}: the answer broke off: ${messageOf(error)}` }
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(answer)
    } catch {
      parsed = null
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      // Not a node of this cluster (or not one of its routes): the request was seen, by something.
      return {
        kind: 'answer',
        status: response.status,
        body: {
          type: 'error',
          code: ErrorCode.Internal,
          message: `${id} answered ${path} with a body that is not a JSON object`,
        },
      }
    }
    return { kind: 'answer', status: response.status, body: parsed as Record<string, unknown> }
  }

  /**
   * Runs `attempt` on node after node until it says it is done or the deadline passes. The
   * node an attempt names next is asked next unless this round asked it already; then the first
   * node after it that this round has not asked is. So two nodes that name each other as the
   * leader (each with a stale view) cannot keep an operation between them: a round asks every
   * node once. After a round in which nothing was done it pauses (20 ms, doubled up to 500 ms,
   * with jitter) and, when a node could not be reached, asks for fresh node URLs. Resolves with
   * the attempt's result, or `null` once the deadline passed.
   */
  async retry<T>(
    first: string,
    attempt: (
      node: string,
    ) => Promise<
      | { readonly done: true; readonly result: T }
      | { readonly done: false; readonly next: string; readonly unreached?: boolean }
    >,
  ): Promise<T | null> {
    const deadline = Date.now() + this.deadlineMs
    const asked = new Set<string>()
    let node = first
    let pause = FIRST_PAUSE_MS
    let unreachedInRound = false
    for (;;) {
      asked.add(node)
      const outcome = await attempt(node)
      if (outcome.done) return outcome.result
      if (outcome.unreached === true) {
        unreachedInRound = true
        // Asked at once, not awaited: the next node is tried meanwhile.
        void this.refreshUrls()
      }
      const untried = this.firstUnasked(outcome.next, asked)
      if (untried !== null) {
        node = untried
        continue
      }
      if (Date.now() >= deadline) return null
      if (unreachedInRound) await this.refreshUrls()
      asked.clear()
      unreachedInRound = false
      const wait = Math.min(pause * (0.5 + Math.random()), Math.max(0, deadline - Date.now()))
      await new Promise((resolve) => setTimeout(resolve, wait))
      pause = Math.min(MAX_PAUSE_MS, pause * 2)
      node = this.urls.has(outcome.next) ? outcome.next : (this.nodes()[0] as string)
    }
  }

  /** `start`, or the first node after it in the list, that is not in `asked`; null when every node is. */
  private firstUnasked(start: string, asked: ReadonlySet<string>): string | null {
    const ids = this.nodes()
    const from = Math.max(0, ids.indexOf(start))
    for (let i = 0; i < ids.length; i++) {
      const id = ids[(from + i) % ids.length] as string
      if (!asked.has(id)) return id
    }
    return null
  }

  /**
   * Asks `refreshNodes` for the nodes' URLs now. A node its answer leaves out (one that is not
   * running) keeps its old URL; a failure keeps them all.
   */
  refreshUrls(): Promise<void> {
    const refresh = this.refresh
    if (refresh === null) return Promise.resolve()
    // One question at a time: a caller that comes while it is out waits for its answer.
    this.refreshing ??= (async () => {
      try {
        const fresh = await refresh()
        this.urls = checkNodes({ ...Object.fromEntries(this.urls), ...fresh })
      } catch {
        // The old URLs stay: the next round tries them again.
      } finally {
        this.refreshing = null
      }
    })()
    return this.refreshing
  }
}

/**
 * Checks that `value`, given to a client to write, is plain JSON; throws `invalid-argument`
 * naming what is not (a `BigInt`, a cycle, `NaN`, a `Date`, …), so that a value a node could not
 * store, or that JSON would change on the way, is never sent.
 */
export function checkValue(value: unknown, what = 'value'): void {
  const why = explainNonJson(value, what)
  if (why !== undefined) throw new ChorusError(ErrorCode.InvalidArgument, `not JSON: ${why}`)
}

function encodeBody(body: object): string {
  try {
    return JSON.stringify(body)
  } catch (error) {
    throw new ChorusError(ErrorCode.InvalidArgument, `the request is not JSON: ${messageOf(error)}`)
  }
}

/**
 * A node's error reply (a malformed request, one too large, …) as a failed outcome's reason and
 * message: the request was refused and changed nothing.
 */
export function refusal(
  body: Record<string, unknown>,
  node: string,
): { readonly reason: ErrorCode; readonly message: string } {
  const reason = typeof body.code === 'string' ? (body.code as ErrorCode) : ErrorCode.Internal
  const message = typeof body.message === 'string' ? body.message : `answered ${JSON.stringify(body)}`
  return { reason, message: `${node}: ${message}` }
}

/** The `code` of a fetch failure's cause (Node: `ECONNREFUSED`, `UND_ERR_SOCKET`, …), or null. */
function causeCode(error: unknown): string | null {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 4; depth++) {
    const code = (at as { code?: unknown }).code
    if (typeof code === 'string') return code
    at = at.cause
  }
  return null
}

function checkNodes(nodes: ClusterNodes): Map<string, string> {
  if (typeof nodes !== 'object' || nodes === null || Array.isArray(nodes)) {
    throw new ChorusError(ErrorCode.InvalidArgument, 'nodes must be an object of node ids to URLs')
  }
  const urls = new Map<string, string>()
  for (const [id, url] of Object.entries(nodes)) {
    if (!isHttpUrl(url)) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `nodes.${id} must be the http:// or https:// URL of the node's API, not ${JSON.stringify(url)}`,
      )
    }
    urls.set(id, url)
  }
  if (urls.size === 0) throw new ChorusError(ErrorCode.InvalidArgument, 'nodes names no node')
  return urls
}

function positive(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${what} must be a positive number of milliseconds`)
  }
  return value
}

/**
 * The nodes of a cluster `chorus-cluster` runs, read from its control API (`GET /nodes`):
 * the running ones, by id. Pass it as `refreshNodes` so a client follows restarted nodes:
 * `refreshNodes: () => clusterNodes(control)`.
 */
export async function clusterNodes(
  controlUrl: string,
  fetchWith: typeof fetch = globalThis.fetch,
): Promise<ClusterNodes> {
  if (!isHttpUrl(controlUrl)) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `the control URL must be an http:// or https:// URL, as chorus-cluster prints it; got ${JSON.stringify(controlUrl)}`,
    )
  }
  const url = `${controlUrl.replace(/\/+$/, '')}/nodes`
  let body: { nodes?: unknown }
  try {
    const response = await fetchWith(url, { signal: AbortSignal.timeout(5_000) })
    if (!response.ok) {
      throw new ChorusError(ErrorCode.InvalidArgument, `${url} answered ${response.status}`)
    }
    body = (await response.json()) as { nodes?: unknown }
  } catch (error) {
    if (error instanceof ChorusError) throw error
    const code = causeCode(error)
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `no cluster control API answered at ${url}: ${messageOf(error)}${code === null ? '' : ` (${code})`}`,
      { cause: error },
    )
  }
  const nodes: Record<string, string> = {}
  for (const node of Array.isArray(body?.nodes) ? body.nodes : []) {
    const { id, running, url } = (node ?? {}) as { id?: unknown; running?: unknown; url?: unknown }
    if (typeof id === 'string' && running === true && typeof url === 'string') nodes[id] = url
  }
  return nodes
}

/** True for an `http://` or `https://` URL with a host, as a node's or the control API's. */
function isHttpUrl(url: unknown): url is string {
  return typeof url === 'string' && /^https?:\/\/[^/]/.test(url)
}
