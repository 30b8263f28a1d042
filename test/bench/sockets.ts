/**
 * Sockets for the sync benchmark: a metered (and optionally delayed) WebSocket to hand to
 * `createReplica`, and a bare client that speaks just enough of the protocol to load a relay.
 */
import type { Socket } from 'node:net'
import type { WebSocketConstructorLike, WebSocketLike } from '@chorus/client'
import { WebSocket } from 'ws'

/** What went over some sockets. */
export class Meter {
  readonly #sockets: Socket[] = []
  /** WebSocket payload bytes (message text, before any compression), sent and received. */
  payloadOut = 0
  payloadIn = 0
  framesOut = 0
  framesIn = 0
  /**
   * With a pattern, when each record id matching it was last sent in a `changes` frame, and
   * when each frame holding it arrived: where a change's time goes between writer and readers.
   */
  trace: FrameTrace | null = null

  track(socket: Socket): void {
    this.#sockets.push(socket)
  }

  /** TCP payload bytes in both directions: HTTP upgrade, WebSocket framing, compressed payloads. */
  wireBytes(): number {
    return this.#sockets.reduce((sum, socket) => sum + socket.bytesRead + socket.bytesWritten, 0)
  }
}

/** See {@link Meter.trace}. */
export interface FrameTrace {
  readonly ids: RegExp
  readonly sent: Map<string, number>
  readonly arrived: Map<string, number[]>
}

function traceFrame(trace: FrameTrace | null, text: string, at: number, into: 'sent' | 'arrived'): void {
  if (trace === null || !text.startsWith('{"type":"changes"')) return
  for (const [id] of text.matchAll(trace.ids)) {
    if (into === 'sent') trace.sent.set(id, at)
    else {
      const times = trace.arrived.get(id)
      if (times === undefined) trace.arrived.set(id, [at])
      else times.push(at)
    }
  }
}

/**
 * A WebSocket constructor for `createReplica` that counts bytes into `meter` and, with
 * `delayMs`, delays every message each way by that much (order kept): a link with a
 * round-trip time of `2 × delayMs` after the handshake.
 */
export function meteredWebSocket(
  meter: Meter,
  options: { readonly delayMs?: number } = {},
): WebSocketConstructorLike {
  const delay = options.delayMs ?? 0
  return class MeteredWebSocket implements WebSocketLike {
    readonly #socket: WebSocket
    onopen: WebSocketLike['onopen'] = null
    onmessage: WebSocketLike['onmessage'] = null
    onclose: WebSocketLike['onclose'] = null
    onerror: WebSocketLike['onerror'] = null

    constructor(url: string) {
      const socket = new WebSocket(url, { perMessageDeflate: false })
      this.#socket = socket
      socket.on('upgrade', (response) => meter.track(response.socket))
      socket.onopen = (event) => this.onopen?.(event)
      socket.onerror = (event) => this.onerror?.(event)
      socket.onclose = (event) => later(() => this.onclose?.(event))
      socket.onmessage = (event) => {
        const data = event.data
        meter.framesIn++
        meter.payloadIn += typeof data === 'string' ? Buffer.byteLength(data) : (data as Buffer).byteLength
        if (meter.trace !== null) traceFrame(meter.trace, String(data), performance.now(), 'arrived')
        later(() => this.onmessage?.(event))
      }
    }

    get readyState(): number {
      return this.#socket.readyState
    }

    send(data: string): void {
      if (meter.trace !== null) traceFrame(meter.trace, data, performance.now(), 'sent')
      meter.framesOut++
      meter.payloadOut += Buffer.byteLength(data)
      later(() => {
        if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(data)
      })
    }

    close(code?: number, reason?: string): void {
      this.#socket.close(code, reason)
    }

    terminate(): void {
      this.#socket.terminate()
    }
  }

  function later(task: () => void): void {
    if (delay === 0) task()
    else setTimeout(task, delay)
  }
}

/** Options for {@link WireClient.open}. */
export interface WireClientOptions {
  /** `chorus`: says hello and acknowledges what it receives; `raw`: just a socket (the floor). */
  readonly mode: 'chorus' | 'raw'
  readonly replicaId: string
  readonly space: string
  /** Called with each received `changes` frame, read only as far as `from` and `to`. */
  readonly onChanges?: (from: number, to: number, data: Buffer) => void
  /** Acknowledge once this many positions are unacknowledged (and 10 ms after the last frame). */
  readonly ackEvery?: number
}

const HEAD = /"from":(\d+),"to":(\d+)/

/**
 * A bare protocol client: no storage, no engine. It reads only the head of each `changes`
 * frame, so many of them can share a process with the benchmark without being the bottleneck.
 */
export class WireClient {
  readonly socket: WebSocket
  readonly #options: WireClientOptions
  cursor = 0
  #acked = 0
  #ackTimer: NodeJS.Timeout | null = null
  #welcomed: (() => void) | null = null
  /** Own changes the relay acknowledged as stored. */
  stored = 0

  private constructor(socket: WebSocket, options: WireClientOptions) {
    this.socket = socket
    this.#options = options
  }

  static async open(url: string, options: WireClientOptions): Promise<WireClient> {
    const socket = new WebSocket(url, { perMessageDeflate: false })
    const client = new WireClient(socket, options)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    socket.on('error', () => undefined)
    socket.on('message', (data: Buffer) => client.#receive(data))
    if (options.mode === 'chorus') await client.greet()
    return client
  }

  /** Says hello and waits for the answer (the raw relay echoes it). */
  async greet(): Promise<void> {
    const welcomed = new Promise<void>((resolve) => {
      this.#welcomed = resolve
    })
    const { replicaId, space } = this.#options
    this.socket.send(
      JSON.stringify({ type: 'hello', protocol: 1, replicaId, spaces: [space], have: { [space]: 0 } }),
    )
    await welcomed
  }

  send(text: string): void {
    this.socket.send(text)
  }

  #receive(data: Buffer): void {
    const head = data.subarray(0, 160).toString('latin1')
    if (head.startsWith('{"type":"hello"')) {
      this.#welcomed?.()
      this.#welcomed = null
      return
    }
    if (head.startsWith('{"type":"ack"')) {
      this.stored = Number(/"upTo":(\d+)/.exec(head)?.[1] ?? this.stored)
      return
    }
    const match = HEAD.exec(head)
    if (match === null) return
    const from = Number(match[1])
    const to = Number(match[2])
    this.cursor = Math.max(this.cursor, to)
    this.#options.onChanges?.(from, to, data)
    if (this.#options.mode === 'chorus') this.#ack()
  }

  #ack(): void {
    if (this.cursor - this.#acked >= (this.#options.ackEvery ?? 500)) {
      this.#sendAck()
      return
    }
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer)
    this.#ackTimer = setTimeout(() => this.#sendAck(), 10)
  }

  #sendAck(): void {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer)
    this.#ackTimer = null
    if (this.cursor <= this.#acked || this.socket.readyState !== WebSocket.OPEN) return
    this.#acked = this.cursor
    this.socket.send(JSON.stringify({ type: 'ack', space: this.#options.space, upTo: this.cursor }))
  }

  close(): void {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer)
    this.socket.terminate()
  }
}
