import { freezeJson, type JsonObject, type PresenceEvent, type ReplicaId } from '@chorus/core'
import type { Frozen } from './collection.js'

/** Another replica's presence under one key: one tab of it, as it set it (`Replica.setPresence`). */
export interface PresencePeer {
  readonly replicaId: ReplicaId
  readonly key: string
  readonly state: Frozen<JsonObject>
}

/** A peer as the leading tab passes it to the others (structured-cloned over the channel). */
export interface PresencePeerWire {
  readonly replicaId: string
  readonly key: string
  readonly state: JsonObject
}

function order(a: PresencePeer, b: PresencePeer): number {
  if (a.replicaId !== b.replicaId) return a.replicaId < b.replicaId ? -1 : 1
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0
}

/**
 * What this replica has heard of the others' presence: kept from the engine's events by the
 * tab that holds the connection, or taken whole from its reports by the others. `list` is
 * one frozen array, the same until something changes.
 */
export class PresenceBoard {
  readonly #peers = new Map<string, PresencePeer>()
  #list: readonly PresencePeer[] = Object.freeze([])

  get list(): readonly PresencePeer[] {
    return this.#list
  }

  /** Takes one engine event; true when the list changed. */
  apply(event: PresenceEvent): boolean {
    if (event.type === 'reset') {
      if (this.#peers.size === 0) return false
      this.#peers.clear()
      return this.#rebuild()
    }
    const id = `${event.replicaId}\u0000${event.key}`
    if (event.state === null) {
      if (!this.#peers.delete(id)) return false
    } else {
      this.#peers.set(id, {
        replicaId: event.replicaId,
        key: event.key,
        state: freezeJson(event.state) as Frozen<JsonObject>,
      })
    }
    return this.#rebuild()
  }

  /** Takes the leading tab's list whole; true when it differs from what is held. */
  replace(peers: readonly PresencePeerWire[]): boolean {
    const next = new Map<string, PresencePeer>()
    for (const peer of peers) {
      next.set(`${peer.replicaId}\u0000${peer.key}`, {
        replicaId: peer.replicaId as ReplicaId,
        key: peer.key,
        state: freezeJson(peer.state) as Frozen<JsonObject>,
      })
    }
    if (sameWire(this.#list, [...next.values()].sort(order))) return false
    this.#peers.clear()
    for (const [id, peer] of next) this.#peers.set(id, peer)
    return this.#rebuild()
  }

  #rebuild(): true {
    this.#list = Object.freeze([...this.#peers.values()].sort(order))
    return true
  }
}

function sameWire(a: readonly PresencePeer[], b: readonly PresencePeer[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as PresencePeer
    const y = b[i] as PresencePeer
    if (x.replicaId !== y.replicaId || x.key !== y.key || JSON.stringify(x.state) !== JSON.stringify(y.state))
      return false
  }
  return true
}

/** Checks a list of peers another tab sent: messages on a channel shared by name are checked. */
export function isPeerList(value: unknown): value is PresencePeerWire[] {
  return (
    Array.isArray(value) &&
    value.every(
      (peer) =>
        typeof peer === 'object' &&
        peer !== null &&
        typeof (peer as PresencePeerWire).replicaId === 'string' &&
        typeof (peer as PresencePeerWire).key === 'string' &&
        typeof (peer as PresencePeerWire).state === 'object' &&
        (peer as PresencePeerWire).state !== null,
    )
  )
}
