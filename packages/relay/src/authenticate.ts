import type { AuthResult, ReplicaId } from '@chorus/core'

/**
 * What the relay's authenticate hook answers: core's {@link AuthResult}, and on success
 * optionally the `subject` (the user) the token names.
 *
 * When a subject is given, the relay binds the replica id to it on first use: a later
 * connection under the same replica id with another subject is refused with `forbidden`,
 * so one user cannot write under (and so shadow) another user's replica stream.
 */
export type RelayAuthResult = AuthResult & { readonly subject?: string }

/**
 * Decides, from a `hello`'s token and replica id, whether a connection may proceed and what
 * it may do in each space.
 *
 * Contract: runs before any data flows, once per connection. A refusal carries a stable
 * code (`unauthenticated` for a missing, malformed, badly signed or expired token) and a
 * message saying what to do. `access(space)` returns `'read'`, `'write'` or `null` (no
 * access: the session is refused with `forbidden`). A throw counts as a refusal. Without a
 * hook the relay is open: everyone may read and write every space.
 */
export type RelayAuthenticate = (
  token: string | undefined,
  replicaId: ReplicaId,
) => RelayAuthResult | Promise<RelayAuthResult>
