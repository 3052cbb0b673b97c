// Statements run prepared on PostgreSQL (services/runtime/prepared-statements.ts): parsed once per
// connection, and still right when another replica's migration changes a table under them, when a
// named statement fails, or when they are turned off.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { sql } from 'kysely'
import pg from 'pg'
import { DEFAULT_DATABASE_SETTINGS } from '../../services/runtime/config.ts'
import { inTransaction, openDatabase, type SharedDatabase } from '../../services/runtime/database.ts'
import { DATABASE_KIND, type FreshDatabase, freshDatabase } from '../helpers/database.ts'

const POSTGRES_ONLY = { skip: DATABASE_KIND !== 'postgres' && 'PostgreSQL only: the embedded database has no wire protocol' }
/** One connection, so that pg_prepared_statements (a session's own) shows what the pool's statements left. */
const ONE_CONNECTION = { ...DEFAULT_DATABASE_SETTINGS, poolSize: 1 }

let fresh: FreshDatabase
let database: SharedDatabase
before(async () => {
  if (DATABASE_KIND !== 'postgres') return
  fresh = await freshDatabase()
  database = await openDatabase({ ...fresh.location, pool: ONE_CONNECTION })
  await sql`create table prepared_t (id int primary key, note text not null)`.execute(database.db)
  await sql`insert into prepared_t values (1, 'one'), (2, 'two')`.execute(database.db)
})
after(async () => {
  await database?.release()
  await fresh?.drop()
})

/** Another replica: its own session, as a migration it runs would be. */
async function elsewhere(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: fresh.location.databaseUrl })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}

const preparedLike = async (db: SharedDatabase['db'], fragment: string): Promise<number> => {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements where statement like ${`%${fragment}%`} and statement not like '%pg_prepared_statements%'`.execute(db)
  return rows[0]!.n
}

test('a statement is parsed once per connection and runs prepared from then on', POSTGRES_ONLY, async () => {
  for (const id of [1, 2, 1]) {
    const { rows } = await sql<{ note: string }>`select note from prepared_t where id = ${id}`.execute(database.db)
    assert.equal(rows[0]!.note, id === 1 ? 'one' : 'two')
  }
  // In a transaction too, with BEGIN carried by it and COMMIT after.
  await inTransaction(database.db, (trx) => sql`update prepared_t set note = note where id = ${1}`.execute(trx))
  await inTransaction(database.db, (trx) => sql`update prepared_t set note = note where id = ${2}`.execute(trx))
  assert.equal(await preparedLike(database.db, 'select note from prepared_t where id = $1'), 1)
  assert.equal(await preparedLike(database.db, 'update prepared_t set note = note'), 1)
})

test("a table changed under prepared statements (another replica's migration) fails no statement", POSTGRES_ONLY, async () => {
  const all = (id: number) => sql<Record<string, unknown>>`select * from prepared_t where id = ${id}`
  // Six runs: past PostgreSQL's five custom plans, so the plan cached is the generic one.
  for (let i = 0; i < 6; i++) await all(1).execute(database.db)
  await elsewhere(`alter table prepared_t add column extra text not null default 'x'`)
  const { rows } = await all(1).execute(database.db)
  assert.deepEqual(rows[0], { id: 1, note: 'one', extra: 'x' }, 'outside a transaction: run again, planned anew')

  for (let i = 0; i < 6; i++) await inTransaction(database.db, (trx) => all(2).execute(trx))
  await elsewhere(`alter table prepared_t add column later int not null default 7`)
  const inside = await inTransaction(database.db, async (trx) => {
    const { rows } = await all(2).execute(trx)
    await sql`update prepared_t set note = ${'two again'} where id = ${2}`.execute(trx)
    return rows[0]
  })
  assert.deepEqual(inside, { id: 2, note: 'two', extra: 'x', later: 7 }, 'in a transaction: the whole transaction retried')
  const { rows: after } = await sql<{ note: string }>`select note from prepared_t where id = ${2}`.execute(database.db)
  assert.equal(after[0]!.note, 'two again', 'and its write made once')
})

test('a named statement that fails leaves its connection answering as before', POSTGRES_ONLY, async () => {
  // Fails at Parse, carried with BEGIN: twice the same refusal (not "prepared statement does not exist").
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      inTransaction(database.db, (trx) => sql`select no_such_column from prepared_t where id = ${1}`.execute(trx)),
      (error: { code?: string }) => error.code === '42703',
    )
  }
  // Fails at Execute (a duplicate key), then the same statement succeeds.
  await assert.rejects(sql`insert into prepared_t (id, note) values (${1}, ${'dup'})`.execute(database.db), (error: { code?: string }) => error.code === '23505')
  await sql`insert into prepared_t (id, note) values (${3}, ${'three'})`.execute(database.db)
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from prepared_t where id = ${3}`.execute(database.db)
  assert.equal(rows[0]!.n, 1)
})

test('CLOUDPAY_DB_PREPARED_STATEMENTS=0 runs every statement unnamed', POSTGRES_ONLY, async () => {
  const other = await freshDatabase()
  const unprepared = await openDatabase({ ...other.location, pool: { ...ONE_CONNECTION, preparedStatements: 0 } })
  try {
    for (let i = 0; i < 3; i++) await sql`select ${i}::int as i`.execute(unprepared.db)
    assert.equal(await preparedLike(unprepared.db, 'select $1::int as i'), 0)
  } finally {
    await unprepared.release()
    await other.drop()
  }
})
