/**
 * Promises over IndexedDB requests and transactions, for the factory a store was given.
 *
 * The `idb` wrapper does this too, but it recognises IndexedDB objects with `instanceof`
 * against the global classes (`IDBRequest`, `IDBDatabase`, …), so it fails in Node with an
 * injected `new IDBFactory()` from fake-indexeddb unless `fake-indexeddb/auto` has also
 * replaced the globals. These helpers touch only the objects they are handed.
 *
 * Continuations run as microtasks right after the request's success event, while its
 * transaction is still active, so a transaction can span several awaited requests — as long
 * as nothing else (a timer, a fetch) is awaited in between.
 */

/** The request's result, or its error. */
export function requestResult<TResult>(request: IDBRequest<TResult>): Promise<TResult> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
}

/**
 * Settles when the transaction ends: resolves once it committed, rejects with its error
 * (a request's, a `QuotaExceededError` at commit, or an `AbortError`) when it aborted.
 */
export function transactionDone(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onabort = () => reject(tx.error ?? new DOMException('the transaction was aborted', 'AbortError'))
  })
}

/**
 * Walks a cursor, calling `visit` with each position until it returns `'stop'` or the
 * cursor ends. `visit` may move the cursor itself (`continue(key)`) and return `'moved'`;
 * otherwise the walk continues to the next entry.
 */
export function walk<TCursor extends IDBCursor>(
  request: IDBRequest<TCursor | null>,
  visit: (cursor: TCursor) => 'next' | 'moved' | 'stop',
): Promise<void> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => {
      const cursor = request.result
      if (cursor === null) {
        resolve()
        return
      }
      try {
        const outcome = visit(cursor)
        if (outcome === 'stop') resolve()
        else if (outcome === 'next') cursor.continue()
      } catch (error) {
        reject(error)
      }
    }
    request.onerror = () => reject(request.error)
  })
}

/**
 * IndexedDB 3's `getAll({ query, count, direction })`, which reads backwards too (Chromium
 * 141+, found by the `getAllRecords` that came with it); `null` where the store lacks it.
 */
export function getAllInDirection<TValue>(
  store: IDBObjectStore,
  query: IDBKeyRange,
  count: number | undefined,
  direction: 'next' | 'prev',
): IDBRequest<TValue[]> | null {
  if (!('getAllRecords' in store)) return null
  const getAll = store.getAll as unknown as (options: {
    query: IDBKeyRange
    count?: number
    direction: 'next' | 'prev'
  }) => IDBRequest<TValue[]>
  return getAll.call(store, { query, direction, ...(count === undefined ? {} : { count }) })
}
