import { expect } from 'vitest'
import { ChorusError, type ErrorCode } from '../src/errors.js'

/** Runs `run`, asserts it threw a {@link ChorusError} with `code`, and returns the error. */
export function expectChorusError(run: () => unknown, code: ErrorCode): ChorusError {
  let caught: unknown
  try {
    run()
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(ChorusError)
  expect((caught as ChorusError).code).toBe(code)
  return caught as ChorusError
}
