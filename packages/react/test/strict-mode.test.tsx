// @vitest-environment happy-dom
import type { Replica } from '@chorus/client'
import { useCollection, useConflicts, useQuery, useRecord } from '@chorus/react'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount, unmountAll, until } from './helpers/dom.js'
import { closeReplicas, memoryReplica } from './helpers/replicas.js'

interface Note {
  title: string
}

let replica: Replica

beforeEach(async () => {
  replica = await memoryReplica({ resolvers: { notes: 'manual' } })
})

afterEach(async () => {
  await unmountAll()
  await closeReplicas()
})

function Record() {
  const note = useRecord<Note>('notes', 'n1')
  return <p>{note === undefined ? 'loading' : (note?.title ?? 'none')}</p>
}

function Titles() {
  const rows = useCollection<Note>('notes')
  return <p>{rows === undefined ? 'loading' : rows.map((row) => row.value.title).join(',')}</p>
}

function Count() {
  const count = useQuery<Note, number>('notes', (rows) => rows.length)
  return <p>{count === undefined ? 'loading' : `${count} notes`}</p>
}

function Conflicts() {
  const conflicts = useConflicts('notes')
  return <p>{conflicts === undefined ? 'loading' : `${conflicts.length} conflicts`}</p>
}

describe('the hooks under StrictMode', () => {
  // StrictMode subscribes, unsubscribes and subscribes again on mount. The hooks' shared
  // snapshot must survive that: once, a render after it read a new, never-started snapshot
  // and stayed `undefined` for good.
  it.each([
    ['useRecord', Record, 'Groceries', 'Groceries, edited'],
    ['useCollection', Titles, 'Groceries', 'Groceries, edited'],
    ['useQuery', Count, '1 notes', '2 notes'],
    ['useConflicts', Conflicts, '0 conflicts', '0 conflicts'],
  ] as const)(
    '%s loads, follows writes, and runs one source for two readers',
    async (_name, Reader, first, after) => {
      const notes = replica.collection<Note>('notes')
      await notes.put('n1', { title: 'Groceries' })
      const listening = vi.spyOn(replica, 'on')
      const subscribing = vi.spyOn(notes, 'subscribe')
      vi.spyOn(replica, 'collection').mockReturnValue(notes as never)
      const view = await mount(
        replica,
        <>
          <Reader />
          <Reader />
        </>,
        { strict: true },
      )
      await until(`the first load: ${first}`, () => view.text() === `${first}${first}`)
      await (after === '2 notes'
        ? notes.put('n2', { title: 'Call the bank' })
        : notes.put('n1', { title: after }))
      await until(`the write: ${after}`, () => view.text() === `${after}${after}`)
      // One live source for both readers, after StrictMode's second subscribe.
      console.log(
        _name,
        listening.mock.calls.map((c) => c[0]),
        subscribing.mock.calls.length,
      )
      const started =
        listening.mock.calls.filter(([event]) => event === 'change').length + subscribing.mock.calls.length
      expect(started).toBe(1)
    },
  )
})
