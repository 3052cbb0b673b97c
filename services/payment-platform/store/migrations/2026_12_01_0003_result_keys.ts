// The terminal a transaction was prepaid for (only it may pay), and result-signing keys apart from the TLS key: each platform signs payment results with an
// Ed25519 key of its own (private half sealed with the data key), and each transaction keeps the
// key it was created with, so PaymentManagement can hold the platform to it.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('result_keys')
    .addColumn('key_id', 'text', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('sealed_private_key', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('result_keys_newest').on('result_keys').columns(['platform_id', 'created_at']).execute()
  await db.schema.alterTable('transactions').addColumn('result_key_id', 'text').addColumn('terminal_id', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('transactions').dropColumn('result_key_id').dropColumn('terminal_id').execute()
  await db.schema.dropTable('result_keys').execute()
}
