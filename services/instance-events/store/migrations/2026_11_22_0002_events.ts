// The Notify pipe: per-device event streams with gapless sequence numbers.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('device_streams')
    .addColumn('device_id', 'text', (c) => c.primaryKey())
    .addColumn('last_sequence', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('events')
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('sequence', 'bigint', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject_id', 'text', (c) => c.notNull())
    .addColumn('publisher', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('events_pk', ['device_id', 'sequence'])
    .execute()
  await db.schema.createIndex('events_created_at').on('events').column('created_at').execute()
}
