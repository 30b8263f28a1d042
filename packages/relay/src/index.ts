export type { RelayAuthenticate, RelayAuthResult } from './authenticate.js'
export { type CliIo, ExitCode, LINK_TOKEN_ENV, POSTGRES_ENV, runCli, SECRET_ENV } from './cli.js'
export { parseDuration } from './duration.js'
export { EXPORT_PAGE, type ExportedRecord, exportLines, exportRecords } from './export.js'
export {
  ADMIN_PATH,
  type AdminCheck,
  type AdminEvent,
  createHttpHandler,
  createUpgradeHandler,
  LINK_SPACES_PATH,
  SYNC_PATH,
  type UpgradeTarget,
} from './http.js'
export {
  COMMIT_BUCKETS_MS,
  CommitHistogram,
  type CommitTimes,
  type LinkStatus,
  opaqueLabel,
  PROMETHEUS_CONTENT_TYPE,
  type PrometheusOptions,
  type RelayCounters,
  type RelayMetrics,
  type ReplicaLag,
  renderPrometheus,
  zeroCounters,
} from './metrics.js'
export { normalizeOrigin, originAllowed } from './origin.js'
export {
  PostgresRelayStore,
  type PostgresRelayStoreOptions,
  type PostgresWrite,
} from './postgres-relay-store.js'
export { createRateLimiter, DEFAULT_RATE_LIMITS, type RateLimiter, type RateLimits } from './rate-limit.js'
export { createRelay, LISTING_REPLICA_ID, type Relay, type RelayHealth, type SpaceListing } from './relay.js'
export {
  type CompactionOptions,
  DEFAULT_COMPACTION,
  DEFAULT_RELAY_LIMITS,
  type LinkSocket,
  type LinkSocketConstructor,
  type RelayLimits,
  type RelayLinkOptions,
  type RelayOptions,
  socketMaxPayload,
} from './relay-options.js'
export type {
  CompactOptions,
  CompactResult,
  RelayStore,
  RelayStoreStats,
  SpaceSummary,
  StoreEvent,
} from './relay-store.js'
export {
  DATABASE_FILE,
  type RelayStoreThread,
  type RunningRelay,
  type StartRelayOptions,
  startRelay,
} from './serve.js'
export { CloseCode, type RelaySocket, type RelaySocketServer } from './socket.js'
export { SqliteRelayStore, type SqliteRelayStoreOptions, type SqliteWrite } from './sqlite-relay-store.js'
export { backupDatabase, describeSpacesIn, exportSpaceIn } from './sqlite-tools.js'
export type { StaticMount } from './static-files.js'
export {
  createTokenAuthenticator,
  EVERY_SPACE,
  type MintTokenOptions,
  mintToken,
  type SpaceGrants,
  TOKEN_ALGORITHM,
  type TokenAuthenticatorOptions,
  verifyAdminToken,
} from './token-auth.js'
export { decodeUtf16Key, encodeUtf16Key } from './utf16-key.js'
export { WorkerRelayStore } from './worker-relay-store.js'
