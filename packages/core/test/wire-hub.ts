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
