// The sealed relay: each platform's HPKE sealing keys (public half in clear, private half sealed
// with the data key), and the digests of the sealed blobs already used, so none is used twice.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sealing_keys')
    .addColumn('key_id', 'text', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('sealed_private_key', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('sealing_keys_newest').on('sealing_keys').columns(['platform_id', 'created_at']).execute()
  await db.schema
    .createTable('sealed_blobs')
    .addColumn('digest', 'text', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('serial_number', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('paid', 'wrong_password')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sealed_blobs').execute()
  await db.schema.dropTable('sealing_keys').execute()
}
