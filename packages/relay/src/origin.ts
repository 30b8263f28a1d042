import { ChorusError, ErrorCode } from '@chorus/core'

/**
 * A web origin as browsers send it in the `Origin` header: `scheme://host` or
 * `scheme://host:port`, lowercased, the port left out when it is the scheme's default
 * (`https://notes.example.com`, `http://127.0.0.1:8787`). Throws `invalid-argument` for
 * anything else: a path, a query, credentials, a scheme other than http or https.
 */
export function normalizeOrigin(text: string): string {
  const refusal = () =>
    new ChorusError(
      ErrorCode.InvalidArgument,
      `${JSON.stringify(text)} is not an origin: give scheme://host[:port] (http or https, no path), as https://notes.example.com`,
    )
  if (!/^https?:\/\/[^/?#@\s]+\/?$/i.test(text)) throw refusal()
  try {
    return new URL(text).origin
  } catch {
    throw refusal()
  }
}

/**
 * Whether a WebSocket upgrade with this `Origin` header may go on, for a relay that takes
 * only `allowed` (normalized) origins. A request without the header passes: browsers always
 * send it on a WebSocket upgrade, other programs need not, and tokens, not origins, keep out
 * programs. An origin browsers send as `null` (a sandboxed frame, a file) is never listed
 * ({@link normalizeOrigin} never makes it), so it never passes.
 */
export function originAllowed(allowed: ReadonlySet<string>, header: string | undefined): boolean {
  if (header === undefined) return true
  let origin: string
  try {
    origin = new URL(header).origin
  } catch {
    return false
  }
  return allowed.has(origin)
}
