// Payment accounts bound to cloud accounts (payment step 0): the payer account number is sealed,
// found by keyed hash, shown masked. At most one default per cloud account.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('payment_bindings')
    .addColumn('binding_id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull().references('cloud_accounts.account_id'))
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('payer_ref', 'text', (c) => c.notNull())
    .addColumn('sealed_payer', 'bytea', (c) => c.notNull())
    .addColumn('masked_payer', 'text', (c) => c.notNull())
    .addColumn('is_default', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
    .addColumn('bound_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('payment_bindings_unique', ['account_id', 'platform_id', 'payer_ref'])
    .execute()
  await db.schema.createIndex('payment_bindings_one_default').on('payment_bindings').column('account_id').unique().where(sql.ref('is_default'), '=', true).execute()
}
