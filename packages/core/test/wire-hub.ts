import type { HubConnection, HubEngine } from '../src/hub-engine.js'
import type { ReplicaEngine } from '../src/replica-engine.js'

/**
 * Connects `replica` to `hub` in this process: frames go both ways at once, and each frame the
 * hub sends is shown to `onHubFrame` first. Returns the hub's side of the connection.
 */
export function wireToHub(
  hub: HubEngine,
  replica: ReplicaEngine,
  onHubFrame: (frame: string) => void = () => {},
): HubConnection {
  const connection = hub.accept({
    send: (frame) => {
      onHubFrame(frame)
      void replica.receive(frame)
    },
    close: () => replica.detach(),
  })
  replica.attach((frame) => void connection.receive(frame))
  return connection
}

/** Lets the hub and the replicas finish what they were handed, a few rounds over (frames cross in between). */
export async function settle(hub: HubEngine, replicas: readonly ReplicaEngine[]): Promise<void> {
  for (let round = 0; round < 5; round++) {
    await hub.idle()
    await Promise.all(replicas.map((replica) => replica.idle()))
  }
}
