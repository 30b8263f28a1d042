import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPrng } from '@chorus/testkit'
import { messageOf } from '../../error-message.js'
import { LoopbackCluster } from '../../node/loopback-cluster.js'
import type { CompareClock } from '../clock.js'
import type { CompareTarget, OperationOutcome, ReadRoute } from '../target.js'
import { TcpProxy } from './tcp-proxy.js'
import { wallClock } from './wall-clock.js'

/** Options every {@link LoopbackTarget} takes. */
export interface LoopbackTargetOptions {
  readonly seed: number
  readonly nodes: readonly string[]
  readonly clients: readonly string[]
  /** A request without an answer after this long has timed out (ms). */
  readonly clientTimeoutMs: number
  /** How long the cluster may take to become ready (default 30000 ms). */
  readonly readyWithinMs?: number
}

/** A reply body from a node, or null when none came (timeout, connection refused or reset). */
export type NodeReply = Readonly<Record<string, unknown>> | null

/**
 * What the single-leader and quorum designs share as real processes: a {@link LoopbackCluster}
 * (one node process per node, SQLite files in a temp dir) on the wall clock, with
 *
 * - **counting proxies** ({@link TcpProxy}) on every peer link (each node is told its peers'
 *   proxy ports) and between every client and every node (clients speak HTTP/JSON to the
 *   node's `POST /request` through them): `bytesOnWire` is every TCP byte of both. Control
 *   and status calls of the harness go straight to the nodes and are not counted;
 * - **faults done for real**: a partition and link latency or loss through the nodes' fault
 *   layer (messages between nodes blocked, delayed or dropped), plus the client side of a
 *   partition and of loss in the proxies (a cut-off client's requests get no answer; see
 *   {@link LoopbackTarget.setLoss}); a stall blocks
 *   everything the node sends to its peers (it still answers clients, as in simulation), a
 *   crash kills its process (SIGKILL, its SQLite file stays) and a restart starts a new
 *   process on that file.
 *
 * Everything the run leaves is removed in {@link finish}.
 */
export abstract class LoopbackTarget implements CompareTarget {
  readonly clock: CompareClock = wallClock()
  protected readonly options: LoopbackTargetOptions
  private running: LoopbackCluster | null = null
  private dir: string | null = null
  private readonly peerProxies = new Map<string, TcpProxy>()
  /** `client/node` → the proxy that client reaches that node through. */
  private readonly clientProxies = new Map<string, TcpProxy>()
  private victim: string | null = null
  private finished = false
  private finalBytes: number | null = null
  private lost = 0
  private nextRequest = 1

  constructor(options: LoopbackTargetOptions) {
    this.options = options
  }

  /** The design and its settings, as `LoopbackCluster.start` takes them. */
  protected abstract readonly design: 'single-leader' | 'quorum'
  protected abstract readonly settings: Record<string, unknown>
  /** True once the cluster can serve (a leader elected, peers seen up). */
  protected abstract ready(): Promise<boolean>
  /** The node faults hit: the leader, or node n1. */
  protected abstract central(): Promise<string>
  /** The groups of a partition: the first holds `c1`'s nodes. */
  protected abstract partitionGroups(): Promise<readonly (readonly string[])[]>
  /** The node `c1` reads from on the `nearest` route (the far end of the slow link). */
  protected abstract farNode(): string
  /** Acknowledged writes the stopped cluster's files (in `dir`) do not reflect. */
  protected abstract countLost(dir: string): Promise<number>
  /** Called in {@link finish} while the nodes still run. */
  protected beforeStop(): Promise<void> {
    return Promise.resolve()
  }

  abstract write(client: string, key: string, value: string): Promise<OperationOutcome>
  abstract read(client: string, key: string, route: ReadRoute): Promise<OperationOutcome>
  abstract converged(): Promise<boolean>

  protected get cluster(): LoopbackCluster {
    if (this.running === null) throw new RangeError('the loopback target is not running')
    return this.running
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), `chorus-compare-${this.design}-`))
    this.running = await LoopbackCluster.start({
      design: this.design,
      nodes: this.options.nodes,
      settings: this.settings,
      dataDir: this.dir,
      seed: this.options.seed,
    })
    const prng = createPrng(this.options.seed).fork('proxies')
    for (const node of this.options.nodes) {
      const { peerPort, httpPort } = this.cluster.node(node)
      this.peerProxies.set(node, await TcpProxy.start(peerPort, () => prng.next()))
      for (const client of this.options.clients) {
        this.clientProxies.set(`${client}/${node}`, await TcpProxy.start(httpPort, () => prng.next()))
      }
    }
    await this.wirePeers()
    const deadline = performance.now() + (this.options.readyWithinMs ?? 30_000)
    while (!(await this.ready())) {
      if (performance.now() > deadline) throw new Error(`the ${this.design} cluster did not become ready`)
      await this.clock.sleep(this.clock.pollMs)
    }
  }

  /** Sends a request of the design to `node` as `client`; null when no answer came in time. */
  protected async ask(client: string, node: string, request: Record<string, unknown>): Promise<NodeReply> {
    const proxy = this.clientProxies.get(`${client}/${node}`)
    if (proxy === undefined) throw new RangeError(`no client ${client} or node ${node}`)
    try {
      const response = await fetch(`http://127.0.0.1:${proxy.port}/request`, {
        method: 'POST',
        body: JSON.stringify({ ...request, id: `${client}-${this.nextRequest++}` }),
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(this.options.clientTimeoutMs),
      })
      if (response.status !== 200 && response.status !== 400) {
        // Drain the body so the connection can be reused.
        await response.arrayBuffer()
        return null
      }
      return (await response.json()) as Record<string, unknown>
    } catch {
      // A timeout, or a node that is down (refused, reset): no answer, as on a network.
      return null
    }
  }

  /** Every running node's `status` reply body (`status` field); a node that does not answer is left out. */
  protected async statuses<TStatus>(): Promise<(TStatus & { readonly node: string })[]> {
    const cluster = this.cluster
    const answers = await Promise.all(
      cluster.running().map((id) => cluster.status(id, 1_000).catch(() => null)),
    )
    return answers.flatMap((answer) => {
      const status = (answer?.body as { status?: TStatus & { node: string } } | undefined)?.status
      return status === undefined ? [] : [status]
    })
  }

  async partition(): Promise<void> {
    const groups = await this.partitionGroups()
    await this.cluster.partition(groups)
    const minority = new Set(groups[0] ?? [])
    const [first] = this.options.clients
    for (const [link, proxy] of this.clientProxies) {
      const [client, node] = link.split('/') as [string, string]
      // A client reaches only the nodes of its side.
      if ((client === first) !== minority.has(node)) proxy.setFaults({ silent: true })
    }
  }

  async heal(): Promise<void> {
    await this.cluster.heal()
    for (const proxy of this.clientProxies.values()) proxy.heal()
  }

  async stall(): Promise<void> {
    this.victim = await this.central()
    await this.cluster.faults(this.victim, null, { blocked: true })
  }

  async crash(): Promise<void> {
    this.victim ??= await this.central()
    await this.cluster.kill(this.victim, 'SIGKILL')
  }

  async restart(): Promise<void> {
    const victim = this.victim
    if (victim === null) return
    this.victim = null
    // Wired through the proxies only: a frame sent on a direct address would go uncounted.
    await this.cluster.restart(victim, { wire: false })
    const { peerPort, httpPort } = this.cluster.node(victim)
    this.peerProxies.get(victim)?.retarget(peerPort)
    for (const client of this.options.clients)
      this.clientProxies.get(`${client}/${victim}`)?.retarget(httpPort)
    await this.wirePeers()
  }

  async slowLink(extraMs: number): Promise<void> {
    const central = await this.central()
    const far = this.farNode()
    if (far === central) return
    await this.cluster.faults(central, far, { latencyMs: extraMs })
    await this.cluster.faults(far, central, { latencyMs: extraMs })
  }

  /**
   * Peer messages are dropped by the nodes' fault layer (their protocol is built for a lossy
   * network); the clients' TCP connections lose no bytes, so there a loss is a retransmission
   * delay in the proxies (see `TcpProxyFaults.loss`).
   */
  async setLoss(rate: number): Promise<void> {
    await Promise.all(this.cluster.running().map((id) => this.cluster.faults(id, null, { loss: rate })))
    for (const proxy of this.clientProxies.values()) proxy.setFaults({ loss: rate })
  }

  bytesOnWire(): number {
    if (this.finalBytes !== null) return this.finalBytes
    let bytes = 0
    for (const proxy of this.proxies()) bytes += proxy.bytes
    return bytes
  }

  countBytesFromNow(): void {
    for (const proxy of this.proxies()) proxy.resetBytes()
  }

  async lostAcknowledged(): Promise<number> {
    return this.lost
  }

  /**
   * Stops the nodes (SIGTERM), counts the acknowledged writes
   * their files lost, closes the proxies and removes the files.
   */
  async finish(): Promise<void> {
    if (this.finished) return
    this.finished = true
    this.finalBytes = this.bytesOnWire()
    const cluster = this.running
    try {
      if (cluster !== null) {
        await this.beforeStop()
        await cluster.stop()
        if (this.dir !== null) this.lost = await this.countLost(this.dir)
      }
    } catch (error) {
      throw new Error(`stopping the ${this.design} cluster failed: ${messageOf(error)}`, { cause: error })
    } finally {
      await Promise.all(this.proxies().map((proxy) => proxy.close()))
      if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true })
    }
  }

  private proxies(): TcpProxy[] {
    return [...this.peerProxies.values(), ...this.clientProxies.values()]
  }

  /** Tells every node where its peers listen: at their proxies. */
  private async wirePeers(): Promise<void> {
    const peers = Object.fromEntries(
      [...this.peerProxies].map(([node, proxy]) => [node, { host: '127.0.0.1', port: proxy.port }]),
    )
    const cluster = this.cluster
    await Promise.all(cluster.running().map((id) => cluster.call(id, 'POST', '/control/peers', { peers })))
  }
}
