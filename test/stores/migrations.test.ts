// Every service's migrations apply to an empty database inside the service's own schema, and a
// second run is a no-op. Runs on PGlite, or on PostgreSQL when DATABASE_URL is set.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Kysely, PostgresIntrospector, sql } from 'kysely'
import { ALL_SERVICES } from '../../services/registry.ts'
import { migrateSchema } from '../../services/runtime/database.ts'
import { DATABASE_KIND, openFresh } from '../helpers/database.ts'

test(`migrations apply to an empty database and re-run as a no-op (${DATABASE_KIND})`, async () => {
  const { database, close } = await openFresh()
  try {
    for (const spec of ALL_SERVICES) {
      const first = await migrateSchema(database, spec.schema, spec.migrations)
      assert.deepEqual(first.applied, Object.keys(spec.migrations), `${spec.name}: all migrations applied`)
      const second = await migrateSchema(database, spec.schema, spec.migrations)
      assert.deepEqual(second.applied, [], `${spec.name}: nothing left to apply`)
    }
    const tables = await sql<{ table_schema: string; table_name: string }>`
      select table_schema, table_name from information_schema.tables
      where table_schema not in ('pg_catalog', 'information_schema') order by 1, 2`.execute(database.db)
    const bySchema = new Map<string, string[]>()
    for (const row of tables.rows) bySchema.set(row.table_schema, [...(bySchema.get(row.table_schema) ?? []), row.table_name])
    assert.deepEqual([...bySchema.keys()].sort(), ALL_SERVICES.map((s) => s.schema).sort(), 'every table lives in its service schema; none in public')
    for (const spec of ALL_SERVICES) {
      const own = bySchema.get(spec.schema) ?? []
      assert.ok(own.includes('idempotency_keys'), `${spec.schema} has its request-id table`)
      assert.ok(own.includes('kysely_migration'), `${spec.schema} tracks its own migrations`)
    }
    assert.ok(bySchema.get('account_management')?.includes('cloud_accounts'))
    assert.ok(bySchema.get('instance_events')?.includes('channels'))
    const items = await sql<{ n: bigint }>`select count(*) as n from app_service.catalog_items`.execute(database.db)
    assert.ok(items.rows[0]!.n >= 3n, 'the catalog is seeded')
  } finally {
    await close()
  }
})

test(`a start with every migration applied skips the migrator; a new one, or one the code lacks, still goes through it (${DATABASE_KIND})`, async () => {
  const { database, close } = await openFresh()
  const created: string[] = []
  const migration = (name: string) => ({
    up: async (db: Kysely<any>) => {
      created.push(name)
      await db.schema.createTable(name).addColumn('n', 'integer').execute()
    },
  })
  try {
    const first = { m1: migration('t1') }
    assert.deepEqual((await migrateSchema(database, 'fast_path', first)).applied, ['m1'])
    // Every migration applied: nothing runs, and Kysely's catalog introspection is not read.
    // (Both dialects introspect with PostgresIntrospector; its prototype is watched for this one call.)
    let catalogReads = 0
    const getTables = PostgresIntrospector.prototype.getTables
    PostgresIntrospector.prototype.getTables = function (this: PostgresIntrospector, options) {
      catalogReads++
      return getTables.call(this, options)
    }
    try {
      assert.deepEqual((await migrateSchema(database, 'fast_path', first)).applied, [])
    } finally {
      PostgresIntrospector.prototype.getTables = getTables
    }
    assert.equal(catalogReads, 0, 'no catalog read for a start with nothing to apply')
    // A migration added since: applied, through the migrator.
    const second = { ...first, m2: migration('t2') }
    assert.deepEqual((await migrateSchema(database, 'fast_path', second)).applied, ['m2'])
    assert.deepEqual(created, ['t1', 't2'])
    // A database ahead of the code (a migration the code does not have): refused, as the migrator refuses it.
    await assert.rejects(migrateSchema(database, 'fast_path', first), /migrating schema fast_path failed: .*m2/)
  } finally {
    await close()
  }
})
