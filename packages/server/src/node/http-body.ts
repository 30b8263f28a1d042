import { isUtf8 } from 'node:buffer'
import { ChorusError, ErrorCode } from '@chorus/core'

/**
 * Parses an HTTP request body as JSON text, refusing bytes that are not UTF-8
 * (`malformed-frame`).
 *
 * A lenient decode turns every invalid byte into U+FFFD, so two bodies that differ only in such
 * bytes would parse to the same request: keys `user-<0xFF>` and `user-<0xFE>` both became
 * `user-\uFFFD`, and the second acknowledged write silently replaced the first. JSON text is
 * UTF-8, so a body that is not is refused whole instead. The body is decoded once, whole, so a
 * character split across two chunks is not mangled.
 */
export function parseJsonBody(body: Buffer): unknown {
  if (!isUtf8(body)) {
    throw new ChorusError(ErrorCode.MalformedFrame, 'the body is not UTF-8 text (JSON text must be UTF-8)')
  }
  const text = body.toString('utf8')
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new ChorusError(ErrorCode.MalformedFrame, 'the body is not valid JSON text')
  }
}
