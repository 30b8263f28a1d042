import type { Socket } from 'node:net'
import { asReplicaId, type Change } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { makeChange, within } from './support/fixtures.js'
import { get, sample, startTestRelay } from './support/harness.js'
import { connectClient, hello, is } from './support/test-client.js'

const SPACE = 'big-board'
const WRITER = asReplicaId('writer-1')
/** 30,000 records of about 1 KB: a snapshot of about 30 MB, far past what sockets buffer. */
const RECORDS = 30_000
const SEND_BUFFER = 1024 * 1024
const BODY = 'x'.repeat(1_000)

/** The relay's bytes sent and not yet written to the network, over every connection. */
async function backlog(relay: { httpUrl: string } & Parameters<typeof get>[0]): Promise<number> {
  return sample((await get(relay, '/metrics')).body, 'chorus_relay_send_backlog_bytes')
}

describe('a reader that stops reading', () => {
  it('costs the relay about sendBuffer in memory, and gets everything once it reads again', {
    timeout: 60_000,
  }, async () => {
    // No tick within the test: only the socket's drain can resume the stream.
    const relay = await startTestRelay({ session: { sendBuffer: SEND_BUFFER }, tickMs: 600_000 })
    try {
      for (let from = 1; from <= RECORDS; from += 1_000) {
        const batch: Change[] = []
        for (let counter = from; counter < from + 1_000; counter++)
          batch.push(makeChange(WRITER, counter, {}, { body: BODY, n: counter }))
        await relay.store.append(SPACE as never, WRITER, batch)
      }

      const reader = await connectClient(relay.url)
      // The reader's own socket stops reading: the kernel's buffers fill, then the relay's.
      const tcp = (reader.socket as unknown as { _socket: Socket })._socket
      tcp.pause()
      reader.send(hello('slow-reader', { [SPACE]: 0 }))
      // Give the relay time to push what it would: with nothing to hold it back, the whole
      // snapshot (all but what the kernel buffers) would wait in its memory.
      let most = 0
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        most = Math.max(most, await backlog(relay))
      }
      expect(most).toBeGreaterThan(0)
      // The bound, plus the page that went past it (a page holds at most 1 MiB of text).
      expect(most).toBeLessThan(SEND_BUFFER + 1.5 * 1024 * 1024)

      tcp.resume()
      await reader.waitFor(is.lastSnapshot, 'the last snapshot page', { ms: 30_000 })
      const records = reader.messages.flatMap((message) => (message.type === 'snapshot' ? message.batch : []))
      expect(records).toHaveLength(RECORDS)
      expect(new Set(records.map((change) => change.id)).size).toBe(RECORDS)
      await within(
        (async () => {
          while ((await backlog(relay)) > 0) await new Promise((resolve) => setTimeout(resolve, 20))
        })(),
        5_000,
        'the backlog to drain',
      )
      await reader.close()
    } finally {
      await relay.stop()
    }
  })
})
