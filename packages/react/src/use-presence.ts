import type { JsonObject, PresencePeer } from '@chorus/client'
import { useCallback, useEffect, useSyncExternalStore } from 'react'
import { useReplica } from './provider.js'

/**
 * The other replicas' presence in the space (`Replica.presence`: `[{ replicaId, key, state }]`),
 * rendering again when it changes; with `state`, this component's tab sets its own presence
 * to it (see `Replica.setPresence`) while mounted, and clears it on unmount. Pass a state
 * that stays the same object between renders unless it changed (`useMemo`), or it is sent
 * again on each render.
 */
export function usePresence(state?: JsonObject | null): readonly PresencePeer[] {
  const replica = useReplica()
  const subscribe = useCallback((onChange: () => void) => replica.on('presence', onChange), [replica])
  const read = useCallback(() => replica.presence, [replica])
  const present = state !== undefined
  useEffect(() => {
    if (state !== undefined) replica.setPresence(state)
  }, [replica, state])
  useEffect(() => {
    if (!present) return
    return () => {
      try {
        replica.setPresence(null)
      } catch {
        // Closed already: its presence went with it.
      }
    }
  }, [replica, present])
  return useSyncExternalStore(subscribe, read, read)
}
