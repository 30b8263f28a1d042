import { createReplica, type Replica, type ReplicaOptions, type Row } from '@chorus/client'
import { afterEach, beforeEach } from 'vitest'
import { act, unmountAll } from './dom.js'
import { createInProcessHub, type InProcessHub } from './in-process-hub.js'

const open: Replica[] = []

/** An in-memory replica that {@link closeReplicas} closes. */
export async function memoryReplica(options: Partial<ReplicaOptions> = {}): Promise<Replica> {
  const replica = await createReplica({
    space: 'react-tests',
    storage: 'memory',
    networkEvents: null,
    reconnect: { baseMs: 10, maxMs: 50 },
    random: () => 0.5,
    ...options,
  })
  open.push(replica)
  return replica
}

export async function closeReplicas(): Promise<void> {
  await Promise.all(open.splice(0).map((replica) => replica.close()))
}

/**
 * The next rows a live query on `collection` delivers after the one it delivers at once.
 * Started after a component subscribed, it is served after that component's query, so once
 * it resolves the component's query has delivered too.
 */
export function nextDelivery(replica: Replica, collection: string): Promise<readonly Row[]> {
  return new Promise((resolve) => {
    let calls = 0
    const stop = replica.collection(collection).subscribe((rows) => {
      if (++calls < 2) return
      stop()
      resolve(rows)
    })
  })
}

/**
 * Runs `write` under `act` and waits for a live query on `collection` started before it to
 * deliver after it: once it returns, the components reading the collection have rendered what
 * the write caused (see {@link nextDelivery}).
 */
export async function writeAndRender(
  replica: Replica,
  collection: string,
  write: () => Promise<unknown>,
): Promise<void> {
  await act(async () => {
    const delivered = nextDelivery(replica, collection)
    await write()
    await delivered
  })
}

/**
 * Runs `write`, which leaves the rows of every live query as they were, under `act`, and
 * waits until the live queries it touched have read: they do so on a timer of 0 ms, and a
 * memory replica answers at once, so a timer set after the write runs once they are done.
 * (They deliver nothing: rows that did not change cause no call.)
 */
export async function writeAndSettle(write: () => Promise<unknown>): Promise<void> {
  await act(async () => {
    await write()
    await new Promise((resolve) => setTimeout(resolve, 0))
  })
}

/**
 * Resolves after `check` holds, evaluated now and after every event of the replicas (one
 * evaluation at a time; events during one cause one more).
 */
export function whenReplicas(
  replicas: readonly Replica[],
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 5_000,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const stops: (() => void)[] = []
    let done = false
    let running = false
    let again = false
    const finish = (error?: Error): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      for (const stop of stops) stop()
      if (error === undefined) resolve()
      else reject(error)
    }
    const timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    const evaluate = async (): Promise<void> => {
      if (running) {
        again = true
        return
      }
      running = true
      try {
        do {
          again = false
          if (await check()) finish()
        } while (again && !done)
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)))
      } finally {
        running = false
      }
    }
    for (const replica of replicas) {
      stops.push(
        replica.on('status', () => void evaluate()),
        replica.on('change', () => void evaluate()),
      )
    }
    void evaluate()
  })
}

/**
 * `replica` as a tab whose notices of other tabs' commits can go missing: while `muted`, its
 * `change` events reach no hook; `reload()` emits what the replica emits when it finds such a
 * commit (`reload`), to the hooks that listen for it.
 */
export function missingNotices(replica: Replica): {
  readonly replica: Replica
  mute(muted: boolean): void
  reload(): void
} {
  let muted = false
  const reloads = new Set<() => void>()
  const on = (name: string, listener: (payload: unknown) => void): (() => void) => {
    if (name === 'reload') {
      const entry = () => listener(undefined)
      reloads.add(entry)
      const stop = replica.on('reload', entry)
      return () => {
        reloads.delete(entry)
        stop()
      }
    }
    if (name === 'change') return replica.on('change', (event) => muted || listener(event))
    return replica.on(name as 'status', listener)
  }
  const tab = new Proxy(replica, {
    get(target, property) {
      if (property === 'on') return on
      const value = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return {
    replica: tab,
    mute: (next) => {
      muted = next
    },
    reload: () => {
      for (const entry of [...reloads]) entry()
    },
  }
}

/**
 * For each test of the file that calls it: a fresh in-process hub, and, after the test, its
 * components unmounted and replicas closed. Returns what opens a device on that hub: a memory
 * replica with `resolvers`, not connected yet.
 */
export function devicesOnHub(resolvers: ReplicaOptions['resolvers']): () => Promise<Replica> {
  let hub: InProcessHub
  beforeEach(() => {
    hub = createInProcessHub()
  })
  afterEach(async () => {
    await unmountAll()
    await closeReplicas()
  })
  return () =>
    memoryReplica({
      url: hub.url,
      WebSocket: hub.WebSocket,
      autoConnect: false,
      ...(resolvers === undefined ? {} : { resolvers }),
    })
}

/**
 * Two devices from `device` that both wrote record n1 of `notes` while offline (titles "from A"
 * and "from B"), then synced: n1 is in conflict on both (under a `manual` resolver).
 */
export async function conflictOnTwoDevices(device: () => Promise<Replica>): Promise<[Replica, Replica]> {
  const a = await device()
  const b = await device()
  await a.collection('notes').put('n1', { title: 'from A' })
  await b.collection('notes').put('n1', { title: 'from B' })
  a.connect()
  b.connect()
  await whenReplicas(
    [a, b],
    async () => (await a.conflicts()).length === 1 && (await b.conflicts()).length === 1,
    'the conflict to reach both devices',
  )
  return [a, b]
}
