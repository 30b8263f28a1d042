import type { RegisterOperation } from '@chorus/testkit'
import { findStaleReads } from '@chorus/testkit'
import { invalid, LabBase, type LabParts } from './lab.js'
import type { LabAction, NodeView } from './types.js'

/** What the server labs need of their simulation (`SingleLeaderSim`, `QuorumSim`). */
export interface ServerSim<TState> {
  host(node: string): { readonly state: TState | null; readonly paused: boolean; pause(ms: number): void }
  crash(node: string): void
  restart(node: string): Promise<void>
  history(): RegisterOperation[]
}

/**
 * What the labs of the two server designs share: nodes that are killed, restarted and paused
 * through their simulation's hosts, the last state each node was seen in (shown while it is
 * down), clients whose frames carry request ids, and stale reads judged on the simulation's
 * recorded history.
 */
export abstract class ServerLab<TState> extends LabBase<string> {
  protected readonly sim: ServerSim<TState>
  /** Each node's state at its last step, kept while it is down. */
  protected readonly lastSeen = new Map<string, TState>()
  /** Each node's pause in force, by identity: a resume is told only for it. */
  private readonly pauses = new Map<string, object>()

  protected constructor(parts: LabParts<string>, sim: ServerSim<TState>) {
    super(parts)
    this.sim = sim
  }

  /**
   * A view of each of `nodes`, made by `view` from its live state, or from the state it was
   * last seen in while it is down; a node never seen yet shows as down with `downRole`.
   */
  protected viewNodes(
    nodes: readonly string[],
    downRole: NodeView['role'],
    view: (id: string, state: TState, status: { readonly up: boolean; readonly paused: boolean }) => NodeView,
  ): NodeView[] {
    return nodes.map((id) => {
      const host = this.sim.host(id)
      const state = host.state ?? this.lastSeen.get(id)
      if (state === undefined) return { id, role: downRole, up: false, paused: false, values: [] }
      return view(id, state, { up: host.state !== null, paused: host.paused })
    })
  }

  /** Refuses to kill or pause a node that is down, or to restart one that is up. */
  protected checkNodeAction(action: LabAction): void {
    if ((action.type === 'kill' || action.type === 'pause') && this.sim.host(action.node).state === null) {
      invalid(`${action.node} is down; restart it first`)
    }
    if (action.type === 'restart' && this.sim.host(action.node).state !== null) {
      invalid(`${action.node} is up; kill it before restarting it`)
    }
  }

  /** Performs a kill, restart or pause; false for any other action. */
  protected async performNode(action: LabAction): Promise<boolean> {
    switch (action.type) {
      case 'kill': {
        this.pauses.delete(action.node)
        const state = this.sim.host(action.node).state
        if (state !== null) this.lastSeen.set(action.node, state)
        this.sim.crash(action.node)
        this.event('node', `${action.node} killed (its disk survives)`)
        return true
      }
      case 'restart':
        this.event('node', `${action.node} restarts from its disk`)
        await this.sim.restart(action.node)
        return true
      case 'pause': {
        this.sim.host(action.node).pause(action.ms)
        this.event('node', `${action.node} paused for ${action.ms} ms`)
        // Told only of the pause still in force: not of one a kill, a restart or a later pause
        // replaced, and not while the node is paused still.
        const pause = {}
        this.pauses.set(action.node, pause)
        this.later(action.ms, () => {
          const host = this.sim.host(action.node)
          if (this.pauses.get(action.node) !== pause || host.state === null || host.paused) return
          this.pauses.delete(action.node)
          this.event('node', `${action.node} resumes`)
        })
        return true
      }
      default:
        return false
    }
  }

  protected override requestIdOf(message: string): string | undefined {
    try {
      const frame = JSON.parse(message) as { id?: unknown }
      return typeof frame.id === 'string' ? frame.id : undefined
    } catch {
      return undefined
    }
  }

  protected override staleOperations(): ReadonlySet<number> {
    const history = this.sim.history()
    return new Set(findStaleReads(history).map((stale) => history.indexOf(stale.read)))
  }

  /** Lists a client among the lab's clients once it makes a request. */
  protected ensureClient(name: string): void {
    if (!this.clientNames.includes(name)) this.clientNames.push(name)
  }
}
