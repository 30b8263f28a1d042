import type { ErrorCode } from '@chorus/core'
import type { NodeId } from './node-id.js'

/**
 * What a node machine asks its runtime to do, performed in order.
 *
 * - `persist` appends records to the node's {@link NodeStorage}. The runtime must wait until
 *   the append is durable before performing any later effect of the same step, or of a later
 *   step: a follower's acknowledgement, a leader's reply to a client, a vote all follow the
 *   record that makes them true. If the append is fenced or fails, the runtime drops the
 *   remaining effects and restarts the node from its storage (its in-memory state assumed the
 *   append). With `replace`, the records are a checkpoint: with the records that follow them,
 *   they rebuild the node by themselves, so storage drops everything stored before them.
 * - `send` delivers a message to another node (at most once, in any order: machines tolerate
 *   loss, duplication and reordering). An `early` send is the one exception to the order: the
 *   runtime performs it without waiting for any persist, of its step or an earlier one, to be
 *   durable (the runtimes perform a step's early sends first). A machine marks a send early only when
 *   a crash that loses those persists after the message left leaves nothing it says false
 *   (the quorum design's stores: see `Incarnation`; a single-leader leader's appends, which
 *   claim no commit beyond what `settle` said is durable).
 * - `reply` answers a client on the connection its request came in.
 *
 * @see NodeStorage in `storage.ts` for the durability and fencing contract.
 */
export type NodeEffect<TMessage, TReply, TRecord> =
  | {
      readonly type: 'persist'
      readonly records: readonly TRecord[]
      readonly epoch: number | null
      readonly replace?: boolean
    }
  | { readonly type: 'send'; readonly to: NodeId; readonly message: TMessage; readonly early?: boolean }
  | { readonly type: 'reply'; readonly client: string; readonly reply: TReply }

/**
 * The inputs every node design takes, each carrying the node's clock `now`: a message from a
 * peer, a request from a client, a timer tick. A design may add inputs of its own (the
 * single-leader operator's `promote`). A client's request arrives once for each time the
 * client sent it, as over its TCP connection (messages between nodes may come twice): a
 * runtime whose transport duplicates frames drops the copies (see `SimNodeHost`).
 */
export type NodeInput<TMessage, TRequest> =
  | { readonly type: 'message'; readonly now: number; readonly from: NodeId; readonly message: TMessage }
  | { readonly type: 'request'; readonly now: number; readonly client: string; readonly request: TRequest }
  | { readonly type: 'tick'; readonly now: number }

/** The result of one step: the next state and the effects to perform. */
export interface StepResult<TState, TEffect> {
  readonly state: TState
  readonly effects: readonly TEffect[]
}

/**
 * The error reply a runtime sends a client whose frame the node refused.
 *
 * A runtime makes it when decoding or `step` throws a `ChorusError` for a client's frame. `id`
 * is the request id when one could be read. The one a machine builds is a quorum home
 * replica's refusal of a put another node handed it: only the home can judge that put's
 * context, and the refusal travels back to the client's node in a `coordinated` message.
 */
export interface ErrorReply {
  readonly type: 'error'
  readonly id: string | null
  readonly code: ErrorCode
  readonly message: string
  /**
   * Whether the request may still take effect (a node whose storage failed under a write it
   * had begun to replicate); absent: it did not.
   */
  readonly maybeApplied?: boolean
}

/**
 * A node design, as a runtime drives it: a pure machine plus the constructors of its inputs.
 *
 * `step` and `recover` are pure (no clock, randomness, timer or I/O: time arrives in inputs),
 * so the same machine runs in `SimNetwork` under virtual time and, later, in a Node process
 * over sockets. `step` validates its input and throws a `ChorusError` for a malformed one,
 * leaving the given state untouched.
 */
export interface NodeMachine<TState, TInput, TMessage, TReply, TRecord> extends NodeInputs<TInput> {
  /** Rebuilds a node from its durable records after a start or a crash; `now` starts its timers. */
  recover(records: readonly TRecord[], now: number): TState
  step(state: TState, input: TInput): StepResult<TState, NodeEffect<TMessage, TReply, TRecord>>
  /**
   * The state once every `persist` emitted so far is durable. Runtimes call it after each
   * commit (pure, like `step`); a design whose early sends depend on what is on its disk
   * learns it here. Optional: without it nothing is told.
   */
  settle?(state: TState): TState
}

/** How a runtime builds a machine's inputs from what arrives. */
export interface NodeInputs<TInput> {
  /** The input for a message from another node (validated by `step`). */
  messageInput(now: number, from: NodeId, message: unknown): TInput
  /** The input for a client's request (validated by `step`). */
  requestInput(now: number, client: string, request: unknown): TInput
  /** The input for a timer tick. */
  tickInput(now: number): TInput
}

/**
 * The input builders of a design whose inputs are {@link NodeInput}s.
 *
 * The message or request goes in unread, so the result is only claimed to be a `TInput`: the
 * claim holds because `step` validates every input before it reads one.
 */
export function nodeInputs<TInput>(): NodeInputs<TInput> {
  return {
    messageInput: (now, from, message) => ({ type: 'message', now, from, message }) as TInput,
    requestInput: (now, client, request) => ({ type: 'request', now, client, request }) as TInput,
    tickInput: (now) => ({ type: 'tick', now }) as TInput,
  }
}
