import type { SimNetwork } from '@chorus/testkit'
import { utf8Length } from './target.js'

/**
 * The network plumbing every comparison target (`CompareTarget`) shares: it counts the bytes of the frames
 * sent from a chosen moment on, and applies the link faults of the fault scripts (loss on
 * every link, latency on one) so that they can be undone on heal.
 *
 * It takes over the network's `onTrace`. Partitions and cuts stay with the target, whose
 * simulation may track them.
 */
export class TargetNetwork<TMessage> {
  private readonly network: SimNetwork<TMessage>
  private bytes = 0
  private counting = false
  /** Links slowed by {@link slowLink}, with the latency each had before. */
  private slowed: (readonly [string, string, number])[] = []

  /** `frameOf` gives the text a message is sent as, whose UTF-8 length is counted. */
  constructor(network: SimNetwork<TMessage>, frameOf: (message: TMessage) => string) {
    this.network = network
    network.onTrace = (event) => {
      if (this.counting && event.type === 'send') this.bytes += utf8Length(frameOf(event.message))
    }
  }

  /** Bytes of every frame sent since {@link countBytesFromNow}. */
  bytesOnWire(): number {
    return this.bytes
  }

  countBytesFromNow(): void {
    this.bytes = 0
    this.counting = true
  }

  /** Drops each message on every link with probability `rate`. */
  setLoss(rate: number): void {
    this.network.setFaults({ loss: rate })
  }

  /** Adds `extraMs` of latency to the link between `a` and `b`, both ways. */
  slowLink(a: string, b: string, extraMs: number): void {
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      const latencyMs = this.network.linkFaults(from, to).latencyMs
      this.slowed.push([from, to, latencyMs])
      this.network.setFaults({ latencyMs: latencyMs + extraMs }, from, to)
    }
  }

  /** Stops `from` sending to each of `to` (until the network heals). */
  cutOff(from: string, to: readonly string[]): void {
    for (const node of to) if (node !== from) this.network.cut(from, node)
  }

  /** Ends the loss and gives every slowed link back its latency. */
  clearLinkFaults(): void {
    this.network.setFaults({ loss: 0 })
    for (const [from, to, latencyMs] of this.slowed) this.network.setFaults({ latencyMs }, from, to)
    this.slowed = []
  }
}
