/**
 * The benchmark's side of a {@link HostConfig relay host}: starts the host process and sends
 * it requests, one at a time.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { HostConfig, HostReply, HostRequest } from './relay-host.js'

const HOST = fileURLToPath(new URL('./relay-host.ts', import.meta.url))

/** A relay running in a child process. */
export interface HostedRelay {
  readonly url: string
  readonly kind: HostConfig['kind']
  request<TType extends HostRequest['type']>(
    request: Extract<HostRequest, { type: TType }>,
  ): Promise<HostReply>
  close(): Promise<void>
}

/** Starts a relay host (`tsx` with the source condition and `--expose-gc`) and waits until it listens. */
export async function startHostedRelay(config: HostConfig): Promise<HostedRelay> {
  const child: ChildProcess = fork(HOST, [JSON.stringify(config)], {
    execArgv: [
      '--import',
      'tsx',
      '--conditions=@chorus/source',
      '--expose-gc',
      // CHORUS_BENCH_PROFILE=dir writes a CPU profile of each relay process there.
      ...(process.env.CHORUS_BENCH_PROFILE === undefined
        ? []
        : ['--cpu-prof', `--cpu-prof-dir=${process.env.CHORUS_BENCH_PROFILE}`]),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const waiting: ((reply: HostReply) => void)[] = []
  let ready: (url: string) => void = () => undefined
  const listening = new Promise<string>((resolve) => {
    ready = resolve
  })
  child.on('message', (reply: HostReply) => {
    if (reply.type === 'ready') ready(reply.url)
    else waiting.shift()?.(reply)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = await Promise.race([
    listening,
    exited.then(() => {
      throw new Error('the relay host exited before listening')
    }),
  ])
  let chain: Promise<unknown> = Promise.resolve()
  const request = (message: HostRequest): Promise<HostReply> => {
    const next = chain.then(
      () =>
        new Promise<HostReply>((resolve) => {
          waiting.push(resolve)
          child.send(message)
        }),
    )
    chain = next
    return next
  }
  return {
    url,
    kind: config.kind,
    request,
    async close() {
      await request({ type: 'close' })
      await exited
    },
  }
}
