const browsers: readonly (readonly [RegExp, string])[] = [
  [/Edg\//, 'Edge'],
  [/Firefox\//, 'Firefox'],
  [/HeadlessChrome|Chromium\//, 'Chromium'],
  [/Chrome\//, 'Chrome'],
  [/Safari\//, 'Safari'],
]

const systems: readonly (readonly [RegExp, string])[] = [
  [/iPhone/, 'iPhone'],
  [/iPad/, 'iPad'],
  [/Android/, 'Android'],
  [/CrOS/, 'ChromeOS'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/Windows/, 'Windows'],
  [/Linux/, 'Linux'],
]

/** A name for this device from the browser's user agent, such as "Firefox on macOS". */
export function guessDeviceName(userAgent: string = navigator.userAgent): string {
  const browser = browsers.find(([pattern]) => pattern.test(userAgent))?.[1] ?? 'Browser'
  const system = systems.find(([pattern]) => pattern.test(userAgent))?.[1]
  return system === undefined ? browser : `${browser} on ${system}`
}

/** The first characters of a replica id: enough to tell devices apart at a glance. */
export function shortReplicaId(replicaId: string): string {
  return replicaId.slice(0, 6)
}

/**
 * Labels for devices, by replica id: each one's name, and where two or more share a name
 * (two laptops with the same browser and system) its short replica id after it as well.
 */
export function distinctDeviceLabels(names: ReadonlyMap<string, string>): Map<string, string> {
  const uses = new Map<string, number>()
  for (const name of names.values()) uses.set(name, (uses.get(name) ?? 0) + 1)
  const labels = new Map<string, string>()
  for (const [replicaId, name] of names) {
    labels.set(replicaId, (uses.get(name) ?? 0) > 1 ? `${name} (${shortReplicaId(replicaId)})` : name)
  }
  return labels
}
