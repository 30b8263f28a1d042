import {
  assertCollectionName,
  type ChorusError,
  type ConflictVersion,
  type JsonObject,
  type ListOptions,
  type RecordId,
  type ReplicaEngine,
} from '@chorus/core'

/**
 * A value as Chorus hands it out: deeply read-only. Chorus freezes every value it stores and
 * returns, so an app cannot change a record without a write; copy a value
 * (`structuredClone(value)`) to edit it.
 */
export type Frozen<TValue> = JsonObject extends TValue
  ? // JsonObject (and anything wider) is read-only all the way down already.
    TValue
  : TValue extends object
    ? { readonly [TKey in keyof TValue]: Frozen<TValue[TKey]> }
    : TValue

/** A record as a list or a live query returns it. */
export interface Row<TValue extends object = JsonObject> {
  readonly id: RecordId
  readonly value: Frozen<TValue>
}

/**
 * The records of one collection, and the writes to them.
 *
 * `TValue` is the shape the app declares for its values; it is not checked at run time. What
 * is checked: a value must be a plain JSON object (no `undefined`, functions, class
 * instances, cycles, non-finite numbers or `__proto__` keys) and an id a non-empty string of
 * at most 256 characters, or the call rejects with `invalid-argument`. A write copies its
 * value when called, so changing the object afterwards does not change what was written.
 *
 * Writes issued together (not awaited one by one) commit together, in one transaction where
 * the storage offers one: if it fails, none of them is stored and all of them reject. Puts
 * and deletes issued together may return one and the same promise.
 */
export interface Collection<TValue extends object = JsonObject> {
  readonly name: string
  /** Writes the whole value of a record (creating it if needed). */
  put(id: string, value: TValue): Promise<void>
  /** Sets some fields of a record, keeping the others (creating the record if needed). */
  patch(id: string, fields: Partial<TValue>): Promise<void>
  /**
   * Sets the fields `change` returns for the record as it is now: `change` is called with
   * the record's value as `get` reads it (`undefined` when there is none) and the versions
   * of its open conflict (empty when it has none), when the write is made, and nothing else
   * reaches the record between that read and the write. A change from another replica
   * applied after `change` ran is concurrent with this one (its resolver settles the two),
   * never superseded by it unseen, as it can be when an app reads, computes and then
   * patches. Return `undefined` to write nothing (the promise then resolves with `false`)
   * — say, when the record is no longer what the app showed. `change` should only compute:
   * it may run again when writes issued with it fail. Rejects with what `change` throws.
   */
  update(id: string, change: UpdateFunction<TValue>): Promise<boolean>
  /** Deletes a record. */
  delete(id: string): Promise<void>
  /** The record's value as its collection's resolver reads it, or `undefined` if there is none. */
  get(id: string): Promise<Frozen<TValue> | undefined>
  /**
   * The record's value as `get` reads it, and the versions of its open conflict (empty when
   * it has none), from one read of the record, so the two always agree — as `update`'s
   * `change` sees them. A `get` and a `conflicts` issued together are two reads: a remote
   * change applied between them can make the value a version the conflict they return does
   * not hold yet. An app that shows a record and its conflict side by side reads them here.
   */
  read(id: string): Promise<RecordRead<TValue>>
  /**
   * The collection's records, in id order (UTF-16 code units, as JavaScript compares
   * strings): every one, or a page of them — `{ order: 'desc', limit: 100 }` is the last
   * hundred ids (with UUID v7 ids, the newest), `{ order: 'desc', after: last.id }` the rest.
   * A page reads only its own records from storage, so a first screen shows before a large
   * collection is read in full.
   */
  list(options?: ListOptions): Promise<Row<TValue>[]>
  /**
   * Calls `listener` with the collection's rows at once, then again whenever a local or
   * remote change alters them; the changes of one event-loop turn give one call.
   * With `options`, the rows are that page (as `list` reads it: `{ order: 'desc', limit: 100 }`
   * is a live first screen, read without the rest of the collection). Returns the function
   * that stops it. Throws `invalid-argument` for bad options.
   *
   * A read that fails (storage failed) goes to `onError` when it is given, else to the
   * replica's `error` event; the query goes on, and reads again at the next change.
   */
  subscribe(
    listener: (rows: readonly Row<TValue>[]) => void,
    options?: ListOptions,
    onError?: (error: ChorusError) => void,
  ): () => void
  /**
   * Settles a conflict on every replica: writes `value` over every version this replica
   * holds of the record (a put whose context covers them all).
   */
  resolve(id: string, value: TValue): Promise<void>
}

/** What {@link Collection.update} makes of a record: the fields to set, or `undefined`. */
export type UpdateFunction<TValue extends object> = (
  current: Frozen<TValue> | undefined,
  conflict: readonly VersionOf<TValue>[],
) => Partial<TValue> | undefined

/** A version of a record in conflict, with the collection's value type. */
export type VersionOf<TValue extends object> = Omit<ConflictVersion, 'value'> & {
  readonly value: Frozen<TValue> | null
}

/** What {@link Collection.read} returns. */
export interface RecordRead<TValue extends object = JsonObject> {
  /** As `get` reads it: `undefined` when there is no record (never written, or deleted). */
  readonly value: Frozen<TValue> | undefined
  /** The versions of the record's open conflict; empty when it has none. */
  readonly conflict: readonly VersionOf<TValue>[]
}

/** What a collection needs from its replica. */
export interface CollectionHost {
  /** The engine; throws `closed` once the replica is closed. */
  engine(): ReplicaEngine
  /**
   * The engine, for a write: also throws `forbidden` where the relay lets the replica only
   * read and the engine cannot know (a tab that does not hold the connection).
   */
  writer(): ReplicaEngine
  subscribe(
    collection: string,
    listener: (rows: readonly Row<JsonObject>[]) => void,
    options?: ListOptions,
    onError?: (error: ChorusError) => void,
  ): () => void
}

/**
 * The {@link Collection} of a replica: each call goes to the replica's engine.
 *
 * Values are typed `TValue` for the app and checked as JSON by the engine, so the casts to
 * and from `JsonObject` below are where the app's declared shape meets the checked one.
 */
export class EngineCollection<TValue extends object> implements Collection<TValue> {
  readonly name: string
  readonly #host: CollectionHost

  constructor(host: CollectionHost, name: string) {
    this.name = assertCollectionName(name)
    this.#host = host
  }

  // Writes are not async functions: an app may issue thousands together, and each would
  // keep a suspended frame until its batch commits. A put or a delete returns the promise
  // its batch shares (`ReplicaEngine.write`); a patch, one derived promise.

  put(id: string, value: TValue): Promise<void> {
    try {
      return this.#host.writer().write(this.name, id, 'put', value as unknown as JsonObject)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  patch(id: string, fields: Partial<TValue>): Promise<void> {
    let written: Promise<unknown>
    try {
      written = this.#host.writer().patch(this.name, id, fields as unknown as JsonObject)
    } catch (error) {
      return Promise.reject(error)
    }
    return written.then(toVoid)
  }

  update(id: string, change: UpdateFunction<TValue>): Promise<boolean> {
    let written: Promise<unknown>
    try {
      written = this.#host
        .writer()
        .update(
          this.name,
          id,
          change as unknown as (current: JsonObject | undefined) => JsonObject | undefined,
        )
    } catch (error) {
      return Promise.reject(error)
    }
    return written.then(isWritten)
  }

  delete(id: string): Promise<void> {
    try {
      return this.#host.writer().write(this.name, id, 'delete')
    } catch (error) {
      return Promise.reject(error)
    }
  }

  async get(id: string): Promise<Frozen<TValue> | undefined> {
    return (await this.#host.engine().get(this.name, id)) as Frozen<TValue> | undefined
  }

  async read(id: string): Promise<RecordRead<TValue>> {
    return (await this.#host.engine().read(this.name, id)) as unknown as RecordRead<TValue>
  }

  async list(options?: ListOptions): Promise<Row<TValue>[]> {
    return (await this.#host.engine().list(this.name, options)) as Row<TValue>[]
  }

  subscribe(
    listener: (rows: readonly Row<TValue>[]) => void,
    options?: ListOptions,
    onError?: (error: ChorusError) => void,
  ): () => void {
    return this.#host.subscribe(
      this.name,
      listener as unknown as (rows: readonly Row<JsonObject>[]) => void,
      options,
      onError,
    )
  }

  async resolve(id: string, value: TValue): Promise<void> {
    await this.#host.writer().resolve(this.name, id, value as unknown as JsonObject)
  }
}

/** What a write resolves with: nothing (the change it made stays inside the replica). */
function toVoid(): void {}

/** What an update resolves with: whether it wrote a change. */
function isWritten(change: unknown): boolean {
  return change !== null
}
