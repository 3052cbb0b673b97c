// Cloud accounts and instance assignments (login step 0).
import { type Kysely, sql } from 'kysely'
import { createIdempotencyTable } from '../../../runtime/idempotency.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('cloud_accounts')
    .addColumn('account_id', 'text', (c) => c.primaryKey())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createTable('instance_assignments')
    .addColumn('device_id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('cloud_accounts.account_id'))
    .addColumn('assigned_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('instance_assignments_account').on('instance_assignments').column('account_id').execute()
  await createIdempotencyTable(db)
}
