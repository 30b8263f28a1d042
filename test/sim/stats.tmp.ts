import { runScenario } from './workload.js'

const tot = {
  writes: 0,
  lost: 0,
  dup: 0,
  delivered: 0,
  blocked: 0,
  conflictsSeen: 0,
  snapshots: 0,
  wipes: 0,
  crashes: 0,
  compact: 0,
}
for (let seed = 1; seed <= 100; seed++) {
  const r = await runScenario(seed, 'manual')
  const s = r.cluster.net.stats
  tot.writes += r.cluster.writes.length
  tot.lost += s.lost
  tot.dup += s.duplicated
  tot.delivered += s.delivered
  tot.blocked += s.blocked
  tot.wipes += r.actions.filter((a) => a.startsWith('wipe')).length
  tot.crashes += r.actions.filter((a) => a.startsWith('crash')).length
  tot.compact += r.actions.filter((a) => a.startsWith('compact')).length
  if (seed <= 3) console.log(seed, r.replicas, r.actions.join('; '), s, r.cluster.errors.length)
}
console.log(tot)
