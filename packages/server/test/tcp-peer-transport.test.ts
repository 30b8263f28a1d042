import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_PEER_FRAME, MAX_UNSENT_BYTES, TcpPeerTransport } from '../src/node/tcp-peer-transport.js'

const open: TcpPeerTransport[] = []

afterEach(async () => {
  await Promise.all(open.splice(0).map((transport) => transport.close()))
})

async function listening(): Promise<{ transport: TcpPeerTransport; port: number; frames: string[] }> {
  const frames: string[] = []
  const transport = new TcpPeerTransport('n1', (from, frame) => frames.push(`${from}:${frame}`))
  open.push(transport)
  return { transport, port: await transport.listen(0), frames }
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Writes `parts` one write (and one event-loop turn) apart, so each tends to arrive as its own chunk. */
async function writeApart(socket: Socket, parts: readonly string[]): Promise<void> {
  for (const part of parts) {
    await new Promise<void>((resolve) => socket.write(part, () => resolve()))
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('TcpPeerTransport framing', () => {
  it('delivers each line once, however the bytes are split across chunks', async () => {
    const { port, frames } = await listening()
    const socket = await dial(port)
    const long = `{"type":"x","body":"${'b'.repeat(200_000)}"}`
    await writeApart(socket, [
      '{"node":"n2"}\n{"a":',
      '1}\n{"b":2}\n{"c"',
      ':3}',
      '\n',
      long.slice(0, 70_000),
      long.slice(70_000, 140_000),
      `${long.slice(140_000)}\n{"d":4}\n`,
    ])
    await until(() => frames.length === 5, 'five frames')
    expect(frames).toEqual(['n2:{"a":1}', 'n2:{"b":2}', 'n2:{"c":3}', `n2:${long}`, 'n2:{"d":4}'])
    socket.destroy()
  })

  it('closes a connection whose frame outgrows the limit, after delivering the frames before it', async () => {
    const { transport, port, frames } = await listening()
    const socket = await dial(port)
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.on('error', () => undefined)
    const piece = 'x'.repeat(1024 * 1024)
    const parts = ['{"node":"n2"}\n{"ok":1}\n']
    for (let written = 0; written <= MAX_PEER_FRAME; written += piece.length) parts.push(piece)
    await writeApart(socket, parts).catch(() => undefined)
    await closed
    expect(frames).toEqual(['n2:{"ok":1}'])
    expect(transport.stats.refused).toBe(1)
  })

  it('refuses a connection whose first line is not a hello', async () => {
    const { transport, port, frames } = await listening()
    const socket = await dial(port)
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.on('error', () => undefined)
    socket.write('{"type":"append"}\n{"b":2}\n')
    await closed
    expect(frames).toEqual([])
    expect(transport.stats.refused).toBe(1)
  })
})

describe('TcpPeerTransport towards a peer that stops reading', () => {
  it('drops frames past MAX_UNSENT_BYTES instead of holding them, and delivers again once the peer reads', async () => {
    // A peer that accepts and then reads nothing (a paused process), until told to.
    const sockets: Socket[] = []
    let received = 0
    const server: Server = createServer((socket) => {
      sockets.push(socket)
      socket.pause()
      socket.on('data', (chunk) => {
        received += chunk.length
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const { transport } = await listening()
    transport.setPeers(new Map([['n2', { host: '127.0.0.1', port }]]))
    transport.send('n2', 'first')
    await until(() => sockets.length === 1, 'the connection')
    const frame = 'x'.repeat(64 * 1024)
    for (let i = 0; i < 1_000; i++) {
      transport.send('n2', frame)
      transport.flush()
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    }
    const { sent, dropped } = transport.stats
    expect(dropped).toBeGreaterThan(0)
    // What was let through is the bound, the kernel's buffers, and a frame past the bound.
    expect((sent - 1) * frame.length).toBeLessThan(MAX_UNSENT_BYTES + 32 * 1024 * 1024)
    for (const socket of sockets) socket.resume()
    await until(() => received >= (sent - 1) * frame.length, 'the peer to read what was sent')
    transport.send('n2', 'after')
    await until(() => transport.stats.sent === sent + 1, 'a frame sent once the peer reads again')
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
})
