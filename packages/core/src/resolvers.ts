import { ChorusError, ErrorCode } from './errors.js'
import { createLwwResolver } from './lww-resolver.js'
import { createManualResolver } from './manual-resolver.js'
import { createMergeResolver } from './merge-resolver.js'
import { type Resolver, ResolverKind } from './resolver.js'

/** How a collection's conflicts are settled: a built-in name or a resolver object. */
export type ResolverChoice = ResolverKind | Resolver

/** Resolvers per collection: a map (unlisted collections use `lww`) or a function. */
export type ResolverConfig =
  | { readonly [collection: string]: ResolverChoice }
  | ((collection: string) => ResolverChoice)

/** Looks up the resolver of a collection. */
export type ResolverLookup = (collection: string) => Resolver

/** The built-in resolver for a name; throws `invalid-argument` for an unknown one. */
export function builtInResolver(kind: string): Resolver {
  switch (kind) {
    case ResolverKind.Lww:
      return createLwwResolver()
    case ResolverKind.Merge:
      return createMergeResolver()
    case ResolverKind.Manual:
      return createManualResolver()
    default:
      throw new ChorusError(
        ErrorCode.InvalidArgument,
        `unknown resolver ${JSON.stringify(kind)}: use 'lww', 'merge', 'manual' or a resolver object`,
      )
  }
}

function toResolver(choice: unknown, collection: string): Resolver {
  if (typeof choice === 'string') return builtInResolver(choice)
  if (
    typeof choice === 'object' &&
    choice !== null &&
    typeof (choice as Resolver).resolve === 'function' &&
    typeof (choice as Resolver).kind === 'string'
  ) {
    return choice as Resolver
  }
  throw new ChorusError(
    ErrorCode.InvalidArgument,
    `the resolver for collection ${JSON.stringify(collection)} must be 'lww', 'merge', 'manual' or a resolver object`,
  )
}

/**
 * Builds the per-collection resolver lookup, validating a map eagerly.
 *
 * Resolvers are cached per collection, so a function config is called once per collection.
 */
export function createResolverLookup(config: ResolverConfig = {}): ResolverLookup {
  const cache = new Map<string, Resolver>()
  const lww = createLwwResolver()
  if (typeof config !== 'function') {
    for (const [collection, choice] of Object.entries(config))
      cache.set(collection, toResolver(choice, collection))
  }
  return (collection) => {
    const cached = cache.get(collection)
    if (cached !== undefined) return cached
    const resolver = typeof config === 'function' ? toResolver(config(collection), collection) : lww
    cache.set(collection, resolver)
    return resolver
  }
}
