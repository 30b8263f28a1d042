import { ErrorCode, isChorusError, type JsonObject, type PresencePeer, type Replica } from '@chorus/client'
import { useCallback, useEffect, useRef, useSyncExternalStore } from 'react'
import { useReplica } from './provider.js'

/** A mounted component's wish for its tab's presence. */
interface Claim {
  state: JsonObject
}

/**
 * The mounted components of each replica that pass a state, in the order they mounted: the
 * tab is present with the last one's, and with the one before when that one unmounts.
 */
const claims = new WeakMap<Replica, Claim[]>()

/**
 * Sets the tab's presence to what its last mounted claim wants, or none. A state the replica
 * refuses (not JSON, too long) is thrown, from the effect that set it, to the component's
 * error boundary.
 */
function present(replica: Replica): void {
  try {
    replica.setPresence(claims.get(replica)?.at(-1)?.state ?? null)
  } catch (error) {
    // Closed already: its presence went with it.
    if (!isChorusError(error, ErrorCode.Closed)) throw error
  }
}

/**
 * The other replicas' presence in the space (`Replica.presence`: `[{ replicaId, key, state }]`),
 * rendering again when it changes; with `state`, this component's tab sets its own presence
 * to it (see `Replica.setPresence`) while mounted, and clears it on unmount. Of several
 * components mounted with a state, the one mounted last decides; when it unmounts, the one
 * before it does again. Pass a state that stays the same object between renders unless it
 * changed (`useMemo`), or it is sent again on each render.
 */
export function usePresence(state?: JsonObject | null): readonly PresencePeer[] {
  const replica = useReplica()
  const subscribe = useCallback((onChange: () => void) => replica.on('presence', onChange), [replica])
  const read = useCallback(() => replica.presence, [replica])
  const wants = state !== undefined && state !== null
  const latest = useRef(state)
  latest.current = state
  const mine = useRef<Claim | null>(null)
  useEffect(() => {
    if (!wants) return
    // The state this render passed (the effect below follows its changes).
    const claim: Claim = { state: latest.current as JsonObject }
    mine.current = claim
    let list = claims.get(replica)
    if (list === undefined) {
      list = []
      claims.set(replica, list)
    }
    list.push(claim)
    present(replica)
    return () => {
      mine.current = null
      const held = claims.get(replica) ?? []
      const at = held.indexOf(claim)
      if (at >= 0) held.splice(at, 1)
      // Only the last claim is shown: one before it leaves nothing to change.
      if (at === held.length) present(replica)
    }
  }, [replica, wants])
  useEffect(() => {
    const claim = mine.current
    if (claim === null || state === undefined || state === null || claim.state === state) return
    claim.state = state
    if (claims.get(replica)?.at(-1) === claim) present(replica)
  }, [replica, state])
  return useSyncExternalStore(subscribe, read, read)
}
