import { type ChildProcess, spawn } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import { ChorusError, ErrorCode } from '@chorus/core'
import { asNodeList } from '../node-id.js'
import type { LinkFaultSettings } from './fault-layer.js'

/** Options for {@link LoopbackCluster.start}. */
export interface LoopbackClusterOptions {
  readonly design: 'single-leader' | 'quorum'
  readonly nodes: readonly string[]
  /** The design's settings other than `nodes`. */
  readonly settings?: Record<string, unknown>
  /** A directory for the nodes' SQLite files (`<dir>/<node>.sqlite`); it must exist. */
  readonly dataDir: string
  readonly tickMs?: number
  readonly seed?: number
  /** Fsync every commit (default true); false opens the nodes' files with `synchronous = OFF`. */
  readonly fsync?: boolean
  /** Commit on a worker thread of each node (`WorkerNodeStorage`) instead of its event loop (default false). */
  readonly storageThread?: boolean
  /** Extra Node.js flags for every node process (for example `--cpu-prof` to profile them). */
  readonly execArgv?: readonly string[]
  /** How long a node may take to print its ports (default 20000 ms). */
  readonly startTimeoutMs?: number
  /**
   * Called when a running node's process ends other than through {@link LoopbackCluster.kill}
   * or `stop` (it crashed, or was killed from outside): the cluster no longer counts it as
   * running, and {@link LoopbackCluster.restart} starts it again.
   */
  readonly onExit?: (id: string, exit: NodeExit) => void
}

/** How a node process ended: its exit code, or the signal that ended it. */
export interface NodeExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** One node process of a {@link LoopbackCluster}. */
export interface LoopbackNode {
  readonly id: string
  readonly child: ChildProcess
  readonly peerPort: number
  readonly httpPort: number
  readonly exited: Promise<NodeExit>
}

/** An HTTP answer from a node: its status code and JSON body. */
export interface NodeAnswer {
  readonly status: number
  readonly body: unknown
}

/**
 * A cluster of node processes on 127.0.0.1, each running `node-main` with its own SQLite file
 * and free ports, wired together through their control APIs. Kill, restart, pause, partition
 * and link faults are available at run time. Run from source (a `.ts` module) it starts nodes
 * with `--import tsx --conditions=@chorus/source`; built, with plain `node`.
 */
export class LoopbackCluster {
  readonly options: LoopbackClusterOptions
  private readonly members = new Map<string, LoopbackNode>()
  /**
   * One keep-alive agent for every call: a connection per concurrent caller is opened once and
   * reused, so a call costs one request on an open socket, not a connect and a teardown. Idle
   * sockets close after 4 s, before a node's HTTP server drops them (5 s): a call never races
   * the server's close of the socket it reuses.
   */
  private readonly agent = new Agent({ keepAlive: true, timeout: 4_000 })

  private constructor(options: LoopbackClusterOptions) {
    this.options = options
  }

  /** Starts every node and tells each where the others listen. */
  static async start(options: LoopbackClusterOptions): Promise<LoopbackCluster> {
    asNodeList(options.nodes, 'nodes')
    const cluster = new LoopbackCluster(options)
    try {
      await Promise.all(options.nodes.map((id) => cluster.launch(id)))
      await cluster.wire()
    } catch (error) {
      await cluster.stop()
      throw error
    }
    return cluster
  }

  /** The running node `id` (throws `invalid-argument` for one that is not running). */
  node(id: string): LoopbackNode {
    const node = this.members.get(id)
    if (node === undefined) throw new ChorusError(ErrorCode.InvalidArgument, `node ${id} is not running`)
    return node
  }

  /** Ids of the nodes running now. */
  running(): string[] {
    return [...this.members.keys()]
  }

  /**
   * The running nodes' HTTP APIs by id (`http://127.0.0.1:port`), in the order of the options'
   * `nodes`, as a cluster client takes them.
   */
  urls(): Record<string, string> {
    const urls: Record<string, string> = {}
    for (const id of this.options.nodes) {
      const node = this.members.get(id)
      if (node !== undefined) urls[id] = `http://127.0.0.1:${node.httpPort}`
    }
    return urls
  }

  /** Sends a request of the design to `id`'s `POST /request`. */
  request(id: string, request: unknown, timeoutMs = 5_000): Promise<NodeAnswer> {
    return this.call(id, 'POST', '/request', request, timeoutMs)
  }

  /** `GET /status` of `id`. */
  status(id: string, timeoutMs = 2_000): Promise<NodeAnswer> {
    return this.call(id, 'GET', '/status', undefined, timeoutMs)
  }

  /**
   * Calls a route of `id`'s HTTP API; rejects when no answer came within `timeoutMs`, the
   * connection failed, or the body is not JSON.
   */
  call(
    id: string,
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    timeoutMs = 5_000,
  ): Promise<NodeAnswer> {
    const node = this.node(id)
    const text = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        {
          host: '127.0.0.1',
          port: node.httpPort,
          method,
          path,
          agent: this.agent,
          headers:
            text === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (response) => {
          const chunks: Buffer[] = []
          response.on('data', (chunk: Buffer) => chunks.push(chunk))
          response.on('error', fail)
          response.on('end', () => {
            clearTimeout(timer)
            try {
              const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
              resolve({ status: response.statusCode ?? 0, body: answer })
            } catch (error) {
              reject(
                new ChorusError(ErrorCode.Internal, `${id} answered ${path} with a body that is not JSON`, {
                  cause: error,
                }),
              )
            }
          })
        },
      )
      const timer = setTimeout(() => {
        request.destroy(new DOMException(`${id} did not answer ${path} in ${timeoutMs} ms`, 'TimeoutError'))
      }, timeoutMs)
      function fail(error: Error): void {
        clearTimeout(timer)
        reject(error)
      }
      request.on('error', fail)
      request.end(text)
    })
  }

  /** Kills `id` (SIGKILL by default) and waits for it to exit; its SQLite file stays. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.node(id)
    this.members.delete(id)
    node.child.kill(signal)
    await node.exited
  }

  /**
   * Starts `id` again on its SQLite file (new ports) and rewires the cluster; with `wire:
   * false` the caller tells the nodes where their peers are (through proxies of its own, say),
   * and none is pointed at the node's new ports directly meanwhile.
   */
  async restart(id: string, options: { readonly wire?: boolean } = {}): Promise<void> {
    if (this.members.has(id)) throw new ChorusError(ErrorCode.InvalidArgument, `node ${id} is running`)
    await this.launch(id)
    if (options.wire !== false) await this.wire()
  }

  /**
   * Promotes node `id` (single-leader): with fencing, it runs an election at once that the
   * voters honour even while they hear the old leader; without, it declares itself leader.
   */
  async promote(id: string): Promise<void> {
    await this.control(id, '/control/promote', {})
  }

  /** Pauses `id` for `ms`: it handles nothing meanwhile, then resumes with its old state. */
  async pause(id: string, ms: number): Promise<void> {
    await this.control(id, '/control/pause', { ms })
  }

  /** Splits the running nodes into groups that cannot reach each other. */
  async partition(groups: readonly (readonly string[])[]): Promise<void> {
    await this.controlEvery('/control/partition', { groups })
  }

  /** Faults on the link `from` → `to` (every link of `from` when `to` is null). */
  async faults(from: string, to: string | null, faults: Partial<LinkFaultSettings>): Promise<void> {
    await this.control(from, '/control/faults', { peer: to, ...faults })
  }

  /** Removes every partition and link fault. */
  async heal(): Promise<void> {
    await this.controlEvery('/control/heal', {})
  }

  /** Stops every node (SIGTERM, then SIGKILL after 3 s). */
  async stop(): Promise<void> {
    const nodes = [...this.members.values()]
    this.members.clear()
    this.agent.destroy()
    await Promise.all(
      nodes.map(async (node) => {
        node.child.kill('SIGTERM')
        const timer = setTimeout(() => node.child.kill('SIGKILL'), 3_000)
        await node.exited
        clearTimeout(timer)
      }),
    )
  }

  private async control(id: string, path: string, body: unknown): Promise<void> {
    const answer = await this.call(id, 'POST', path, body)
    if (answer.status !== 200) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `${id} refused ${path}: ${JSON.stringify(answer.body)}`,
      )
    }
  }

  /**
   * Sends a control command to every running node, each whether or not another fails. A node
   * whose process ended meanwhile is no longer running and is left out; any other failure
   * rejects, naming the nodes it reached and those it did not.
   */
  private async controlEvery(path: string, body: unknown): Promise<void> {
    const ids = this.running()
    const results = await Promise.allSettled(ids.map((id) => this.control(id, path, body)))
    const failed: string[] = []
    let failure: unknown
    for (const [index, result] of results.entries()) {
      if (result.status === 'fulfilled') continue
      const id = ids[index] as string
      // The exit is noticed a moment after the refused connection that reveals it.
      const node = this.members.get(id)
      const ended = node === undefined || (await settlesWithin(node.exited, 1_000))
      if (ended) continue
      failed.push(id)
      failure ??= result.reason
    }
    if (failed.length === 0) return
    const reached = ids.filter((id) => !failed.includes(id))
    throw new ChorusError(
      ErrorCode.Internal,
      `${path} failed at ${failed.join(', ')} (${reached.length === 0 ? 'no node took it' : `taken by ${reached.join(', ')}`}): ${failure instanceof Error ? failure.message : String(failure)}`,
      { cause: failure },
    )
  }

  private async wire(): Promise<void> {
    const peers = Object.fromEntries(
      [...this.members.values()].map((node) => [node.id, { host: '127.0.0.1', port: node.peerPort }]),
    )
    await this.controlEvery('/control/peers', { peers })
  }

  private launch(id: string): Promise<LoopbackNode> {
    const { options } = this
    const config = {
      design: options.design,
      id,
      nodes: options.nodes,
      data: `${options.dataDir}/${id}.sqlite`,
      settings: options.settings ?? {},
      tickMs: options.tickMs ?? 10,
      seed: options.seed ?? 1,
      fsync: options.fsync ?? true,
      storageThread: options.storageThread ?? false,
    }
    const fromSource = import.meta.url.endsWith('.ts')
    const main = fileURLToPath(new URL(fromSource ? './node-main.ts' : './node-main.js', import.meta.url))
    const flags = [
      ...(fromSource ? ['--import', 'tsx', '--conditions=@chorus/source'] : []),
      ...(options.execArgv ?? []),
    ]
    const child = spawn(process.execPath, [...flags, main, JSON.stringify(config)], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const exited = new Promise<NodeExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }))
    })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + String(chunk)).slice(-4_000)
    })
    return new Promise((resolve, reject) => {
      let partial = ''
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new ChorusError(ErrorCode.Internal, `node ${id} did not start in time; stderr: ${stderr}`))
      }, options.startTimeoutMs ?? 20_000)
      child.stdout?.on('data', (chunk: Buffer) => {
        const lines = (partial + String(chunk)).split('\n')
        partial = lines.pop() ?? ''
        for (const line of lines) {
          const event = parseEvent(line)
          if (event?.event !== 'listening') continue
          clearTimeout(timer)
          const node: LoopbackNode = { id, child, peerPort: event.peerPort, httpPort: event.httpPort, exited }
          this.members.set(id, node)
          // Ended otherwise than by `kill` or `stop`, which forget the node first.
          void exited.then((exit) => {
            if (this.members.get(id) !== node) return
            this.members.delete(id)
            this.options.onExit?.(id, exit)
          })
          resolve(node)
        }
      })
      void exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(
          new ChorusError(ErrorCode.Internal, `node ${id} exited (${code ?? signal}); stderr: ${stderr}`),
        )
      })
    })
  }
}

/** True when `promise` settles within `ms`. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    const settle = () => {
      clearTimeout(timer)
      resolve(true)
    }
    promise.then(settle, settle)
  })
}

function parseEvent(line: string): { event: string; peerPort: number; httpPort: number } | null {
  try {
    const value = JSON.parse(line) as { event?: unknown; peerPort?: unknown; httpPort?: unknown }
    if (
      typeof value.event !== 'string' ||
      typeof value.peerPort !== 'number' ||
      typeof value.httpPort !== 'number'
    ) {
      return null
    }
    return { event: value.event, peerPort: value.peerPort, httpPort: value.httpPort }
  } catch {
    return null
  }
}
