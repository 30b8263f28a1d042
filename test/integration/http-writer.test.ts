import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpWriter } from '../bench/http-writer.js'

/** The cluster benchmark's writer client, against real servers on loopback. */
describe('HttpWriter', () => {
  const closers: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const close of closers.splice(0)) await close()
  })

  async function listen<TServer extends Server | HttpServer>(server: TServer): Promise<number> {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    closers.push(() => new Promise((resolve) => server.close(() => resolve())))
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    return address.port
  }

  it('sends requests one after another on one keep-alive connection and reads each JSON answer', async () => {
    const sockets = new Set<unknown>()
    const server = createHttpServer((request, response) => {
      sockets.add(request.socket)
      let body = ''
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8')
      })
      request.on('end', () => {
        const text = JSON.stringify({ echo: JSON.parse(body), path: request.url, method: request.method })
        response.writeHead(request.url === '/request' ? 200 : 404, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        })
        response.end(text)
      })
    })
    const writer = new HttpWriter(await listen(server))
    closers.unshift(async () => writer.close())
    for (const n of [1, 2, 3]) {
      const answer = await writer.request(JSON.stringify({ n, text: 'é ✓' }), 5_000)
      expect(answer).toEqual({
        status: 200,
        body: { echo: { n, text: 'é ✓' }, path: '/request', method: 'POST' },
      })
    }
    expect(sockets.size).toBe(1)
  })

  /** A raw server that answers each request with `answer(socket)`; `accepted` counts its connections. */
  async function rawServer(answer: (socket: Socket) => void, accepted = { count: 0 }): Promise<number> {
    const open = new Set<Socket>()
    const server = createServer((socket) => {
      accepted.count += 1
      open.add(socket)
      socket.on('close', () => open.delete(socket))
      socket.on('data', () => answer(socket))
    })
    const port = await listen(server)
    closers.unshift(async () => {
      for (const socket of open) socket.destroy()
    })
    return port
  }

  it('reads an answer that arrives a byte at a time', async () => {
    const body = JSON.stringify({ type: 'put-ok', values: [1, 2, 3] })
    const whole = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
    const port = await rawServer((socket) => {
      let at = 0
      const next = () => {
        if (at >= whole.length) return
        socket.write(whole[at++] as string)
        setTimeout(next, 0)
      }
      next()
    })
    const writer = new HttpWriter(port)
    closers.unshift(async () => writer.close())
    expect(await writer.request('{}', 5_000)).toEqual({
      status: 200,
      body: { type: 'put-ok', values: [1, 2, 3] },
    })
  })

  it('rejects after the timeout, and a late answer is not taken for the next request', async () => {
    let requests = 0
    const answered = new WeakMap<Socket, Promise<void>>()
    const port = await rawServer((socket) => {
      requests += 1
      const n = requests
      const body = JSON.stringify({ n })
      // Answers leave in request order on a connection, as HTTP/1.1 has them; the first one
      // 300 ms late. A writer that kept the connection would read it as the second's answer.
      const previous = answered.get(socket) ?? Promise.resolve()
      const sent = previous
        .then(() => new Promise((resolve) => setTimeout(resolve, n === 1 ? 300 : 0)))
        .then(() => {
          if (!socket.destroyed)
            socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
        })
      answered.set(socket, sent)
    })
    const writer = new HttpWriter(port)
    closers.unshift(async () => writer.close())
    await expect(writer.request('{}', 50)).rejects.toThrow('no answer within 50 ms')
    expect(await writer.request('{}', 5_000)).toEqual({ status: 200, body: { n: 2 } })
  })

  it('opens a new connection when the server closed the last one, and rejects an answer without a length', async () => {
    const accepted = { count: 0 }
    const port = await rawServer((socket) => {
      const body = JSON.stringify({ ok: true })
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    }, accepted)
    const writer = new HttpWriter(port)
    closers.unshift(async () => writer.close())
    for (let i = 0; i < 3; i++) {
      expect(await writer.request('{}', 5_000)).toEqual({ status: 400, body: { ok: true } })
      // Let the close reach the writer before the next request.
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(accepted.count).toBe(3)

    const bare = await rawServer((socket) =>
      socket.write('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n{}'),
    )
    const lost = new HttpWriter(bare)
    closers.unshift(async () => lost.close())
    await expect(lost.request('{}', 5_000)).rejects.toThrow('without a status or content-length')
  })
})
