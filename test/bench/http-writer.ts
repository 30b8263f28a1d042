import { connect, type Socket } from 'node:net'

/** A node's answer to one request: the HTTP status and the body parsed as JSON. */
export interface WriterAnswer {
  readonly status: number
  readonly body: unknown
}

const HEADER_END = Buffer.from('\r\n\r\n')

/**
 * One benchmark writer's keep-alive HTTP/1.1 connection to one node, sending one JSON
 * `POST /request` at a time: the request is one string written at once, the answer is read by
 * its `content-length` (the node's server always sends one). It does what `node:http`'s client
 * does for such a request at a fraction of its CPU, which on the benchmark's 2 cores the nodes
 * would otherwise lose: a deployment's clients run on other machines. A connection the node
 * closed (its keep-alive timeout) is opened again by the next request.
 */
export class HttpWriter {
  readonly #port: number
  readonly #head: string
  #socket: Socket | null = null
  #chunks: Buffer[] = []
  #waiting: { resolve(answer: WriterAnswer): void; reject(error: Error): void } | null = null

  constructor(port: number) {
    this.#port = port
    this.#head = `POST /request HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: `
  }

  /** Sends `body` (JSON text); resolves with the answer, rejects after `timeoutMs` or on a failed connection. */
  request(body: string, timeoutMs: number): Promise<WriterAnswer> {
    if (this.#waiting !== null) return Promise.reject(new Error('one request at a time per writer'))
    const socket = this.#socket ?? this.#open()
    return new Promise<WriterAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late answer must not be read as the next request's: the connection goes with it.
        this.#fail(new Error(`no answer within ${timeoutMs} ms`))
        this.close()
      }, timeoutMs)
      this.#waiting = {
        resolve: (answer) => {
          clearTimeout(timer)
          resolve(answer)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
      socket.write(`${this.#head}${Buffer.byteLength(body)}\r\n\r\n${body}`)
    })
  }

  close(): void {
    this.#socket?.destroy()
    this.#socket = null
  }

  #open(): Socket {
    const socket = connect({ host: '127.0.0.1', port: this.#port })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
    const lost = () => {
      // A connection this writer already let go of (a timeout, `close`) fails nothing.
      if (this.#socket !== socket) return
      this.#socket = null
      this.#fail(new Error('the connection closed'))
    }
    socket.on('error', lost)
    socket.on('close', lost)
    this.#socket = socket
    this.#chunks = []
    return socket
  }

  #read(chunk: Buffer): void {
    this.#chunks.push(chunk)
    const data = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks)
    const end = data.indexOf(HEADER_END)
    if (end < 0) return
    const head = data.toString('latin1', 0, end)
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
    const status = Number(head.slice(9, 12))
    if (length === null || !Number.isInteger(status)) {
      this.#fail(new Error(`an answer without a status or content-length: ${JSON.stringify(head)}`))
      this.close()
      return
    }
    const start = end + HEADER_END.length
    const stop = start + Number(length[1])
    if (data.length < stop) {
      this.#chunks = [data]
      return
    }
    this.#chunks = data.length > stop ? [data.subarray(stop)] : []
    const waiting = this.#waiting
    this.#waiting = null
    try {
      waiting?.resolve({ status, body: JSON.parse(data.toString('utf8', start, stop)) })
    } catch (error) {
      waiting?.reject(error as Error)
    }
  }

  #fail(error: Error): void {
    const waiting = this.#waiting
    this.#waiting = null
    this.#chunks = []
    waiting?.reject(error)
  }
}
