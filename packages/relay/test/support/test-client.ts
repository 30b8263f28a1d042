import {
  type Change,
  decodeMessage,
  encodeMessage,
  type Message,
  PROTOCOL_VERSION,
  type ReplicaId,
  type SpaceId,
} from '@chorus/core'
import WebSocket, { type ClientOptions } from 'ws'
import { within } from './fixtures.js'

/** How a socket closed. */
export interface Closed {
  readonly code: number
  readonly reason: string
}

/**
 * A hand-driven protocol client over a real `ws` socket: sends encoded messages or raw
 * frames, decodes what arrives, and waits (bounded) for a message or the close.
 */
export interface TestClient {
  readonly socket: WebSocket
  /** Every decoded message received, in order. */
  readonly messages: Message[]
  /** Frames that did not decode (should stay empty: the relay sends only valid frames). */
  readonly undecodable: string[]
  readonly closed: Promise<Closed>
  send(message: Message): void
  sendRaw(data: string | Uint8Array, options?: { readonly binary?: boolean }): void
  /** The first message (from index `from`) matching `predicate`, waiting up to `ms`. */
  waitFor<TMessage extends Message>(
    predicate: (message: Message) => message is TMessage,
    what: string,
    options?: { readonly ms?: number; readonly from?: number },
  ): Promise<TMessage>
  /** Called synchronously with every decoded message, as it arrives. */
  onMessage(listener: (message: Message) => void): void
  close(): Promise<Closed>
}

/** Opens a client socket; resolves once it is open. */
export async function connectClient(url: string, options: ClientOptions = {}): Promise<TestClient> {
  const socket = new WebSocket(url, options)
  const messages: Message[] = []
  const undecodable: string[] = []
  const listeners: ((message: Message) => void)[] = []
  const waiters = new Set<() => void>()
  const wake = () => {
    for (const waiter of [...waiters]) waiter()
  }
  let isClosed = false
  const closed = new Promise<Closed>((resolve) => {
    socket.on('close', (code, reason) => {
      isClosed = true
      resolve({ code, reason: reason.toString('utf8') })
      wake()
    })
  })
  socket.on('error', () => {
    // A refused or reset connection also emits 'close', which the tests await.
  })
  socket.on('message', (data) => {
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.from(data as ArrayBuffer).toString('utf8')
    const decoded = decodeMessage(text)
    if (!decoded.ok) {
      undecodable.push(text)
      return
    }
    messages.push(decoded.message)
    for (const listener of listeners) listener(decoded.message)
    wake()
  })
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('unexpected-response', (_request, response) =>
        reject(new Error(`upgrade refused with HTTP ${response.statusCode}`)),
      )
      socket.once('close', (code) => reject(new Error(`closed (${code}) before opening`)))
    }),
    5000,
    `a connection to ${url}`,
  )
  function waitFor<TMessage extends Message>(
    predicate: (message: Message) => message is TMessage,
    what: string,
    options: { readonly ms?: number; readonly from?: number } = {},
  ): Promise<TMessage> {
    const { ms = 5000, from = 0 } = options
    let waiter: () => void = () => {}
    const found = new Promise<TMessage>((resolve, reject) => {
      waiter = () => {
        const match = messages.slice(from).find(predicate)
        if (match !== undefined) resolve(match)
        else if (isClosed)
          reject(new Error(`closed before ${what}; got ${JSON.stringify(messages.slice(from))}`))
        else return
        waiters.delete(waiter)
      }
      waiters.add(waiter)
      waiter()
    })
    return within(found, ms, what).finally(() => waiters.delete(waiter))
  }
  return {
    socket,
    messages,
    undecodable,
    closed,
    send(message) {
      socket.send(encodeMessage(message))
    },
    sendRaw(data, options = {}) {
      socket.send(data, { binary: options.binary ?? false })
    },
    waitFor,
    onMessage(listener) {
      listeners.push(listener)
    },
    async close() {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close()
      return within(closed, 5000, 'the client socket to close')
    },
  }
}

/** A `hello` from a replica naming spaces with the positions it has applied. */
export function hello(replicaId: string, spaces: Readonly<Record<string, number>>, token?: string): Message {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: replicaId as ReplicaId,
    ...(token === undefined ? {} : { token }),
    spaces: Object.keys(spaces) as SpaceId[],
    have: spaces,
  }
}

/** A `changes` frame carrying `batch`, numbered `from + 1 … from + batch.length`. */
export function changes(space: string, from: number, batch: readonly Change[]): Message {
  return { type: 'changes', space: space as SpaceId, from, to: from + batch.length, batch }
}

/** Type guards for `waitFor`. */
export const is = {
  hello: (message: Message): message is Extract<Message, { type: 'hello' }> => message.type === 'hello',
  ack:
    (upTo: number) =>
    (message: Message): message is Extract<Message, { type: 'ack' }> =>
      message.type === 'ack' && message.upTo === upTo,
  error:
    (code: string) =>
    (message: Message): message is Extract<Message, { type: 'error' }> =>
      message.type === 'error' && message.code === code,
  changesTo:
    (to: number) =>
    (message: Message): message is Extract<Message, { type: 'changes' }> =>
      message.type === 'changes' && message.to === to,
  lastSnapshot: (message: Message): message is Extract<Message, { type: 'snapshot' }> =>
    message.type === 'snapshot' && message.last,
}
