import type { JsonValue } from '@chorus/core'
import type { RegisterOperation, SimNetwork, SimNode } from '@chorus/testkit'

/**
 * A client endpoint on the simulated network: sends requests as JSON frames and matches
 * replies by request id. A request without a reply within `timeoutMs` resolves to null — the
 * client cannot tell a lost request from a lost reply, just as over a real network.
 */
export class SimClientEndpoint<TReply extends { readonly id: string | null }> implements SimNode<string> {
  readonly id: string
  private readonly network: SimNetwork<string>
  private readonly timeoutMs: number
  private readonly waiting = new Map<string, (reply: TReply | null) => void>()
  private nextRequest = 1

  constructor(id: string, network: SimNetwork<string>, timeoutMs: number) {
    this.id = id
    this.network = network
    this.timeoutMs = timeoutMs
  }

  /** A request id unique within this client. */
  nextId(): string {
    return `${this.id}-${this.nextRequest++}`
  }

  /** Sends `request` to `node`; resolves with the reply, or null on timeout. */
  request(node: string, request: { readonly id: string } & object): Promise<TReply | null> {
    return this.send(node, JSON.stringify(request), request.id)
  }

  /** Sends raw frame text (for tests of malformed input); resolves like {@link request}. */
  sendRaw(node: string, frame: string, id: string): Promise<TReply | null> {
    return this.send(node, frame, id)
  }

  deliver(_from: string, frame: string): void {
    const reply = JSON.parse(frame) as TReply
    const id = reply.id ?? [...this.waiting.keys()][0]
    if (id === undefined) return
    const resolve = this.waiting.get(id)
    if (resolve === undefined) return
    this.waiting.delete(id)
    resolve(reply)
  }

  private send(node: string, frame: string, id: string): Promise<TReply | null> {
    return new Promise((resolve) => {
      this.waiting.set(id, resolve)
      this.network.scheduler.after(this.timeoutMs, () => {
        if (!this.waiting.has(id)) return
        this.waiting.delete(id)
        resolve(null)
      })
      this.network.send(this.id, node, frame)
    })
  }
}

/**
 * Records what clients saw, for the linearizability checker and the stale-read count.
 *
 * Times are a global event counter, not the virtual clock: two events in one virtual
 * millisecond still have a definite order (the simulation runs one task at a time), so
 * "completed before invoked" is exact.
 */
export class HistoryRecorder {
  private sequence = 0
  private readonly operations: {
    process: string
    key: string
    kind: 'write' | 'read'
    value: JsonValue | undefined
    invoke: number
    complete: number | null
    ok: boolean
    invokedAt: number
    completedAt: number | null
  }[] = []

  /** Records an invocation; returns a handle to complete it with. */
  invoke(
    process: string,
    key: string,
    kind: 'write' | 'read',
    value: JsonValue | undefined,
    at: number,
  ): number {
    this.operations.push({
      process,
      key,
      kind,
      value,
      invoke: ++this.sequence,
      complete: null,
      ok: true,
      invokedAt: at,
      completedAt: null,
    })
    return this.operations.length - 1
  }

  /**
   * Completes an operation: `ok` for a success (a read with the value it returned), `failed`
   * for a definite failure, `unknown` when the outcome is open (it stays pending).
   */
  complete(
    handle: number,
    outcome: 'ok' | 'failed' | 'unknown',
    at: number,
    value?: JsonValue | undefined,
  ): void {
    const operation = this.operations[handle]
    if (operation === undefined || outcome === 'unknown') return
    operation.complete = ++this.sequence
    operation.completedAt = at
    operation.ok = outcome === 'ok'
    if (operation.kind === 'read' && outcome === 'ok') operation.value = value
  }

  /** The history so far, in the checker's format. */
  history(): RegisterOperation[] {
    return this.operations.map(({ process, key, kind, value, invoke, complete, ok }) => ({
      process,
      key,
      kind,
      value,
      invoke,
      complete,
      ok,
    }))
  }

  /** Virtual-time latencies of completed successful operations of `kind`, in ms. */
  latencies(kind: 'write' | 'read'): number[] {
    return this.operations
      .filter((operation) => operation.kind === kind && operation.ok && operation.completedAt !== null)
      .map((operation) => (operation.completedAt as number) - operation.invokedAt)
  }
}
