import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { sharedPongSocketClass } from '../src/shared-pong-socket.js'
import { until, within } from './support/fixtures.js'

interface Pair {
  /** The server's side of the connection. */
  readonly socket: WebSocket
  /** The client's side, which sends the pongs. */
  readonly client: WebSocket
}

const servers: WebSocketServer[] = []
const clients: WebSocket[] = []

afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate()
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve))
})

/** A server whose sockets are of `SocketClass`, and a way to open connections to it. */
async function serve(SocketClass: typeof WebSocket) {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', WebSocket: SocketClass })
  servers.push(server)
  await once(server, 'listening')
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
  return async (): Promise<Pair> => {
    const accepted = once(server, 'connection') as Promise<[WebSocket]>
    const client = new WebSocket(url)
    clients.push(client)
    await once(client, 'open')
    const [socket] = await accepted
    return { socket, client }
  }
}

/** Sends a pong from the client and waits until the server's side has read it. */
async function pong(pair: Pair): Promise<void> {
  // A ping behind the pong comes back once the server read both: then every listener has run.
  const answered = once(pair.client, 'pong')
  pair.client.pong()
  pair.client.ping()
  await within(answered, 5_000, 'the pong to be read')
}

describe('sharedPongSocketClass', () => {
  it('calls the shared listener on each socket that registered it, with the socket as this, and on no other', async () => {
    const open = await serve(sharedPongSocketClass())
    const a = await open()
    const b = await open()
    const c = await open()
    const heard: WebSocket[] = []
    function onPong(this: WebSocket): void {
      heard.push(this)
    }
    a.socket.on('pong', onPong)
    b.socket.on('pong', onPong)
    await pong(a)
    await pong(b)
    await pong(c)
    await pong(a)
    expect(heard).toEqual([a.socket, b.socket, a.socket])
    // Kept once for the class, not in each socket's own table.
    expect(a.socket.listenerCount('pong')).toBe(0)
  })

  it('keeps other pong listeners on the socket, beside the shared one', async () => {
    const open = await serve(sharedPongSocketClass())
    const a = await open()
    const heard: string[] = []
    const shared = () => heard.push('shared')
    a.socket.on('pong', shared)
    a.socket.on('pong', () => heard.push('own'))
    a.socket.once('pong', () => heard.push('once'))
    await pong(a)
    await pong(a)
    expect(heard).toEqual(['shared', 'own', 'once', 'shared', 'own'])
  })

  it('stops calling the shared listener for a socket that removed it', async () => {
    const open = await serve(sharedPongSocketClass())
    const a = await open()
    const b = await open()
    const heard: WebSocket[] = []
    function onPong(this: WebSocket): void {
      heard.push(this)
    }
    a.socket.on('pong', onPong)
    b.socket.addListener('pong', onPong)
    a.socket.off('pong', onPong)
    await pong(a)
    await pong(b)
    b.socket.removeListener('pong', onPong)
    await pong(b)
    a.socket.on('pong', onPong)
    a.socket.removeAllListeners('pong')
    await pong(a)
    b.socket.on('pong', onPong)
    b.socket.removeAllListeners()
    await pong(b)
    expect(heard).toEqual([b.socket])
  })

  it('keeps the listeners of two classes apart, as two relays in one process need', async () => {
    const openFirst = await serve(sharedPongSocketClass())
    const openSecond = await serve(sharedPongSocketClass())
    const first = await openFirst()
    const second = await openSecond()
    const heard: string[] = []
    first.socket.on('pong', () => heard.push('first'))
    second.socket.on('pong', () => heard.push('second'))
    await pong(second)
    await pong(first)
    expect(heard).toEqual(['second', 'first'])
  })

  it('passes messages, closes and errors through as a plain socket does', async () => {
    const open = await serve(sharedPongSocketClass())
    const a = await open()
    const messages: string[] = []
    a.socket.on('message', (data) => messages.push(String(data)))
    a.client.send('hello')
    await until(() => messages.length === 1, 5_000, 'the message')
    expect(messages).toEqual(['hello'])
    const closed = once(a.socket, 'close')
    a.client.close(1000, 'done')
    const [code, reason] = (await within(closed, 5_000, 'the close')) as [number, Buffer]
    expect([code, String(reason)]).toEqual([1000, 'done'])
  })
})
