// The trace context each event was published in, so subscribers can continue that trace.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('events')
    .addColumn('trace_parent', 'text', (c) => c.notNull().defaultTo(''))
    .execute()
}
