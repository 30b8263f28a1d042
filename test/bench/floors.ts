/**
 * The floors the sync benchmark compares Chorus with: what the same work costs with nothing
 * but the underlying library — a `ws` server that forwards every frame to every other
 * client, and Dexie's `bulkPut` on the same fake IndexedDB.
 */
import type { AddressInfo } from 'node:net'
import { Dexie } from 'dexie'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { WebSocket, WebSocketServer } from 'ws'

/**
 * A raw relay: every frame a client sends goes to every other client, nothing stored — except
 * a `hello`, which it echoes to its sender, so that an idle raw connection has exchanged one
 * message each way, as an idle Chorus connection has.
 */
export interface RawRelay {
  readonly url: string
  close(): Promise<void>
}

const HELLO = Buffer.from('{"type":"hello"')

/** Starts a raw forwarding relay on 127.0.0.1, port 0 (no compression, as the Chorus relay). */
export async function startRawRelay(): Promise<RawRelay> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => server.once('listening', resolve))
  server.on('connection', (socket) => {
    socket.on('error', () => socket.terminate())
    socket.on('message', (data, isBinary) => {
      if (HELLO.equals((data as Buffer).subarray(0, HELLO.length))) {
        socket.send(data, { binary: isBinary })
        return
      }
      for (const other of server.clients) {
        if (other !== socket && other.readyState === WebSocket.OPEN) other.send(data, { binary: isBinary })
      }
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resolve())
      }),
  }
}

/** Opens a Dexie database with one `notes` table (keyed by `id`) in a fresh fake IndexedDB. */
export async function openDexie(name: string): Promise<Dexie> {
  const db = new Dexie(name, { indexedDB: new IDBFactory(), IDBKeyRange })
  db.version(1).stores({ notes: 'id' })
  await db.open()
  return db
}

/** Writes `rows` with one Dexie `bulkPut` into a fresh fake IndexedDB; returns the time in ms. */
export async function dexieBulkPut(rows: readonly { id: string }[]): Promise<number> {
  const db = await openDexie(`floor-${rows.length}`)
  const start = performance.now()
  await db.table('notes').bulkPut(rows as { id: string }[])
  const elapsed = performance.now() - start
  db.close()
  return elapsed
}
