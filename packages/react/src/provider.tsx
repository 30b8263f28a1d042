import { ChorusError, ErrorCode, type Replica } from '@chorus/client'
import { createContext, type ReactNode, useContext } from 'react'

const ReplicaContext = createContext<Replica | null>(null)

/** Props of {@link ChorusProvider}. */
export interface ChorusProviderProps {
  /** An open replica. The provider does not close it: whoever created it does. */
  readonly replica: Replica
  readonly children?: ReactNode
}

/**
 * Makes `replica` the one the hooks below it read. Give a new `key` when swapping replicas
 * if components keep local state that belongs to the old one.
 */
export function ChorusProvider({ replica, children }: ChorusProviderProps): ReactNode {
  return <ReplicaContext value={replica}>{children}</ReplicaContext>
}

/** The replica of the nearest {@link ChorusProvider}; throws outside one. */
export function useReplica(): Replica {
  const replica = useContext(ReplicaContext)
  if (replica === null) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      'useReplica and the Chorus hooks need a <ChorusProvider replica={…}> above them',
    )
  }
  return replica
}
