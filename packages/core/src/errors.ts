/**
 * Every error code Chorus raises or sends over the wire.
 *
 * Codes are stable: applications and peers switch on them, so a code is never renamed or
 * reused for another meaning. The message carries the human-readable detail.
 */
export const ErrorCode = {
  /** An argument from the application is malformed (empty id, non-JSON value, …). */
  InvalidArgument: 'invalid-argument',
  /** A frame is not valid JSON text or not an object. */
  MalformedFrame: 'malformed-frame',
  /** A frame is larger than the receiver accepts. */
  FrameTooLarge: 'frame-too-large',
  /** A frame names a message type the receiver does not know. */
  UnknownMessage: 'unknown-message',
  /** A frame is a known message whose fields are missing or of the wrong type. */
  InvalidMessage: 'invalid-message',
  /** A batch holds more changes than the receiver accepts in one frame. */
  BatchTooLarge: 'batch-too-large',
  /** The peer speaks a protocol version this side cannot. */
  UnsupportedProtocol: 'unsupported-protocol',
  /** A frame other than `hello` arrived before the session was established. */
  HelloRequired: 'hello-required',
  /** The token is missing, malformed, badly signed or expired. */
  Unauthenticated: 'unauthenticated',
  /** The peer may not read or write the space it named. */
  Forbidden: 'forbidden',
  /** A change claims a replica id other than the one the connection is bound to. */
  ReplicaMismatch: 'replica-mismatch',
  /** A change names a space the session did not subscribe to. */
  UnknownSpace: 'unknown-space',
  /** The peer sends faster than the receiver's limits allow. */
  RateLimited: 'rate-limited',
  /** Storage refused or failed a write; nothing was acknowledged. */
  StorageFailed: 'storage-failed',
  /** The replica's cursor is older than the retained history: it must bootstrap again. */
  ResyncRequired: 'resync-required',
  /** The space was deleted on the relay: it can never be synced again. */
  SpaceDeleted: 'space-deleted',
  /** The object was used after it was closed. */
  Closed: 'closed',
  /**
   * Deleting a replica's data would delete own changes the relay has not acknowledged, which
   * exist nowhere else (local API only).
   */
  PendingChanges: 'pending-changes',
  /**
   * A relay's link to another relay is down: it cannot connect, or the other relay refused it
   * (the message says why). The relay reports it and dials again later; never sent on the wire.
   */
  LinkFailed: 'link-failed',
  /** An invariant inside Chorus did not hold: a bug, please report it. */
  Internal: 'internal',
} as const

/** One of the stable error codes in {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode))

/** True when `value` is one of Chorus's error codes (used when validating wire errors). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && knownCodes.has(value)
}

/**
 * The one error type Chorus throws.
 *
 * Expected outcomes (a rejected write, a conflict) are returned as values, not thrown; a
 * `ChorusError` means the caller must change something, and its message says what.
 */
export class ChorusError extends Error {
  override readonly name = 'ChorusError'
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
  }
}

/** True when `error` is a {@link ChorusError}, optionally with the given code. */
export function isChorusError(error: unknown, code?: ErrorCode): error is ChorusError {
  return error instanceof ChorusError && (code === undefined || error.code === code)
}
