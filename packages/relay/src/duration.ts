import { ChorusError, ErrorCode } from '@chorus/core'

const units: { readonly [unit: string]: number } = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

/**
 * Reads a duration such as `"250ms"`, `"30s"`, `"15m"`, `"12h"`, `"7d"` or `"2w"` as
 * milliseconds. Throws `invalid-argument`, naming the accepted forms, for anything else.
 */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d|w)$/.exec(text.trim())
  const amount = match === null ? Number.NaN : Number(match[1])
  const unit = match === null ? undefined : units[match[2] as string]
  if (unit === undefined || !Number.isSafeInteger(amount * unit) || amount <= 0) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `cannot read the duration ${JSON.stringify(text)}: use a positive whole number and a unit, such as 250ms, 30s, 15m, 12h, 7d or 2w`,
    )
  }
  return amount * unit
}
