// The account's own terminals (DESIGN "The account's terminals"): each terminal enrolled in one
// cloud account at a time, and failed enrolment attempts counted per terminal as well.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('account_terminals')
    .addColumn('terminal_id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('cloud_accounts.account_id'))
    .addColumn('enrollment_id', 'text', (c) => c.notNull().unique())
    .addColumn('display_name', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
    .addColumn('enrolled_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('account_terminals_account').on('account_terminals').columns(['account_id', 'seq']).execute()
  await db.schema.alterTable('login_failures').dropConstraint('login_failures_scope_check').execute()
  await db.schema
    .alterTable('login_failures')
    .addCheckConstraint('login_failures_scope_check', sql`scope in ('account', 'device', 'terminal')`)
    .execute()
}
