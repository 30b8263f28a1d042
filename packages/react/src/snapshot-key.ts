/**
 * The key under which components share one live read, from the read's kind and arguments.
 *
 * Each argument is written with its type, and the whole as JSON, so arguments that differ never
 * share a read: a number id beside the same digits as a string, a `NaN` limit beside none, an
 * options object with a key the client refuses beside one without it, a name holding the
 * separator. An argument the client refuses is then refused in every component that passes
 * it, and never answered with another component's read.
 */
export function snapshotKey(kind: string, ...parts: readonly unknown[]): string {
  return JSON.stringify([kind, ...parts.map(tagged)])
}

function tagged(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
      return `s${value}`
    case 'number':
      return `n${Object.is(value, -0) ? '-0' : String(value)}`
    case 'boolean':
      return `b${String(value)}`
    case 'undefined':
      return 'u'
    case 'object':
      if (value === null) return 'z'
      if (Object.getPrototypeOf(value) === Object.prototype)
        return Object.keys(value)
          .sort()
          .map((key) => [key, tagged((value as Record<string, unknown>)[key])])
      return `x${Object.prototype.toString.call(value)}`
    default:
      return `x${typeof value}`
  }
}
