/** The message of anything thrown, for a log line or an error reply: an `Error`'s message, else its text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
