/**
 * The worker side of {@link WorkerRelayStore}: owns a {@link SqliteRelayStore} and answers the
 * main thread's requests in the order they arrive. Started by `worker/sqlite-worker.mjs`.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { ChorusError, ErrorCode, type HubAppend, isChorusError } from '@chorus/core'
import { SqliteRelayStore, type SqliteWrite } from './sqlite-relay-store.js'
import type { WorkerReply, WorkerRequest, WorkerStart } from './worker-protocol.js'

const port = parentPort
if (port === null) throw new Error('the relay SQLite worker must run in a worker thread')
const { path } = workerData as WorkerStart

const faults = new Set<SqliteWrite>()
let store: SqliteRelayStore
try {
  store = new SqliteRelayStore(path, {
    beforeCommit: (write) => {
      if (faults.delete(write)) throw new Error(`${write} failed (injected fault)`)
    },
  })
  port.postMessage({ id: 0, ok: true, value: undefined } satisfies WorkerReply)
} catch (error) {
  port.postMessage(failure(0, error))
  port.close()
}

function failure(id: number, error: unknown): WorkerReply {
  const chorus = isChorusError(error)
    ? error
    : new ChorusError(ErrorCode.Internal, error instanceof Error ? error.message : String(error))
  const cause = chorus.cause instanceof Error ? chorus.cause.message : undefined
  return {
    id,
    ok: false,
    code: chorus.code,
    message: chorus.message,
    ...(cause === undefined ? {} : { cause }),
  }
}

async function answer(request: Exclude<WorkerRequest, { op: 'close' }>): Promise<unknown> {
  switch (request.op) {
    case 'loadSpace':
      return store.loadSpace(request.space)
    case 'appendMany':
      return store.appendMany(request.space, JSON.parse(request.appends) as HubAppend[])
    case 'readLog':
      return store.readLogJson(request.space, request.after, request.limit, request.skip)
    case 'readSnapshot':
      return store.readSnapshotJson(request.space, request.afterKey, request.limit)
    case 'noteAck':
      return store.noteAck(request.space, request.replica, request.position, request.now)
    case 'noteAcks':
      return Promise.all(
        request.acks.map((ack) => store.noteAck(ack.space, ack.replica, ack.position, ack.now)),
      )
    case 'flushAcks':
      return store.flushAcks()
    case 'compact':
      return store.compact(request.space, {
        now: request.now,
        horizonMs: request.horizonMs,
        ...(request.collect === undefined ? {} : { collect: request.collect }),
      })
    case 'listSpaces':
      return store.listSpaces()
    case 'describeSpaces':
      return store.describeSpaces()
    case 'deleteSpace':
      return store.deleteSpace(request.space)
    case 'stats':
      return store.stats()
    case 'claimReplica':
      return store.claimReplica(request.replica, request.subject)
    case 'backup':
      return store.backup(request.destination)
    case 'injectFault':
      faults.add(request.write)
      return undefined
  }
}

/** Requests answered but not yet settled (a first-seen acknowledgement waits a turn): `close` lets them finish. */
const inFlight = new Set<Promise<unknown>>()

port.on('message', (request: WorkerRequest) => {
  const answering =
    request.op === 'close' ? Promise.allSettled(inFlight).then(() => store.close()) : answer(request)
  inFlight.add(answering)
  answering.then(
    (value) => {
      inFlight.delete(answering)
      port.postMessage({ id: request.id, ok: true, value } satisfies WorkerReply)
      if (request.op === 'close') port.close()
    },
    (error: unknown) => {
      inFlight.delete(answering)
      port.postMessage(failure(request.id, error))
      if (request.op === 'close') port.close()
    },
  )
})
