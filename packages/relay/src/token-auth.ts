import { type Access, ChorusError, ErrorCode, isSpaceId, type SpaceId } from '@chorus/core'
import { errors, type JWTPayload, jwtVerify, SignJWT } from 'jose'
import type { RelayAuthenticate } from './authenticate.js'
import { parseDuration } from './duration.js'

/** The only signing algorithm tokens use: HMAC with SHA-256 over a shared secret. */
export const TOKEN_ALGORITHM = 'HS256'

/**
 * Per space, what the token's holder may do there; the key `*` grants every space the token
 * does not name (for a relay linking every space, say: `{ "*": "write" }`).
 */
export type SpaceGrants = { readonly [space: string]: Access }

/** The grant key that stands for every space a token does not name. */
export const EVERY_SPACE = '*'

/** Options for {@link mintToken}. */
export interface MintTokenOptions {
  /** The relay's shared secret. */
  readonly secret: string
  /** The user the token names (the JWT `sub`). */
  readonly sub: string
  readonly spaces: SpaceGrants
  /**
   * How long the token is valid: a duration such as `"7d"`, `"12h"`, `"30m"` (see
   * {@link parseDuration}), or seconds as a number. Without it the token never expires.
   */
  readonly expiresIn?: string | number
  /** Wall-clock milliseconds of issue (defaults to now). */
  readonly now?: number
  /**
   * Lets the holder use the relay's administration API (`DELETE /admin/spaces/NAME`): the
   * claim `admin: true`. Such a token may grant no space.
   */
  readonly admin?: boolean
  /**
   * Lets the holder link another relay to this one (the claim `relay: true`): its connection
   * uploads changes of every writer, as the other relay's log holds them, in the spaces it
   * may write. Give it only to relays you run.
   */
  readonly relay?: boolean
}

/** Options for {@link createTokenAuthenticator}. */
export interface TokenAuthenticatorOptions {
  /** Wall-clock milliseconds (defaults to `Date.now`). */
  readonly now?: () => number
  /** Seconds of clock skew allowed when checking expiry (default 30). */
  readonly clockToleranceSeconds?: number
}

function keyOf(secret: string): Uint8Array {
  if (secret.length === 0) throw new ChorusError(ErrorCode.InvalidArgument, 'the token secret is empty')
  return new TextEncoder().encode(secret)
}

/** Half of a surrogate pair: a high one not followed by a low one, or a low one not after a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why `subject` cannot name a token's user, or undefined when it can: it is empty, or holds a
 * character no store keeps as given (U+0000, which PostgreSQL's text refuses, or half of a
 * surrogate pair, which UTF-8 cannot hold), so the replicas it claims would not stay its own.
 */
function explainSubject(subject: unknown): string | undefined {
  if (typeof subject !== 'string' || subject === '') return 'the token names no subject ("sub")'
  if (subject.includes('\u0000')) return 'the token subject ("sub") holds the character U+0000'
  if (LONE_SURROGATE.test(subject)) return 'the token subject ("sub") holds half of a surrogate pair'
  return undefined
}

/** Checks a grant map; returns a readable reason when it is not one. */
function explainGrants(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'expected "spaces" to map space names to "read" or "write"'
  }
  for (const [space, access] of Object.entries(value)) {
    if (space !== EVERY_SPACE && !isSpaceId(space)) return `${JSON.stringify(space)} is not a space name`
    if (access !== 'read' && access !== 'write') {
      return `space ${space} has access ${JSON.stringify(access)}; expected "read" or "write"`
    }
  }
  return undefined
}

/**
 * Signs a token for the relay: HS256, claims `sub` and `spaces` (`{ name: "read" | "write" }`).
 *
 * Rejects with `invalid-argument` for an empty secret or subject, a malformed grant, or an
 * unreadable `expiresIn`.
 */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const key = keyOf(options.secret)
  if (options.sub.length === 0) throw new ChorusError(ErrorCode.InvalidArgument, 'the token subject is empty')
  const badSubject = explainSubject(options.sub)
  if (badSubject !== undefined) throw new ChorusError(ErrorCode.InvalidArgument, badSubject)
  const why = explainGrants(options.spaces)
  if (why !== undefined) throw new ChorusError(ErrorCode.InvalidArgument, why)
  const issuedAt = Math.floor((options.now ?? Date.now()) / 1000)
  const jwt = new SignJWT({
    spaces: { ...options.spaces },
    ...(options.admin === true ? { admin: true } : {}),
    ...(options.relay === true ? { relay: true } : {}),
  })
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuedAt(issuedAt)
    // A random id, so two tokens minted in one second differ: a client tells a fresh token
    // from the one just refused by comparing them.
    .setJti(randomId())
  const { expiresIn } = options
  if (expiresIn !== undefined) {
    const seconds = typeof expiresIn === 'number' ? expiresIn : Math.floor(parseDuration(expiresIn) / 1000)
    if (!Number.isSafeInteger(seconds) || seconds <= 0) {
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `expiresIn must be at least one second, got ${JSON.stringify(expiresIn)}`,
      )
    }
    jwt.setExpirationTime(issuedAt + seconds)
  }
  return await jwt.sign(key)
}

/** 16 random bytes, base64url. */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Buffer.from(bytes).toString('base64url')
}

function refusal(message: string) {
  return { ok: false, code: ErrorCode.Unauthenticated, message } as const
}

/** The words a refusal for a token's times gives the relay's clock in (see {@link refusalReason}). */
const CLOCK_READING = /\s*\(this relay's clock reads [^)]*\)/g

/**
 * How a refusal of an expired token begins, whether a hello is refused (here) or a session
 * that outlived the token is ended (by the hub session, in its own words after these).
 */
const TOKEN_EXPIRED = 'the token has expired'

/**
 * The reason a refusal's message gives, less what differs between refusals of one token:
 * the relay's clock reading, which is later each time, and the advice after an expired
 * token's reason, worded one way when the session it outlived ends and another when the next
 * hello is refused. For telling a repeated refusal (a link dialing again) from a new one.
 */
export function refusalReason(message: string): string {
  const reason = message.replace(CLOCK_READING, '')
  const expired = reason.indexOf(TOKEN_EXPIRED)
  return expired === -1 ? reason : reason.slice(0, expired + TOKEN_EXPIRED.length)
}

function explainJoseError(error: unknown, now: number): string {
  // A token refused for its times may be fine, on a relay whose clock is wrong: say which time
  // it went by. Keep the words in step with CLOCK_READING and TOKEN_EXPIRED.
  const clock = `(this relay's clock reads ${new Date(now).toISOString()})`
  if (error instanceof errors.JWTExpired) {
    return `${TOKEN_EXPIRED} ${clock}: present a new one (a client with a fixed token must be created again with it; one with a token function gets it at its next attempt)`
  }
  if (error instanceof errors.JWTClaimValidationFailed && (error.claim === 'nbf' || error.claim === 'iat')) {
    return `the token is not valid yet ${clock}: check the clocks of the relay and of what minted it`
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return "the token signature does not verify: it was not signed with this relay's secret"
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return `the token must be signed with ${TOKEN_ALGORITHM}`
  if (error instanceof errors.JWTClaimValidationFailed) return `the token was refused: ${error.message}`
  return "the token is malformed: expected a JWT signed with the relay's secret"
}

/**
 * The relay's default authenticator: verifies an HS256 token (see {@link mintToken}) with
 * the shared secret and grants exactly the spaces it names.
 *
 * No token, a malformed, badly signed or expired one → `unauthenticated`. A space not in
 * the token (and no `*` grant) → no access (the session is refused with `forbidden`). A token claiming
 * `relay: true` may link another relay (see {@link MintTokenOptions.relay}). The subject is returned
 * so the relay can bind replica ids to users, and the token's expiry (`exp`, plus the clock
 * tolerance) as `expiresAt`, so a connection does not outlive its token.
 */
export function createTokenAuthenticator(
  secret: string,
  options: TokenAuthenticatorOptions = {},
): RelayAuthenticate {
  const key = keyOf(secret)
  const now = options.now ?? Date.now
  const clockTolerance = options.clockToleranceSeconds ?? 30
  return async (token) => {
    if (token === undefined || token === '') {
      return refusal('this relay requires a token: ask its operator for one (chorus-relay token …)')
    }
    let payload: JWTPayload
    try {
      const verified = await jwtVerify(token, key, {
        algorithms: [TOKEN_ALGORITHM],
        currentDate: new Date(now()),
        clockTolerance,
        requiredClaims: ['sub'],
      })
      payload = verified.payload
    } catch (error) {
      return refusal(explainJoseError(error, now()))
    }
    const badSubject = explainSubject(payload.sub)
    if (badSubject !== undefined) return refusal(badSubject)
    const subject = payload.sub as string
    const grants = payload.spaces
    const why = explainGrants(grants)
    if (why !== undefined) return refusal(`the token's spaces are malformed: ${why}`)
    const granted = grants as SpaceGrants
    return {
      ok: true,
      subject,
      access: (space: SpaceId) =>
        Object.hasOwn(granted, space)
          ? (granted[space] as Access)
          : Object.hasOwn(granted, EVERY_SPACE)
            ? (granted[EVERY_SPACE] as Access)
            : null,
      ...(payload.relay === true ? { relay: true } : {}),
      // The session ends when verifying the token would fail: its expiry plus the tolerance.
      ...(typeof payload.exp === 'number' ? { expiresAt: (payload.exp + clockTolerance) * 1000 } : {}),
    }
  }
}

/**
 * Checks a token for the relay's administration API: HS256 with `secret`, not expired (within
 * the clock tolerance), and claiming `admin: true` (see {@link MintTokenOptions.admin}).
 * Resolves with its subject, or with why it is refused: `unauthenticated` for no token or
 * one that does not verify, `forbidden` for a good token without the claim.
 */
export async function verifyAdminToken(
  secret: string,
  token: string | undefined,
  options: TokenAuthenticatorOptions = {},
): Promise<{ ok: true; subject: string } | { ok: false; code: ErrorCode; message: string }> {
  if (token === undefined || token === '') {
    return refusal('the administration API needs a token: mint one with chorus-relay token --admin')
  }
  let payload: JWTPayload
  const now = (options.now ?? Date.now)()
  try {
    payload = (
      await jwtVerify(token, keyOf(secret), {
        algorithms: [TOKEN_ALGORITHM],
        currentDate: new Date(now),
        clockTolerance: options.clockToleranceSeconds ?? 30,
        requiredClaims: ['sub'],
      })
    ).payload
  } catch (error) {
    return refusal(explainJoseError(error, now))
  }
  const badSubject = explainSubject(payload.sub)
  if (badSubject !== undefined) return refusal(badSubject)
  if (payload.admin !== true) {
    return {
      ok: false,
      code: ErrorCode.Forbidden,
      message: 'the token does not allow administration: mint one with chorus-relay token --admin',
    }
  }
  return { ok: true, subject: String(payload.sub) }
}
