import type { ErrorCode, ReplicaId, SpaceId } from '@chorus/core'
import type { SqliteWrite } from './sqlite-relay-store.js'

/** One replica's acknowledged position in a space, at time `now`. */
export interface AckUpdate {
  readonly space: SpaceId
  readonly replica: ReplicaId
  readonly position: number
  readonly now: number
}

/** What the SQLite worker is started with (`workerData`). */
export interface WorkerStart {
  /** The module the bootstrap imports: the worker's own code, `.ts` from source or `.js` from dist. */
  readonly module: string
  /** The database file. */
  readonly path: string
}

/**
 * A request to the SQLite worker. Bulk data crosses as JSON text (one string per batch, not a
 * structured clone of every change); everything else is a few small fields.
 */
export type WorkerRequest = { readonly id: number } & (
  | { readonly op: 'loadSpace'; readonly space: SpaceId }
  /** `appends` is the JSON of `{ replica, changes, through? }[]` (see `HubAppend`). */
  | { readonly op: 'appendMany'; readonly space: SpaceId; readonly appends: string }
  /** The entries after `after + skip` (the caller holds the first `skip`); the floor is checked at `after`. */
  | {
      readonly op: 'readLog'
      readonly space: SpaceId
      readonly after: number
      readonly limit: number
      readonly skip: number
    }
  | {
      readonly op: 'readSnapshot'
      readonly space: SpaceId
      readonly afterKey: string | null
      readonly limit: number
    }
  | {
      readonly op: 'noteAck'
      readonly space: SpaceId
      readonly replica: ReplicaId
      readonly position: number
      readonly now: number
    }
  /** Acknowledgements of replicas the store already tracks, buffered on the main thread. */
  | { readonly op: 'noteAcks'; readonly acks: readonly AckUpdate[] }
  | { readonly op: 'flushAcks' }
  | {
      readonly op: 'compact'
      readonly space: SpaceId
      readonly now: number
      readonly horizonMs: number
      readonly collect?: boolean
    }
  | { readonly op: 'listSpaces' }
  | { readonly op: 'describeSpaces' }
  | { readonly op: 'deleteSpace'; readonly space: SpaceId }
  | { readonly op: 'stats' }
  | { readonly op: 'claimReplica'; readonly replica: ReplicaId; readonly subject: string }
  | { readonly op: 'backup'; readonly destination: string }
  | { readonly op: 'injectFault'; readonly write: SqliteWrite }
  | { readonly op: 'close' }
)

/**
 * The worker's answer to request `id` (0 answers start-up). Reads answer with JSON text;
 * failures carry the `ChorusError`'s code and message, and the message of its cause.
 */
export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | {
      readonly id: number
      readonly ok: false
      readonly code: ErrorCode
      readonly message: string
      readonly cause?: string
    }
