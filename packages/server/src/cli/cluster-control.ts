import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ChorusError, ErrorCode, isChorusError } from '@chorus/core'
import { messageOf } from '../error-message.js'
import type { LinkFaultSettings } from '../node/fault-layer.js'
import { parseJsonBody } from '../node/http-body.js'
import type { LoopbackCluster, LoopbackNode } from '../node/loopback-cluster.js'
import { checkPartitionGroups } from '../node/partition-groups.js'
import { onlyCommandFields } from '../wire.js'

/** One node as the control API describes it. */
export interface ControlNodeView {
  readonly id: string
  readonly running: boolean
  /** The node's HTTP API (null while it is not running). */
  readonly url: string | null
  readonly peerPort: number | null
  readonly pid: number | null
}

/** What `GET /nodes` answers (and every successful command, after it took effect). */
export interface ControlView {
  readonly design: 'single-leader' | 'quorum'
  readonly nodes: readonly ControlNodeView[]
  /** The partition in force, or null. */
  readonly partition: readonly (readonly string[])[] | null
  /**
   * Link faults in force, as `from (or * for every node) → to (or * for every link) →
   * settings`.
   */
  readonly faults: Readonly<Record<string, Readonly<Record<string, Partial<LinkFaultSettings>>>>>
}

/** Options for {@link ClusterControl.start}. */
export interface ClusterControlOptions {
  /** Port on 127.0.0.1 (0, the default, picks a free one). */
  readonly port?: number
  /** Told about every node (re)started through the API, e.g. to print its new address. */
  readonly onNodeStarted?: (node: LoopbackNode) => void
}

const MAX_BODY = 64 * 1024
const MAX_MS = 600_000

/** The routes, for the 404 answer and the README. */
export const controlRoutes = [
  'GET /nodes',
  'POST /partition {"groups":[["n1"],["n2","n3"]]}',
  'POST /heal',
  'POST /pause {"node":"n1","ms":1500}',
  'POST /kill {"node":"n1","signal"?:"SIGKILL"|"SIGTERM"}',
  'POST /restart {"node":"n1"}',
  'POST /promote {"node":"n2"}',
  'POST /latency {"ms":50,"jitterMs"?:0,"from"?:"n1","to"?:"n2"}',
  'POST /loss {"rate":0.2,"from"?:"n1","to"?:"n2"}',
] as const

/**
 * The cluster-wide control API of `chorus-cluster`: one HTTP/JSON endpoint on 127.0.0.1 that
 * turns operator commands into calls on every node's own control API through a
 * {@link LoopbackCluster}.
 *
 * Commands run one at a time, in arrival order, so a `kill` and a `restart` of one node cannot
 * interleave. The partition and link faults in force are remembered and given again to a node
 * the API restarts (a new process starts with a clean fault layer). Bad input is answered 400
 * with `{ code: "invalid-argument", message }` and changes nothing; a failure while carrying a
 * command out is answered 500. There is no authentication: it binds to 127.0.0.1 only.
 */
export class ClusterControl {
  readonly url: string
  private readonly server: Server
  private readonly cluster: LoopbackCluster
  private readonly options: ClusterControlOptions
  private groups: string[][] | null = null
  private readonly linkFaults = new Map<string, Map<string, Partial<LinkFaultSettings>>>()
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(cluster: LoopbackCluster, server: Server, options: ClusterControlOptions) {
    this.cluster = cluster
    this.server = server
    this.options = options
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  /** Starts the control API for `cluster`. */
  static async start(cluster: LoopbackCluster, options: ClusterControlOptions = {}): Promise<ClusterControl> {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    const control = new ClusterControl(cluster, server, options)
    server.on('request', (request, response) => {
      control.handle(request, response).catch((error: unknown) => {
        // Never an unhandled rejection, which would end the cluster: a 500 if nothing was sent.
        if (!response.headersSent)
          send(response, 500, { code: ErrorCode.Internal, message: messageOf(error) })
        else response.destroy()
      })
    })
    return control
  }

  /** The nodes, the partition and the link faults as the API sees them now. */
  view(): ControlView {
    const running = new Set(this.cluster.running())
    const nodes = this.cluster.options.nodes.map((id): ControlNodeView => {
      if (!running.has(id)) return { id, running: false, url: null, peerPort: null, pid: null }
      const node = this.cluster.node(id)
      return {
        id,
        running: true,
        url: `http://127.0.0.1:${node.httpPort}`,
        peerPort: node.peerPort,
        pid: node.child.pid ?? null,
      }
    })
    const faults = Object.fromEntries(
      [...this.linkFaults].map(([from, links]) => [from, Object.fromEntries(links)]),
    )
    return { design: this.cluster.options.design, nodes, partition: this.groups, faults }
  }

  /** Stops answering (waits for the command being carried out, if any). */
  async close(): Promise<void> {
    await this.queue.catch(() => undefined)
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // The path as sent, up to its query: a target such as `//x:99999/nodes` is no URL, and
    // parsing it as one threw outside this handler's reach, which ended the cluster.
    const target = request.url ?? '/'
    const query = target.indexOf('?')
    const pathname = query < 0 ? target : target.slice(0, query)
    const route = `${request.method ?? ''} ${pathname}`
    try {
      if (route === 'GET /nodes') {
        send(response, 200, this.view())
        return
      }
      const command = commands[route]
      if (command === undefined) {
        const allowed = controlRoutes
          .map((known) => known.split(' ') as [string, string])
          .filter(([, path]) => path === pathname)
          .map(([method]) => method)
        if (allowed.length > 0) {
          response.setHeader('allow', allowed.join(', '))
          send(response, 405, {
            code: ErrorCode.InvalidArgument,
            message: `${pathname} takes ${allowed.join(' or ')}, not ${request.method ?? 'no method'}`,
          })
          return
        }
        send(response, 404, {
          code: ErrorCode.InvalidArgument,
          message: `no route ${route}; the routes are: ${controlRoutes.join('; ')}`,
        })
        return
      }
      const body = asObject(await readBody(request))
      onlyCommandFields(body, commandFields[route] ?? [], route)
      const run = this.queue.then(() => command(this, body))
      this.queue = run.catch(() => undefined)
      await run
      send(response, 200, this.view())
    } catch (error) {
      if (isChorusError(error) && error.code !== ErrorCode.Internal) {
        send(response, 400, { code: error.code, message: error.message })
      } else {
        send(response, 500, {
          code: ErrorCode.Internal,
          message: messageOf(error),
        })
      }
    }
  }

  /** @internal */
  async partition(groups: string[][]): Promise<void> {
    await this.cluster.partition(groups)
    this.groups = groups
  }

  /** @internal */
  async heal(): Promise<void> {
    await this.cluster.heal()
    this.groups = null
    this.linkFaults.clear()
  }

  /** @internal */
  async setFaults(from: string | null, to: string | null, faults: Partial<LinkFaultSettings>): Promise<void> {
    const senders = from === null ? this.cluster.running() : [from]
    for (const sender of senders) this.cluster.node(sender)
    await Promise.all(senders.map((sender) => this.cluster.faults(sender, to, faults)))
    // Kept under '*' when given for every node: a node down now gets it too when restarted.
    for (const sender of from === null ? ['*'] : senders) {
      const links = this.linkFaults.get(sender) ?? new Map<string, Partial<LinkFaultSettings>>()
      links.set(to ?? '*', { ...links.get(to ?? '*'), ...faults })
      this.linkFaults.set(sender, links)
    }
  }

  /** @internal */
  async restart(id: string): Promise<void> {
    await this.cluster.restart(id)
    const node = this.cluster.node(id)
    if (this.groups !== null) await this.cluster.partition(this.groups)
    for (const sender of ['*', id]) {
      for (const [to, faults] of this.linkFaults.get(sender) ?? []) {
        if (to !== id) await this.cluster.faults(id, to === '*' ? null : to, faults)
      }
    }
    this.options.onNodeStarted?.(node)
  }

  /** @internal */
  member(value: unknown, field: string): string {
    if (typeof value !== 'string' || !this.cluster.options.nodes.includes(value)) {
      invalid(`${field} must name a node of the cluster (${this.cluster.options.nodes.join(', ')})`)
    }
    return value as string
  }

  /** @internal */
  get nodes(): readonly string[] {
    return this.cluster.options.nodes
  }

  /** @internal */
  get loopback(): LoopbackCluster {
    return this.cluster
  }
}

type Command = (control: ClusterControl, body: Record<string, unknown>) => Promise<void>

const commands: Record<string, Command> = {
  'POST /partition': async (control, body) => {
    await control.partition(checkPartitionGroups(body.groups, control.nodes))
  },
  'POST /heal': (control) => control.heal(),
  'POST /pause': async (control, body) => {
    const node = control.member(body.node, 'node')
    await control.loopback.pause(node, milliseconds(body.ms, 'ms', 1))
  },
  'POST /kill': async (control, body) => {
    const node = control.member(body.node, 'node')
    const signal = body.signal ?? 'SIGKILL'
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM') invalid('signal must be "SIGKILL" or "SIGTERM"')
    await control.loopback.kill(node, signal as 'SIGKILL' | 'SIGTERM')
  },
  'POST /restart': (control, body) => control.restart(control.member(body.node, 'node')),
  'POST /promote': async (control, body) => {
    const node = control.member(body.node, 'node')
    if (control.loopback.options.design !== 'single-leader') invalid('only a single-leader cluster promotes')
    await control.loopback.promote(node)
  },
  'POST /latency': async (control, body) => {
    const latencyMs = milliseconds(body.ms, 'ms', 0)
    const jitterMs = body.jitterMs === undefined ? 0 : milliseconds(body.jitterMs, 'jitterMs', 0)
    await control.setFaults(...link(control, body), { latencyMs, jitterMs })
  },
  'POST /loss': async (control, body) => {
    const rate = body.rate
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) invalid('rate must be a number from 0 to 1')
    await control.setFaults(...link(control, body), { loss: rate as number })
  },
}

/** The fields each command takes; any other is refused, so that a misspelt one is not ignored. */
const commandFields: Record<string, readonly string[]> = {
  'POST /partition': ['groups'],
  'POST /heal': [],
  'POST /pause': ['node', 'ms'],
  'POST /kill': ['node', 'signal'],
  'POST /restart': ['node'],
  'POST /promote': ['node'],
  'POST /latency': ['ms', 'jitterMs', 'from', 'to'],
  'POST /loss': ['rate', 'from', 'to'],
}

function link(control: ClusterControl, body: Record<string, unknown>): [string | null, string | null] {
  const from = body.from === undefined || body.from === null ? null : control.member(body.from, 'from')
  const to = body.to === undefined || body.to === null ? null : control.member(body.to, 'to')
  if (from !== null && from === to) invalid('from and to must be different nodes')
  return [from, to]
}

function milliseconds(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > MAX_MS) {
    invalid(`${field} must be a whole number of ms from ${min} to ${MAX_MS}`)
  }
  return value as number
}

function invalid(message: string): never {
  throw new ChorusError(ErrorCode.InvalidArgument, message)
}

function asObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    invalid('the body must be a JSON object')
  return value as Record<string, unknown>
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new ChorusError(ErrorCode.FrameTooLarge, `the body exceeds ${MAX_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  const body = Buffer.concat(chunks)
  // Blank is a command with no fields (`POST /heal`); whitespace is ASCII, so this test needs no decoding.
  if (body.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d)) return {}
  return parseJsonBody(body)
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' })
  response.end(JSON.stringify(body))
}
