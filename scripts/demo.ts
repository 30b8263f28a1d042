/**
 * `pnpm demo`: three replicas write while partitioned, heal and converge — once per
 * resolver — on the real engines over a simulated network in virtual time.
 */
import { runPartitionStory } from './partition-story.js'

const lines: string[] = []
let failed = false
for (const resolver of ['lww', 'merge', 'manual'] as const) {
  const outcome = await runPartitionStory(resolver, (line) => lines.push(line))
  failed ||= !outcome.converged
}
process.stdout.write(`${lines.join('\n')}\n`)
process.exitCode = failed ? 1 : 0
