/**
 * One cluster node as a process: `node node-main.js '<config JSON>'`.
 *
 * The config is `{ "design": "single-leader" | "quorum", "id": "n1", "nodes": ["n1", …],
 * "data": "<SQLite file>", "settings"?: { …the design's config without nodes }, "tickMs"?: 10,
 * "seed"?: 1, "fsync"?: true, "storageThread"?: false }` (`fsync: false` opens the SQLite file
 * with `synchronous = OFF`; `storageThread: true` commits on a worker thread, `WorkerNodeStorage`,
 * instead of blocking the event loop with `SqliteNodeStorage`). The node binds 127.0.0.1 on free ports and prints one line,
 * `{"event":"listening","node":…,"peerPort":…,"httpPort":…}`; its peers' addresses arrive
 * later through `POST /control/peers`. SIGTERM or SIGINT stops it cleanly, and so does the end
 * of the process that started it (checked twice a second); a bad config
 * prints `{"event":"error","code":…,"message":…}` on stderr and exits with status 2.
 */
import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'
import { messageOf } from '../error-message.js'
import type { NodeMachine } from '../machine.js'
import { asNodeId, asNodeList } from '../node-id.js'
import { batchQuorumMessages, isQuorumAcknowledgement } from '../quorum/batch.js'
import { createQuorumConfig, type QuorumConfigInput } from '../quorum/config.js'
import { createQuorumMachine } from '../quorum/node.js'
import { batchSingleLeaderMessages, singleLeaderStepFirst } from '../single-leader/batch.js'
import { createSingleLeaderConfig, type SingleLeaderConfigInput } from '../single-leader/config.js'
import { createSingleLeaderMachine } from '../single-leader/node.js'
import { NodeRuntime } from './node-runtime.js'
import { SqliteNodeStorage } from './sqlite-node-storage.js'
import { WorkerNodeStorage } from './worker-node-storage.js'

interface NodeProcessConfig {
  readonly design: 'single-leader' | 'quorum'
  readonly id: string
  readonly nodes: readonly string[]
  readonly data: string
  readonly settings: Record<string, unknown>
  readonly tickMs: number
  readonly seed: number
  readonly fsync: boolean
  readonly storageThread: boolean
}

function readConfig(text: string | undefined): NodeProcessConfig {
  const fail = (message: string): never => {
    throw new ChorusError(ErrorCode.InvalidArgument, message)
  }
  if (text === undefined) fail('usage: node-main <config JSON>')
  let value: unknown
  try {
    value = JSON.parse(text as string)
  } catch {
    fail('the config is not valid JSON text')
  }
  if (typeof value !== 'object' || value === null) fail('the config must be a JSON object')
  const fields = value as Record<string, unknown>
  const design = fields.design
  if (design !== 'single-leader' && design !== 'quorum') fail('design must be "single-leader" or "quorum"')
  if (typeof fields.id !== 'string') fail('id must be a node id')
  if (!Array.isArray(fields.nodes)) fail('nodes must be an array of node ids')
  if (typeof fields.data !== 'string' || fields.data === '')
    fail('data must be the path of the node’s SQLite file')
  const settings = fields.settings ?? {}
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings))
    fail('settings must be an object')
  const tickMs = fields.tickMs ?? 10
  if (typeof tickMs !== 'number' || !Number.isSafeInteger(tickMs) || tickMs < 1)
    fail('tickMs must be a positive integer')
  const seed = fields.seed ?? 1
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) fail('seed must be an integer')
  const fsync = fields.fsync ?? true
  if (typeof fsync !== 'boolean') fail('fsync must be true or false')
  const storageThread = fields.storageThread ?? false
  if (typeof storageThread !== 'boolean') fail('storageThread must be true or false')
  return {
    design: design as NodeProcessConfig['design'],
    id: fields.id as string,
    nodes: fields.nodes as string[],
    data: fields.data as string,
    settings: settings as Record<string, unknown>,
    tickMs: tickMs as number,
    seed: seed as number,
    fsync: fsync as boolean,
    storageThread: storageThread as boolean,
  }
}

async function serve<TState, TInput, TMessage, TReply, TRecord>(
  config: NodeProcessConfig,
  machine: NodeMachine<TState, TInput, TMessage, TReply, TRecord>,
  batchMessages?: (messages: readonly TMessage[]) => readonly TMessage[],
  stepFirst?: (input: TInput) => boolean,
  operatorInputs?: Readonly<Record<string, (now: number) => TInput>>,
): Promise<void> {
  const id = asNodeId(config.id)
  const nodes = asNodeList(config.nodes, 'nodes')
  const storage = config.storageThread
    ? await WorkerNodeStorage.open<TRecord>(config.data, { fsync: config.fsync })
    : new SqliteNodeStorage<TRecord>(config.data, { fsync: config.fsync })
  const runtime = new NodeRuntime({
    id,
    nodes,
    machine,
    storage,
    tickMs: config.tickMs,
    seed: `${config.seed}:${id}`,
    ...(batchMessages === undefined ? {} : { batchMessages }),
    ...(stepFirst === undefined ? {} : { stepFirst }),
    ...(operatorInputs === undefined ? {} : { operatorInputs }),
  })
  const ports = await runtime.start()
  process.stdout.write(`${JSON.stringify({ event: 'listening', node: id, ...ports })}\n`)
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    runtime
      .stop()
      .then(() => storage.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  // A launcher killed with SIGKILL cannot stop its nodes: a node whose parent is gone (it was
  // re-parented) stops itself instead of lingering as an orphan.
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) stop()
  }, 500).unref()
}

try {
  const config = readConfig(process.argv[2])
  // The settings are unchecked JSON; createSingleLeaderConfig / createQuorumConfig check every
  // field they read and throw invalid-argument, so the casts only hand them over.
  const settings = { ...config.settings, nodes: config.nodes }
  if (config.design === 'single-leader') {
    const checked = createSingleLeaderConfig(settings as unknown as SingleLeaderConfigInput)
    await serve(
      config,
      createSingleLeaderMachine(config.id, checked),
      batchSingleLeaderMessages,
      singleLeaderStepFirst(checked),
      // The seeds' "promote follower" button, for an operator: POST /control/promote.
      { promote: (now) => ({ type: 'promote' as const, now }) },
    )
  } else {
    await serve(
      config,
      createQuorumMachine(config.id, createQuorumConfig(settings as unknown as QuorumConfigInput)),
      batchQuorumMessages,
      isQuorumAcknowledgement,
    )
  }
} catch (error) {
  const code = isChorusError(error) ? error.code : ErrorCode.Internal
  process.stderr.write(`${JSON.stringify({ event: 'error', code, message: messageOf(error) })}\n`)
  process.exit(2)
}
