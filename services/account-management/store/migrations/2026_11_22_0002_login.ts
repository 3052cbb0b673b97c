// Logins, single-use login tokens (stored hashed), throttling of failed verifications, and the
// cloud account -> app account binding (login steps 1-4).
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('logins')
    .addColumn('login_id', 'text', (c) => c.primaryKey())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text', (c) => c.notNull().references('cloud_accounts.account_id'))
    .addColumn('binding_code', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'verified', 'rejected', 'redeemed')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('logins_device').on('logins').columns(['device_id', 'created_at']).execute()
  await db.schema
    .createTable('login_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('login_id', 'text', (c) => c.notNull().unique().references('logins.login_id'))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('consumed_at', 'timestamptz')
    .execute()
  await db.schema
    .createTable('login_failures')
    .addColumn('scope', 'text', (c) => c.notNull().check(sql`scope in ('account', 'device')`))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('first_failure_at', 'timestamptz', (c) => c.notNull())
    .addColumn('locked_until', 'timestamptz')
    .addPrimaryKeyConstraint('login_failures_pk', ['scope', 'subject'])
    .execute()
  await db.schema
    .createTable('app_account_bindings')
    .addColumn('account_id', 'text', (c) => c.primaryKey().references('cloud_accounts.account_id'))
    .addColumn('app_account_id', 'text', (c) => c.notNull().unique())
    .addColumn('bound_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
}
