import { seedFromEnv } from '@chorus/testkit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Change } from '../src/change.js'
import { ChorusError, ErrorCode } from '../src/errors.js'
import { asRecordId, asSpaceId } from '../src/ids.js'
import type { JsonObject } from '../src/json.js'
import {
  type DecodeResult,
  decodeMessage,
  encodeMessage,
  errorMessage,
  MAX_ERROR_MESSAGE_LENGTH,
  validateChange,
  validateMessage,
} from '../src/protocol/codec.js'
import { DEFAULT_LIMITS, type Message, PROTOCOL_VERSION } from '../src/protocol/messages.js'
import { alice, bob, carol, space, stamp, t0 } from './codec-fixtures.js'

const seed = seedFromEnv(process.env, 20_240_601)
const runs = { seed, numRuns: 300 }

const otherSpace = asSpaceId('alice.notes')
const recordId = asRecordId('018f4e1c-7a2b-7000-8000-000000000001')

const put: Change = {
  collection: 'notes',
  id: recordId,
  dot: [alice, 3],
  context: { alice: 2, bob: 5 },
  hlc: stamp(t0, 0, alice),
  op: {
    type: 'put',
    value: { title: 'Groceries', tags: ['home', 'todo'], meta: { pinned: true, rank: 1.5, colour: null } },
  },
}

const patch: Change = {
  collection: 'notes',
  id: recordId,
  dot: [bob, 6],
  context: { alice: 3, bob: 5 },
  hlc: stamp(t0 + 500, 2, bob),
  op: {
    type: 'patch',
    fields: { title: 'Groceries (Saturday)' },
    base: { tags: ['home', 'todo'], meta: { pinned: true, rank: 1.5, colour: null } },
    stamps: { tags: stamp(t0, 0, alice), meta: stamp(t0, 0, alice) },
    floor: stamp(t0, 0, alice),
  },
}

const firstPatch: Change = {
  collection: 'notes',
  id: asRecordId('018f4e1c-7a2b-7000-8000-000000000002'),
  dot: [alice, 4],
  context: {},
  hlc: stamp(t0 + 10, 0, alice),
  op: { type: 'patch', fields: { title: 'New' }, base: {}, stamps: {}, floor: null },
}

const remove: Change = {
  collection: 'notes',
  id: recordId,
  dot: [carol, 1],
  context: { alice: 3, bob: 6 },
  hlc: stamp(t0 + 900, 0, carol),
  op: { type: 'delete' },
}

const samples = {
  hello: {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    replicaId: alice,
    token: 'eyJhbGciOiJIUzI1NiJ9.e30.signature',
    spaces: [space, otherSpace],
    have: { [space]: 12 },
    logs: { [space]: '0b7e3c2a-51d4-4f0e-9a3b-6f1c2d8e4a90' },
    maxFrame: 4 * 1024 * 1024,
    readOnly: [otherSpace],
    resume: { [space]: { cursor: 40, after: `notes\u0000${recordId}` } },
  },
  helloWithoutToken: { type: 'hello', protocol: PROTOCOL_VERSION, replicaId: bob, spaces: [space], have: {} },
  changes: { type: 'changes', space, from: 2, to: 6, batch: [put, patch, remove] },
  emptyChanges: { type: 'changes', space, from: 6, to: 9, batch: [] },
  sparseChanges: { type: 'changes', space, from: 1, to: 9, batch: [put, remove], sparse: true },
  ack: { type: 'ack', space, upTo: 6 },
  resendAck: { type: 'ack', space, upTo: 6, resend: true },
  resumeAck: {
    type: 'ack',
    space,
    upTo: 0,
    resend: true,
    resume: { cursor: 40, after: `notes\u0000${recordId}` },
  },
  snapshot: { type: 'snapshot', space, cursor: 42, page: 0, last: true, batch: [put, firstPatch] },
  snapshotNamingReceived: {
    type: 'snapshot',
    space,
    cursor: 42,
    page: 0,
    last: false,
    batch: [put],
    received: { [alice]: 7, [bob]: 35 },
  },
  error: errorMessage(
    ErrorCode.Forbidden,
    'alice may not write to team:board-1; ask an owner for access',
    space,
  ),
  errorWithoutSpace: errorMessage(ErrorCode.RateLimited, 'slow down: at most 50 frames per second'),
  errorNamingLimit: {
    ...errorMessage(ErrorCode.FrameTooLarge, 'frames are limited to 65536 bytes'),
    maxFrame: 65_536,
  },
  ping: { type: 'ping', space, id: 3 },
  pong: { type: 'pong', space, id: 3, head: 1_204 },
} satisfies Record<string, Message>

const sampleList: readonly [string, Message][] = Object.entries(samples)

const codecCodes: ReadonlySet<string> = new Set([
  ErrorCode.MalformedFrame,
  ErrorCode.FrameTooLarge,
  ErrorCode.UnknownMessage,
  ErrorCode.InvalidMessage,
  ErrorCode.BatchTooLarge,
  ErrorCode.UnsupportedProtocol,
])

type Path = readonly (string | number)[]
type Node = Record<string | number, unknown>

/** The message as the parsed JSON a peer might have sent, to edit. */
function raw(message: Message): Node {
  return JSON.parse(encodeMessage(message)) as Node
}

function parentOf(root: unknown, path: Path): Node {
  let node = root
  for (const key of path.slice(0, -1)) node = (node as Node)[key]
  return node as Node
}

function lastKey(path: Path): string | number {
  const key = path[path.length - 1]
  if (key === undefined) throw new Error('empty path')
  return key
}

function edited(message: Message, path: Path, value: unknown): string {
  const root = raw(message)
  parentOf(root, path)[lastKey(path)] = value
  return JSON.stringify(root)
}

function without(message: Message, path: Path): string {
  const root = raw(message)
  Reflect.deleteProperty(parentOf(root, path), lastKey(path))
  return JSON.stringify(root)
}

function expectRejected(result: DecodeResult, code: ErrorCode, fragment?: string): void {
  expect(result).toMatchObject({ ok: false, error: { code } })
  if (!result.ok && fragment !== undefined) expect(result.error.message).toContain(fragment)
}

function kind(value: unknown): string {
  if (value === null) return 'null'
  return Array.isArray(value) ? 'array' : typeof value
}

/** Every path to a value inside `node`, for picking a place to mutate. */
function pathsOf(node: unknown, prefix: Path = []): Path[] {
  if (typeof node !== 'object' || node === null) return []
  const keys: (string | number)[] = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node)
  return keys.flatMap((key) => {
    const path = [...prefix, key]
    return [path, ...pathsOf((node as Node)[key], path)]
  })
}

describe(`codec (SEED=${seed})`, () => {
  describe('round trip', () => {
    it.each(sampleList)('decodes an encoded %s message to an equal message', (_, message) => {
      expect(decodeMessage(encodeMessage(message))).toStrictEqual({ ok: true, message })
    })

    it('rebuilds the message instead of returning the input objects', () => {
      const input = raw(samples.changes)
      const result = validateMessage(input)
      expect(result.ok).toBe(true)
      if (!result.ok || result.message.type !== 'changes') return
      expect(result.message).not.toBe(input)
      const [first] = result.message.batch
      const [rawFirst] = input.batch as Node[]
      if (first?.op.type !== 'put' || rawFirst === undefined)
        throw new Error('the sample batch starts with a put')
      expect(first).not.toBe(rawFirst)
      const rawValue = (rawFirst.op as Node).value
      expect(first.op.value).toStrictEqual(rawValue)
      expect(first.op.value).not.toBe(rawValue)
    })

    it('ignores unknown fields at every level and leaves them out of the result', () => {
      const root = raw(samples.changes)
      root.priority = 'high'
      const batch = root.batch as Node[]
      Object.assign(batch[0] as Node, { seq: 17, space: 'elsewhere' })
      Object.assign((batch[2] as Node).op as Node, { value: { ghost: true } })
      expect(decodeMessage(JSON.stringify(root))).toStrictEqual({ ok: true, message: samples.changes })
    })

    it('encodes only the protocol fields of a change a store decorated', () => {
      const stored = { ...put, seq: 17, space: 'team:board-1' }
      const text = encodeMessage({ type: 'changes', space, from: 2, to: 3, batch: [stored] })
      expect(text).not.toContain('seq')
      expect(decodeMessage(text)).toStrictEqual({
        ok: true,
        message: { type: 'changes', space, from: 2, to: 3, batch: [put] },
      })
    })

    it('refuses to encode a message type it does not know', () => {
      const bogus = { type: 'gossip' } as unknown as Message
      expect(() => encodeMessage(bogus)).toThrow(ChorusError)
    })

    it('keeps decoding what it decoded: decode ∘ encode is a fixpoint on near-valid frames', () => {
      const candidates = sampleList.flatMap(([, message]) =>
        pathsOf(raw(message)).map((path) => ({ message, path })),
      )
      fc.assert(
        fc.property(fc.constantFrom(...candidates), fc.jsonValue(), ({ message, path }, value) => {
          const first = decodeMessage(edited(message, path, value))
          if (!first.ok) {
            expect(codecCodes.has(first.error.code)).toBe(true)
            return
          }
          expect(decodeMessage(encodeMessage(first.message))).toStrictEqual(first)
        }),
        runs,
      )
    })
  })

  describe('never throws', () => {
    const check = (result: DecodeResult): void => {
      if (!result.ok) expect(codecCodes.has(result.error.code)).toBe(true)
    }

    it('on arbitrary strings', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => check(decodeMessage(text))),
        runs,
      )
    })

    it('on arbitrary JSON text and values', () => {
      fc.assert(
        fc.property(fc.jsonValue(), (value) => {
          check(decodeMessage(JSON.stringify(value)))
          check(validateMessage(value))
        }),
        runs,
      )
    })

    it('on arbitrary values of any kind', () => {
      const anything = fc.anything({
        withBigInt: true,
        withBoxedValues: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withNullPrototype: true,
        withObjectString: true,
        withSparseArray: true,
        withTypedArray: true,
      })
      fc.assert(
        fc.property(anything, (value) => {
          check(decodeMessage(value))
          check(validateMessage(value))
          expect(typeof validateChange(value)).toBe('string')
        }),
        runs,
      )
    })

    it('on frames shaped like messages with arbitrary fields', () => {
      const type = fc.constantFrom('hello', 'changes', 'ack', 'snapshot', 'error', 'gossip')
      const frame = fc
        .record({ type })
        .chain(({ type }) =>
          fc
            .dictionary(
              fc.constantFrom(
                'protocol',
                'replicaId',
                'spaces',
                'have',
                'space',
                'from',
                'to',
                'batch',
                'code',
              ),
              fc.jsonValue(),
            )
            .map((fields) => ({ ...fields, type })),
        )
      fc.assert(
        fc.property(frame, (value) => {
          check(validateMessage(value))
          check(decodeMessage(JSON.stringify(value)))
        }),
        runs,
      )
    })
  })

  describe('rejects mutated messages with the expected code', () => {
    const required: readonly [Message, Path][] = [
      ...(['type', 'protocol', 'replicaId', 'spaces', 'have'] as const).map((key): [Message, Path] => [
        samples.hello,
        [key],
      ]),
      ...(['space', 'from', 'to', 'batch'] as const).map((key): [Message, Path] => [samples.changes, [key]]),
      ...(['collection', 'id', 'dot', 'context', 'hlc', 'op'] as const).map((key): [Message, Path] => [
        samples.changes,
        ['batch', 1, key],
      ]),
      [samples.changes, ['batch', 0, 'op', 'type']],
      [samples.changes, ['batch', 0, 'op', 'value']],
      ...(['fields', 'base', 'stamps', 'floor'] as const).map((key): [Message, Path] => [
        samples.changes,
        ['batch', 1, 'op', key],
      ]),
      [samples.ack, ['space']],
      [samples.ack, ['upTo']],
      ...(['space', 'cursor', 'page', 'last', 'batch'] as const).map((key): [Message, Path] => [
        samples.snapshot,
        [key],
      ]),
      [samples.error, ['code']],
      [samples.error, ['message']],
      [samples.ping, ['space']],
      [samples.ping, ['id']],
      ...(['space', 'id', 'head'] as const).map((key): [Message, Path] => [samples.pong, [key]]),
    ]
    const optional: readonly [Message, Path][] = [
      [samples.hello, ['token']],
      [samples.error, ['space']],
      [samples.hello, ['spaces', 1]],
      [samples.hello, ['have', space]],
      [samples.changes, ['batch', 0, 'dot', 0]],
      [samples.changes, ['batch', 0, 'dot', 1]],
      [samples.changes, ['batch', 0, 'context', 'bob']],
      [samples.changes, ['batch', 1, 'op', 'stamps', 'tags']],
    ]

    it('a dropped required field is invalid-message', () => {
      fc.assert(
        fc.property(fc.constantFrom(...required), ([message, path]) => {
          expectRejected(
            decodeMessage(without(message, path)),
            ErrorCode.InvalidMessage,
            String(lastKey(path)),
          )
        }),
        runs,
      )
    })

    it('a field of the wrong type is invalid-message', () => {
      const value = fc.oneof(
        fc.constant(null),
        fc.boolean(),
        fc.integer(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.string(),
        fc.array(fc.jsonValue(), { maxLength: 3 }),
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
      )
      fc.assert(
        fc.property(fc.constantFrom(...required, ...optional), value, ([message, path], replacement) => {
          const original = parentOf(raw(message), path)[lastKey(path)]
          fc.pre(kind(original) !== kind(replacement))
          fc.pre(!(lastKey(path) === 'floor' && replacement === null))
          expectRejected(decodeMessage(edited(message, path, replacement)), ErrorCode.InvalidMessage)
        }),
        runs,
      )
    })

    it('a truncated frame is malformed-frame', () => {
      const frames = sampleList.map(([, message]) => encodeMessage(message))
      fc.assert(
        fc.property(fc.constantFrom(...frames), fc.nat(), (frame, at) => {
          expectRejected(decodeMessage(frame.slice(0, at % frame.length)), ErrorCode.MalformedFrame)
        }),
        runs,
      )
    })
  })

  describe('malformed-frame', () => {
    it.each([
      ['text that is not JSON', 'hello?'],
      ['JSON null', 'null'],
      ['a JSON array', '[{"type":"ack"}]'],
      ['a JSON number', '42'],
      ['a JSON string', '"ack"'],
      ['an empty frame', ''],
    ])('refuses %s', (_, frame) => {
      expectRejected(decodeMessage(frame), ErrorCode.MalformedFrame)
    })

    it.each([
      ['a number', 42],
      ['null', null],
      ['undefined', undefined],
      ['bytes', new TextEncoder().encode(encodeMessage(samples.ack))],
      ['an object', samples.ack],
    ])('refuses a frame that is not text: %s', (_, frame) => {
      expectRejected(decodeMessage(frame), ErrorCode.MalformedFrame, 'must be JSON text')
    })

    it('refuses 100 000 nested arrays without overflowing the stack', () => {
      const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
      expectRejected(decodeMessage(deep), ErrorCode.MalformedFrame)
      expectRejected(decodeMessage('['.repeat(1_000_000)), ErrorCode.MalformedFrame)
    })
  })

  describe('frame-too-large', () => {
    const frame = encodeMessage(samples.ack)

    it('accepts a frame of exactly the limit and refuses one character more', () => {
      expect(decodeMessage(frame, { ...DEFAULT_LIMITS, maxFrameBytes: frame.length }).ok).toBe(true)
      expectRejected(
        decodeMessage(frame, { ...DEFAULT_LIMITS, maxFrameBytes: frame.length - 1 }),
        ErrorCode.FrameTooLarge,
        `at most ${frame.length - 1}`,
      )
    })

    it('checks the size before parsing', () => {
      const limits = { ...DEFAULT_LIMITS, maxFrameBytes: 100 }
      expectRejected(decodeMessage('{'.repeat(101), limits), ErrorCode.FrameTooLarge)
    })
  })

  describe('message type', () => {
    it('refuses an unknown type with unknown-message', () => {
      expectRejected(decodeMessage('{"type":"gossip","peers":[]}'), ErrorCode.UnknownMessage, '"gossip"')
    })

    it('refuses a missing or non-string type with invalid-message', () => {
      expectRejected(decodeMessage('{"space":"s","upTo":1}'), ErrorCode.InvalidMessage, 'type: missing')
      expectRejected(decodeMessage('{"type":5}'), ErrorCode.InvalidMessage, 'type: expected')
    })

    it('reports a value whose getter throws as internal instead of throwing', () => {
      const hostile = {
        get type(): string {
          throw new Error('boom')
        },
      }
      expectRejected(validateMessage(hostile), ErrorCode.Internal, 'Error: boom')
    })

    it('does not read fields from a prototype', () => {
      expectRejected(validateMessage(Object.create(samples.ack)), ErrorCode.InvalidMessage, 'type: missing')
    })
  })

  describe('hello', () => {
    it('refuses another protocol version with unsupported-protocol, whatever else the frame holds', () => {
      expectRejected(
        decodeMessage(edited(samples.hello, ['protocol'], PROTOCOL_VERSION + 1)),
        ErrorCode.UnsupportedProtocol,
        `speaks protocol ${PROTOCOL_VERSION + 1}`,
      )
      expectRejected(
        decodeMessage('{"type":"hello","protocol":7,"peer":{"id":1}}'),
        ErrorCode.UnsupportedProtocol,
      )
    })

    it.each([0, -1, 1.5, '1', null, 2 ** 60])('refuses protocol %j with invalid-message', (protocol) => {
      expectRejected(
        decodeMessage(edited(samples.hello, ['protocol'], protocol)),
        ErrorCode.InvalidMessage,
        'hello.protocol',
      )
    })

    it('checks the spaces, the positions it has and the token', () => {
      const limits = { ...DEFAULT_LIMITS, maxSpaces: 2 }
      const cases: [Path, unknown, string][] = [
        [['spaces'], [], 'hello.spaces: is empty'],
        [['spaces'], [space, space], 'hello.spaces[1]: "team:board-1" is listed twice'],
        [['spaces'], ['a', 'b', 'c'], 'at most 2'],
        [['spaces', 1], '../etc', 'hello.spaces[1]: expected a space name'],
        [['have'], { [space]: 1, elsewhere: 2 }, 'hello.have: names "elsewhere"'],
        [['have'], { [space]: -1 }, 'hello.have.team:board-1: expected a non-negative safe integer'],
        [['have'], [], 'hello.have: expected an object'],
        [['replicaId'], 'not a replica!', 'hello.replicaId'],
        [['logs'], { elsewhere: 'log-1' }, 'hello.logs: names "elsewhere"'],
        [['logs'], { [space]: '' }, 'hello.logs.team:board-1: expected a log name of 1 to 64 characters'],
        [['logs'], { [space]: 'x'.repeat(65) }, 'expected a log name of 1 to 64 characters'],
        [['logs'], { [space]: 7 }, 'expected a log name'],
        [['logs'], 'log-1', 'hello.logs: expected an object'],
        [['maxFrame'], 0, 'hello.maxFrame: expected a positive whole number of bytes'],
        [['maxFrame'], -4096, 'hello.maxFrame'],
        [['maxFrame'], 65_536.5, 'hello.maxFrame'],
        [['maxFrame'], '65536', 'hello.maxFrame'],
        [['maxFrame'], null, 'hello.maxFrame'],
        [['readOnly'], space, 'hello.readOnly: expected a list of spaces that hello.spaces lists'],
        [['readOnly'], ['elsewhere'], 'hello.readOnly[0]: expected a space that hello.spaces lists'],
        [['readOnly'], [space, space], 'hello.readOnly[1]: "team:board-1" is listed twice'],
        [['readOnly'], [7], 'hello.readOnly[0]'],
        [['resume'], { elsewhere: { cursor: 4, after: 'notes\u0000a' } }, 'hello.resume: names "elsewhere"'],
        [['resume', space], 4, 'hello.resume.team:board-1: expected an object with cursor and after'],
        [
          ['resume', space, 'cursor'],
          0,
          'hello.resume.team:board-1.cursor: expected a positive whole log position',
        ],
        [['resume', space, 'cursor'], 2.5, 'hello.resume.team:board-1.cursor'],
        [['resume', space, 'after'], 'notes', 'hello.resume.team:board-1.after: expected a record key'],
        [['resume', space, 'after'], '\u0000a', 'hello.resume.team:board-1.after'],
        [['resume', space, 'after'], 'notes\u0000', 'hello.resume.team:board-1.after'],
        [['resume', space, 'after'], `notes\u0000${'x'.repeat(257)}`, 'hello.resume.team:board-1.after'],
        [['resume', space, 'after'], 7, 'hello.resume.team:board-1.after'],
      ]
      for (const [path, value, fragment] of cases) {
        expectRejected(
          decodeMessage(edited(samples.hello, path, value), limits),
          ErrorCode.InvalidMessage,
          fragment,
        )
      }
      expectRejected(
        decodeMessage(encodeMessage(samples.hello), { ...DEFAULT_LIMITS, maxTokenLength: 10 }),
        ErrorCode.InvalidMessage,
        'hello.token: 34 characters long; this side accepts at most 10',
      )
    })
  })

  describe('changes and snapshot', () => {
    it('refuses an empty or backwards range', () => {
      expectRejected(
        decodeMessage(edited(samples.changes, ['to'], 2)),
        ErrorCode.InvalidMessage,
        'changes.to',
      )
      expectRejected(
        decodeMessage(edited(samples.changes, ['from'], 7)),
        ErrorCode.InvalidMessage,
        'changes.to',
      )
    })

    it('refuses a batch longer than the limit with batch-too-large', () => {
      const limits = { ...DEFAULT_LIMITS, maxBatch: 2 }
      expectRejected(
        decodeMessage(encodeMessage(samples.changes), limits),
        ErrorCode.BatchTooLarge,
        'at most 2',
      )
      expectRejected(
        decodeMessage(encodeMessage({ ...samples.snapshot, batch: [put, firstPatch, remove] }), limits),
        ErrorCode.BatchTooLarge,
        'snapshot.batch',
      )
      expect(decodeMessage(encodeMessage(samples.snapshot), limits).ok).toBe(true)
    })

    it('names the path of a bad field inside a batch', () => {
      expectRejected(
        decodeMessage(edited(samples.changes, ['batch', 2, 'context', 'bob'], 0)),
        ErrorCode.InvalidMessage,
        'changes.batch[2].context.bob: expected a counter',
      )
      expectRejected(
        decodeMessage(edited(samples.snapshot, ['batch', 1, 'op', 'type'], 'merge')),
        ErrorCode.InvalidMessage,
        'snapshot.batch[1].op.type: expected "put", "patch" or "delete", got "merge"',
      )
      expectRejected(
        decodeMessage(edited(samples.changes, ['batch', 0, 'dot'], ['alice', 0])),
        ErrorCode.InvalidMessage,
        'changes.batch[0].dot',
      )
      expectRejected(
        decodeMessage(edited(samples.snapshot, ['last'], 'yes')),
        ErrorCode.InvalidMessage,
        'snapshot.last: expected true or false, got "yes"',
      )
    })
  })

  describe('snapshot', () => {
    it.each([
      ['a list', [7], 'snapshot.received: expected an object mapping replica ids to counters'],
      ['a number', 7, 'snapshot.received: expected an object'],
      ['null', null, 'snapshot.received: expected an object'],
      [
        'a key that is no replica id',
        { 'not a replica!': 1 },
        'snapshot.received: expected only replica ids',
      ],
      ['a negative counter', { alice: -1 }, 'snapshot.received.alice: expected a non-negative safe integer'],
      ['a fraction', { alice: 1.5 }, 'snapshot.received.alice'],
      ['a string counter', { alice: '7' }, 'snapshot.received.alice'],
    ])('refuses a received that is %s', (_, received, fragment) => {
      const frame = edited(samples.snapshotNamingReceived, ['received'], received)
      expectRejected(decodeMessage(frame), ErrorCode.InvalidMessage, fragment)
    })

    it('refuses a received naming more replicas than a version vector may', () => {
      const limits = { ...DEFAULT_LIMITS, maxVectorEntries: 1 }
      const received = { ...samples.snapshotNamingReceived, batch: [] }
      expectRejected(
        decodeMessage(encodeMessage(received), limits),
        ErrorCode.InvalidMessage,
        'snapshot.received: has 2 entries; this side accepts at most 1',
      )
      const one = { ...received, received: { [alice]: 7 } }
      expect(decodeMessage(encodeMessage(one), limits)).toEqual({ ok: true, message: one })
    })
  })

  describe('ack', () => {
    it.each([false, 'true', 1, null])('refuses resend %j: the field is true or absent', (resend) => {
      const frame = edited(samples.resendAck, ['resend'], resend)
      expectRejected(decodeMessage(frame), ErrorCode.InvalidMessage, 'ack.resend: expected true')
    })

    it('takes the snapshot to resume only with resend, and checks it', () => {
      const { resume } = samples.resumeAck
      expectRejected(
        decodeMessage(JSON.stringify({ ...samples.ack, resume })),
        ErrorCode.InvalidMessage,
        'ack.resume: expected no field without resend',
      )
      expectRejected(
        decodeMessage(edited(samples.resumeAck, ['resume', 'cursor'], -1)),
        ErrorCode.InvalidMessage,
        'ack.resume.cursor: expected a positive whole log position',
      )
      expectRejected(
        decodeMessage(edited(samples.resumeAck, ['resume', 'after'], 'n-17')),
        ErrorCode.InvalidMessage,
        'ack.resume.after: expected a record key',
      )
    })
  })

  describe('changes', () => {
    it.each([false, 'true', 1, null])('refuses sparse %j: the field is true or absent', (sparse) => {
      const frame = edited(samples.sparseChanges, ['sparse'], sparse)
      expectRejected(decodeMessage(frame), ErrorCode.InvalidMessage, 'changes.sparse: expected true')
    })

    it('refuses a context that covers the change its own dot', () => {
      const frame = edited(samples.changes, ['batch', 1, 'context', 'bob'], 6)
      expectRejected(
        decodeMessage(frame),
        ErrorCode.InvalidMessage,
        "changes.batch[1].context: covers the change's own dot",
      )
      expect(validateChange({ ...put, context: { alice: 3 } })).toContain('change.context: covers')
    })

    it('refuses a stamp from another replica than the dot', () => {
      const frame = edited(samples.changes, ['batch', 0, 'hlc'], stamp(t0, 0, bob))
      expectRejected(decodeMessage(frame), ErrorCode.InvalidMessage, 'changes.batch[0].hlc: stamped by bob')
    })

    it('refuses a patch whose base overlaps its fields', () => {
      const frame = edited(samples.changes, ['batch', 1, 'op', 'base', 'title'], 'Old')
      expectRejected(
        decodeMessage(frame),
        ErrorCode.InvalidMessage,
        'changes.batch[1].op.base: holds "title"',
      )
    })

    it('refuses stamps of fields the base does not hold, and a bad floor', () => {
      expectRejected(
        decodeMessage(edited(samples.changes, ['batch', 1, 'op', 'stamps', 'title'], stamp(t0, 0, alice))),
        ErrorCode.InvalidMessage,
        'op.stamps: stamps "title", which base does not hold',
      )
      expectRejected(
        decodeMessage(edited(samples.changes, ['batch', 1, 'op', 'floor'], 'yesterday')),
        ErrorCode.InvalidMessage,
        'changes.batch[1].op.floor: expected a clock stamp',
      )
    })

    it('refuses a put whose value is not a JSON object', () => {
      for (const value of [[1, 2], 'text', null]) {
        expectRejected(
          decodeMessage(edited(samples.changes, ['batch', 0, 'op', 'value'], value)),
          ErrorCode.InvalidMessage,
          'changes.batch[0].op.value: expected a JSON object',
        )
      }
      expect(validateChange({ ...put, op: { type: 'put', value: { when: new Date(0) } } })).toContain(
        'change.op.value.when is a Date instance',
      )
    })

    it('refuses a context with more entries than the limit', () => {
      const limits = { ...DEFAULT_LIMITS, maxVectorEntries: 1 }
      expectRejected(
        decodeMessage(encodeMessage(samples.changes), limits),
        ErrorCode.InvalidMessage,
        'changes.batch[0].context: has 2 entries; this side accepts at most 1',
      )
    })

    it('refuses values nested deeper than the JSON depth limit without throwing', () => {
      const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
      const frame = encodeMessage(samples.changes).replace('"title":"Groceries"', `"title":${deep}`)
      expectRejected(decodeMessage(frame), ErrorCode.InvalidMessage, 'nested deeper than 64 levels')
    })

    it('refuses a put value that is not plain JSON, naming where, and copies one that is', () => {
      const withValue = (value: unknown): Message => ({
        type: 'changes',
        space,
        from: 0,
        to: 1,
        batch: [{ ...put, op: { type: 'put', value: value as JsonObject } }],
      })
      const sparse: unknown[] = [1]
      sparse[2] = 3
      const cyclic: Record<string, unknown> = { title: 'loop' }
      cyclic.self = { again: cyclic }
      const cases: [unknown, string][] = [
        [cyclic, 'changes.batch[0].op.value.self.again is a cycle back to an enclosing value'],
        [{ n: Number.NaN }, 'changes.batch[0].op.value.n is NaN, which JSON cannot represent'],
        [{ list: sparse }, 'changes.batch[0].op.value.list[1] is a hole in a sparse array'],
        [{ at: new Date(0) }, 'changes.batch[0].op.value.at is a Date instance'],
        [{ gone: undefined }, 'changes.batch[0].op.value.gone is a undefined'],
      ]
      for (const [value, why] of cases) {
        expectRejected(validateMessage(withValue(value)), ErrorCode.InvalidMessage, why)
      }
      const value = { title: 'x', tags: ['a', { b: [null, -0, true] }] }
      const result = validateMessage(withValue(value))
      if (!result.ok || result.message.type !== 'changes') throw new Error('expected changes')
      const copied = result.message.batch[0]?.op
      expect(copied).toEqual({ type: 'put', value })
      expect(copied?.type === 'put' && copied.value).not.toBe(value)
      expect(copied?.type === 'put' && (copied.value.tags as unknown[])[1]).not.toBe(value.tags[1])
    })

    it('accepts valid changes through validateChange', () => {
      for (const change of [put, patch, firstPatch, remove]) expect(validateChange(change)).toBeUndefined()
      expect(validateChange('put')).toBe('change: expected a change object, got "put"')
    })
  })

  describe('__proto__', () => {
    const pollutedValue = (value: string): string =>
      encodeMessage(samples.changes).replace('"title":"Groceries"', `"title":"Groceries",${value}`)

    it('refuses record values holding a __proto__ key, at any depth, and pollutes nothing', () => {
      expectRejected(
        decodeMessage(pollutedValue('"__proto__":{"polluted":true}')),
        ErrorCode.InvalidMessage,
        'changes.batch[0].op.value has a "__proto__" key',
      )
      expectRejected(
        decodeMessage(pollutedValue('"list":[{"ok":1},{"__proto__":{"polluted":true}}]')),
        ErrorCode.InvalidMessage,
        'changes.batch[0].op.value.list[1] has a "__proto__" key',
      )
      expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false)
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    })

    it('refuses __proto__ as a space, replica or field-stamp key', () => {
      const patchFrame = encodeMessage(samples.changes).replace('"stamps":{', '"stamps":{"__proto__":{},')
      expectRejected(decodeMessage(patchFrame), ErrorCode.InvalidMessage, 'op.stamps: stamps "__proto__"')
      const contextFrame = encodeMessage(samples.changes).replace('"context":{', '"context":{"__proto__":1,')
      expectRejected(decodeMessage(contextFrame), ErrorCode.InvalidMessage, 'changes.batch[0].context')
      const helloFrame = encodeMessage(samples.hello).replace('"have":{', '"have":{"__proto__":{"x":1},')
      expectRejected(decodeMessage(helloFrame), ErrorCode.InvalidMessage, 'hello.have: names "__proto__"')
    })

    it('ignores a __proto__ key at the top level of a message', () => {
      const result = decodeMessage('{"type":"ack","space":"team:board-1","upTo":6,"__proto__":{"upTo":99}}')
      expect(result).toStrictEqual({ ok: true, message: samples.ack })
      if (!result.ok) return
      expect(Object.getPrototypeOf(result.message)).toBe(Object.prototype)
      expect(Object.hasOwn(result.message, '__proto__')).toBe(false)
    })

    it('copies null-prototype values into ordinary objects', () => {
      const value = Object.assign(Object.create(null) as Record<string, unknown>, { title: 'x' })
      const result = validateMessage({
        type: 'changes',
        space,
        from: 0,
        to: 3,
        batch: [{ ...put, op: { type: 'put', value } }],
      })
      expect(result.ok).toBe(true)
      if (!result.ok || result.message.type !== 'changes') return
      const op = result.message.batch[0]?.op
      if (op?.type !== 'put') throw new Error('the batch holds one put')
      expect(Object.getPrototypeOf(op.value)).toBe(Object.prototype)
      expect(op.value).toStrictEqual({ title: 'x' })
    })
  })

  describe('error', () => {
    it('reads an unknown code from a newer peer as internal, keeping the code in the message', () => {
      const result = decodeMessage('{"type":"error","code":"quota-exceeded","message":"space is full"}')
      expect(result).toStrictEqual({
        ok: true,
        message: { type: 'error', code: ErrorCode.Internal, message: 'quota-exceeded: space is full' },
      })
    })

    it('refuses a code that is not a non-empty string and a bad space', () => {
      expectRejected(
        decodeMessage('{"type":"error","code":"","message":"x"}'),
        ErrorCode.InvalidMessage,
        'error.code',
      )
      expectRejected(
        decodeMessage('{"type":"error","code":7,"message":"x"}'),
        ErrorCode.InvalidMessage,
        'error.code',
      )
      expectRejected(
        decodeMessage('{"type":"error","code":"forbidden","message":"x","space":""}'),
        ErrorCode.InvalidMessage,
        'error.space',
      )
      expectRejected(
        decodeMessage('{"type":"error","code":"frame-too-large","message":"x","maxFrame":0.5}'),
        ErrorCode.InvalidMessage,
        'error.maxFrame: expected a positive whole number of bytes',
      )
    })

    it('cuts long messages, never inside a surrogate pair', () => {
      const long = `${'a'.repeat(MAX_ERROR_MESSAGE_LENGTH - 2)}😀${'b'.repeat(5000)}`
      const result = decodeMessage(JSON.stringify({ type: 'error', code: 'internal', message: long }))
      expect(result.ok).toBe(true)
      if (!result.ok || result.message.type !== 'error') return
      expect(result.message.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_LENGTH)
      expect(result.message.message.endsWith('…')).toBe(true)
      expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(result.message.message)).toBe(false)
      expect(errorMessage(ErrorCode.Internal, long)).toStrictEqual(result.message)
    })
  })
})
