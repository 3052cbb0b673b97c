// A transaction's BEGIN sent with its first statement, and its COMMIT with a last statement marked
// for it (services/runtime/pipelined-transaction.ts), on PostgreSQL: a round trip fewer each, and a
// transaction behaves exactly as before: its result, its atomicity, a failing first or last
// statement rolled back, a failing COMMIT, an empty transaction, an isolation level. And a
// statement marked to ride along travels with the next one, its count arriving with it.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { sql } from 'kysely'
import pg from 'pg'
import { inTransaction, type SharedDatabase } from '../../services/runtime/database.ts'
import { changedByRider, commitsTransaction, ridesAlong } from '../../services/runtime/pipelined-transaction.ts'
import { DATABASE_KIND, openFresh } from '../helpers/database.ts'

const POSTGRES_ONLY = { skip: DATABASE_KIND !== 'postgres' && 'PostgreSQL only: the embedded database has no wire protocol' }
let database: SharedDatabase
let close: () => Promise<void>
before(async () => {
  if (DATABASE_KIND !== 'postgres') return
  ;({ database, close } = await openFresh())
  await sql`create table pipelined (id int primary key, note text not null)`.execute(database.db)
  // Checked at COMMIT, so a COMMIT can fail: the case a statement carrying it must report.
  await sql`create table deferred (id int, constraint deferred_once unique (id) deferrable initially deferred)`.execute(database.db)
})
after(async () => close?.())

/**
 * What the pg clients are asked to send while `work` runs: one entry per round trip. Watched from
 * the start, before any pooled client exists (each takes pg's query as it connects).
 */
let recording: string[] | undefined
const query = pg.Client.prototype.query
pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
  const text = typeof config === 'string' ? config : String((config as { text?: string }).text)
  const carried = config as { beginsTransaction?: boolean; commitsTransaction?: boolean; riders?: number }
  const riders = carried.riders ? `${carried.riders} rider${carried.riders > 1 ? 's' : ''}+` : ''
  recording?.push(`${carried.beginsTransaction ? 'begin+' : ''}${riders}${text.trimStart().split(/\s/)[0]!.toLowerCase()}${carried.commitsTransaction ? '+commit' : ''}`)
  return (query as (...args: unknown[]) => unknown).call(this, config, ...rest)
} as typeof query

async function sent<T>(work: () => Promise<T>): Promise<{ result: T; texts: string[] }> {
  const texts: string[] = []
  recording = texts
  try {
    return { result: await work(), texts }
  } finally {
    recording = undefined
  }
}

test('BEGIN travels with the first statement; the transaction commits what it did', POSTGRES_ONLY, async () => {
  const { result, texts } = await sent(() =>
    inTransaction(database.db, async (trx) => {
      const inserted = await sql<{ id: number }>`insert into pipelined (id, note) values (1, 'one') returning id`.execute(trx)
      await sql`insert into pipelined (id, note) values (2, 'two')`.execute(trx)
      return inserted.rows
    }),
  )
  assert.deepEqual(result, [{ id: 1 }], "the first statement's own rows")
  assert.deepEqual(texts, ['begin+insert', 'insert', 'commit'], 'three round trips where there were four')
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pipelined where id in (1, 2)`.execute(database.db)
  assert.equal(rows[0]!.n, 2)
})

test('a first statement that fails rolls the transaction back and leaves the connection usable', POSTGRES_ONLY, async () => {
  await assert.rejects(
    inTransaction(database.db, (trx) => sql`insert into pipelined (id, note) values (1, 'again')`.execute(trx)),
    (error: unknown) => (error as { code?: string }).code === '23505',
  )
  await assert.rejects(
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (3, 'three')`.execute(trx)
      await sql`insert into pipelined (id, note) values (3, 'duplicate')`.execute(trx)
    }),
  )
  const { rows } = await sql<{ id: number }>`select id from pipelined order by id`.execute(database.db)
  assert.deepEqual(
    rows.map((row) => row.id),
    [1, 2],
    'nothing of either failed transaction stayed',
  )
  // Every pooled connection still answers, inside a transaction and outside.
  await Promise.all(Array.from({ length: 12 }, (_, i) => inTransaction(database.db, (trx) => sql`select ${i}::int as i`.execute(trx))))
})

test('an empty transaction sends nothing; an isolation level is sent as it is', POSTGRES_ONLY, async () => {
  const empty = await sent(() => database.db.transaction().execute(async () => 'nothing'))
  assert.equal(empty.result, 'nothing')
  assert.deepEqual(empty.texts, [], 'no BEGIN and no COMMIT for a transaction with no statement')
  const serializable = await sent(() =>
    inTransaction(database.db, (trx) => sql<{ transaction_isolation: string }>`show transaction_isolation`.execute(trx), { isolation: 'serializable' }),
  )
  assert.equal(serializable.result.rows[0]!.transaction_isolation, 'serializable')
  assert.deepEqual(serializable.texts, ['start', 'show', 'commit'])
})

/** `statement` compiled for the transaction, marked to carry its COMMIT. */
const lastOf = (trx: Parameters<Parameters<typeof inTransaction>[1]>[0], statement: ReturnType<typeof sql>) => trx.executeQuery(commitsTransaction(statement.compile(trx)))

test("COMMIT travels with a last statement marked for it; Kysely's own COMMIT after it costs nothing", POSTGRES_ONLY, async () => {
  const { result, texts } = await sent(() =>
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (10, 'ten')`.execute(trx)
      const last = await lastOf(trx, sql`insert into pipelined (id, note) values (11, 'eleven') returning id`)
      return last.rows
    }),
  )
  assert.deepEqual(result, [{ id: 11 }], "the last statement's own rows")
  assert.deepEqual(texts, ['begin+insert', 'insert+commit'], 'two round trips where there were four')
  const alone = await sent(() => inTransaction(database.db, (trx) => lastOf(trx, sql`insert into pipelined (id, note) values (12, 'twelve')`)))
  assert.deepEqual(alone.texts, ['begin+insert+commit'], 'one round trip for a transaction of one statement')
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pipelined where id in (10, 11, 12)`.execute(database.db)
  assert.equal(rows[0]!.n, 3, 'all three committed')
})

test('a last statement that fails commits nothing, and a COMMIT that fails is its failure', POSTGRES_ONLY, async () => {
  await assert.rejects(
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (20, 'twenty')`.execute(trx)
      await lastOf(trx, sql`insert into pipelined (id, note) values (10, 'taken')`)
    }),
    (error: unknown) => (error as { code?: string }).code === '23505',
  )
  // The deferred constraint fails at COMMIT itself, after the statement ran.
  await assert.rejects(
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (21, 'twenty-one')`.execute(trx)
      await lastOf(trx, sql`insert into deferred (id) values (1), (1)`)
    }),
    (error: unknown) => (error as { code?: string; constraint?: string }).code === '23505' && (error as { constraint?: string }).constraint === 'deferred_once',
  )
  const { rows } = await sql<{ n: number }>`select (select count(*) from pipelined where id in (20, 21)) + (select count(*) from deferred) as n`.execute(database.db)
  assert.equal(Number(rows[0]!.n), 0, 'nothing of either failed transaction stayed')
  // Every pooled connection still answers, and opens transactions that commit.
  await Promise.all(Array.from({ length: 12 }, (_, i) => inTransaction(database.db, (trx) => lastOf(trx, sql`select ${i}::int as i`))))
  await inTransaction(database.db, (trx) => sql`insert into pipelined (id, note) values (22, 'after')`.execute(trx))
  const after = await sql<{ n: number }>`select count(*)::int as n from pipelined where id = 22`.execute(database.db)
  assert.equal(after.rows[0]!.n, 1)
})

test('nothing may run in a transaction after the statement that committed it', POSTGRES_ONLY, async () => {
  await assert.rejects(
    inTransaction(database.db, async (trx) => {
      await lastOf(trx, sql`insert into pipelined (id, note) values (30, 'thirty')`)
      await sql`insert into pipelined (id, note) values (31, 'stray')`.execute(trx)
    }),
    /after its transaction committed/,
  )
  const { rows } = await sql<{ id: number }>`select id from pipelined where id in (30, 31) order by id`.execute(database.db)
  assert.deepEqual(rows.map((row) => row.id), [30], 'the stray statement never ran outside the transaction')
})

test('a statement marked to commit outside any transaction runs as it is, and the connection stays as it was', POSTGRES_ONLY, async () => {
  const { texts } = await sent(() => database.db.executeQuery(commitsTransaction(sql`insert into pipelined (id, note) values (40, 'forty')`.compile(database.db))))
  assert.deepEqual(texts, ['insert'], 'no COMMIT carried where no transaction is open')
  // Every pooled connection still runs transactions that commit, and plain statements.
  await Promise.all(Array.from({ length: 12 }, (_, i) => inTransaction(database.db, (trx) => sql`insert into pipelined (id, note) values (${41 + i}, 'again')`.execute(trx))))
  await Promise.all(Array.from({ length: 12 }, (_, i) => sql`select ${i}::int as i`.execute(database.db)))
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pipelined where id between 40 and 52`.execute(database.db)
  assert.equal(rows[0]!.n, 13)
})

/**
 * `statement` compiled for the transaction, marked to ride along: `changed` settles once it was
 * sent (with a later statement), so the transaction must go on before anything awaits it.
 */
const riding = async (trx: Parameters<Parameters<typeof inTransaction>[1]>[0], statement: ReturnType<typeof sql>) => ({
  changed: changedByRider(await trx.executeQuery(ridesAlong(statement.compile(trx)))),
})

test('a statement that rides along travels with the next one, or with the COMMIT, and its count arrives with it', POSTGRES_ONLY, async () => {
  const counts: Promise<bigint>[] = []
  const { texts } = await sent(() =>
    inTransaction(database.db, async (trx) => {
      counts.push((await riding(trx, sql`insert into pipelined (id, note) values (60, 'sixty') on conflict do nothing`)).changed)
      await sql`insert into pipelined (id, note) values (61, 'sixty-one')`.execute(trx)
      counts.push((await riding(trx, sql`insert into pipelined (id, note) values (61, 'again') on conflict do nothing`)).changed)
      counts.push((await riding(trx, sql`update pipelined set note = 'sixty-two' where id in (60, 61)`)).changed)
      await lastOf(trx, sql`insert into pipelined (id, note) values (62, 'sixty-two')`)
    }),
  )
  assert.deepEqual(texts, ['begin+1 rider+insert', '2 riders+insert+commit'], 'two round trips where there were seven')
  assert.deepEqual(await Promise.all(counts), [1n, 0n, 2n], 'each rider counts what it changed, a conflict nothing')
  const { rows } = await sql<{ id: number; note: string }>`select id, note from pipelined where id between 60 and 62 order by id`.execute(database.db)
  assert.deepEqual(rows, [
    { id: 60, note: 'sixty-two' },
    { id: 61, note: 'sixty-two' },
    { id: 62, note: 'sixty-two' },
  ])
  // Last before a plain COMMIT: it goes with the COMMIT.
  let count: Promise<bigint> | undefined
  const withCommit = await sent(() =>
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (63, 'sixty-three')`.execute(trx)
      count = (await riding(trx, sql`insert into pipelined (id, note) values (64, 'sixty-four')`)).changed
    }),
  )
  assert.deepEqual(withCommit.texts, ['begin+insert', '1 rider+commit'])
  assert.equal(await count, 1n)
  // Alone in its transaction: BEGIN, it and COMMIT in one round trip.
  const alone = await sent(() =>
    inTransaction(database.db, async (trx) => {
      count = (await riding(trx, sql`insert into pipelined (id, note) values (65, 'sixty-five')`)).changed
    }),
  )
  assert.deepEqual(alone.texts, ['begin+1 rider+commit'])
  assert.equal(await count, 1n)
  const stored = await sql<{ n: number }>`select count(*)::int as n from pipelined where id between 63 and 65`.execute(database.db)
  assert.equal(stored.rows[0]!.n, 3, 'all committed')
})

test('a rider that fails fails the statement it rides with and rolls the transaction back; a rolled-back one is never sent', POSTGRES_ONLY, async () => {
  let count: Promise<bigint> | undefined
  await assert.rejects(
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (70, 'seventy')`.execute(trx)
      count = (await riding(trx, sql`insert into pipelined (id, note) values (60, 'taken')`)).changed
      await sql`insert into pipelined (id, note) values (71, 'seventy-one')`.execute(trx)
    }),
    (error: unknown) => (error as { code?: string }).code === '23505',
    "the rider's own error",
  )
  await assert.rejects(count!, (error: unknown) => (error as { code?: string }).code === '23505')
  // Failing as the COMMIT's rider: the COMMIT is skipped, the transaction rolled back.
  await assert.rejects(
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (72, 'seventy-two')`.execute(trx)
      count = (await riding(trx, sql`insert into pipelined (id, note) values (60, 'taken')`)).changed
    }),
    (error: unknown) => (error as { code?: string }).code === '23505',
  )
  // Rolled back by the work itself: the rider is never sent, and counts nothing.
  const rolledBack = await sent(() =>
    inTransaction(database.db, async (trx) => {
      await sql`insert into pipelined (id, note) values (73, 'seventy-three')`.execute(trx)
      count = (await riding(trx, sql`insert into pipelined (id, note) values (74, 'seventy-four')`)).changed
      throw new Error('changed its mind')
    }).catch((error: Error) => error.message),
  )
  assert.equal(rolledBack.result, 'changed its mind')
  assert.deepEqual(rolledBack.texts, ['begin+insert', 'rollback'], 'the rider went nowhere')
  assert.equal(await count, 0n)
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pipelined where id between 70 and 74`.execute(database.db)
  assert.equal(rows[0]!.n, 0, 'nothing of the three transactions stayed')
  // Every pooled connection still runs transactions that commit.
  await Promise.all(Array.from({ length: 12 }, (_, i) => inTransaction(database.db, (trx) => riding(trx, sql`insert into pipelined (id, note) values (${75 + i}, 'after')`))))
  const after = await sql<{ n: number }>`select count(*)::int as n from pipelined where id between 75 and 86`.execute(database.db)
  assert.equal(after.rows[0]!.n, 12)
})

test('a statement marked to ride along outside a transaction runs at once, and one with rows is refused', POSTGRES_ONLY, async () => {
  const { result, texts } = await sent(async () => (await riding(database.db as never, sql`insert into pipelined (id, note) values (90, 'ninety')`)).changed)
  assert.deepEqual(texts, ['insert'])
  assert.equal(result, 1n)
  assert.throws(() => ridesAlong(sql`insert into pipelined (id, note) values (91, 'x') returning id`.compile(database.db)), /returns no rows/)
})
