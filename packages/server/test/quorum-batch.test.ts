import { describe, expect, it } from 'vitest'
import { asNodeId } from '../src/node-id.js'
import { batchQuorumMessages, isQuorumAcknowledgement, MAX_MESSAGE_BATCH } from '../src/quorum/batch.js'
import { createQuorumConfig } from '../src/quorum/config.js'
import type { QuorumInput, QuorumMessage } from '../src/quorum/messages.js'
import { createQuorumMachine } from '../src/quorum/node.js'
import type { QuorumEffect, QuorumState } from '../src/quorum/state.js'

const config = createQuorumConfig({ nodes: ['n1', 'n2', 'n3'], replicas: 3, writeQuorum: 2, readQuorum: 2 })
const n1 = createQuorumMachine('n1', config)
const n2 = createQuorumMachine('n2', config)

function sends(effects: readonly QuorumEffect[], to: string): QuorumMessage[] {
  return effects.flatMap((effect) => (effect.type === 'send' && effect.to === to ? [effect.message] : []))
}

/** n1 coordinates puts of `keys` at time 1; returns its state and the messages it sends n2. */
function coordinate(keys: readonly string[]): { state: QuorumState; toN2: QuorumMessage[] } {
  let state = n1.recover([], 0)
  const toN2: QuorumMessage[] = []
  keys.forEach((key, index) => {
    const result = n1.step(
      state,
      n1.requestInput(1, `c${index}`, { type: 'put', id: `p${index}`, key, value: index }),
    )
    state = result.state
    toN2.push(...sends(result.effects, 'n2'))
  })
  return { state, toN2 }
}

describe('quorum replication in batches', () => {
  it('joins the stores and the acks for one peer, leaving other messages and single ones alone', () => {
    const store = (op: string): QuorumMessage => ({ type: 'store', op, key: op, versions: [], hintFor: null })
    const ping: QuorumMessage = { type: 'ping', sentAt: 1 }
    expect(batchQuorumMessages([store('a')])).toEqual([store('a')])
    expect(batchQuorumMessages([ping, store('a'), { type: 'stored', op: 'x' }, store('b')])).toEqual([
      ping,
      {
        type: 'store-batch',
        items: [
          { op: 'a', key: 'a', versions: [], hintFor: null },
          { op: 'b', key: 'b', versions: [], hintFor: null },
        ],
      },
      { type: 'stored', op: 'x' },
    ])
    expect(batchQuorumMessages([{ type: 'stored', op: 'x' }, ping, { type: 'stored', op: 'y' }])).toEqual([
      { type: 'stored-batch', ops: ['x', 'y'] },
      ping,
    ])
    const many = Array.from({ length: MAX_MESSAGE_BATCH + 1 }, (_, i) => store(`k${i}`))
    const batches = batchQuorumMessages(many)
    expect(batches.map((message) => (message.type === 'store-batch' ? message.items.length : 0))).toEqual([
      MAX_MESSAGE_BATCH,
      1,
    ])
  })

  it('a replica stores a batch with one persist and acknowledges it with one message after it', () => {
    const { toN2 } = coordinate(['a', 'b', 'c'])
    expect(toN2.map((message) => message.type)).toEqual(['store', 'store', 'store'])
    const [batch] = batchQuorumMessages(toN2)
    const replica = n2.step(n2.recover([], 0), n2.messageInput(2, asNodeId('n1'), batch))
    expect(replica.effects.map((effect) => effect.type)).toEqual(['persist', 'send'])
    const [persist, ack] = replica.effects
    expect(
      persist?.type === 'persist' && persist.records.map((record) => record.type === 'version' && record.key),
    ).toEqual(['a', 'b', 'c'])
    const ops = toN2.map((message) => (message.type === 'store' ? message.op : ''))
    expect(ack).toEqual({ type: 'send', to: 'n1', message: { type: 'stored-batch', ops } })
    expect(replica.state.store.get('b')?.map((version) => version.value)).toEqual([1])
  })

  it('each put of an acknowledged batch is answered to its own client, once', () => {
    const { state, toN2 } = coordinate(['a', 'b'])
    const ops = toN2.map((message) => (message.type === 'store' ? message.op : ''))
    const acked = n1.step(state, n1.messageInput(3, asNodeId('n2'), { type: 'stored-batch', ops }))
    const replies = acked.effects.flatMap((effect) => (effect.type === 'reply' ? [effect] : []))
    expect(replies.map((reply) => [reply.client, reply.reply.type, reply.reply.id])).toEqual([
      ['c0', 'put-ok', 'p0'],
      ['c1', 'put-ok', 'p1'],
    ])
    const again = n1.step(acked.state, n1.messageInput(4, asNodeId('n2'), { type: 'stored-batch', ops }))
    expect(again.effects.filter((effect) => effect.type === 'reply')).toEqual([])
  })

  it('a batch item for a stand-in is kept as a hint for its home node', () => {
    const { toN2 } = coordinate(['a'])
    const [store] = toN2
    if (store?.type !== 'store') throw new Error('n1 sent no store')
    const item = { op: store.op, key: store.key, versions: store.versions }
    const replica = n2.step(
      n2.recover([], 0),
      n2.messageInput(2, asNodeId('n1'), {
        type: 'store-batch',
        items: [
          { ...item, hintFor: 'n3' },
          { ...item, op: `${store.op}x`, hintFor: null },
        ],
      }),
    )
    expect(replica.state.hints.get(`${store.op}:n3`)).toMatchObject({ home: 'n3', key: 'a' })
    expect(replica.state.store.get('a')).toHaveLength(1)
    expect(replica.effects.filter((effect) => effect.type === 'persist')).toHaveLength(1)
  })

  it('refuses a malformed batch before anything changes', () => {
    const state = n2.recover([], 0)
    expect(() =>
      n2.step(state, n2.messageInput(2, asNodeId('n1'), { type: 'store-batch', items: [{ op: '' }] })),
    ).toThrow(/items\[0\]\.op/)
    expect(() =>
      n2.step(state, n2.messageInput(2, asNodeId('n1'), { type: 'stored-batch', ops: [7] })),
    ).toThrow(/ops\[0\]/)
  })

  it('stepped ahead of the puts that arrived with it, an acknowledgement is answered before any persist of the batch', () => {
    const { state, toN2 } = coordinate(['a'])
    const ops = toN2.map((message) => (message.type === 'store' ? message.op : ''))
    const put = n1.requestInput(3, 'c9', { type: 'put', id: 'p9', key: 'b', value: 9 })
    const ack = n1.messageInput(3, asNodeId('n2'), { type: 'stored-batch', ops })
    expect([put, ack, n1.tickInput(3)].map(isQuorumAcknowledgement)).toEqual([false, true, false])
    const run = (inputs: readonly QuorumInput[]) => {
      let current = state
      const effects: QuorumEffect[] = []
      for (const input of inputs) {
        const result = n1.step(current, input)
        current = result.state
        effects.push(...result.effects)
      }
      const kinds = effects.map((effect) =>
        effect.type === 'reply' ? `reply ${effect.reply.id}` : effect.type,
      )
      return { state: current, kinds }
    }
    const arrival = run([put, ack])
    const acksFirst = run([ack, put])
    // In arrival order the answer to p0 follows p9's persist, so a runtime holds it until that
    // commit (and its fsync); stepped first, it precedes every persist and leaves at once.
    expect(arrival.kinds.indexOf('reply p0')).toBeGreaterThan(arrival.kinds.indexOf('persist'))
    expect(acksFirst.kinds.indexOf('reply p0')).toBeLessThan(acksFirst.kinds.indexOf('persist'))
    expect([...acksFirst.kinds].sort()).toEqual([...arrival.kinds].sort())
    expect(new Map(acksFirst.state.store)).toEqual(new Map(arrival.state.store))
    expect([...acksFirst.state.pending.keys()]).toEqual([...arrival.state.pending.keys()])
  })
})
