import type { JsonObject, ResolverKind } from '@chorus/core'
import { createSimCluster, type SimCluster } from '@chorus/testkit'

/** What each replica read at the end of the story. */
export interface StoryOutcome {
  readonly resolver: ResolverKind
  readonly values: Record<string, JsonObject | undefined>
  readonly conflictsBeforeSettling: Record<string, number>
  readonly conflictsAtEnd: Record<string, number>
  readonly converged: boolean
  readonly problems: readonly string[]
}

const NOTE = 'groceries'
const PEOPLE = ['alice', 'bob', 'carol'] as const

function show(value: JsonObject | undefined): string {
  return value === undefined ? '(deleted)' : JSON.stringify(value)
}

async function readAll(cluster: SimCluster): Promise<Record<string, JsonObject | undefined>> {
  const out: Record<string, JsonObject | undefined> = {}
  for (const name of PEOPLE) out[name] = await cluster.read(name, 'notes', NOTE)
  return out
}

async function conflictCounts(cluster: SimCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const name of PEOPLE) out[name] = (await cluster.engine(name)?.conflicts())?.length ?? 0
  return out
}

/**
 * Three replicas share a note, are cut off from the relay and from each other, each edit
 * it differently, then heal: the story `pnpm demo` tells once per resolver.
 */
export async function runPartitionStory(
  resolver: ResolverKind,
  print: (line: string) => void = () => {},
): Promise<StoryOutcome> {
  const cluster = await createSimCluster({
    seed: 7,
    replicas: PEOPLE.length,
    names: PEOPLE,
    resolvers: { notes: resolver },
    faults: { latencyMs: 30, jitterMs: 20 },
  })
  print(`\n=== resolver: ${resolver} ${'='.repeat(50 - resolver.length)}`)
  await cluster.write('alice', 'notes', NOTE, {
    type: 'put',
    value: { title: 'Groceries', body: 'milk', done: false },
  })
  await cluster.settle()
  print(`synced        every replica reads ${show(await cluster.read('carol', 'notes', NOTE))}`)

  cluster.net.partition([['hub'], ['alice'], ['bob'], ['carol']])
  print('partition     alice | bob | carol | relay: nobody can reach anybody')
  const edits: [string, JsonObject][] = [
    ['alice', { title: 'Groceries for Sunday', body: 'milk, bread' }],
    ['bob', { body: 'milk, eggs' }],
    ['carol', { done: true }],
  ]
  for (const [name, fields] of edits) {
    await cluster.run(1000)
    await cluster.write(name, 'notes', NOTE, { type: 'patch', fields })
    print(`${name.padEnd(13)} patches ${JSON.stringify(fields)} while offline`)
  }
  await cluster.run(5000)
  for (const [name, value] of Object.entries(await readAll(cluster))) {
    print(`  ${name.padEnd(11)} reads ${show(value)}`)
  }

  const start = cluster.net.now()
  const converged = await cluster.settle()
  print(`heal          the network is back; settled in ${cluster.net.now() - start} ms of virtual time`)
  const conflictsBeforeSettling = await conflictCounts(cluster)
  for (const [name, value] of Object.entries(await readAll(cluster))) {
    const conflicts = conflictsBeforeSettling[name] ?? 0
    print(
      `  ${name.padEnd(11)} reads ${show(value)}${conflicts > 0 ? `  + ${conflicts} conflict to settle` : ''}`,
    )
  }

  if (resolver === 'manual') {
    const conflict = (await cluster.engine('bob')?.conflicts())?.[0]
    if (conflict !== undefined) {
      print(`conflict      ${conflict.versions.length} versions of the note:`)
      for (const version of conflict.versions)
        print(`  from ${version.replicaId.padEnd(6)} ${show(version.value ?? undefined)}`)
      const keep = conflict.versions.find((version) => version.replicaId === 'alice')?.value
      if (keep !== null && keep !== undefined) {
        await cluster.write('bob', 'notes', NOTE, { type: 'put', value: keep })
        print(`bob           keeps alice's version; the choice syncs to everyone`)
        await cluster.settle()
        for (const [name, value] of Object.entries(await readAll(cluster))) {
          print(`  ${name.padEnd(11)} reads ${show(value)}`)
        }
      }
    }
  }
  const verdict = await cluster.check()
  print(
    verdict.ok
      ? 'checked       converged: same versions and values everywhere, no acknowledged write lost'
      : `checked       PROBLEMS: ${verdict.problems.join('; ')}`,
  )
  return {
    resolver,
    values: await readAll(cluster),
    conflictsBeforeSettling,
    conflictsAtEnd: await conflictCounts(cluster),
    converged: converged && verdict.ok,
    problems: verdict.problems,
  }
}
