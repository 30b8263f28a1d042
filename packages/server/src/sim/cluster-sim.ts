import { createPrng, type LinkFaults, type RegisterOperation, Scheduler, SimNetwork } from '@chorus/testkit'
import type { NodeMachine } from '../machine.js'
import type { MemoryNodeStorage } from '../memory-node-storage.js'
import type { NodeId } from '../node-id.js'
import { HistoryRecorder, SimClientEndpoint } from './sim-client.js'
import { type SimHostObserver, SimNodeHost } from './sim-host.js'

/** The options every cluster simulation takes, whatever its design. */
export interface ClusterSimOptions {
  readonly seed: number
  readonly faults?: Partial<LinkFaults>
  /** Virtual ms between node ticks (default 10). */
  readonly tickMs?: number
  /** A client gives up on a request after this long (default 1000). */
  readonly clientTimeoutMs?: number
}

/**
 * What the simulations of both server designs share: a seeded `SimNetwork` on virtual time,
 * one {@link SimNodeHost} per node, clients made on first use, and a recorder of every client
 * operation.
 *
 * A design's subclass adds its nodes with {@link ClusterSim.addHost}, makes its own kind of
 * client, and measures what its report needs (through the host's observer). Everything here is
 * design-blind, so both designs see exactly the same network, clock and fault controls.
 */
export abstract class ClusterSim<
  TState,
  TInput,
  TMessage,
  TReply extends { readonly id: string | null },
  TRecord,
  TClient,
> {
  readonly network: SimNetwork<string>
  readonly scheduler: Scheduler
  readonly recorder = new HistoryRecorder()
  /**
   * Observer of every step of every node, called after the design's own measurements and
   * before the step's effects are performed; may be set or replaced at any time (a view that
   * reports role changes at the moment they happen, say).
   */
  onStep: ((node: NodeId, before: TState, after: TState) => void) | undefined
  protected readonly hosts = new Map<NodeId, SimNodeHost<TState, TInput, TMessage, TReply, TRecord>>()
  private readonly clients = new Map<string, TClient>()
  private readonly tickMs: number
  private readonly clientTimeoutMs: number

  constructor(options: ClusterSimOptions) {
    this.scheduler = new Scheduler({ startMs: 0 })
    this.network = new SimNetwork<string>({
      prng: createPrng(options.seed),
      scheduler: this.scheduler,
      ...(options.faults === undefined ? {} : { faults: options.faults }),
    })
    this.tickMs = options.tickMs ?? 10
    this.clientTimeoutMs = options.clientTimeoutMs ?? 1_000
  }

  /** A client (created on first use). */
  client(name: string): TClient {
    let client = this.clients.get(name)
    if (client === undefined) {
      const endpoint = new SimClientEndpoint<TReply>(name, this.network, this.clientTimeoutMs)
      this.network.addNode(name, endpoint)
      client = this.createClient(endpoint)
      this.clients.set(name, client)
    }
    return client
  }

  /** The node's host, for direct inspection. */
  host(node: string): SimNodeHost<TState, TInput, TMessage, TReply, TRecord> {
    const host = this.hosts.get(node as NodeId)
    if (host === undefined) throw new RangeError(`no node ${node}`)
    return host
  }

  /** The current state of every node that is up. */
  states(): TState[] {
    return [...this.hosts.values()].flatMap((host) => (host.state === null ? [] : [host.state]))
  }

  /** Runs the simulation for `ms` of virtual time. */
  async run(ms: number): Promise<void> {
    await this.scheduler.runFor(ms)
  }

  /** Runs until `promise` settles (a client operation always does, by its timeout). */
  async until<T>(promise: Promise<T>): Promise<T> {
    let done = false
    const settle = () => {
      done = true
    }
    promise.then(settle, settle)
    while (!done) if (!(await this.scheduler.step())) break
    return promise
  }

  crash(node: string): void {
    this.host(node).crash()
  }

  async restart(node: string): Promise<void> {
    await this.host(node).restart()
  }

  partition(groups: readonly (readonly string[])[]): void {
    this.network.partition(groups)
  }

  heal(): void {
    this.network.heal()
  }

  /** Every client operation so far. */
  history(): RegisterOperation[] {
    return this.recorder.history()
  }

  /** Adds node `id` running `machine`, and starts it from `storage` (a new one by default). */
  protected async addHost(
    id: NodeId,
    machine: NodeMachine<TState, TInput, TMessage, TReply, TRecord>,
    observer: SimHostObserver<TState, TMessage, TReply, TRecord>,
    storage?: MemoryNodeStorage<TRecord>,
  ): Promise<void> {
    const host = new SimNodeHost({
      id,
      network: this.network,
      machine,
      ...(storage === undefined ? {} : { storage }),
      tickMs: this.tickMs,
      isNode: (name) => this.hosts.has(name as NodeId),
      observer: {
        onStep: (node, before, after, effects) => {
          observer.onStep?.(node, before, after, effects)
          this.onStep?.(node, before, after)
        },
      },
    })
    this.hosts.set(id, host)
    this.network.addNode(id, host)
    await host.start()
  }

  /** Makes the design's client around a new endpoint (called once per client name). */
  protected abstract createClient(endpoint: SimClientEndpoint<TReply>): TClient
}
