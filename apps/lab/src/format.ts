import type { Scoreboard } from './model/index.js'

/** `850 ms`, `12.35 s`: a virtual time or duration, precise enough to tell messages apart. */
export function formatTime(ms: number): string {
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}

/** `n1–n2`: how a link is named on the page, in its controls' accessible names too. */
export function linkName(a: string, b: string): string {
  return `${a}–${b}`
}

/** `1/10×`, `1×`, `4×`: a playback speed (virtual ms per wall-clock ms). */
export function formatSpeed(speed: number): string {
  if (speed >= 1) return `${Number(speed.toFixed(2))}×`
  return `1/${Math.round(1 / speed)}×`
}

/** A figure of the scoreboard: its label, and whether a non-zero value is a failure to notice. */
export interface MetricSpec {
  /** A numeric figure (the list of lost writes is shown apart). */
  readonly key: Exclude<keyof Scoreboard, 'lostWrites'>
  readonly label: string
  /** The figure is bad when above this (leaders: more than one). */
  readonly badAbove?: number
  readonly help: string
}

/** The scoreboard's figures, in the order the page shows them. */
export const METRICS: readonly MetricSpec[] = [
  {
    key: 'acknowledgedWrites',
    label: 'Acknowledged writes',
    help: 'writes a client was told succeeded; for multi-leader, local writes (a resolve among them) once the relay holds them',
  },
  {
    key: 'lostAcknowledgedWrites',
    label: 'Acknowledged writes lost',
    badAbove: 0,
    help: 'acknowledged, then missing from what the cluster keeps: the latest log an election would keep, a node down included (single-leader), every replica, on its disk if down (quorum), every replica (multi-leader)',
  },
  { key: 'staleReads', label: 'Stale reads', badAbove: 0, help: 'reads that missed a finished write' },
  { key: 'conflicts', label: 'Conflicts', badAbove: 0, help: 'concurrent versions of one key' },
  {
    key: 'divergentReplicas',
    label: 'Divergent replicas',
    badAbove: 0,
    help: 'replicas whose data differs from the reference; single-leader: nodes whose history departs from it (a follower merely behind shows its lag instead)',
  },
  { key: 'leaders', label: 'Leaders', badAbove: 1, help: 'nodes that believe they lead' },
  {
    key: 'rejectedWrites',
    label: 'Rejected writes',
    help: 'fenced, no leader, no quorum, or sent to a node that does not lead',
  },
  { key: 'openConflicts', label: 'Open conflicts', help: 'conflicts waiting for a person to choose' },
]

/** Whether `value` of `metric` is a failure the page should make stand out. */
export function isBad(metric: MetricSpec, value: number): boolean {
  return metric.badAbove !== undefined && value > metric.badAbove
}
