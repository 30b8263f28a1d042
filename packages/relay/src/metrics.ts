import { createHash } from 'node:crypto'
/** How far one connected replica is behind its space's log. */
export interface ReplicaLag {
  readonly space: string
  readonly replica: string
  /** The space's last log position. */
  readonly head: number
  /** The log position the replica has acknowledged applying. */
  readonly acked: number
  /** `head - acked`: log positions not yet confirmed by the replica. */
  readonly lag: number
}

/** One link this relay dials to another relay (see `RelayOptions.links`). */
export interface LinkStatus {
  readonly url: string
  /** 1 while linked (both hellos exchanged), else 0 (connecting, refused, or waiting to retry). */
  readonly up: number
}

/** Upper bounds of the commit-time histogram's buckets, in milliseconds. */
export const COMMIT_BUCKETS_MS: readonly number[] = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000]

/**
 * How long the store's commits of appends took since start: one transaction and one disk
 * flush each, however many appends joined it. A change is acknowledged and streamed on only
 * after its commit, so this is the disk's share of every change's latency; a relay whose
 * commits pass tens of milliseconds waits on its disk.
 */
export interface CommitTimes {
  /** For each bound of {@link COMMIT_BUCKETS_MS}, the commits that took at most that long. */
  readonly atMost: readonly number[]
  readonly count: number
  readonly sumMs: number
  /** The slowest commit. */
  readonly maxMs: number
}

/** Counts commit durations into a {@link CommitTimes}. */
export class CommitHistogram {
  readonly #atMost = COMMIT_BUCKETS_MS.map(() => 0)
  #count = 0
  #sumMs = 0
  #maxMs = 0

  observe(ms: number): void {
    this.#count++
    this.#sumMs += ms
    if (ms > this.#maxMs) this.#maxMs = ms
    for (let i = COMMIT_BUCKETS_MS.length - 1; i >= 0 && ms <= (COMMIT_BUCKETS_MS[i] as number); i--)
      this.#atMost[i] = (this.#atMost[i] as number) + 1
  }

  times(): CommitTimes {
    return { atMost: [...this.#atMost], count: this.#count, sumMs: this.#sumMs, maxMs: this.#maxMs }
  }
}

/** The counters of {@link RelayMetrics}: what a relay counts as it runs. */
export type RelayCounters = {
  -readonly [K in Exclude<
    keyof RelayMetrics,
    | 'connections'
    | 'spaces'
    | 'logEntries'
    | 'commits'
    | 'lag'
    | 'sessionsRefused'
    | 'sendBacklog'
    | 'storeListening'
    | 'appendRetries'
    | 'originsRefused'
    | 'links'
  >]: number
}

/** Every counter at zero, as a relay starts. */
export function zeroCounters(): RelayCounters {
  return {
    changesStored: 0,
    changesRecovered: 0,
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    rateLimited: 0,
    framesRefused: 0,
    helloTimeouts: 0,
    connectionsRefused: 0,
    socketErrors: 0,
    relayErrors: 0,
    compactions: 0,
    tombstonesCollected: 0,
    spacesDeleted: 0,
    remoteAppends: 0,
  }
}

/** A relay's counters and gauges, as `/metrics` exposes them. Counters run since start. */
export interface RelayMetrics {
  /** Open WebSocket connections. */
  readonly connections: number
  /**
   * Bytes sent to open connections and not yet written out to the network: what slow readers
   * cost in memory (each connection holds about `sendBuffer` at most, plus a frame).
   */
  readonly sendBacklog: number
  /**
   * For a store shared with other relays (PostgreSQL): 1 while this relay hears of their
   * appends, 0 while it does not (its clients then miss them until it hears again); absent for
   * a store of its own.
   */
  readonly storeListening?: number
  /** News of appends other relays made to a shared store. */
  readonly remoteAppends: number
  /** For a shared store: appends tried again because another relay changed what they read. */
  readonly appendRetries?: number
  /**
   * For a relay started with allowed origins (`startRelay({ allowedOrigins })`): WebSocket
   * upgrades refused with 403 because a browser page of another origin asked for them.
   */
  readonly originsRefused?: number
  /** Spaces with at least one stored change (absent while the store does not answer). */
  readonly spaces?: number
  /** Log entries retained over all spaces, compaction removing older ones (absent while the store does not answer). */
  readonly logEntries?: number
  /** Changes appended (newly stored) since start. */
  readonly changesStored: number
  /**
   * Of those, changes their writers sent again because this relay had lost them after
   * acknowledging them (it was restored from a backup).
   */
  readonly changesRecovered: number
  readonly framesIn: number
  readonly framesOut: number
  /** Payload bytes received and sent. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Inbound frames dropped by the rate limiter. */
  readonly rateLimited: number
  /** Frames refused before decoding: too large, or binary frames that are not UTF-8. */
  readonly framesRefused: number
  /** Connections closed for not having their `hello` answered in time (`helloTimeoutMs`). */
  readonly helloTimeouts: number
  /**
   * Connections closed on arrival because the relay was at its limit (`maxConnections`), or
   * their address at its own (`maxConnectionsPerAddress`).
   */
  readonly connectionsRefused: number
  /** Transport errors on sockets (a client's fault: a bad frame, a reset connection). */
  readonly socketErrors: number
  /** Failures with no caller to tell: a failed append or read, a hook that threw. */
  readonly relayErrors: number
  /** Compaction runs that completed, and what they removed. */
  readonly compactions: number
  readonly tombstonesCollected: number
  /** Spaces this relay deleted (`Relay.deleteSpace`, the administration API). */
  readonly spacesDeleted: number
  /**
   * Connections the relay refused and closed, by the error code it gave: `unauthenticated` (a
   * missing, bad or expired token, or one that expired while connected), `forbidden`,
   * `replica-mismatch`, `unsupported-protocol`, …
   */
  readonly sessionsRefused: Readonly<Record<string, number>>
  /** How long the store's commits of appends took. */
  readonly commits: CommitTimes
  readonly lag: readonly ReplicaLag[]
  /** The links this relay dials to other relays, if any. */
  readonly links?: readonly LinkStatus[]
}

/** How {@link renderPrometheus} writes its labels. */
export interface PrometheusOptions {
  /**
   * Label replicas' lag with space names and replica ids as they are. Off by default: a space's
   * name is all it takes to read it on an open relay, and `/metrics` answers anyone, so each
   * is written as `#` and the first 16 hex digits of its SHA-256 instead
   * (`printf %s team-notes | sha256sum | cut -c1-16` finds a space's). Turn it on only where
   * `/metrics` is not reachable by those who may not read the spaces.
   */
  readonly names?: boolean
}

/** A name as a label that does not give it away: `#` and 16 hex digits of its SHA-256. */
export function opaqueLabel(name: string): string {
  return `#${createHash('sha256').update(name).digest('hex').slice(0, 16)}`
}

/** The content type of {@link renderPrometheus}'s output (Prometheus text format 0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function metric(lines: string[], name: string, type: 'counter' | 'gauge', help: string, value: number): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`)
}

/** Renders metrics in the Prometheus text exposition format, names prefixed `chorus_relay_`. */
export function renderPrometheus(metrics: RelayMetrics, options: PrometheusOptions = {}): string {
  const label = options.names === true ? (name: string) => name : opaqueLabel
  const lines: string[] = []
  const p = 'chorus_relay_'
  metric(lines, `${p}connections`, 'gauge', 'Open WebSocket connections.', metrics.connections)
  metric(
    lines,
    `${p}send_backlog_bytes`,
    'gauge',
    'Bytes sent to open connections and not yet written to the network.',
    metrics.sendBacklog,
  )
  // The shared store's figures, for a relay on one (the gauge is there only then).
  if (metrics.storeListening !== undefined) {
    metric(
      lines,
      `${p}store_listening`,
      'gauge',
      '1 while the relay hears of the appends of other relays sharing its store, else 0.',
      metrics.storeListening,
    )
    metric(
      lines,
      `${p}remote_appends_total`,
      'counter',
      'News of appends other relays made to the shared store.',
      metrics.remoteAppends,
    )
  }
  if (metrics.appendRetries !== undefined) {
    metric(
      lines,
      `${p}append_retries_total`,
      'counter',
      'Appends tried again because another relay sharing the store changed what they read.',
      metrics.appendRetries,
    )
  }
  if (metrics.originsRefused !== undefined) {
    metric(
      lines,
      `${p}origins_refused_total`,
      'counter',
      'WebSocket upgrades refused because the page asking came from an origin not allowed.',
      metrics.originsRefused,
    )
  }
  if (metrics.spaces !== undefined)
    metric(lines, `${p}spaces`, 'gauge', 'Spaces with stored changes.', metrics.spaces)
  if (metrics.logEntries !== undefined) {
    metric(lines, `${p}log_entries`, 'gauge', 'Log entries retained over all spaces.', metrics.logEntries)
  }
  metric(lines, `${p}changes_stored_total`, 'counter', 'Changes durably appended.', metrics.changesStored)
  metric(
    lines,
    `${p}changes_recovered_total`,
    'counter',
    'Changes appended again from their writers after the relay lost them (a restored backup).',
    metrics.changesRecovered,
  )
  metric(lines, `${p}frames_in_total`, 'counter', 'WebSocket frames received.', metrics.framesIn)
  metric(lines, `${p}frames_out_total`, 'counter', 'WebSocket frames sent.', metrics.framesOut)
  metric(lines, `${p}bytes_in_total`, 'counter', 'Payload bytes received.', metrics.bytesIn)
  metric(lines, `${p}bytes_out_total`, 'counter', 'Payload bytes sent.', metrics.bytesOut)
  metric(
    lines,
    `${p}rate_limited_total`,
    'counter',
    'Frames dropped by the rate limiter.',
    metrics.rateLimited,
  )
  metric(
    lines,
    `${p}frames_refused_total`,
    'counter',
    'Frames refused before decoding (too large, not UTF-8).',
    metrics.framesRefused,
  )
  metric(
    lines,
    `${p}hello_timeouts_total`,
    'counter',
    'Connections closed for not completing their hello in time.',
    metrics.helloTimeouts,
  )
  metric(
    lines,
    `${p}connections_refused_total`,
    'counter',
    'Connections closed on arrival at the connection limit, overall or per address.',
    metrics.connectionsRefused,
  )
  metric(lines, `${p}socket_errors_total`, 'counter', 'Transport errors on sockets.', metrics.socketErrors)
  metric(lines, `${p}errors_total`, 'counter', 'Relay failures (storage, hooks).', metrics.relayErrors)
  metric(lines, `${p}compactions_total`, 'counter', 'Compaction runs completed.', metrics.compactions)
  metric(
    lines,
    `${p}tombstones_collected_total`,
    'counter',
    'Deleted records removed by compaction.',
    metrics.tombstonesCollected,
  )
  metric(
    lines,
    `${p}spaces_deleted_total`,
    'counter',
    'Spaces this relay deleted for good.',
    metrics.spacesDeleted,
  )
  lines.push(
    `# HELP ${p}sessions_refused_total Connections refused and closed, by the error code given.`,
    `# TYPE ${p}sessions_refused_total counter`,
  )
  for (const code of Object.keys(metrics.sessionsRefused).sort()) {
    lines.push(`${p}sessions_refused_total{code="${escapeLabel(code)}"} ${metrics.sessionsRefused[code]}`)
  }
  const commits = metrics.commits
  lines.push(
    `# HELP ${p}append_commit_seconds Time each store commit of appends took (a transaction and its disk flush).`,
    `# TYPE ${p}append_commit_seconds histogram`,
  )
  COMMIT_BUCKETS_MS.forEach((bound, i) => {
    lines.push(`${p}append_commit_seconds_bucket{le="${bound / 1000}"} ${commits.atMost[i] ?? 0}`)
  })
  lines.push(
    `${p}append_commit_seconds_bucket{le="+Inf"} ${commits.count}`,
    `${p}append_commit_seconds_sum ${commits.sumMs / 1000}`,
    `${p}append_commit_seconds_count ${commits.count}`,
  )
  lines.push(
    `# HELP ${p}replica_lag Log positions a connected replica has not yet acknowledged.`,
    `# TYPE ${p}replica_lag gauge`,
  )
  for (const entry of metrics.lag) {
    lines.push(
      `${p}replica_lag{space="${escapeLabel(label(entry.space))}",replica="${escapeLabel(label(entry.replica))}"} ${entry.lag}`,
    )
  }
  if (metrics.links !== undefined && metrics.links.length > 0) {
    lines.push(
      `# HELP ${p}link_up 1 while the link this relay dials to another relay is up, else 0.`,
      `# TYPE ${p}link_up gauge`,
    )
    for (const link of metrics.links) lines.push(`${p}link_up{url="${escapeLabel(link.url)}"} ${link.up}`)
  }
  return `${lines.join('\n')}\n`
}
