import {
  asRecordId,
  asReplicaId,
  type Change,
  encodeMessage,
  formatHlc,
  type Message,
  PROTOCOL_VERSION,
  type ReplicaId,
  type SpaceId,
} from '@chorus/core'
import type { Prng } from './prng.js'

/** A frame as a socket sends it: text, or bytes in a binary frame (or, rarely, a text frame). */
export interface HostileFrame {
  readonly data: string | Uint8Array
  readonly binary: boolean
}

const weird: readonly unknown[] = [
  null,
  -1,
  0,
  1.5,
  2 ** 53 + 1,
  1e308,
  '',
  'x'.repeat(300),
  [],
  {},
  true,
  { __proto__: 1 },
  ['nested', ['deeper']],
]

function change(replica: ReplicaId, counter: number): Change {
  return {
    collection: 'notes',
    id: asRecordId(`${replica}-${counter}`),
    dot: [replica, counter],
    context: {},
    hlc: formatHlc({ wall: 1_700_000_000_000 + counter, counter: 0, replica }),
    op: { type: 'put', value: { by: replica, n: counter } },
  }
}

/** A well-formed frame of some kind, for mutating or cutting. */
function validFrame(prng: Prng, space: SpaceId): string {
  const replica = asReplicaId(`storm-${prng.int(0, 9)}`)
  const count = prng.int(1, 3)
  const messages: Message[] = [
    {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      replicaId: replica,
      spaces: [`s-${prng.int(0, 5)}` as SpaceId],
      have: {},
    },
    {
      type: 'changes',
      space,
      from: 0,
      to: count,
      batch: Array.from({ length: count }, (_, i) => change(replica, i + 1)),
    },
    { type: 'ack', space, upTo: prng.int(0, 10) },
    { type: 'snapshot', space, cursor: 1, page: 0, last: true, batch: [] },
    {
      type: 'changes',
      space,
      from: 0,
      to: 1,
      batch: [change(replica, 1)],
      collected: { [replica]: prng.int(0, 10) },
    },
    { type: 'error', code: 'internal', message: 'storm' },
  ]
  return encodeMessage(prng.pick(messages))
}

/** Replaces one value somewhere inside a parsed frame with a weird one. */
function mutate(value: unknown, prng: Prng): unknown {
  if (typeof value !== 'object' || value === null || prng.bool(0.25)) return prng.pick(weird)
  const keys = Object.keys(value)
  if (keys.length === 0) return prng.pick(weird)
  const key = prng.pick(keys)
  const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<string, unknown>
  copy[key] = mutate((value as Record<string, unknown>)[key], prng)
  return copy
}

function nested(depth: number, open: string, close: string, inner = '1'): string {
  return `${open.repeat(depth)}${inner}${close.repeat(depth)}`
}

/**
 * One hostile frame for a hub serving `space`: random bytes, frames cut short or with a value
 * swapped for a weird one, wrong types, numbers past the safe range, deep nesting, hellos on
 * other protocol versions or naming many spaces — and now and then a well-formed one.
 *
 * Deterministic in `prng`, so a failing storm replays from its seed.
 */
export function hostileFrame(prng: Prng, space: string): HostileFrame {
  const target = space as SpaceId
  const text = (data: string): HostileFrame => ({ data, binary: false })
  switch (prng.int(0, 11)) {
    case 0:
      return { data: Uint8Array.from({ length: prng.int(0, 200) }, () => prng.int(0, 255)), binary: true }
    case 1:
      // Not UTF-8 in a text frame: a WebSocket server closes the socket (1007) on it.
      return prng.bool(0.1)
        ? { data: Uint8Array.from([0x7b, 0xc3, 0x28, 0x7d]), binary: false }
        : text(String.fromCharCode(...Array.from({ length: prng.int(0, 100) }, () => prng.int(0, 0xffff))))
    case 2: {
      const frame = validFrame(prng, target)
      return text(frame.slice(0, prng.int(0, frame.length - 1)))
    }
    case 3:
      return text(JSON.stringify(mutate(JSON.parse(validFrame(prng, target)), prng)))
    case 4:
      return text(
        JSON.stringify({ type: prng.pick([42, null, 'hullo', 'HELLO', '', ['hello'], { type: 'hello' }]) }),
      )
    case 5:
      return text(
        prng.pick([
          '{"type":"changes"}',
          '{"type":"hello"}',
          '{"type":"ack"}',
          '{}',
          '[]',
          'null',
          '"hello"',
        ]),
      )
    case 6:
      return text(
        `{"type":"ack","space":"${space}","upTo":${prng.pick(['1e400', '-0', '9007199254740993', '-1e400', '1.0000001', '0x10'])}}`,
      )
    case 7:
      return text(nested(prng.int(100, 5000), prng.pick(['[', '{"a":']), prng.pick([']', '}'])))
    case 8: {
      const value = nested(prng.int(65, 2000), '{"a":', '}', '{}')
      return text(
        `{"type":"changes","space":"${space}","from":0,"to":1,"batch":[{"collection":"notes","id":"x","dot":["deep",1],"context":{},"hlc":"001700000000001.000000@deep","op":{"type":"put","value":${value}}}]}`,
      )
    }
    case 9:
      return text(
        JSON.stringify({
          type: 'hello',
          protocol: prng.pick([0, 2, PROTOCOL_VERSION]),
          replicaId: `r-${prng.int(0, 99)}`,
          spaces: [space],
          have: { [space]: prng.int(0, 1e6) },
        }),
      )
    case 10:
      return text(
        `{"type":"hello","protocol":1,"replicaId":"${'z'.repeat(prng.int(60, 70))}","spaces":${JSON.stringify(Array.from({ length: prng.int(60, 70) }, (_, i) => `s${i}`))},"have":{}}`,
      )
    default:
      return text(validFrame(prng, target))
  }
}
