import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { createPrng } from '@chorus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TcpProxy } from '../src/compare/loopback/tcp-proxy.js'

/** An echo server on 127.0.0.1, port 0. */
let echo: Server
let echoPort = 0

beforeAll(async () => {
  echo = createServer((socket) => socket.pipe(socket))
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  echoPort = (echo.address() as { port: number }).port
})

afterAll(async () => {
  await new Promise<void>((resolve) => echo.close(() => resolve()))
})

async function dial(proxy: TcpProxy): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port: proxy.port })
  await once(socket, 'connect')
  return socket
}

/** Resolves with the first `length` bytes `socket` receives. */
function receive(socket: Socket, length: number): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8')
      if (text.length < length) return
      socket.off('data', onData)
      resolve(text)
    }
    socket.on('data', onData)
  })
}

describe('TcpProxy', () => {
  it('forwards both ways and counts every byte that crosses it', async () => {
    const proxy = await TcpProxy.start(echoPort, createPrng(1).fork('loss').next)
    const socket = await dial(proxy)
    socket.write('hello')
    expect(await receive(socket, 5)).toBe('hello')
    expect(proxy.bytes).toBe(10)
    proxy.resetBytes()
    expect(proxy.bytes).toBe(0)
    socket.destroy()
    await proxy.close()
  })

  it('keeps the order of chunks it holds back for delay and TCP-style loss', async () => {
    const prng = createPrng(7)
    const proxy = await TcpProxy.start(echoPort, () => prng.next())
    proxy.setFaults({ delayMs: 5, loss: 0.5 })
    const socket = await dial(proxy)
    socket.setNoDelay(true)
    const sent = Array.from({ length: 40 }, (_, i) => `<${i}>`)
    const received = receive(socket, sent.join('').length)
    for (const piece of sent) {
      socket.write(piece)
      // A turn of the event loop between writes, so that they cross as several chunks.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    expect(await received).toBe(sent.join(''))
    socket.destroy()
    await proxy.close()
  })

  it('blocked resets open connections and refuses new ones until healed', async () => {
    const proxy = await TcpProxy.start(echoPort, () => 0.5)
    const open = await dial(proxy)
    const closed = once(open, 'close')
    proxy.setFaults({ blocked: true })
    await closed
    const refused = connect({ host: '127.0.0.1', port: proxy.port })
    refused.on('error', () => undefined)
    await once(refused, 'close')
    proxy.heal()
    const again = await dial(proxy)
    again.write('back')
    expect(await receive(again, 4)).toBe('back')
    again.destroy()
    await proxy.close()
  })

  it('silent drops bytes but keeps connections open; a new connection works once healed', async () => {
    const proxy = await TcpProxy.start(echoPort, () => 0.5)
    const socket = await dial(proxy)
    proxy.setFaults({ silent: true })
    let heard = ''
    socket.on('data', (chunk: Buffer) => {
      heard += chunk.toString('utf8')
    })
    socket.write('lost')
    // The dropped bytes were sent: they count.
    await expect.poll(() => proxy.bytes).toBe(4)
    proxy.heal()
    socket.write('kept')
    expect(await receive(socket, 4)).toBe('kept')
    expect(heard).toBe('kept')
    expect(socket.destroyed).toBe(false)
    socket.destroy()
    await proxy.close()
  })
})
