// @vitest-environment happy-dom
import { createReplica } from '@chorus/client'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { recoverDrafts } from '../src/drafts.js'
import type { Note } from '../src/notes.js'

const shown: string[] = []
vi.mock('../src/notices.js', () => ({
  notify: (notice: { message: string }) => shown.push(notice.message),
  notifyFailure: (what: string, error: unknown) => shown.push(`${what}: ${(error as Error).message}`),
}))

afterEach(() => {
  localStorage.clear()
  shown.length = 0
})

/** Keeps a draft as another page of this browser would have as it went. */
function keptByAnotherPage(space: string, id: string, fields: Partial<Note>, at: number): string {
  const key = `chorus-notes:draft:${JSON.stringify([space, id, 'another-page'])}`
  localStorage.setItem(key, JSON.stringify({ fields, at }))
  return key
}

describe('drafts kept as a page went', () => {
  it('writes a kept draft into its note once, and forgets it', async () => {
    const replica = await createReplica({ space: 'drafts', storage: 'memory' })
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Groceries', body: 'milk', createdAt: 1, updatedAt: 1 })
    keptByAnotherPage('drafts', 'n1', { body: 'milk\neggs' }, 5)
    await recoverDrafts(replica)
    expect(await notes.get('n1')).toEqual({
      title: 'Groceries',
      body: 'milk\neggs',
      createdAt: 1,
      updatedAt: 5,
    })
    expect(localStorage.length).toBe(0)
    expect(shown).toEqual([])
    await replica.close()
  })

  it('a body too long to sync is dropped with its title saved and the user told once, not retried at every open', async () => {
    const replica = await createReplica({ space: 'drafts', storage: 'memory' })
    const notes = replica.collection<Note>('notes')
    await notes.put('n1', { title: 'Huge', body: 'short', createdAt: 1, updatedAt: 1 })
    keptByAnotherPage('drafts', 'n1', { title: 'Huge, renamed', body: 'y'.repeat(4_500_000) }, 5)
    await recoverDrafts(replica)
    expect(await notes.get('n1')).toEqual({
      title: 'Huge, renamed',
      body: 'short',
      createdAt: 1,
      updatedAt: 5,
    })
    expect(localStorage.length).toBe(0)
    expect(shown).toEqual([
      'What you typed into a note before leaving was too long to save (4.3 MB), and is lost (its title, “Huge, renamed”, is saved).',
    ])
    await recoverDrafts(replica)
    expect(shown).toHaveLength(1)
    await replica.close()
  })
})
