import { formatHlc, type HlcStamp } from '../src/hlc.js'
import { asReplicaId, asSpaceId, type ReplicaId } from '../src/ids.js'

/** The replicas, space and clock the codec tests build their changes with. */
export const alice = asReplicaId('alice')
export const bob = asReplicaId('bob')
export const carol = asReplicaId('carol')
export const space = asSpaceId('team:board-1')
export const t0 = 1_700_000_000_000

export function stamp(wall: number, counter: number, replica: ReplicaId): HlcStamp {
  return formatHlc({ wall, counter, replica })
}
