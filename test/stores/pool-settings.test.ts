// The PostgreSQL pool's size and timeouts come from CLOUDPAY_DB_* and reach the server's session
// settings (PGlite is one connection and has none of them).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sql } from 'kysely'
import { loadConfig } from '../../services/runtime/config.ts'
import { openDatabase } from '../../services/runtime/database.ts'
import { DATABASE_KIND, freshDatabase } from '../helpers/database.ts'

test('statement and idle-in-transaction timeouts are set on every pooled session', { skip: DATABASE_KIND !== 'postgres' && 'PostgreSQL only' }, async () => {
  const fresh = await freshDatabase()
  const { database } = loadConfig({ CLOUDPAY_DB_POOL_SIZE: '2', CLOUDPAY_DB_STATEMENT_TIMEOUT_MS: '300', CLOUDPAY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '4000' })
  const shared = await openDatabase({ ...fresh.location, pool: database })
  try {
    const show = async (name: string) => (await sql<{ value: string }>`select current_setting(${name}) as value`.execute(shared.db)).rows[0]!.value
    assert.equal(await show('statement_timeout'), '300ms')
    assert.equal(await show('idle_in_transaction_session_timeout'), '4s')
    // A statement over the limit is cancelled by the server (57014), not left to hold a connection.
    await assert.rejects(sql`select pg_sleep(2)`.execute(shared.db), (error: unknown) => (error as { code?: string }).code === '57014')
    // Two connections at most: a third concurrent query waits for one instead of opening more.
    const count = sql<{ n: string }>`select count(*)::text as n from pg_stat_activity where datname = current_database() and backend_type = 'client backend'`
    const busy = [sql`select pg_sleep(0.2)`.execute(shared.db), sql`select pg_sleep(0.2)`.execute(shared.db)]
    const seen = await count.execute(shared.db)
    await Promise.all(busy)
    // Two pool connections (the count ran on one of them once freed) plus no LISTEN session yet.
    assert.ok(Number(seen.rows[0]!.n) <= 2, `${seen.rows[0]!.n} sessions`)
  } finally {
    await shared.release()
    await fresh.drop()
  }
})
