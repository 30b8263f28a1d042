import { ErrorCode, isChorusError } from '@chorus/core'
import { describe, expect, it } from 'vitest'
import { createReplica } from '../src/index.js'

describe('a value too large to sync', () => {
  it('is refused with a typed error, alone, and stores nothing; writes beside it go ahead', async () => {
    const replica = await createReplica({ space: 'big', storage: 'memory' })
    try {
      const notes = replica.collection('notes')
      const huge = { body: 'x'.repeat(5 * 1024 * 1024) }
      const results = await Promise.allSettled([
        notes.put('before', { n: 1 }),
        notes.put('huge', huge),
        notes.put('after', { n: 2 }),
      ])
      expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      const refused = results[1] as PromiseRejectedResult
      expect(isChorusError(refused.reason) && refused.reason.code).toBe(ErrorCode.InvalidArgument)
      expect(String(refused.reason.message)).toMatch(/must fit one \d+-byte frame/)
      expect((await notes.list()).map((row) => row.id)).toEqual(['after', 'before'])
      expect(await notes.get('huge')).toBeUndefined()

      // A patch that would make the change too large is refused too; the record keeps its value.
      await notes.put('grows', { a: 'y'.repeat(3 * 1024 * 1024) })
      await expect(notes.patch('grows', { b: 'z'.repeat(2 * 1024 * 1024) })).rejects.toMatchObject({
        code: ErrorCode.InvalidArgument,
      })
      expect(Object.keys((await notes.get('grows')) as object)).toEqual(['a'])
    } finally {
      await replica.close()
    }
  }, 30_000)
})
