// Storage: one Kysely per process over embedded PGlite (default, data under <home>/db) or
// PostgreSQL (DATABASE_URL). Every service works in its own schema; one SQL dialect for both.
import { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect, PostgresDialect, type Transaction } from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import pg from 'pg'

export type { Migration }

const INT8_OID = 20
/** int8 (bigint) columns come back as BigInt on both drivers, never as lossy numbers or strings. */
const parseInt8 = (value: string): bigint => BigInt(value)

export interface DatabaseLocation {
  /** PostgreSQL connection string; unset means embedded PGlite in `dataDir`. */
  readonly databaseUrl: string | undefined
  readonly dataDir: string
}

export interface SharedDatabase {
  readonly kind: 'pglite' | 'postgres'
  /** The root Kysely; services use `forSchema`. */
  readonly db: Kysely<any>
  /** Releases this user's reference; the last one closes the pool or PGlite. */
  release(): Promise<void>
}

interface Entry {
  kind: SharedDatabase['kind']
  db: Kysely<any>
  users: number
}
const open = new Map<string, Promise<Entry>>()

export function databaseLocation(home: string, databaseUrl: string | undefined): DatabaseLocation {
  return { databaseUrl, dataDir: join(home, 'db') }
}

/**
 * One database per process and location, shared by every service in the process (PGlite is a
 * single-connection engine that takes seconds and hundreds of MB to start; see TRAPS.md).
 */
export async function openDatabase(location: DatabaseLocation): Promise<SharedDatabase> {
  const key = location.databaseUrl ?? `pglite:${location.dataDir}`
  let pending = open.get(key)
  if (!pending) {
    pending = create(location)
    open.set(key, pending)
    pending.catch(() => open.delete(key))
  }
  const entry = await pending
  entry.users += 1
  let released = false
  return {
    kind: entry.kind,
    db: entry.db,
    release: async () => {
      if (released) return
      released = true
      entry.users -= 1
      if (entry.users === 0) {
        open.delete(key)
        await entry.db.destroy()
      }
    },
  }
}

async function create(location: DatabaseLocation): Promise<Entry> {
  if (location.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: location.databaseUrl,
      max: 16,
      types: { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format)) } as pg.CustomTypesConfig,
    })
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
    return { kind: 'postgres', db, users: 0 }
  }
  // PGlite fails with ENOENT when the data directory's parent is missing.
  await mkdir(dirname(location.dataDir), { recursive: true })
  const pglite = await PGlite.create({ dataDir: location.dataDir, parsers: { [INT8_OID]: parseInt8 } })
  const db = new Kysely<any>({ dialect: new PGliteDialect({ pglite }) })
  return { kind: 'pglite', db, users: 0 }
}

/** A service's view of the database: its own schema. */
export function forSchema<Database>(shared: SharedDatabase, schema: string): Kysely<Database> {
  return shared.db.withSchema(schema) as Kysely<Database>
}

export interface MigrationSummary {
  readonly applied: string[]
}

/** Applies a service's migrations (registered in code) inside its schema; a re-run is a no-op. */
export async function migrateSchema(shared: SharedDatabase, schema: string, migrations: Readonly<Record<string, Migration>>): Promise<MigrationSummary> {
  const migrator = new Migrator({
    db: shared.db.withSchema(schema),
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableSchema: schema,
  })
  const { error, results } = await migrator.migrateToLatest()
  if (error) throw new Error(`migrating schema ${schema} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) }
}

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']) // serialization failure, deadlock

/** Runs `work` in a transaction, retrying serialization failures and deadlocks a few times. */
export async function inTransaction<Database, T>(
  db: Kysely<Database>,
  work: (trx: Transaction<Database>) => Promise<T>,
  options: { isolation?: 'read committed' | 'repeatable read' | 'serializable'; attempts?: number } = {},
): Promise<T> {
  const attempts = options.attempts ?? 5
  for (let attempt = 1; ; attempt++) {
    try {
      let builder = db.transaction()
      if (options.isolation) builder = builder.setIsolationLevel(options.isolation)
      return await builder.execute(work)
    } catch (error) {
      const code = (error as { code?: unknown }).code
      if (attempt >= attempts || typeof code !== 'string' || !RETRYABLE_SQLSTATES.has(code)) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt))
    }
  }
}

/** PostgreSQL's unique_violation, for mapping a lost insert race to ALREADY_EXISTS. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown }).code === '23505'
}
