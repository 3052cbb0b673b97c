// A fresh, empty database for one test: a new PGlite data directory, or, when DATABASE_URL
// points at a PostgreSQL server (CI), a new database created on that server and dropped after.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { type DatabaseLocation, forSchema, type Migration, migrateSchema, openDatabase, type SharedDatabase } from '../../services/runtime/database.ts'

export const TEST_DATABASE_URL = process.env.DATABASE_URL || undefined
export const DATABASE_KIND = TEST_DATABASE_URL ? 'postgres' : 'pglite'

export interface FreshDatabase {
  readonly location: DatabaseLocation
  readonly home: string
  drop(): Promise<void>
}

export async function freshDatabase(): Promise<FreshDatabase> {
  const home = await mkdtemp(join(tmpdir(), 'cloudpay-test-'))
  if (!TEST_DATABASE_URL) {
    return { home, location: { databaseUrl: undefined, dataDir: join(home, 'db') }, drop: () => rm(home, { recursive: true, force: true }) }
  }
  const name = `cloudpay_test_${randomBytes(6).toString('hex')}`
  await admin(async (client) => client.query(`CREATE DATABASE ${name}`))
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${name}`
  return {
    home,
    location: { databaseUrl: url.toString(), dataDir: join(home, 'db') },
    drop: async () => {
      await admin(async (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
      await rm(home, { recursive: true, force: true })
    },
  }
}

async function admin(work: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await client.connect()
  try {
    await work(client)
  } finally {
    await client.end()
  }
}

/** Opens the fresh database (shared per process, as in production). */
export async function openFresh(): Promise<{ fresh: FreshDatabase; database: SharedDatabase; close(): Promise<void> }> {
  const fresh = await freshDatabase()
  const database = await openDatabase(fresh.location)
  return {
    fresh,
    database,
    close: async () => {
      await database.release()
      await fresh.drop()
    },
  }
}

/** A fresh database with one service's migrations applied; the service's own schema view. */
export async function openMigrated<Database>(spec: { schema: string; migrations: Readonly<Record<string, Migration>> }) {
  const opened = await openFresh()
  await migrateSchema(opened.database, spec.schema, spec.migrations)
  return { db: forSchema<Database>(opened.database, spec.schema), close: opened.close }
}
