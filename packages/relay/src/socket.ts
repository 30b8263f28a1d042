/**
 * The WebSocket a relay talks through, as a structural type: what `ws`'s `WebSocket` offers
 * and the relay uses, so the relay's signatures do not depend on `ws`'s own types.
 *
 * `message` gives the payload as `ws` does (a `Buffer`, an `ArrayBuffer` or `Buffer[]`) and
 * whether it came in a binary frame; the relay reads either as UTF-8 text. Listeners are
 * called with `this` set to the socket, as Node's `EventEmitter` (and so `ws`) calls them:
 * the relay registers the same listener functions on every socket.
 */
export interface RelaySocket {
  /** 1 while open (the WebSocket `OPEN` state). */
  readonly readyState: number
  /** Bytes sent and not yet written out to the network. */
  readonly bufferedAmount: number
  /** Sends `data` (UTF-8 JSON text) as a text frame (`binary: false`), as `ws` does. */
  send(data: Uint8Array, options: { readonly binary: boolean }, callback?: (error?: Error) => void): void
  close(code?: number, reason?: string): void
  terminate(): void
  ping(): void
  on(event: 'message', listener: (data: unknown, isBinary: boolean) => void): unknown
  on(event: 'close', listener: (code: number, reason: unknown) => void): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
  on(event: 'pong', listener: () => void): unknown
}

/** The server side: a `ws` `WebSocketServer` (or anything that emits `connection` alike). */
export interface RelaySocketServer {
  on(event: 'connection', listener: (socket: RelaySocket, request: unknown) => void): unknown
}

/** WebSocket close codes the relay uses (RFC 6455 §7.4.1, and 1013 from the IANA registry). */
export const CloseCode = {
  /** The relay is shutting down. */
  GoingAway: 1001,
  /** The peer speaks another protocol version. */
  ProtocolError: 1002,
  /** A text frame that is not valid UTF-8 (closed by `ws` itself). */
  InvalidPayload: 1007,
  /** Refused: authentication, access, replica binding, or persistent rate abuse. */
  PolicyViolation: 1008,
  /** A frame larger than the relay accepts. */
  MessageTooBig: 1009,
  /** The relay is at its connection limit: try again later. */
  TryAgainLater: 1013,
} as const
