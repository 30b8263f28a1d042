import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isChorusError } from '@chorus/core'
import { messageOf } from '../error-message.js'
import type { LoopbackNode } from '../node/loopback-cluster.js'
import { LoopbackCluster } from '../node/loopback-cluster.js'
import { createQuorumConfig, type QuorumConfigInput, type ReadRepairMode } from '../quorum/config.js'
import { createSingleLeaderConfig, electionQuorumOf, type ReplicationMode } from '../single-leader/config.js'
import {
  type CliIo,
  ExitCode,
  intFlag,
  processIo,
  runIfEntryPoint,
  UsageError,
  usageFailure,
  waitForSignal,
} from './cli-io.js'
import { ClusterControl, controlRoutes } from './cluster-control.js'

const USAGE = `Usage:
  chorus-cluster --mode single-leader [--nodes 3] [--replication sync|semi-sync|async|chain]
                 [--acks 1] [--ack-timeout-ms 200] [--no-fencing] [--no-pre-vote]
  chorus-cluster --mode quorum [--nodes 5] [--n 3] [--w 2] [--r 2] [--sloppy]
                 [--read-repair off|async|blocking] [--conflicts siblings|lww] [--anti-entropy-ms 0]
Common options:
  --data DIR        where the nodes' SQLite files live (default ./.chorus-cluster; created if absent)
  --port P          port of the cluster's control API on 127.0.0.1 (default 0: a free port)
  --tick-ms MS      each node's timer tick (default 10)
  --seed S          seed of the fault layers' random draws (default 1)
Quorum defaults: --n is 3 (the node count, if fewer), --w and --r a majority of --n.

Prints one line per node, "n1 http://127.0.0.1:PORT" (its HTTP/JSON API: POST /request,
GET /status), then "control http://127.0.0.1:PORT". A node restarted through the control API
prints its new line. SIGTERM or Ctrl-C stops every node and exits 0.
Control API (JSON bodies):
  ${controlRoutes.join('\n  ')}
Exit codes: 0 stopped cleanly, 1 a runtime failure, 2 a bad command line.`

/** A cluster the CLI would start: what `--mode` and the other flags say. */
export interface ClusterPlan {
  readonly design: 'single-leader' | 'quorum'
  readonly nodes: readonly string[]
  readonly settings: Record<string, unknown>
  readonly dataDir: string
  readonly controlPort: number
  readonly tickMs: number
  readonly seed: number
  /** One line saying what will run, for the operator. */
  readonly summary: string
}

/**
 * Reads `chorus-cluster`'s command line into a {@link ClusterPlan}; throws {@link UsageError}
 * (or the `parseArgs` error) for a bad one. The settings are checked by the designs' own
 * config functions, so an impossible cluster (W > N, acks ≥ nodes) is a usage error too.
 */
export function parseClusterArgs(argv: readonly string[]): ClusterPlan {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      mode: { type: 'string' },
      nodes: { type: 'string' },
      replication: { type: 'string' },
      acks: { type: 'string' },
      'ack-timeout-ms': { type: 'string' },
      'no-fencing': { type: 'boolean' },
      'no-pre-vote': { type: 'boolean' },
      n: { type: 'string' },
      w: { type: 'string' },
      r: { type: 'string' },
      sloppy: { type: 'boolean' },
      'read-repair': { type: 'string' },
      conflicts: { type: 'string' },
      'anti-entropy-ms': { type: 'string' },
      data: { type: 'string' },
      port: { type: 'string' },
      'tick-ms': { type: 'string' },
      seed: { type: 'string' },
    },
  })
  const design = values.mode
  if (design !== 'single-leader' && design !== 'quorum') {
    throw new UsageError(`--mode must be single-leader or quorum, got ${JSON.stringify(design ?? null)}`)
  }
  const singleOnly = ['replication', 'acks', 'ack-timeout-ms', 'no-fencing', 'no-pre-vote'] as const
  const quorumOnly = ['n', 'w', 'r', 'sloppy', 'read-repair', 'conflicts', 'anti-entropy-ms'] as const
  for (const flag of design === 'quorum' ? singleOnly : quorumOnly) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} does not apply to --mode ${design}`)
  }
  const count = intFlag('nodes', values.nodes, design === 'quorum' ? 5 : 3, 1, 32)
  const nodes = Array.from({ length: count }, (_, i) => `n${i + 1}`)
  let settings: Record<string, unknown>
  let summary: string
  try {
    if (design === 'single-leader') {
      const mode = values.replication ?? 'sync'
      for (const flag of ['acks', 'ack-timeout-ms'] as const) {
        if (values[flag] !== undefined && mode !== 'semi-sync')
          throw new UsageError(`--${flag} needs --replication semi-sync`)
      }
      const replication = (
        mode === 'semi-sync'
          ? {
              mode,
              acks: intFlag('acks', values.acks, 1, 1, 31),
              timeoutMs: intFlag('ack-timeout-ms', values['ack-timeout-ms'], 200, 1, 600_000),
            }
          : { mode }
      ) as ReplicationMode
      settings = {
        replication,
        ...(values['no-fencing'] === true ? { fencing: false } : {}),
        ...(values['no-pre-vote'] === true ? { preVote: false } : {}),
      }
      const checked = createSingleLeaderConfig({ nodes, ...settings })
      summary = `single-leader, ${plural(count, 'node')}, ${mode}${mode === 'semi-sync' ? ` (${plural((replication as { acks: number }).acks, 'ack')})` : ''}, elections need ${electionQuorumOf(checked)} of ${count} votes${values['no-fencing'] === true ? ', fencing OFF (split brain possible)' : ''}${values['no-pre-vote'] === true ? ', no pre-vote' : ''}`
    } else {
      const input: Omit<QuorumConfigInput, 'nodes'> = {
        ...(values.n === undefined ? {} : { replicas: intFlag('n', values.n, 3, 1, 32) }),
        ...(values.w === undefined ? {} : { writeQuorum: intFlag('w', values.w, 2, 1, 32) }),
        ...(values.r === undefined ? {} : { readQuorum: intFlag('r', values.r, 2, 1, 32) }),
        ...(values.sloppy === true ? { sloppy: true } : {}),
        ...(values['read-repair'] === undefined
          ? {}
          : { readRepair: values['read-repair'] as ReadRepairMode }),
        ...(values.conflicts === undefined ? {} : { conflicts: values.conflicts as 'siblings' | 'lww' }),
        ...(values['anti-entropy-ms'] === undefined
          ? {}
          : { antiEntropyMs: intFlag('anti-entropy-ms', values['anti-entropy-ms'], 0, 0, 600_000) }),
      }
      const config = createQuorumConfig({ nodes, ...input })
      settings = { ...input }
      summary = `quorum, ${plural(count, 'node')}, N=${config.replicas} W=${config.writeQuorum} R=${config.readQuorum}${config.sloppy ? ', sloppy' : ''}, read repair ${config.readRepair}, ${config.conflicts}`
    }
  } catch (error) {
    if (isChorusError(error)) throw new UsageError(error.message)
    throw error
  }
  return {
    design,
    nodes,
    settings,
    dataDir: resolve(values.data ?? './.chorus-cluster'),
    controlPort: intFlag('port', values.port, 0, 0, 65_535),
    tickMs: intFlag('tick-ms', values['tick-ms'], 10, 1, 10_000),
    seed: intFlag('seed', values.seed, 1, 0, Number.MAX_SAFE_INTEGER),
    summary,
  }
}

/**
 * Runs `chorus-cluster` with `argv` (without `node` and the script). Resolves with the exit
 * code once a stop signal has shut every node down (0), or at once for `--help` (0), a bad
 * command line (2) or a cluster that could not start (1).
 */
export async function runClusterCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(USAGE)
    return ExitCode.Ok
  }
  let plan: ClusterPlan
  try {
    plan = parseClusterArgs(argv)
  } catch (error) {
    return usageFailure(io, 'chorus-cluster', USAGE, error)
  }
  // Listen for the stop signal first, so an early SIGTERM still shuts the cluster down cleanly.
  const stopped = (io.waitForStop ?? waitForSignal)()
  let cluster: LoopbackCluster | undefined
  let control: ClusterControl | undefined
  try {
    mkdirSync(plan.dataDir, { recursive: true })
    io.err(`chorus-cluster: starting ${plan.summary}; data in ${plan.dataDir}`)
    cluster = await LoopbackCluster.start({
      design: plan.design,
      nodes: plan.nodes,
      settings: plan.settings,
      dataDir: plan.dataDir,
      tickMs: plan.tickMs,
      seed: plan.seed,
      onExit: (id, exit) =>
        io.err(
          `chorus-cluster: ${id} exited (${exit.signal ?? `code ${exit.code}`}) without being told to; POST /restart {"node":"${id}"} to the control API starts it again`,
        ),
    })
    const announce = (node: LoopbackNode) => io.out(`${node.id} http://127.0.0.1:${node.httpPort}`)
    control = await ClusterControl.start(cluster, { port: plan.controlPort, onNodeStarted: announce })
    for (const id of plan.nodes) announce(cluster.node(id))
    io.out(`control ${control.url}`)
    const signal = await stopped
    io.err(`chorus-cluster: ${signal}: stopping ${plural(cluster.running().length, 'node')}`)
    await control.close()
    await cluster.stop()
    return ExitCode.Ok
  } catch (error) {
    io.err(`chorus-cluster: ${messageOf(error)}`)
    await control?.close().catch(() => undefined)
    await cluster?.stop().catch(() => undefined)
    return ExitCode.Failed
  }
}

/** `1 node`, `3 nodes`. */
function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

runIfEntryPoint(import.meta.url, 'chorus-cluster', runClusterCli)
