export {
  type ChangeEvent,
  ChorusError,
  type Conflict,
  type ConflictFilter,
  type ConflictVersion,
  compareConflicts,
  ErrorCode,
  isChorusError,
  isSpaceId,
  type JsonObject,
  type JsonValue,
  type ListOptions,
  type RecordId,
  type ReplicaId,
  type ReplicaStore,
  type ResolverConfig,
  type SpaceId,
  type SyncStatus,
} from '@chorus/core'
export type { Collection, Frozen, RecordRead, Row, UpdateFunction, VersionOf } from './collection.js'
export type { PresencePeer } from './presence.js'
export { newRecordId } from './record-id.js'
export {
  createReplica,
  type DeleteReplicaOptions,
  type DestroyOptions,
  deleteReplica,
  type Replica,
  type ReplicaEvents,
  type StatusEvent,
} from './replica.js'
export type { NetworkEventsLike, ReplicaOptions, StorageChoice, TokenOption } from './replica-options.js'
export {
  IdbReplicaStore,
  type IdbReplicaStoreOptions,
  type KeyRangeLike,
  openIdbReplicaStore,
} from './storage/idb-replica-store.js'
export {
  persistStorage,
  type StorageManagerLike,
  type StoragePersistence,
  storagePersistence,
} from './storage/persistence.js'
export type { Timers } from './timers.js'
export { backoffDelay, DEFAULT_RECONNECT, type ReconnectPolicy } from './transport/reconnect.js'
export type {
  WebSocketConstructorLike,
  WebSocketLike,
  WebSocketMessageLike,
} from './transport/websocket-like.js'
