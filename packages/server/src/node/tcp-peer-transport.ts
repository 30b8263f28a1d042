import { connect, createServer, type Server, type Socket } from 'node:net'
import { ChorusError, ErrorCode } from '@chorus/core'
import { MAX_BATCH_CHARS } from '../message-budget.js'
import { isNodeId } from '../node-id.js'

/**
 * Longest frame a peer may send, in UTF-16 code units, by default; a longer one closes the
 * connection. A node of a larger cluster takes longer ones: see {@link peerFrameLimit}.
 */
export const MAX_PEER_FRAME = 8 * 1024 * 1024

/**
 * The longest frame a node of a cluster of `nodes` takes. A quorum coordinator refuses a put
 * that would make the sibling set it holds longer than `MAX_BATCH_CHARS`, but puts at
 * different coordinators meet only at the replicas: a key's set can hold up to that much from
 * each node, and a replica's answer to a read, or a read repair, carries it whole. (With 8 Mi,
 * nine concurrent puts of a million characters at three coordinators made a set that no frame
 * could carry: the key could no longer be read, or written with a read's context.)
 */
export function peerFrameLimit(nodes: number): number {
  return Math.max(MAX_PEER_FRAME, (nodes + 1) * MAX_BATCH_CHARS)
}

/** Frames queued for a peer while its connection opens; beyond this they are dropped. */
const MAX_QUEUED = 10_000

/**
 * Bytes a connection may hold unwritten (its peer reads slowly, or not at all: paused or
 * partitioned) before frames to that peer are dropped rather than queued: delivery is at most
 * once anyway, and a node must not grow without bound behind a peer that stopped reading.
 */
export const MAX_UNSENT_BYTES = 16 * 1024 * 1024

/** A peer's address on loopback (or any host). */
export interface PeerAddress {
  readonly host: string
  readonly port: number
}

/** Counters of a {@link TcpPeerTransport}. */
export interface PeerTransportStats {
  readonly sent: number
  readonly received: number
  /** Frames dropped: no address yet, a queue full, a peer that stopped reading, or a connection that failed. */
  readonly dropped: number
  /** Inbound connections closed for a bad hello or an oversized frame. */
  readonly refused: number
}

interface Outbound {
  readonly peer: string
  readonly socket: Socket
  connected: boolean
  queue: string[]
  /** Frames sent in this run of code, held to leave as one write (one string) at the flush. */
  held: string[]
}

/**
 * Frames between nodes over TCP: newline-delimited JSON text, one connection per direction.
 * The frames sent to a peer in one run of code (one step's or one batch's sends) leave in one
 * write of one string, at its end or at {@link TcpPeerTransport.flush}: a corked socket would
 * hand the kernel the same bytes, but as one buffer per frame (a `writev` of many small
 * chunks, each with its own encoding and bookkeeping).
 *
 * A connection opens with a hello line naming the sender (`{"node":"n1"}`); every later line
 * is one frame from it. Delivery is at most once, like the network the machines are written
 * for: a frame sent while a connection is down or opening is lost with it, and the next send
 * dials again; so is one sent while the peer has {@link MAX_UNSENT_BYTES} unread. The listener binds `127.0.0.1` on the port given (0: any free one).
 */
export class TcpPeerTransport {
  readonly id: string
  private readonly server: Server
  private readonly addresses = new Map<string, PeerAddress>()
  private readonly outbound = new Map<string, Outbound>()
  private readonly inbound = new Set<Socket>()
  /** Links with frames held since the last flush. */
  private readonly holding: Outbound[] = []
  private readonly onFrame: (from: string, frame: string) => void
  private readonly counters = { sent: 0, received: 0, dropped: 0, refused: 0 }
  private closed = false

  /** The longest frame a peer may send (see {@link peerFrameLimit}). */
  readonly maxFrame: number

  constructor(id: string, onFrame: (from: string, frame: string) => void, maxFrame = MAX_PEER_FRAME) {
    this.id = id
    this.onFrame = onFrame
    this.maxFrame = maxFrame
    this.server = createServer((socket) => this.accept(socket))
  }

  /** A snapshot of the counters. */
  get stats(): PeerTransportStats {
    return { ...this.counters }
  }

  /** Starts listening; resolves with the port. */
  listen(port = 0, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        const address = this.server.address()
        if (address === null || typeof address === 'string') {
          reject(new ChorusError(ErrorCode.Internal, 'the peer listener has no TCP address'))
          return
        }
        resolve(address.port)
      })
    })
  }

  /** Sets (or replaces) where peers listen; connections to a moved peer are reopened. */
  setPeers(peers: ReadonlyMap<string, PeerAddress>): void {
    for (const [peer, address] of peers) {
      const known = this.addresses.get(peer)
      if (known?.host === address.host && known.port === address.port) continue
      this.addresses.set(peer, address)
      this.outbound.get(peer)?.socket.destroy()
      this.outbound.delete(peer)
    }
  }

  /** Sends one frame to `peer` (at most once). */
  send(peer: string, frame: string): void {
    if (this.closed) return
    const address = this.addresses.get(peer)
    if (address === undefined) {
      this.counters.dropped++
      return
    }
    let link = this.outbound.get(peer)
    if (link === undefined) link = this.dial(peer, address)
    if (!link.connected) {
      if (link.queue.length >= MAX_QUEUED) this.counters.dropped++
      else link.queue.push(frame)
      return
    }
    if (link.socket.writableLength > MAX_UNSENT_BYTES) {
      this.counters.dropped++
      return
    }
    this.counters.sent++
    if (link.held.length === 0) {
      this.holding.push(link)
      if (this.holding.length === 1) process.nextTick(() => this.flush())
    }
    link.held.push(frame)
  }

  /**
   * Writes out the frames held since the last flush now (it happens by itself at the end of the
   * current run of code). A node calls it before blocking on its disk, so the frames it sent
   * travel while it commits.
   */
  flush(): void {
    for (const link of this.holding.splice(0)) {
      const frames = link.held
      link.held = []
      if (this.outbound.get(link.peer) === link) link.socket.write(`${frames.join('\n')}\n`)
    }
  }

  /** Closes the listener and every connection. */
  close(): Promise<void> {
    this.closed = true
    for (const link of this.outbound.values()) link.socket.destroy()
    for (const socket of this.inbound) socket.destroy()
    this.outbound.clear()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private dial(peer: string, address: PeerAddress): Outbound {
    const socket = connect({ host: address.host, port: address.port })
    socket.setNoDelay(true)
    const link: Outbound = { peer, socket, connected: false, queue: [], held: [] }
    this.outbound.set(peer, link)
    socket.on('connect', () => {
      link.connected = true
      socket.write(`${JSON.stringify({ node: this.id })}\n`)
      for (const frame of link.queue) {
        this.counters.sent++
        socket.write(`${frame}\n`)
      }
      link.queue = []
    })
    const drop = () => {
      this.counters.dropped += link.queue.length
      link.queue = []
      if (this.outbound.get(peer) === link) this.outbound.delete(peer)
    }
    socket.on('error', drop)
    socket.on('close', drop)
    return link
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy()
      return
    }
    this.inbound.add(socket)
    socket.setNoDelay(true)
    socket.setEncoding('utf8')
    let from: string | null = null
    // The start of a frame whose end has not arrived yet, as the chunks it came in: joined once
    // the newline comes, so a long frame costs its length once, not once per chunk.
    let held: string[] = []
    let heldLength = 0
    const refuse = () => {
      this.counters.refused++
      socket.destroy()
    }
    socket.on('data', (chunk: string) => {
      let start = 0
      for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
        const tail = chunk.slice(start, end)
        const line = held.length === 0 ? tail : held.join('') + tail
        held = []
        heldLength = 0
        start = end + 1
        if (line.length > this.maxFrame) {
          refuse()
          return
        }
        if (from === null) {
          from = helloOf(line)
          if (from === null) {
            refuse()
            return
          }
          continue
        }
        this.counters.received++
        this.onFrame(from, line)
      }
      if (start < chunk.length) {
        held.push(chunk.slice(start))
        heldLength += chunk.length - start
        if (heldLength > this.maxFrame) refuse()
      }
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => this.inbound.delete(socket))
  }
}

function helloOf(line: string): string | null {
  try {
    const hello = JSON.parse(line) as { node?: unknown }
    return isNodeId(hello.node) ? hello.node : null
  } catch {
    return null
  }
}
