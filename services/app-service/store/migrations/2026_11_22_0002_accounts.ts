// App accounts (each with its own save archive) and sessions (tokens stored hashed).
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('app_accounts')
    .addColumn('app_account_id', 'text', (c) => c.primaryKey())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('archive', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createTable('app_sessions')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('app_account_id', 'text', (c) => c.notNull().references('app_accounts.app_account_id'))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
}
