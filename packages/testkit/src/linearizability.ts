import { ChorusError, canonicalJson, ErrorCode, explainNonJson, type JsonValue } from '@chorus/core'

/**
 * One operation on a per-key read/write register, as a client observed it.
 *
 * Times are any numbers that respect real-time order: `a` precedes `b` exactly when
 * `a.complete < b.invoke` (equal times count as concurrent). A simulation's virtual clock or a
 * global event counter both work.
 *
 * - `complete: null` — the client never heard back. A write may or may not have taken effect,
 *   at any time after `invoke`; a read constrains nothing and is ignored.
 * - `ok: false` with a `complete` time — a definite failure: the operation did not take effect
 *   and is ignored. A reply that leaves the outcome open (a timeout, a leader deposed while the
 *   write was in flight) must be recorded with `complete: null`, not as a failure.
 * - A read's `value` is what it returned; a key never written reads `undefined` (`null` is
 *   treated the same, so writing `null` is indistinguishable from the initial state).
 */
export interface RegisterOperation {
  readonly process: string
  readonly key: string
  readonly kind: 'write' | 'read'
  readonly value: JsonValue | undefined
  readonly invoke: number
  readonly complete: number | null
  readonly ok: boolean
}

/** One key whose history was judged not linearizable, or could not be judged. */
export interface LinearizabilityIssue {
  readonly key: string
  readonly message: string
}

/**
 * The checker's verdict. `ok` only when every key was proved linearizable: a key whose search
 * ran out of budget is `inconclusive`, never silently accepted.
 */
export interface LinearizabilityResult {
  readonly ok: boolean
  readonly violations: readonly LinearizabilityIssue[]
  readonly inconclusive: readonly LinearizabilityIssue[]
}

/** Bounds on {@link checkLinearizable}. */
export interface LinearizabilityOptions {
  /** Most search steps per key before that key is reported inconclusive (default 2_000_000). */
  readonly maxSteps?: number
}

const defaultMaxSteps = 2_000_000
const initialKey = 'null'

/**
 * Checks a register history for linearizability, key by key.
 *
 * The search is Wing and Gong's: walk the operations in real-time order, tentatively place
 * (linearize) any operation whose call has been reached and whose effect fits the register's
 * current value, and backtrack when an operation's return is reached before it could be placed.
 * Lowe's memoisation prunes it: a (set of placed operations, register value) configuration that
 * failed once fails again, so it is never explored twice. Keys are independent (a register per
 * key is P-compositional), which keeps each search small. A key that needs more than `maxSteps`
 * steps is reported as inconclusive rather than hanging the run.
 *
 * Throws `invalid-argument` on a malformed operation (times not finite or out of order, a value
 * that is not JSON), since a verdict on a malformed history would mean nothing.
 */
export function checkLinearizable(
  history: readonly RegisterOperation[],
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const maxSteps = options.maxSteps ?? defaultMaxSteps
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) {
    throw new ChorusError(ErrorCode.InvalidArgument, `maxSteps must be a positive integer, got ${maxSteps}`)
  }
  const byKey = new Map<string, RegisterOperation[]>()
  history.forEach((operation, index) => {
    assertOperation(operation, index)
    if (!operation.ok && operation.complete !== null) return
    if (operation.kind === 'read' && operation.complete === null) return
    const list = byKey.get(operation.key)
    if (list === undefined) byKey.set(operation.key, [operation])
    else list.push(operation)
  })
  const violations: LinearizabilityIssue[] = []
  const inconclusive: LinearizabilityIssue[] = []
  for (const [key, operations] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const outcome = checkRegister(operations, maxSteps)
    if (outcome.kind === 'violation') violations.push({ key, message: outcome.message })
    else if (outcome.kind === 'inconclusive') inconclusive.push({ key, message: outcome.message })
  }
  return { ok: violations.length === 0 && inconclusive.length === 0, violations, inconclusive }
}

/** One read that returned a value some completed write had already overwritten. */
export interface StaleRead {
  readonly key: string
  readonly read: RegisterOperation
  /** A write that completed before the read was invoked and that the read did not see. */
  readonly missed: RegisterOperation
}

/**
 * Reads that are stale beyond doubt: the value returned was overwritten before the read began.
 *
 * A completed read is stale when every write that could have produced its value (or the
 * initial state, for `undefined`) was followed, in real time, by another write that completed
 * before the read was invoked. This is a conservative count — a stale read can hide among
 * concurrent operations — but every read it reports breaks linearizability, and it needs no
 * search, so it scales to any history. Reads of a value no write produced are left to
 * {@link checkLinearizable}.
 */
export function findStaleReads(history: readonly RegisterOperation[]): StaleRead[] {
  history.forEach(assertOperation)
  const writesByKey = new Map<string, RegisterOperation[]>()
  for (const operation of history) {
    if (operation.kind !== 'write' || (!operation.ok && operation.complete !== null)) continue
    const list = writesByKey.get(operation.key)
    if (list === undefined) writesByKey.set(operation.key, [operation])
    else list.push(operation)
  }
  const stale: StaleRead[] = []
  for (const read of history) {
    if (read.kind !== 'read' || !read.ok || read.complete === null) continue
    const writes = writesByKey.get(read.key) ?? []
    const completedBefore = writes.filter((w) => w.complete !== null && w.complete < read.invoke)
    if (completedBefore.length === 0) continue
    const returned = valueKey(read.value)
    const sources = writes.filter((w) => valueKey(w.value) === returned)
    const missedAfter = (sourceComplete: number | null): RegisterOperation | undefined => {
      if (sourceComplete === null) return undefined
      let latest: RegisterOperation | undefined
      for (const w of completedBefore) {
        if (
          sourceComplete < w.invoke &&
          (latest === undefined || (w.complete ?? 0) > (latest.complete ?? 0))
        ) {
          latest = w
        }
      }
      return latest
    }
    let missed: RegisterOperation | undefined
    if (returned === initialKey && sources.length === 0) {
      missed = missedAfter(Number.NEGATIVE_INFINITY)
    } else if (sources.length > 0) {
      for (const source of sources) {
        missed = missedAfter(source.complete)
        if (missed === undefined) break
      }
    }
    if (missed !== undefined) stale.push({ key: read.key, read, missed })
  }
  return stale
}

type RegisterOutcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'violation'; readonly message: string }
  | { readonly kind: 'inconclusive'; readonly message: string }

/**
 * The Wing–Gong search over one key's operations.
 *
 * Entries (a call and a return per operation) sit in a doubly linked list in real-time order;
 * placing an operation lifts both of its entries out, and backtracking puts them back in the
 * reverse order, which restores the links exactly.
 */
function checkRegister(operations: readonly RegisterOperation[], maxSteps: number): RegisterOutcome {
  const count = operations.length
  const values = new Map<string, number>([[initialKey, 0]])
  const valueIds = operations.map((operation) => {
    const key = valueKey(operation.value)
    let id = values.get(key)
    if (id === undefined) {
      id = values.size
      values.set(key, id)
    }
    return id
  })
  const writtenIds = new Set(valueIds.filter((_, index) => operations[index]?.kind === 'write'))
  for (let index = 0; index < count; index++) {
    const operation = operations[index] as RegisterOperation
    const id = valueIds[index] as number
    if (operation.kind === 'read' && id !== 0 && !writtenIds.has(id)) {
      return { kind: 'violation', message: `${describe(operation)}, a value no write produced` }
    }
  }

  // Entry e < count is the call of operation e; entry count + e is its return.
  const head = 2 * count
  const tail = head + 1
  const next = new Int32Array(2 * count + 2)
  const prev = new Int32Array(2 * count + 2)
  const time = (entry: number): number => {
    const operation = operations[entry % count] as RegisterOperation
    return entry < count ? operation.invoke : (operation.complete ?? Number.POSITIVE_INFINITY)
  }
  const order = Array.from({ length: 2 * count }, (_, entry) => entry).sort((a, b) => {
    const ta = time(a)
    const tb = time(b)
    if (ta !== tb) return ta < tb ? -1 : 1
    const aCall = a < count
    if (aCall !== b < count) return aCall ? -1 : 1
    return a - b
  })
  let last = head
  for (const entry of order) {
    next[last] = entry
    prev[entry] = last
    last = entry
  }
  next[last] = tail
  prev[tail] = last

  const lift = (op: number): void => {
    for (const entry of [op, count + op]) {
      next[prev[entry] as number] = next[entry] as number
      prev[next[entry] as number] = prev[entry] as number
    }
  }
  const unlift = (op: number): void => {
    for (const entry of [count + op, op]) {
      next[prev[entry] as number] = entry
      prev[next[entry] as number] = entry
    }
  }

  const placed = new Uint32Array(Math.ceil(count / 32))
  const seen = new Set<string>()
  const stack: { readonly op: number; readonly value: number }[] = []
  let value = 0
  let cursor = next[head] as number
  let steps = 0
  let deepest: { readonly prefix: readonly number[]; readonly blocked: number } | undefined

  while (next[head] !== tail) {
    if (++steps > maxSteps) {
      return {
        kind: 'inconclusive',
        message: `gave up after ${maxSteps} search steps over ${count} operations; raise maxSteps or shorten the history`,
      }
    }
    if (cursor < count) {
      const op = cursor
      const operation = operations[op] as RegisterOperation
      const id = valueIds[op] as number
      const fits = operation.kind === 'write' || id === value
      if (fits) {
        const after = operation.kind === 'write' ? id : value
        placed[op >>> 5] = (placed[op >>> 5] as number) | (1 << (op & 31))
        const memo = `${placed.join(',')}|${after}`
        if (!seen.has(memo)) {
          seen.add(memo)
          stack.push({ op, value })
          value = after
          lift(op)
          cursor = next[head] as number
          continue
        }
        placed[op >>> 5] = (placed[op >>> 5] as number) & ~(1 << (op & 31))
      }
      cursor = next[cursor] as number
      continue
    }
    if (deepest === undefined || stack.length >= deepest.prefix.length) {
      deepest = { prefix: stack.map((frame) => frame.op), blocked: cursor - count }
    }
    const frame = stack.pop()
    if (frame === undefined) {
      return { kind: 'violation', message: explain(operations, deepest) }
    }
    value = frame.value
    placed[frame.op >>> 5] = (placed[frame.op >>> 5] as number) & ~(1 << (frame.op & 31))
    unlift(frame.op)
    cursor = next[frame.op] as number
  }
  return { kind: 'ok' }
}

function explain(
  operations: readonly RegisterOperation[],
  deepest: { readonly prefix: readonly number[]; readonly blocked: number } | undefined,
): string {
  if (deepest === undefined) return 'no order of the operations is consistent with real time'
  const blocked = operations[deepest.blocked] as RegisterOperation
  const shown = deepest.prefix.slice(-6).map((op) => describe(operations[op] as RegisterOperation))
  const elided =
    deepest.prefix.length > shown.length ? `… ${deepest.prefix.length - shown.length} more, ` : ''
  return (
    `no linearization fits: at best ${deepest.prefix.length} operations were placed ` +
    `(${elided}${shown.join(', ') || 'none'}) before the ${describe(blocked)} had to take effect, ` +
    'and no remaining order allows it'
  )
}

function describe(operation: RegisterOperation): string {
  const span = `[${operation.invoke}, ${operation.complete ?? '…'}]`
  const value = operation.value === undefined ? 'undefined' : canonicalJson(operation.value)
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value
  return operation.kind === 'write'
    ? `write ${shown} by ${operation.process} ${span}`
    : `read by ${operation.process} ${span} returning ${shown}`
}

function valueKey(value: JsonValue | undefined): string {
  return value === undefined || value === null ? initialKey : canonicalJson(value)
}

function assertOperation(operation: RegisterOperation, index: number): void {
  const where = `history[${index}]`
  const fail = (why: string): never => {
    throw new ChorusError(ErrorCode.InvalidArgument, `${where}: ${why}`)
  }
  if (typeof operation !== 'object' || operation === null) fail('is not an operation object')
  if (typeof operation.key !== 'string') fail('key must be a string')
  if (typeof operation.process !== 'string') fail('process must be a string')
  if (operation.kind !== 'write' && operation.kind !== 'read') fail('kind must be "write" or "read"')
  if (typeof operation.ok !== 'boolean') fail('ok must be a boolean')
  if (!Number.isFinite(operation.invoke)) fail(`invoke must be a finite number, got ${operation.invoke}`)
  if (operation.complete !== null) {
    if (!Number.isFinite(operation.complete)) {
      fail(`complete must be a finite number or null, got ${operation.complete}`)
    }
    if (operation.complete < operation.invoke) {
      fail(`completes (${operation.complete}) before it is invoked (${operation.invoke})`)
    }
  }
  if (operation.value !== undefined) {
    const why = explainNonJson(operation.value)
    if (why !== undefined) fail(`value is not JSON: ${why}`)
  }
}
