/** The hash that opens the lab on a preset, so a story can be linked to: `#preset=<id>`. */
export function presetHash(id: string): string {
  return `#preset=${encodeURIComponent(id)}`
}

/** The preset id a location hash names, or null. */
export function presetFromHash(hash: string): string | null {
  const match = /^#preset=([^&]+)$/.exec(hash)
  if (match === null) return null
  try {
    return decodeURIComponent(match[1] as string)
  } catch {
    return null
  }
}
