import type { AddressInfo, Socket } from 'node:net'
import { createServer, connect as netConnect } from 'node:net'

/** A TCP proxy in front of a relay, one of whose directions is slow (see {@link slowLink}). */
export interface SlowLink {
  /** `target` with the proxy's host and port: the same scheme and path. */
  readonly url: string
  /** Connections the proxy took so far. */
  connections(): number
  /** Bytes carried in the slow direction so far, over every connection. */
  delivered(): number
  /** Stops the slow direction of the latest connection for good. */
  stall(): void
  /** Drops every connection open now, as a network that goes away does; later ones are taken. */
  cut(): void
  close(): void
}

/**
 * A TCP proxy to the relay at `target` (a `ws://` URL) whose `direction` — `down`, relay to
 * client, or `up` — carries `bytesPerSecond` (in 20 ms steps), holding the sending socket
 * back while more waits than one step takes, as a slow network does. The other direction is
 * piped as it comes.
 */
export async function slowLink(
  target: string,
  bytesPerSecond: number,
  direction: 'down' | 'up' = 'down',
): Promise<SlowLink> {
  const { hostname, port, pathname } = new URL(target)
  const step = bytesPerSecond / 50
  const pipes: { readonly flush: () => void; readonly close: () => void; stalled: boolean }[] = []
  let delivered = 0
  const server = createServer((client) => {
    const upstream = netConnect(Number(port), hostname)
    const [from, to]: readonly [Socket, Socket] =
      direction === 'down' ? [upstream, client] : [client, upstream]
    const waiting: Buffer[] = []
    let held = 0
    let ended = false
    to.pipe(from)
    from.on('data', (chunk: Buffer) => {
      waiting.push(chunk)
      held += chunk.length
      if (held > step) from.pause()
    })
    const pipe = {
      stalled: false,
      flush: () => {
        if (pipe.stalled) return
        let room = step
        while (room > 0 && waiting.length > 0) {
          const chunk = waiting.shift() as Buffer
          const part = chunk.subarray(0, room)
          if (part.length < chunk.length) waiting.unshift(chunk.subarray(part.length))
          to.write(part)
          delivered += part.length
          held -= part.length
          room -= part.length
        }
        if (held <= step) from.resume()
        // The sender hung up: what it sent before goes first.
        if (ended && waiting.length === 0) to.end()
      },
      close: () => {
        client.destroy()
        upstream.destroy()
      },
    }
    for (const socket of [client, upstream]) socket.on('error', pipe.close)
    from.on('close', () => {
      ended = true
    })
    to.on('close', () => from.destroy())
    pipes.push(pipe)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const timer = setInterval(() => {
    for (const pipe of pipes) pipe.flush()
  }, 20)
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}${pathname === '/' ? '' : pathname}`,
    connections: () => pipes.length,
    delivered: () => delivered,
    stall() {
      const latest = pipes.at(-1)
      if (latest !== undefined) latest.stalled = true
    },
    cut() {
      for (const pipe of pipes) pipe.close()
    },
    close() {
      clearInterval(timer)
      for (const pipe of pipes) pipe.close()
      server.close()
    },
  }
}
