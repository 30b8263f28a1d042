import { existsSync } from 'node:fs'
import { Client, Pool } from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PostgresServer, startPostgres } from './support/postgres-server.js'

/** Runs `sql` once on a fresh connection to `url`. */
async function queryOnce(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<Record<string, unknown>>(sql, values)).rows
  } finally {
    await client.end()
  }
}

describe('startPostgres', () => {
  let server: PostgresServer | undefined

  beforeAll(async () => {
    server = await startPostgres()
  }, 60_000)

  afterAll(async () => {
    await server?.stop()
  }, 30_000)

  it('serves its url through a pg Pool, on a unix socket only, with fsync on', async () => {
    const pool = new Pool({ connectionString: server!.url })
    try {
      const settings = await pool.query<{ fsync: string; listen: string; socket: string; db: string }>(
        `SELECT current_setting('fsync') AS fsync, current_setting('listen_addresses') AS listen,
                current_setting('unix_socket_directories') AS socket, current_database() AS db`,
      )
      expect(settings.rows[0]).toEqual({
        fsync: 'on',
        listen: '',
        socket: server!.config.host,
        db: 'postgres',
      })
      const shown = await pool.query<{ fsync: string }>('SHOW fsync')
      expect(shown.rows[0]?.fsync).toBe('on')
    } finally {
      await pool.end()
    }
    const viaConfig = new Client(server!.config)
    await viaConfig.connect()
    try {
      expect((await viaConfig.query<{ user: string }>('SELECT current_user AS user')).rows[0]?.user).toBe(
        'chorus',
      )
    } finally {
      await viaConfig.end()
    }
  })

  it('creates separate empty databases', async () => {
    const first = await server!.createDatabase()
    const second = await server!.createDatabase('second_db')
    expect(first).not.toBe(second)
    expect(second).toContain('/second_db?')

    await queryOnce(first, 'CREATE TABLE notes (id text PRIMARY KEY, body text NOT NULL)')
    await queryOnce(first, 'INSERT INTO notes (id, body) VALUES ($1, $2)', ['a', 'hello'])
    expect(await queryOnce(first, 'SELECT id, body FROM notes')).toEqual([{ id: 'a', body: 'hello' }])

    expect(await queryOnce(second, `SELECT to_regclass('public.notes') AS notes`)).toEqual([{ notes: null }])
    await expect(queryOnce(second, 'SELECT * FROM notes')).rejects.toThrow(/relation "notes" does not exist/)
  })

  it('stop() shuts the server down and removes its directory', async () => {
    const dir = server!.config.host
    expect(existsSync(dir)).toBe(true)
    await server!.stop()
    expect(existsSync(dir)).toBe(false)
    await expect(queryOnce(server!.url, 'SELECT 1')).rejects.toThrow()
    await server!.stop() // a second stop is a no-op
  })
})
