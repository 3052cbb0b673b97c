// A store statement built once per schema and bound per call (services/runtime/query-template.ts):
// the rows it reads are those the ordinary Kysely statement reads, in each service's own schema and
// inside transactions, and a builder that is not one fixed shape is refused instead of run wrong.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type Kysely, sql } from 'kysely'
import { forSchema, inTransaction, openDatabase, type SharedDatabase } from '../../services/runtime/database.ts'
import { queryTemplate } from '../../services/runtime/query-template.ts'
import { type FreshDatabase, freshDatabase } from '../helpers/database.ts'

interface NotesDatabase {
  notes: { id: number; owner: string; note: string | null; kind: string }
}

let fresh: FreshDatabase
let database: SharedDatabase
let north: Kysely<NotesDatabase>
let south: Kysely<NotesDatabase>
before(async () => {
  fresh = await freshDatabase()
  database = await openDatabase(fresh.location)
  for (const schema of ['tpl_north', 'tpl_south']) {
    await sql`create schema ${sql.id(schema)}`.execute(database.db)
    await sql`create table ${sql.id(schema, 'notes')} (id int primary key, owner text not null, note text, kind text not null)`.execute(database.db)
    await sql`insert into ${sql.id(schema, 'notes')} values (1, 'ann', ${`${schema} one`}, 'plain'), (2, 'ann', null, 'pinned'), (3, 'bob', ${`${schema} three`}, 'plain')`.execute(
      database.db,
    )
  }
  north = forSchema<NotesDatabase>(database, 'tpl_north')
  south = forSchema<NotesDatabase>(database, 'tpl_south')
})
after(async () => {
  await database?.release()
  await fresh?.drop()
})

let builds = 0
const notesOf = queryTemplate('notesOf', (db: Kysely<NotesDatabase>, v: { owner: string; after: number }) => {
  builds++
  return db.selectFrom('notes').select(['id', 'note']).where('owner', '=', v.owner).where('id', '>', v.after).where('kind', 'in', ['plain', 'pinned']).orderBy('id')
})

test('a template reads what the statement it was built from reads, per schema, built once per schema', async () => {
  builds = 0
  assert.deepEqual(await notesOf.rows(north, { owner: 'ann', after: 0 }), [
    { id: 1, note: 'tpl_north one' },
    { id: 2, note: null },
  ])
  assert.deepEqual(await notesOf.rows(north, { owner: 'bob', after: 0 }), [{ id: 3, note: 'tpl_north three' }])
  assert.deepEqual(await notesOf.rows(south, { owner: 'bob', after: 0 }), [{ id: 3, note: 'tpl_south three' }])
  assert.deepEqual(await notesOf.first(south, { owner: 'ann', after: 1 }), { id: 2, note: null })
  assert.equal(await notesOf.first(south, { owner: 'nobody', after: 0 }), undefined)
  // Inside a transaction: the same template, the transaction's connection (it sees its own write).
  await inTransaction(north, async (trx) => {
    await trx.insertInto('notes').values({ id: 4, owner: 'bob', note: 'in flight', kind: 'plain' }).execute()
    assert.deepEqual(await notesOf.rows(trx, { owner: 'bob', after: 3 }), [{ id: 4, note: 'in flight' }])
  })
  // Once per schema view; with the check on (npm test), each call also builds once more to compare.
  const calls = 6
  assert.equal(builds, process.env.CLOUDPAY_CHECK_QUERY_TEMPLATES === '1' ? 2 + calls : 2)
})

const setNote = queryTemplate('setNote', (db: Kysely<NotesDatabase>, v: { id: number; note: string | null }) =>
  db.updateTable('notes').set({ note: v.note }).where('id', '=', v.id),
)

test('a write counts the rows it changed, and null is bound as NULL', async () => {
  assert.equal(await setNote.affected(south, { id: 1, note: null }), 1n)
  assert.equal(await setNote.affected(south, { id: 99, note: 'none' }), 0n)
  const { rows } = await sql<{ note: string | null }>`select note from tpl_south.notes where id = 1`.execute(database.db)
  assert.equal(rows[0]!.note, null)
})

test('an undefined value or an SQL expression is refused, naming it: Kysely would leave the column out or inline the expression, a template cannot', async () => {
  await assert.rejects(
    () => setNote.affected(south, { id: 1, note: undefined as unknown as null }),
    (error: Error) => error instanceof TypeError && /values\.note is undefined/.test(error.message),
  )
  await assert.rejects(
    () => setNote.affected(south, { id: 1, note: sql<string>`upper(note)` as unknown as string }),
    (error: Error) => error instanceof TypeError && /values\.note is an SQL expression/.test(error.message),
  )
})

test('a value that cannot be a bound parameter (a literal) is refused when the template is built', async () => {
  const literal = queryTemplate('literal', (db: Kysely<NotesDatabase>, v: { kind: string }) => db.selectFrom('notes').selectAll().where('kind', '=', sql.lit(v.kind)))
  await assert.rejects(() => literal.rows(north, { kind: 'plain' }), /query template literal: cannot be built with its values as parameters/)
  // Used only outside the statement (a branch): never bound, so refused.
  const branch = queryTemplate('branch', (db: Kysely<NotesDatabase>, v: { pinned: boolean }) =>
    db
      .selectFrom('notes')
      .selectAll()
      .where('kind', '=', v.pinned ? 'pinned' : 'plain'),
  )
  await assert.rejects(() => branch.rows(north, { pinned: true }), /query template branch: values\.pinned is not a bound parameter/)
})

test(
  'with the check on, a builder whose shape follows its values is refused on the call that differs',
  { skip: process.env.CLOUDPAY_CHECK_QUERY_TEMPLATES !== '1' && 'the check is on under npm test' },
  async () => {
    // Branches on a value outside `values`: a template would keep the first call's shape for every call.
    let pinnedOnly = false
    const branching = queryTemplate('branching', (db: Kysely<NotesDatabase>, v: { owner: string }) => {
      const query = db.selectFrom('notes').select('id').where('owner', '=', v.owner)
      return pinnedOnly ? query.where('kind', '=', 'pinned') : query
    })
    assert.deepEqual(await branching.rows(north, { owner: 'ann' }), [{ id: 1 }, { id: 2 }])
    pinnedOnly = true
    await assert.rejects(() => branching.rows(north, { owner: 'ann' }), /query template branching: the statement built for these values differs/)
    // A list's length is its shape: `in` over a value list is one parameter per item.
    const list = queryTemplate('list', (db: Kysely<NotesDatabase>, v: { ids: number[] }) => db.selectFrom('notes').selectAll().where('id', 'in', v.ids))
    await assert.rejects(() => list.rows(north, { ids: [1, 2] }), /query template list: the statement built for these values differs/)
  },
)
