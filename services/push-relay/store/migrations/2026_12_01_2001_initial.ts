// The development push relay: every wake it would have sent, and request-id bookkeeping (AIP-155).
import { type Kysely, sql } from 'kysely'
import { createIdempotencyTable } from '../../../runtime/idempotency.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('wakes')
    .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
    .addColumn('wake_id', 'text', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()::text`))
    .addColumn('terminal_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject_id', 'text', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('wakes_terminal').on('wakes').columns(['terminal_id', 'seq']).execute()
  await createIdempotencyTable(db)
}
