import type { ChorusError } from '@chorus/core'
import { type RunningRelay, type StartRelayOptions, startRelay } from '../../src/serve.js'
import { makeTempDir } from './fixtures.js'

/** A relay on 127.0.0.1, port 0, in a temp dir; `stop` closes it and removes the dir. */
export interface TestRelay extends RunningRelay {
  readonly dataDir: string
  /** Failures the relay reported through `onError`. */
  readonly errors: ChorusError[]
  stop(): Promise<void>
}

/** Starts a relay as the CLI does, on a free port, with its data in a fresh temp dir. */
export async function startTestRelay(options: Omit<StartRelayOptions, 'dataDir'> = {}): Promise<TestRelay> {
  const temp = makeTempDir()
  const errors: ChorusError[] = []
  const running = await startRelay({
    heartbeatMs: 0,
    ...options,
    dataDir: temp.dir,
    port: 0,
    host: '127.0.0.1',
    onError: (error) => errors.push(error),
  })
  return {
    ...running,
    dataDir: temp.dir,
    errors,
    async stop() {
      await running.close()
      temp.remove()
    },
  }
}

/** GETs a path of the relay's HTTP side. */
export async function get(
  relay: RunningRelay,
  path: string,
): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(`${relay.httpUrl}${path}`)
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    body: await response.text(),
  }
}

/** Reads one sample (no labels) from Prometheus text. */
export function sample(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `))
  if (line === undefined) throw new Error(`no sample ${name} in:\n${text}`)
  return Number(line.slice(name.length + 1))
}
