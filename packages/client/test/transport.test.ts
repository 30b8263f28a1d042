import type { WebSocketConstructorLike } from '@chorus/client'
import { describe, expect, it } from 'vitest'
import { WebSocket as WsWebSocket } from 'ws'
import { frameText } from '../src/transport/websocket-like.js'

describe('WebSocketLike', () => {
  it('accepts the ws package and the DOM WebSocket without casts', () => {
    const fromWs: WebSocketConstructorLike = WsWebSocket
    const fromDom: WebSocketConstructorLike | undefined =
      typeof WebSocket === 'undefined' ? undefined : WebSocket
    expect(typeof fromWs).toBe('function')
    expect(fromDom === undefined || typeof fromDom === 'function').toBe(true)
  })

  it('reads text frames, and binary ones as UTF-8, whatever their container', async () => {
    const text = '{"type":"ack","space":"s","upTo":1} — ünïcødé 😀'
    const bytes = new TextEncoder().encode(text)
    expect(await frameText(text)).toBe(text)
    expect(await frameText(bytes.buffer)).toBe(text)
    expect(await frameText(Buffer.from(bytes))).toBe(text)
    expect(await frameText(new Blob([bytes]))).toBe(text)
    // ws's 'fragments' binaryType, split inside a four-byte character.
    expect(
      await frameText([Buffer.from(bytes.slice(0, bytes.length - 2)), Buffer.from(bytes.slice(-2))]),
    ).toBe(text)
    expect(await frameText(42)).toBeUndefined()
  })
})
