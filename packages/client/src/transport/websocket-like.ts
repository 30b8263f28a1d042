/**
 * The least a WebSocket must offer Chorus: browsers' `WebSocket`, `ws`'s `WebSocket` in Node,
 * or anything shaped like them.
 *
 * Structural on purpose (like tRPC's `WebSocketEsque`): neither the DOM nor `ws` types are
 * needed to use the client. Handlers are declared as methods so that both implementations'
 * richer event types are accepted.
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed (the WebSocket standard's values). */
  readonly readyState: number
  onopen: BivariantHandler<unknown> | null
  onmessage: BivariantHandler<WebSocketMessageLike> | null
  onclose: BivariantHandler<unknown> | null
  onerror: BivariantHandler<unknown> | null
  send(data: string): void
  close(code?: number, reason?: string): void
  /** Drops the connection without the closing handshake (`ws` has it; browsers do not). */
  terminate?(): void
}

/** A received message: text for a text frame; a Blob, ArrayBuffer or byte view for a binary one. */
export interface WebSocketMessageLike {
  readonly data: unknown
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructorLike = new (url: string) => WebSocketLike

/**
 * An event handler type checked bivariantly, as method parameters are: the DOM declares
 * `(this: WebSocket, event: MessageEvent) => any` and `ws` its own event classes, and both
 * must be assignable to a handler that reads only `data`.
 */
type BivariantHandler<TEvent> = { handle(event: TEvent): void }['handle']

/** `readyState` values, as the WebSocket standard numbers them. */
export const ReadyState = { Connecting: 0, Open: 1, Closing: 2, Closed: 3 } as const

const decoder = new TextDecoder()

/**
 * The text of a received frame.
 *
 * Chorus speaks JSON text frames; a binary frame (a relay or proxy that re-frames, or `ws`
 * handing over a Buffer) is read as UTF-8. Returns `undefined` for data of no known shape.
 */
export async function frameText(data: unknown): Promise<string | undefined> {
  if (typeof data === 'string') return data
  if (data instanceof ArrayBuffer) return decoder.decode(data)
  if (ArrayBuffer.isView(data)) return decoder.decode(data)
  if (Array.isArray(data) && data.every((part) => ArrayBuffer.isView(part))) {
    // `ws` with binaryType 'fragments' hands over the frame's parts; a character may span two.
    const parts = new TextDecoder()
    return data.map((part: ArrayBufferView) => parts.decode(part, { stream: true })).join('') + parts.decode()
  }
  if (typeof Blob !== 'undefined' && data instanceof Blob) return await data.text()
  return undefined
}
