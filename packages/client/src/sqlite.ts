export {
  openSqliteReplicaStore,
  SqliteReplicaStore,
  type SqliteReplicaStoreOptions,
} from './storage/sqlite-replica-store.js'
