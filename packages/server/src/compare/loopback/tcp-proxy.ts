import { connect, createServer, type Server, type Socket } from 'node:net'
import { ChorusError, ErrorCode } from '@chorus/core'

/**
 * How long a segment TCP lost takes to arrive after all: Linux's smallest retransmission
 * timeout (`TCP_RTO_MIN`, 200 ms). TCP does not lose bytes; a lost segment is sent again, and
 * everything behind it on the connection waits for it.
 */
export const TCP_RETRANSMIT_MS = 200

/** The faults a {@link TcpProxy} applies to the connections through it. */
export interface TcpProxyFaults {
  /** Extra one-way delay of every chunk, each way. */
  readonly delayMs: number
  /**
   * The probability that a chunk is "lost": it, and everything behind it in that direction,
   * arrives {@link TCP_RETRANSMIT_MS} later, as after a retransmission.
   */
  readonly loss: number
  /** Connections are reset, and new ones refused, while set (a partition a peer notices). */
  readonly blocked: boolean
  /**
   * Bytes are dropped while set, connections stay open and new ones are accepted (a partition
   * nobody is told of: requests get no answer). A connection that lost bytes is useless after.
   */
  readonly silent: boolean
}

const clean: TcpProxyFaults = { delayMs: 0, loss: 0, blocked: false, silent: false }

/** Chunks on their way in one direction of one connection, released in order. */
interface Lane {
  readonly to: Socket
  readonly queue: { readonly at: number; readonly chunk: Buffer }[]
  timer: ReturnType<typeof setTimeout> | null
}

/**
 * A TCP proxy on 127.0.0.1 in front of one server: it counts the bytes that cross it (both
 * ways) and applies link faults a comparison controls — delay, TCP-style loss (a retransmission
 * delay, see {@link TcpProxyFaults.loss}) and a partition (reset and refuse, or silence). Its upstream can
 * change (a restarted process listens on a new port); connections made before keep their old
 * upstream until they close.
 */
export class TcpProxy {
  readonly port: number
  private readonly server: Server
  private upstream: number
  private faults: TcpProxyFaults = clean
  private counted = 0
  private readonly pairs = new Set<readonly [Socket, Socket]>()
  private closed = false
  private readonly random: () => number

  private constructor(server: Server, port: number, upstream: number, random: () => number) {
    this.server = server
    this.port = port
    this.upstream = upstream
    this.random = random
    server.on('connection', (socket) => this.accept(socket))
  }

  /**
   * Listens on a free port of 127.0.0.1 and forwards to `upstream` there. `random` draws the
   * losses (uniform in [0, 1)); pass a seeded one for a repeatable fault pattern.
   */
  static async start(upstream: number, random: () => number): Promise<TcpProxy> {
    const server = createServer({ noDelay: true })
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject)
        const address = server.address()
        if (address === null || typeof address === 'string') {
          reject(new ChorusError(ErrorCode.Internal, 'the proxy has no TCP address'))
          return
        }
        resolve(address.port)
      })
    })
    return new TcpProxy(server, port, upstream, random)
  }

  /** Bytes that crossed the proxy, both ways, since it started or {@link resetBytes}. */
  get bytes(): number {
    return this.counted
  }

  resetBytes(): void {
    this.counted = 0
  }

  /** Forwards new connections to `port` from now on. */
  retarget(port: number): void {
    this.upstream = port
  }

  /** Sets some faults (the others stay); `blocked` resets every open connection at once. */
  setFaults(faults: Partial<TcpProxyFaults>): void {
    this.faults = { ...this.faults, ...faults }
    if (this.faults.blocked) for (const pair of this.pairs) this.drop(pair)
  }

  /** Ends every fault. Chunks already delayed still arrive, in order. */
  heal(): void {
    this.faults = clean
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const pair of this.pairs) this.drop(pair)
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private accept(client: Socket): void {
    if (this.faults.blocked || this.closed) {
      client.destroy()
      return
    }
    client.setNoDelay(true)
    const server = connect({ host: '127.0.0.1', port: this.upstream, noDelay: true })
    const pair = [client, server] as const
    this.pairs.add(pair)
    const toServer: Lane = { to: server, queue: [], timer: null }
    const toClient: Lane = { to: client, queue: [], timer: null }
    client.on('data', (chunk: Buffer) => this.forward(toServer, chunk))
    server.on('data', (chunk: Buffer) => this.forward(toClient, chunk))
    // Either side ending or failing ends both: the proxy is as transparent as a cable.
    for (const socket of pair) {
      socket.on('error', () => this.drop(pair))
      socket.on('close', () => this.drop(pair))
    }
  }

  private forward(lane: Lane, chunk: Buffer): void {
    if (this.faults.blocked) return
    // Sent is sent: bytes a partition drops were on the wire too.
    this.counted += chunk.length
    if (this.faults.silent) return
    const { delayMs, loss } = this.faults
    const lost = loss > 0 && this.random() < loss
    const extra = delayMs + (lost ? TCP_RETRANSMIT_MS : 0)
    if (extra === 0 && lane.queue.length === 0) {
      lane.to.write(chunk)
      return
    }
    const last = lane.queue[lane.queue.length - 1]?.at ?? 0
    lane.queue.push({ at: Math.max(performance.now() + extra, last), chunk })
    this.release(lane)
  }

  /** Writes the lane's chunks that are due, and waits for the next one. */
  private release(lane: Lane): void {
    if (lane.timer !== null) return
    const now = performance.now()
    let head = lane.queue[0]
    while (head !== undefined && head.at <= now) {
      lane.queue.shift()
      if (!lane.to.destroyed) lane.to.write(head.chunk)
      head = lane.queue[0]
    }
    if (head === undefined) return
    lane.timer = setTimeout(
      () => {
        lane.timer = null
        this.release(lane)
      },
      Math.max(1, Math.ceil(head.at - now)),
    )
  }

  private drop(pair: readonly [Socket, Socket]): void {
    if (!this.pairs.delete(pair)) return
    for (const socket of pair) socket.destroy()
  }
}
