import { MemoryNodeStorage } from '../src/memory-node-storage.js'
import type { AppendResult, PendingAppend } from '../src/storage.js'

/**
 * A disk whose commits, while `closed`, wait until the test lets them through, one `release`
 * each: it holds a node in the middle of a commit, to see what leaves before it ends.
 */
export class GatedStorage<TRecord> extends MemoryNodeStorage<TRecord> {
  closed: boolean
  private readonly gates: (() => void)[] = []
  private waiters: (() => void)[] = []

  constructor(closed = true) {
    super()
    this.closed = closed
  }

  /** Resolves once a commit is waiting at the gate. */
  waiting(): Promise<void> {
    if (this.gates.length > 0) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  /** Lets the oldest waiting commit through. */
  release(): void {
    this.gates.shift()?.()
  }

  override async append(
    records: readonly TRecord[],
    epoch: number | null,
    replace = false,
  ): Promise<AppendResult> {
    await this.gate()
    return super.append(records, epoch, replace)
  }

  async appendAll(appends: readonly PendingAppend<TRecord>[]): Promise<AppendResult> {
    await this.gate()
    for (const pending of appends) {
      const outcome = await super.append(pending.records, pending.epoch, pending.replace)
      if (!outcome.ok) return outcome
    }
    return { ok: true }
  }

  private gate(): Promise<void> {
    if (!this.closed) return Promise.resolve()
    const passed = new Promise<void>((resolve) => this.gates.push(resolve))
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
    return passed
  }
}
