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

/**
 * List options as the client reads them: the names of their own keys (it refuses any but
 * `order`, `after` and `limit`) and the values of those three, read as properties — so a
 * class instance or a getter on a prototype keys the read by what the client takes from it.
 */
export function listOptionsKey(options: unknown): unknown {
  if (typeof options !== 'object' || options === null) return options
  const { order, after, limit } = options as { order?: unknown; after?: unknown; limit?: unknown }
  return { keys: Object.keys(options).sort(), order, after, limit }
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
    case 'object': {
      if (value === null) return 'z'
      if (Array.isArray(value)) return ['a', ...value.map(tagged)]
      const prototype: unknown = Object.getPrototypeOf(value)
      // With no prototype (as `Object.create(null)` and query-string parsers make them) an
      // object is read by its keys as a literal one is.
      if (prototype === Object.prototype || prototype === null)
        return [
          'o',
          ...Object.keys(value)
            .sort()
            .map((key) => [key, tagged((value as Record<string, unknown>)[key])]),
        ]
      return `x${Object.prototype.toString.call(value)}`
    }
    default:
      return `x${typeof value}`
  }
}
