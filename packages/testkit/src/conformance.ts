/**
 * The storage conformance suites, as a separate entry point (`@chorus/testkit/conformance`):
 * they register vitest tests, so importing them loads vitest, which the rest of testkit never does.
 */
export * from './hub-store-conformance.js'
export * from './replica-store-conformance.js'
export * from './store-fixture.js'
