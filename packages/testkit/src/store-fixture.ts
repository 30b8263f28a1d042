/** What a conformance suite gets for each test: a store and the means to test it harder. */
export interface StoreFixture<TStore> {
  /** A new, empty store. */
  readonly store: TStore
  /**
   * Opens the same data again after the store was closed, as a restarted process reopens its
   * database. Given, it enables the durability tests.
   */
  readonly reopen?: () => Promise<TStore>
  /** Makes the next write call reject as a full disk would. Given, it enables the failure tests. */
  readonly failNextWrite?: () => void
  /** Removes what the store left behind (files, databases); called after it was closed. */
  readonly cleanup?: () => Promise<void>
}
