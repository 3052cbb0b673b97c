// Storage: one Kysely per process over embedded PGlite (default, data under <home>/db) or
// PostgreSQL (DATABASE_URL). Every service works in its own schema; one SQL dialect for both.
import type { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect, PostgresDialect, sql, type Transaction } from 'kysely'
import { DEFAULT_MIGRATION_TABLE, type Migration, Migrator } from 'kysely/migration'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { pipelineTransactions } from './pipelined-transaction.ts'
import { isStalePlan } from './prepared-statements.ts'
import { lockDataDirectory } from './data-dir-lock.ts'
import { loadPGlite, seedFromTemplate } from './pglite-template.ts'
import { tracedDialect } from './database-tracing.ts'
import { DEFAULT_DATABASE_SETTINGS, type DatabaseSettings } from './config.ts'

export type { Migration }

const INT8_OID = 20
/** int8 (bigint) columns come back as BigInt on both drivers, never as lossy numbers or strings. */
const parseInt8 = (value: string): bigint => BigInt(value)

export interface DatabaseLocation {
  /** PostgreSQL connection string; unset means embedded PGlite in `dataDir`. */
  readonly databaseUrl: string | undefined
  readonly dataDir: string
  /** PostgreSQL pool size and timeouts; the CLOUDPAY_DB_* defaults when omitted. */
  readonly pool?: DatabaseSettings
  /** Where empty PGlite clusters to copy are kept (`off`: initdb each time); node_modules/.cache by default. */
  readonly pgliteTemplates?: string
}

/** Called with each NOTIFY payload on a channel; delivered on every replica sharing the database. */
export type NotificationHandler = (payload: string) => void

export interface SharedDatabase {
  readonly kind: 'pglite' | 'postgres'
  /** Whether the last probe reached the database (the embedded one always does). */
  readonly available: () => boolean
  /** Calls `listener` whenever the database becomes unreachable or reachable again; returns an unsubscribe. */
  onAvailabilityChange(listener: (available: boolean) => void): () => void
  /** The root Kysely; services use `forSchema`. */
  readonly db: Kysely<any>
  /**
   * LISTENs on a channel. Notifications are wake-up hints (a reconnect may drop some): readers
   * always re-read the tables. `onReconnect` runs after the listening connection was replaced.
   */
  listen(channel: string, handler: NotificationHandler, onReconnect?: () => void): Promise<() => Promise<void>>
  /** Releases this user's reference; the last one closes the pool or PGlite. */
  release(): Promise<void>
}

interface Entry {
  kind: SharedDatabase['kind']
  db: Kysely<any>
  users: number
  listen: SharedDatabase['listen']
  closeListeners(): Promise<void>
  availability: Availability
  afterClose?: () => void
}

/** How often a PostgreSQL pool is probed while it is reachable, and while it is not. */
const PROBE_INTERVAL_MS = 1_000

/** Tracks whether the database answers, from a periodic probe, and tells listeners of changes. */
class Availability {
  private up = true
  private readonly listeners = new Set<(available: boolean) => void>()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly probe?: () => Promise<unknown>) {}

  get available(): boolean {
    return this.up
  }

  start(): void {
    if (!this.probe || this.timer) return
    const tick = (): void => {
      this.probe!()
        .then(
          () => this.set(true),
          () => this.set(false),
        )
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, PROBE_INTERVAL_MS).unref()
        })
    }
    this.timer = setTimeout(tick, PROBE_INTERVAL_MS).unref()
  }

  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  set(available: boolean): void {
    if (available === this.up) return
    this.up = available
    for (const listener of this.listeners) listener(available)
  }

  subscribe(listener: (available: boolean) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
const open = new Map<string, Promise<Entry>>()

export function databaseLocation(home: string, databaseUrl: string | undefined, pool?: DatabaseSettings, pgliteTemplates?: string): DatabaseLocation {
  return { databaseUrl, dataDir: join(home, 'db'), pool, pgliteTemplates }
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
  entry.availability.start()
  return {
    kind: entry.kind,
    db: entry.db,
    listen: entry.listen,
    available: () => entry.availability.available,
    onAvailabilityChange: (listener) => entry.availability.subscribe(listener),
    release: async () => {
      if (released) return
      released = true
      entry.users -= 1
      if (entry.users === 0) {
        open.delete(key)
        entry.availability.stop()
        await entry.closeListeners()
        try {
          await entry.db.destroy()
        } finally {
          entry.afterClose?.()
        }
      }
    },
  }
}

async function create(location: DatabaseLocation): Promise<Entry> {
  if (location.databaseUrl) {
    const settings = location.pool ?? DEFAULT_DATABASE_SETTINGS
    const pool = new pg.Pool({
      connectionString: location.databaseUrl,
      max: settings.poolSize,
      connectionTimeoutMillis: settings.connectTimeoutMs,
      // Set by the server on each session: a runaway statement, or a transaction a bug left open
      // (holding row locks), ends there instead of stalling every replica behind it.
      statement_timeout: settings.statementTimeoutMs,
      idle_in_transaction_session_timeout: settings.idleInTransactionTimeoutMs,
      types: { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format)) } as pg.CustomTypesConfig,
    })
    // A connection can be closed by the server at any time (restart, failover: 57P01). An idle
    // one is reported on the pool; a checked-out one on the client itself, from which pg-pool
    // removes its own listener while it is lent, so an unhandled 'error' would kill the process.
    // The query in flight fails (mapped to UNAVAILABLE), the pool discards the client and opens a
    // new connection on next use.
    const availability = new Availability(() => pool.query('select 1'))
    const lost = (): void => availability.set(false)
    pool.on('error', lost)
    pool.on('connect', (client) => {
      client.on('error', lost)
      pipelineTransactions(client, settings.preparedStatements)
    })
    const db = new Kysely<any>({ dialect: tracedDialect(new PostgresDialect({ pool })) })
    // LISTEN needs a session of its own that stays open (not a PgBouncer transaction-mode pool).
    const listener = new PostgresListener(location.databaseUrl, settings.connectTimeoutMs)
    return { kind: 'postgres', db, users: 0, listen: (c, h, r) => listener.listen(c, h, r), closeListeners: () => listener.close(), availability }
  }
  // PGlite fails with ENOENT when the data directory's parent is missing.
  await mkdir(dirname(location.dataDir), { recursive: true })
  const unlock = lockDataDirectory(location.dataDir)
  let pglite: PGlite
  try {
    await seedFromTemplate(location.dataDir, location.pgliteTemplates)
    const PGlite = await loadPGlite()
    pglite = await PGlite.create({ dataDir: location.dataDir, parsers: { [INT8_OID]: parseInt8 } })
  } catch (error) {
    unlock()
    throw error
  }
  const db = new Kysely<any>({ dialect: tracedDialect(new PGliteDialect({ pglite })) })
  const unlisteners = new Set<() => Promise<void>>()
  return {
    kind: 'pglite',
    db,
    users: 0,
    availability: new Availability(),
    afterClose: unlock,
    listen: async (channel, handler) => {
      const unlisten = await pglite.listen(channel, handler)
      const stop = async (): Promise<void> => {
        if (unlisteners.delete(stop) && !pglite.closed) await unlisten()
      }
      unlisteners.add(stop)
      return stop
    },
    closeListeners: async () => {
      await Promise.all([...unlisteners].map((stop) => stop()))
    },
  }
}

/**
 * One dedicated connection for LISTEN (a pooled one would be handed to queries). On error it
 * reconnects with backoff, re-LISTENs every channel and tells the handlers, which then re-read.
 */
class PostgresListener {
  private client: pg.Client | undefined
  private connecting: Promise<pg.Client> | undefined
  private closed = false
  private readonly channels = new Map<string, Set<{ handler: NotificationHandler; onReconnect?: () => void }>>()

  constructor(
    private readonly url: string,
    private readonly connectTimeoutMs: number,
  ) {}

  async listen(channel: string, handler: NotificationHandler, onReconnect?: () => void): Promise<() => Promise<void>> {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`invalid channel name ${channel}`)
    const entry = { handler, onReconnect }
    let set = this.channels.get(channel)
    const first = !set
    if (!set) this.channels.set(channel, (set = new Set()))
    set.add(entry)
    const client = await this.connected()
    if (first) await client.query(`LISTEN ${channel}`)
    return async () => {
      set.delete(entry)
      if (set.size === 0 && this.channels.get(channel) === set) {
        this.channels.delete(channel)
        await this.client?.query(`UNLISTEN ${channel}`).catch(() => undefined)
      }
    }
  }

  private connected(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client)
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined))
    return this.connecting
  }

  private async connect(): Promise<pg.Client> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new Error('listener closed')
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: this.connectTimeoutMs })
      try {
        await client.connect()
        client.on('notification', (message) => {
          for (const entry of this.channels.get(message.channel) ?? []) entry.handler(message.payload ?? '')
        })
        client.on('error', () => {
          if (this.client === client) this.client = undefined
          client.end().catch(() => undefined)
          if (!this.closed) void this.reconnect()
        })
        for (const channel of this.channels.keys()) await client.query(`LISTEN ${channel}`)
        this.client = client
        return client
      } catch (error) {
        await client.end().catch(() => undefined)
        if (attempt >= 50) throw error
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** attempt)))
      }
    }
  }

  /** After a lost connection: keeps trying (however long the database stays away) until closed. */
  private async reconnect(): Promise<void> {
    while (!this.closed) {
      try {
        await this.connected()
        for (const set of this.channels.values()) for (const entry of set) entry.onReconnect?.()
        return
      } catch {
        // the database stayed away for a while; subscribers poll meanwhile
        await new Promise((resolve) => setTimeout(resolve, 5_000).unref())
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => undefined)
  }
}

/** A service's view of the database: its own schema. */
export function forSchema<Database>(shared: SharedDatabase, schema: string): Kysely<Database> {
  // The shared handle is untyped (every schema's tables); this view is the service's own.
  const own: Kysely<Database> = shared.db.withSchema(schema)
  return own
}

export interface MigrationSummary {
  readonly applied: string[]
}

/** Applies a service's migrations (registered in code) inside its schema; a re-run is a no-op. */
export async function migrateSchema(shared: SharedDatabase, schema: string, migrations: Readonly<Record<string, Migration>>): Promise<MigrationSummary> {
  if (await appliedExactly(shared.db, schema, Object.keys(migrations))) return { applied: [] }
  const migrator = new Migrator({
    db: shared.db.withSchema(schema),
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableSchema: schema,
    // Work developed side by side lands migrations whose names interleave with ones a database
    // already applied; each is independent and applied once, so order among new ones is enough.
    allowUnorderedMigrations: true,
  })
  const { error, results } = await migrator.migrateToLatest()
  if (error) throw new Error(`migrating schema ${schema} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) }
}

/**
 * Whether the schema's migration table records exactly these migrations: then a start has nothing
 * to do, and skips Kysely's Migrator, which reads the whole catalog (every table and column of every
 * schema) twice before it reads that table: 140 ms a schema on PGlite here, with nothing to apply.
 * Any difference (new migrations, one missing from the code) goes to the Migrator, as before.
 */
async function appliedExactly(db: Kysely<any>, schema: string, names: readonly string[]): Promise<boolean> {
  const table = `${schema}.${DEFAULT_MIGRATION_TABLE}`
  const found = await sql<{ present: boolean }>`select to_regclass(${table}) is not null as present`.execute(db)
  if (!found.rows[0]?.present) return false
  const applied = await db.withSchema(schema).selectFrom(DEFAULT_MIGRATION_TABLE).select('name').execute()
  const wanted = new Set(names)
  return applied.length === wanted.size && applied.every((row) => wanted.has(row.name as string))
}

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']) // serialization failure, deadlock

/** Work waiting for a transaction's outcome. */
interface SettleHook {
  readonly committed: () => void
  readonly rolledBack?: () => void
}

/** Each open transaction made by inTransaction: the Kysely it was begun on, and what waits for its outcome. */
const openTransactions = new WeakMap<object, { readonly origin: Kysely<any>; readonly hooks: SettleHook[] }>()

/**
 * The Kysely a transaction was begun on (a service's own schema view), or `db` itself when it is
 * no transaction: how work written inside a transaction finds the service it belongs to.
 */
export function originOf(db: Kysely<any>): Kysely<any> | undefined {
  return db.isTransaction ? openTransactions.get(db)?.origin : db
}

/**
 * Runs `hook` once `db`'s transaction has committed (never when it rolls back); at once when `db`
 * is no transaction (its statements are already committed). False when `db` is a transaction not
 * begun by inTransaction, whose commit cannot be seen.
 */
export function afterCommit(db: Kysely<any>, hook: () => void): boolean {
  return whenSettled(db, hook)
}

/** afterCommit(), and `rolledBack` when the transaction rolls back instead. */
export function whenSettled(db: Kysely<any>, committed: () => void, rolledBack?: () => void): boolean {
  if (!db.isTransaction) {
    committed()
    return true
  }
  const open = openTransactions.get(db)
  if (!open) return false
  open.hooks.push({ committed, rolledBack })
  return true
}

/** Work offered to the next transaction inTransaction begins on a Kysely (its first statements). */
const offers = new WeakMap<Kysely<any>, Set<(trx: Kysely<any>) => Promise<void>>>()

/**
 * Offers `work` to the next transaction begun on `db` by inTransaction (read committed, as every
 * handler's is): it runs first in it, its statements commit or roll back with it (whenSettled
 * tells). For bookkeeping of `db`'s own that may share any transaction of the service (outbox
 * acknowledgements: one commit fewer each). The returned function withdraws the offer if no
 * transaction took it yet.
 */
export function offerToNextTransaction(db: Kysely<any>, work: (trx: Kysely<any>) => Promise<void>): () => void {
  let waiting = offers.get(db)
  if (!waiting) offers.set(db, (waiting = new Set()))
  waiting.add(work)
  return () => void waiting.delete(work)
}

/** Runs `work` in a transaction (or the caller's, if it is one), retrying serialization failures, deadlocks and stale prepared plans a few times. */
export async function inTransaction<Database, T>(
  db: Kysely<Database>,
  work: (trx: Transaction<Database>) => Promise<T>,
  options: { isolation?: 'read committed' | 'repeatable read' | 'serializable'; attempts?: number } = {},
): Promise<T> {
  // Already inside one (a domain function called within an idempotent call): join it.
  if (db.isTransaction) return work(db as Transaction<Database>)
  const attempts = options.attempts ?? 5
  for (let attempt = 1; ; attempt++) {
    try {
      let builder = db.transaction()
      if (options.isolation) builder = builder.setIsolationLevel(options.isolation)
      // Each attempt has its own transaction object and hooks: a rolled-back attempt's are told so.
      const hooks: SettleHook[] = []
      let result: T
      try {
        result = await builder.execute(async (trx) => {
          openTransactions.set(trx, { origin: db, hooks })
          const offered = options.isolation ? undefined : offers.get(db)
          if (offered?.size) {
            const taken = [...offered]
            offered.clear()
            for (const each of taken) await each(trx)
          }
          return work(trx)
        })
      } catch (error) {
        for (const hook of hooks) hook.rolledBack?.()
        throw error
      }
      for (const hook of hooks) hook.committed()
      return result
    } catch (error) {
      const code = (error as { code?: unknown }).code
      const retryable = (typeof code === 'string' && RETRYABLE_SQLSTATES.has(code)) || isStalePlan(error)
      if (attempt >= attempts || !retryable) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt))
    }
  }
}

/** PostgreSQL's unique_violation, for mapping a lost insert race to ALREADY_EXISTS. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown }).code === '23505'
}
