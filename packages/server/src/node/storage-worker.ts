/**
 * The worker-thread side of {@link WorkerNodeStorage}: opens the node's SQLite file and serves
 * the calls the node's event loop posts, one at a time, in order.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'
import { messageOf } from '../error-message.js'
import type { PendingAppend } from '../storage.js'
import { SqliteNodeStorage } from './sqlite-node-storage.js'
import type { StorageCall, StorageWorkerData, WorkerAnswer } from './worker-node-storage.js'

const port = parentPort
if (port === null) throw new ChorusError(ErrorCode.Internal, 'storage-worker runs only as a worker thread')
const data = workerData as StorageWorkerData

function failure(error: unknown): WorkerAnswer {
  return {
    type: 'failed',
    code: isChorusError(error) ? error.code : ErrorCode.StorageFailed,
    message: messageOf(error),
  }
}

let storage: SqliteNodeStorage<unknown>
try {
  storage = new SqliteNodeStorage(data.path, { fsync: data.fsync })
} catch (error) {
  port.postMessage({ id: 0, answer: failure(error) })
  process.exit(0)
}
port.postMessage({ id: 0, answer: { type: 'ok', value: null } satisfies WorkerAnswer })

port.on('message', (call: StorageCall) => {
  serve(call).then(
    (value) => {
      port.postMessage({ id: call.id, answer: { type: 'ok', value } satisfies WorkerAnswer })
      if (call.type === 'close') port.close()
    },
    (error: unknown) => port.postMessage({ id: call.id, answer: failure(error) }),
  )
})

async function serve(call: StorageCall): Promise<unknown> {
  switch (call.type) {
    case 'load':
      return storage.load()
    case 'append':
      return storage.appendAll(call.appends as readonly PendingAppend<unknown>[])
    case 'fail-next':
      storage.failNextAppend(call.message)
      return null
    case 'close':
      storage.close()
      return null
  }
}
